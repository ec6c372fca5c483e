"""NodeStore: a node's whole on-disk state, committed one height at a time.

A height is prepared, then committed. ``prepare_height`` stages everything the
height writes (block, commit, transaction index, state values, the state trie's
changed branches, the new root and the head pointer) into one write batch and
computes the new state root, touching nothing on disk; ``commit`` writes that
batch atomically with sync. A crash at any instant therefore leaves the store
at the previous height or the new one, never between.

Opening checks the head before anything else may use the store: the head's
block, hash index and commit exist, the stored root of the head height equals
the head's root, and the trie's root record hashes to it (``verify="full"``
also walks the whole trie and recomputes the root from the state values). Any
inconsistency raises CorruptStoreError naming what is wrong and what the
operator can do; the store never starts on data it cannot vouch for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from consensus.hashing import ZERO_HASH
from consensus.state_proof import (
    HASH_LEN,
    StateProof,
    compute_branch_hash,
    compute_content_root,
    compute_state_root,
)
from consensus.state_reader import StateReader
from storage import schema
from storage.block_store import BlockStore, TxEntryLike
from storage.errors import CommitError, CorruptStoreError, SchemaVersionError, StorageError
from storage.kv import KVStore, MemoryKV, WriteBatch
from storage.leveldb import LevelDBKV, LevelDBOptions
from storage.lock import DirectoryLock
from storage.state_store import Head, StateSnapshot, StateView, stage_state_changes
from storage.state_tree import StateTree, TreeUpdate, decode_root_content
from storage.trie_pages import read_branch

VerifyMode = Literal["quick", "full"]
LEVELDB_DIR = "leveldb"


class PreparedHeight:
    """A height staged in a write batch, with its new state root, not yet on disk."""

    __slots__ = ("_batch", "_update", "base", "committed", "head", "root_update_seconds")

    def __init__(
        self,
        base: Head | None,
        head: Head,
        batch: WriteBatch,
        update: TreeUpdate,
        root_update_seconds: float,
    ):
        self.base = base
        """The head this preparation was computed on."""
        self.head = head
        """The head once committed (height, block hash, new state root)."""
        self._batch = batch
        self._update = update
        self.committed = False
        self.root_update_seconds = root_update_seconds
        """Wall time spent updating the state trie (for metrics and benchmarks)."""

    @property
    def height(self) -> int:
        return self.head.height

    @property
    def state_root(self) -> bytes:
        return self.head.state_root

    @property
    def batch_size(self) -> int:
        """Number of put and delete operations in the batch."""
        return len(self._batch)


class NodeStore:
    """Blocks, state and the authenticated state trie of one node."""

    def __init__(
        self, kv: KVStore, *, directory: Path | None = None, lock: DirectoryLock | None = None
    ) -> None:
        self._kv = kv
        self._directory = directory
        self._lock = lock
        self._tree = StateTree()
        self._head: Head | None = None
        self._root_content: bytes | None = None
        self._failed: str | None = None
        self.blocks = BlockStore(kv)
        """Live reads of blocks, commits and the transaction index."""
        self.state = StateView(kv)
        """The live head state (a consensus.state_reader.StateReader)."""

    # --- opening and closing -----------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str | Path,
        *,
        options: LevelDBOptions | None = None,
        verify: VerifyMode = "quick",
    ) -> NodeStore:
        """Open (or create) the store in ``directory``, locking it for this process."""
        path = Path(directory)
        lock = DirectoryLock.acquire(path)
        try:
            kv = LevelDBKV(path / LEVELDB_DIR, options)
        except BaseException:
            lock.release()
            raise
        store = cls(kv, directory=path, lock=lock)
        try:
            store._load(verify)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open_memory(cls, kv: MemoryKV | None = None, *, verify: VerifyMode = "quick") -> NodeStore:
        """Open a store over an in-memory KV (a fresh one, or ``kv`` to simulate a restart)."""
        store = cls(kv if kv is not None else MemoryKV())
        store._load(verify)
        return store

    def close(self) -> None:
        """Close the database and release the directory lock (idempotent)."""
        try:
            self._kv.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> NodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _where(self) -> str:
        return f"data directory {self._directory}" if self._directory else "in-memory store"

    def _corrupt(self, what: str) -> CorruptStoreError:
        where = self._where()
        return CorruptStoreError(
            f"{where} is corrupt: {what}. The node will not start on it. Restore the "
            f"directory from a backup, or move it aside and resync the chain from peers."
        )

    def _load(self, verify: VerifyMode) -> None:
        with self._explained():
            self._check_schema()
            self._head, self._root_content = self._check_head()
            if verify == "full":
                self._check_full()

    @contextmanager
    def _explained(self) -> Iterator[None]:
        """Re-raise a lower layer's CorruptStoreError saying where and what to do."""
        try:
            yield
        except CorruptStoreError as exc:
            if str(exc).startswith(self._where()):
                raise  # already says where and what to do
            raise self._corrupt(str(exc)) from exc

    def _check_schema(self) -> None:
        marker = self._kv.get(schema.SCHEMA_KEY)
        if marker is None:
            for key, _ in self._kv.iterate():
                raise self._corrupt(f"it holds data (key {key.hex()}) but no schema marker")
            batch = self._kv.new_batch()
            batch.put(schema.SCHEMA_KEY, bytes((schema.SCHEMA_VERSION,)))
            self._kv.write(batch)
            return
        if marker != bytes((schema.SCHEMA_VERSION,)):
            raise SchemaVersionError(
                f"{self._where()} uses storage schema {marker.hex()}, but this node reads "
                f"schema {schema.SCHEMA_VERSION:02x}. Run the node version that wrote it, "
                f"or move it aside and resync the chain from peers."
            )

    def _check_head(self) -> tuple[Head | None, bytes | None]:
        kv = self._kv
        raw_head = kv.get(schema.HEAD_KEY)
        if raw_head is None:
            for key, _ in kv.iterate(schema.VERSION_PREFIX):
                raise self._corrupt(f"it holds records (key {key.hex()}) but no head pointer")
            return None, None
        head = Head.decode(raw_head)
        h = head.height
        if h > 0:
            stored_hash = kv.get(schema.block_hash_key(h))
            if stored_hash is None or kv.get(schema.block_key(h)) is None:
                raise self._corrupt(f"the head points at height {h} but its block is missing")
            if stored_hash != head.block_hash:
                raise self._corrupt(
                    f"the head's block hash {head.block_hash.hex()} differs from the stored "
                    f"block hash {stored_hash.hex()} at height {h}"
                )
            if kv.get(schema.commit_key(h)) is None:
                raise self._corrupt(f"the commit of head height {h} is missing")
            if self.blocks.get_height(head.block_hash) != h:
                raise self._corrupt(f"the hash index does not map the head block to height {h}")
        stored_root = kv.get(schema.root_key(h))
        if stored_root != head.state_root:
            raise self._corrupt(
                f"the state root recorded for height {h} "
                f"({stored_root.hex() if stored_root else 'missing'}) differs from the head's "
                f"{head.state_root.hex()}"
            )
        content = decode_root_content(kv.get(schema.TREE_ROOT_KEY))
        if content is not None and len(content) == HASH_LEN:
            record = read_branch(kv, 0, ZERO_HASH)
            if compute_branch_hash(record) != content:
                raise self._corrupt(
                    f"the state trie's root branch does not hash to the recorded root at height {h}"
                )
        if compute_content_root(content) != head.state_root:
            raise self._corrupt(
                f"the state trie's root {compute_content_root(content).hex()} differs from the "
                f"head's state root {head.state_root.hex()} at height {h}"
            )
        return head, content

    def _check_full(self) -> None:
        self._tree.verify_all(self._kv, self._root_content)
        values = {key: value for key, value in self.state.iter_prefix(b"")}
        recomputed = compute_state_root(values)
        if recomputed != self.state_root:
            raise self._corrupt(
                f"the state root recomputed from the stored values ({recomputed.hex()}) differs "
                f"from the head's state root ({self.state_root.hex()})"
            )

    def verify(self) -> None:
        """Re-run the full check: walk the trie and recompute the root from the values.

        Reads the live store, so call it from the writer (not during a commit).
        It holds every state value in memory while it recomputes the root.
        """
        with self._explained():
            self._check_head()
            self._check_full()

    # --- the head ------------------------------------------------------------

    @property
    def head(self) -> Head | None:
        """The latest committed height, or None before genesis."""
        return self._head

    @property
    def latest_height(self) -> int | None:
        return None if self._head is None else self._head.height

    @property
    def state_root(self) -> bytes:
        """The state root after the latest committed height (the empty root before genesis)."""
        return compute_content_root(self._root_content)

    def state_root_at(self, height: int) -> bytes | None:
        """Return the state root after ``height`` (kept for every committed height), or None."""
        return self._kv.get(schema.root_key(height))

    # --- reads ---------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """Return the live value of logical state ``key``."""
        return self.state.get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield live ``(key, value)`` pairs under ``prefix`` in ascending key order."""
        return self.state.iter_prefix(prefix)

    @property
    def reader(self) -> StateReader:
        """The live head state as the consensus layer's StateReader."""
        return self.state

    def snapshot(self) -> StateSnapshot:
        """Return a frozen view of the latest committed height (state, blocks, proofs)."""
        return StateSnapshot(self._kv.snapshot(), self._tree)

    def prove(self, key: bytes) -> StateProof:
        """Return the proof of ``key`` against the latest state root (``state_root``)."""
        with self.snapshot() as snap:
            return snap.prove(key)

    # --- writing ---------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._failed is not None:
            raise StorageError(
                f"{self._where()}: an earlier commit failed ({self._failed}); "
                f"close and reopen the store before writing again"
            )

    def _prepare(
        self,
        height: int,
        block_hash: bytes,
        state_changes: Mapping[bytes, bytes | None],
        stage_block: Callable[[WriteBatch], None] | None,
    ) -> PreparedHeight:
        self._check_writable()
        batch = self._kv.new_batch()
        if stage_block is not None:
            stage_block(batch)
        stage_state_changes(batch, state_changes)
        started = time.perf_counter()
        update = self._tree.compute_update(self._kv, self._root_content, state_changes)
        root_update_seconds = time.perf_counter() - started
        for key, record in update.node_writes.items():
            if record is None:
                batch.delete(key)
            else:
                batch.put(key, record)
        batch.put(schema.TREE_ROOT_KEY, update.root_content or b"")
        batch.put(schema.root_key(height), update.root)
        head = Head(height, block_hash, update.root)
        batch.put(schema.HEAD_KEY, head.encode())
        return PreparedHeight(self._head, head, batch, update, root_update_seconds)

    def prepare_genesis(
        self, state_changes: Mapping[bytes, bytes | None], genesis_hash: bytes = ZERO_HASH
    ) -> PreparedHeight:
        """Stage the genesis state as height 0 (no block); ``genesis_hash`` names it."""
        if self._head is not None:
            raise CommitError(f"genesis is already committed (head is {self._head.height})")
        if type(genesis_hash) is not bytes or len(genesis_hash) != HASH_LEN:
            raise CommitError(f"genesis hash must be {HASH_LEN} bytes")
        return self._prepare(0, genesis_hash, state_changes, None)

    def prepare_height(
        self,
        height: int,
        block_hash: bytes,
        block_bytes: bytes,
        commit_bytes: bytes,
        tx_entries: Mapping[bytes, TxEntryLike],
        state_changes: Mapping[bytes, bytes | None],
    ) -> PreparedHeight:
        """Stage block ``height`` and its state changes; compute the new state root.

        Nothing is written until ``commit``. ``tx_entries`` maps tx hash to a
        TxLocation or ``(height, index, code, log)``.
        """
        if self._head is None:
            raise CommitError("no genesis state: commit genesis (height 0) first")
        if type(height) is not int or height != self._head.height + 1:
            raise CommitError(
                f"cannot commit height {height}: the head is at {self._head.height}, "
                f"so the next height must be {self._head.height + 1}"
            )

        def stage_block(batch: WriteBatch) -> None:
            BlockStore.stage_save(
                batch, height, block_hash, block_bytes, commit_bytes, tx_entries
            )

        return self._prepare(height, block_hash, state_changes, stage_block)

    def commit(self, prepared: PreparedHeight) -> bytes:
        """Write a prepared height in one synced batch; return its state root."""
        self._check_writable()
        if prepared.committed:
            raise CommitError(f"height {prepared.height} was already committed")
        if prepared.base != self._head:
            raise CommitError(
                f"height {prepared.height} was prepared on a different head; prepare it again"
            )
        try:
            self._kv.write(prepared._batch)
        except StorageError as exc:
            self._failed = str(exc)
            raise
        prepared.committed = True
        self._head = prepared.head
        self._root_content = prepared._update.root_content
        self._tree.on_committed(prepared._update)
        return prepared.head.state_root

    def commit_genesis(
        self, state_changes: Mapping[bytes, bytes | None], genesis_hash: bytes = ZERO_HASH
    ) -> bytes:
        """Prepare and commit the genesis state (height 0); return its state root."""
        return self.commit(self.prepare_genesis(state_changes, genesis_hash))

    def commit_height(
        self,
        height: int,
        block_hash: bytes,
        block_bytes: bytes,
        commit_bytes: bytes,
        tx_entries: Mapping[bytes, TxEntryLike],
        state_changes: Mapping[bytes, bytes | None],
    ) -> bytes:
        """Prepare and commit one height in one synced batch; return the new state root."""
        prepared = self.prepare_height(
            height, block_hash, block_bytes, commit_bytes, tx_entries, state_changes
        )
        return self.commit(prepared)

    def prune_blocks(self, retain_height: int) -> int:
        """Delete blocks, commits and tx index entries below ``retain_height``; return how many.

        The head block is always kept, and state roots of every height stay.
        """
        self._check_writable()
        if self._head is None:
            return 0
        retain_height = min(retain_height, self._head.height)
        earliest = self.blocks.earliest_height()
        if earliest is None or earliest >= retain_height:
            return 0
        batch = self._kv.new_batch()
        for height in range(earliest, retain_height):
            self.blocks.stage_prune(batch, height)
        self._kv.write(batch)
        return retain_height - earliest
