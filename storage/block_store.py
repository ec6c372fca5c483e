"""The block store: blocks and their commits by height and hash, and the transaction index.

Bytes in, bytes out: the consensus layer encodes blocks and commits, this store
only files them. Writes are staged into the height's batch by ``stage_save``
(NodeStore does that, so a block is never on disk without its state); reads
work on the live store or on a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from consensus.codec import pack_raw, unpack_raw
from consensus.errors import DecodeError
from storage import schema
from storage.errors import CommitError, CorruptStoreError
from storage.kv import KVReader, WriteBatch

MAX_TX_LOG_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class TxLocation:
    """Where a committed transaction is, and how it ended."""

    height: int
    index: int
    code: int
    """Result code (0: success)."""
    log: str
    """Human-readable result message."""


TxEntryLike = TxLocation | tuple[int, int, int, str]


def encode_tx_location(loc: TxLocation) -> bytes:
    return pack_raw([loc.height, loc.index, loc.code, loc.log.encode("utf-8")])


def decode_tx_location(tx_hash: bytes, data: bytes) -> TxLocation:
    try:
        raw = unpack_raw(data)
        if not isinstance(raw, list) or len(raw) != 4:
            raise DecodeError("expected an array of 4 fields")
        height, index, code, log = raw
        if not (isinstance(height, int) and isinstance(index, int) and isinstance(code, int)):
            raise DecodeError("height, index and code must be integers")
        if not isinstance(log, bytes):
            raise DecodeError("log must be bytes")
        return TxLocation(height, index, code, log.decode("utf-8"))
    except (DecodeError, UnicodeDecodeError) as exc:
        raise CorruptStoreError(
            f"transaction index record for {tx_hash.hex()} is unreadable: {exc}"
        ) from exc


def to_tx_location(value: TxEntryLike) -> TxLocation:
    """Normalise a tx index entry given as TxLocation or (height, index, code, log)."""
    loc = value if isinstance(value, TxLocation) else TxLocation(*value)
    if not (
        type(loc.height) is int
        and type(loc.index) is int
        and type(loc.code) is int
        and type(loc.log) is str
    ):
        raise CommitError(f"malformed tx index entry {value!r}")
    if len(loc.log.encode("utf-8")) > MAX_TX_LOG_BYTES:
        raise CommitError(f"tx log longer than {MAX_TX_LOG_BYTES} bytes")
    return loc


class BlockStore:
    """Reads of blocks, commits and the transaction index from a KV view."""

    def __init__(self, reader: KVReader) -> None:
        self._kv = reader

    # --- staging (called by NodeStore inside a height's batch) --------------

    @staticmethod
    def stage_save(
        batch: WriteBatch,
        height: int,
        block_hash: bytes,
        block_bytes: bytes,
        commit_bytes: bytes,
        tx_entries: Mapping[bytes, TxEntryLike],
    ) -> None:
        """Add the records of one block to ``batch``."""
        if type(block_hash) is not bytes or len(block_hash) != schema.HASH_LEN:
            raise CommitError(f"block hash must be {schema.HASH_LEN} bytes")
        if type(block_bytes) is not bytes or type(commit_bytes) is not bytes:
            raise CommitError("block and commit must be bytes")
        batch.put(schema.block_key(height), block_bytes)
        batch.put(schema.block_hash_key(height), block_hash)
        batch.put(schema.height_by_hash_key(block_hash), schema.encode_height(height))
        batch.put(schema.commit_key(height), commit_bytes)
        for tx_hash, entry in tx_entries.items():
            if type(tx_hash) is not bytes or len(tx_hash) != schema.HASH_LEN:
                raise CommitError(f"tx hash must be {schema.HASH_LEN} bytes")
            loc = to_tx_location(entry)
            if loc.height != height:
                raise CommitError(
                    f"tx {tx_hash.hex()} is indexed at height {loc.height} in block {height}"
                )
            batch.put(schema.tx_key(tx_hash), encode_tx_location(loc))
        # The height's tx hashes, so pruning the block can drop its index entries.
        batch.put(schema.tx_list_key(height), b"".join(tx_entries))

    def stage_prune(self, batch: WriteBatch, height: int) -> None:
        """Add the deletion of every record of the block at ``height`` to ``batch``."""
        block_hash = self.load_block_hash(height)
        if block_hash is not None:
            batch.delete(schema.height_by_hash_key(block_hash))
        tx_hashes = self._kv.get(schema.tx_list_key(height)) or b""
        for i in range(0, len(tx_hashes), schema.HASH_LEN):
            batch.delete(schema.tx_key(tx_hashes[i : i + schema.HASH_LEN]))
        for key in (
            schema.block_key(height),
            schema.block_hash_key(height),
            schema.commit_key(height),
            schema.tx_list_key(height),
        ):
            batch.delete(key)

    # --- reads ------------------------------------------------------------

    def load_block(self, height: int) -> bytes | None:
        """Return the encoded block at ``height``, or None if not stored."""
        return self._kv.get(schema.block_key(height))

    def load_block_hash(self, height: int) -> bytes | None:
        """Return the hash of the block at ``height``, or None."""
        return self._kv.get(schema.block_hash_key(height))

    def load_commit(self, height: int) -> bytes | None:
        """Return the encoded commit of the block at ``height``, or None."""
        return self._kv.get(schema.commit_key(height))

    def get_height(self, block_hash: bytes) -> int | None:
        """Return the height of the block with ``block_hash``, or None."""
        data = self._kv.get(schema.height_by_hash_key(block_hash))
        if data is None:
            return None
        try:
            return schema.decode_height(data)
        except ValueError as exc:
            raise CorruptStoreError(
                f"height record of block {block_hash.hex()} is unreadable: {exc}"
            ) from exc

    def load_block_by_hash(self, block_hash: bytes) -> bytes | None:
        """Return the encoded block with ``block_hash``, or None."""
        height = self.get_height(block_hash)
        return None if height is None else self.load_block(height)

    def load_tx(self, tx_hash: bytes) -> TxLocation | None:
        """Return where transaction ``tx_hash`` was committed, or None."""
        data = self._kv.get(schema.tx_key(tx_hash))
        return None if data is None else decode_tx_location(tx_hash, data)

    def earliest_height(self) -> int | None:
        """Return the lowest height whose block is kept, or None if no block is stored."""
        for key, _ in self._kv.iterate(schema.BLOCK_PREFIX):
            return schema.decode_height(key[len(schema.BLOCK_PREFIX) :])
        return None

    def latest_height(self) -> int | None:
        """Return the highest height whose block is stored, or None."""
        for key, _ in self._kv.iterate(schema.BLOCK_PREFIX, reverse=True):
            return schema.decode_height(key[len(schema.BLOCK_PREFIX) :])
        return None

    def iter_blocks(self, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        """Yield ``(height, block)`` for stored heights in [start, stop), ascending."""
        end = schema.block_key(stop)
        for key, value in self._kv.iterate(schema.BLOCK_PREFIX, start=schema.block_key(start)):
            if key >= end:
                return
            yield schema.decode_height(key[len(schema.BLOCK_PREFIX) :]), value
