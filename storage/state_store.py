"""The state store: logical state keys and values, read live or from a frozen snapshot.

Every piece of state the transition holds (accounts, validators, stakes and
delegations, the unbonding queue, compute NFTs, attestations, proof-of-compute
challenges, slashing records, jobs, params) is a logical key chosen by
consensus/ mapped to value bytes it encodes. This store files them under the
``state`` family, one record per key, so a key reads in one lookup and a prefix
(all accounts, all NFTs of ...) iterates in key order; it never interprets them.

``StateView`` is the live head state; ``StateSnapshot`` pins one committed
height (a LevelDB snapshot) so RPC reads, block reads and proofs stay mutually
consistent while the next commit is being written. Both satisfy
consensus.state_reader.StateReader.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from consensus.state_proof import StateProof, compute_content_root
from consensus.state_reader import StateReader
from storage import schema
from storage.block_store import BlockStore
from storage.errors import CommitError, CorruptStoreError
from storage.kv import KVReader, KVSnapshot, WriteBatch
from storage.state_tree import StateTree, decode_root_content

_STATE_PREFIX_LEN = len(schema.STATE_PREFIX)
#: Longest logical key accepted; keys are short structured identifiers.
MAX_STATE_KEY_LEN = 1024


@dataclass(frozen=True, slots=True)
class Head:
    """The latest committed height: its block hash and the state root after it."""

    height: int
    block_hash: bytes
    state_root: bytes

    def encode(self) -> bytes:
        return schema.encode_height(self.height) + self.block_hash + self.state_root

    @classmethod
    def decode(cls, data: bytes) -> Head:
        if len(data) != schema.HEIGHT_LEN + 2 * schema.HASH_LEN:
            raise CorruptStoreError(
                f"the head record is {len(data)} bytes, expected "
                f"{schema.HEIGHT_LEN + 2 * schema.HASH_LEN}"
            )
        height = schema.decode_height(data[: schema.HEIGHT_LEN])
        return cls(
            height,
            data[schema.HEIGHT_LEN : schema.HEIGHT_LEN + schema.HASH_LEN],
            data[schema.HEIGHT_LEN + schema.HASH_LEN :],
        )


def stage_state_changes(batch: WriteBatch, changes: Mapping[bytes, bytes | None]) -> None:
    """Add the value records of a change set to ``batch``."""
    for key, value in changes.items():
        if type(key) is not bytes or not key or len(key) > MAX_STATE_KEY_LEN:
            raise CommitError(
                f"state key {key!r} must be non-empty bytes of at most {MAX_STATE_KEY_LEN}"
            )
        if value is None:
            batch.delete(schema.state_key(key))
        elif type(value) is bytes:
            batch.put(schema.state_key(key), value)
        else:
            raise CommitError(f"state value for {key!r} must be bytes or None")


class StateView:
    """The logical state as seen through a KV reader (live store or snapshot)."""

    def __init__(self, reader: KVReader) -> None:
        self._kv = reader

    def get(self, key: bytes) -> bytes | None:
        """Return the value of logical ``key``, or None."""
        return self._kv.get(schema.STATE_PREFIX + key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` for logical keys starting with ``prefix``, ascending."""
        for key, value in self._kv.iterate(schema.STATE_PREFIX + prefix):
            yield key[_STATE_PREFIX_LEN:], value


class StateSnapshot(StateView):
    """The state, blocks and trie at one committed height, frozen.

    Use as a context manager (or call ``close``) to release the underlying
    LevelDB snapshot.
    """

    def __init__(self, snap: KVSnapshot, tree: StateTree) -> None:
        super().__init__(snap)
        self._snap = snap
        self._tree = tree
        head = snap.get(schema.HEAD_KEY)
        self.head: Head | None = None if head is None else Head.decode(head)
        self.blocks = BlockStore(snap)
        self._root_content = decode_root_content(snap.get(schema.TREE_ROOT_KEY))

    @property
    def height(self) -> int | None:
        """The committed height this snapshot shows (None: nothing committed yet)."""
        return None if self.head is None else self.head.height

    @property
    def state_root(self) -> bytes:
        return compute_content_root(self._root_content)

    def prove(self, key: bytes) -> StateProof:
        """Return the proof of ``key``'s value (or absence) against ``state_root``."""
        return self._tree.prove(self._snap, self._root_content, key)

    def as_reader(self) -> StateReader:
        """This snapshot as the consensus layer's StateReader (checked by mypy)."""
        return self

    def close(self) -> None:
        self._snap.close()

    def __enter__(self) -> StateSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
