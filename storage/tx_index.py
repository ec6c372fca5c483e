"""The address index: which committed transactions concern an address, in height order.

A separate database from the block store (``data/txindex``): the node indexes
each committed block after the block store's atomic write, and on start
re-indexes every height above ``indexed_height`` from the stored blocks, so a
crash between the two loses nothing and the height write of the block store
stays one batch. Which addresses a transaction concerns is the caller's
knowledge (the sender and the addresses in its body); this store files
``(address, height, index) -> tx hash`` and walks them in either order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from storage import schema
from storage.errors import CommitError, CorruptStoreError
from storage.kv import KVStore, MemoryKV

MAX_SEARCH = 1000


@dataclass(frozen=True, slots=True)
class IndexedTx:
    """One index entry: the ``index``-th transaction of block ``height``."""

    height: int
    index: int
    tx_hash: bytes


class AddressTxIndex:
    """Files and searches ``(address, height, index) -> tx hash``."""

    def __init__(self, kv: KVStore) -> None:
        self._kv = kv

    @classmethod
    def open(cls, path: str | Path) -> AddressTxIndex:
        from storage.leveldb import LevelDBKV

        return cls(LevelDBKV(path))

    @classmethod
    def open_memory(cls) -> AddressTxIndex:
        return cls(MemoryKV())

    def close(self) -> None:
        self._kv.close()

    def indexed_height(self) -> int:
        """The last height whose transactions are all indexed (0: none)."""
        raw = self._kv.get(schema.INDEXED_HEIGHT_KEY)
        if raw is None:
            return 0
        try:
            return schema.decode_height(raw)
        except ValueError as exc:
            raise CorruptStoreError(f"the address index's height record is unreadable: {exc}") from exc

    def index_height(self, height: int, rows: Sequence[tuple[int, bytes, Sequence[bytes]]]) -> None:
        """File height ``height``'s transactions, ``(index, tx hash, addresses)`` each, in one write.

        Heights go in order: the next one is ``indexed_height() + 1``.
        """
        expected = self.indexed_height() + 1
        if height != expected:
            raise CommitError(f"the address index is at height {expected - 1}; cannot index height {height}")
        batch = self._kv.new_batch()
        for index, tx_hash, addresses in rows:
            if len(tx_hash) != schema.HASH_LEN:
                raise CommitError(f"tx hash must be {schema.HASH_LEN} bytes")
            for address in dict.fromkeys(addresses):
                batch.put(schema.addr_tx_key(address, height, index), tx_hash)
        batch.put(schema.INDEXED_HEIGHT_KEY, schema.encode_height(height))
        self._kv.write(batch)

    def mark_indexed(self, height: int) -> None:
        """Move the index to ``height`` with nothing filed in between (heights whose blocks are pruned)."""
        if height < self.indexed_height():
            raise CommitError(f"the address index is at height {self.indexed_height()}; cannot go back to {height}")
        batch = self._kv.new_batch()
        batch.put(schema.INDEXED_HEIGHT_KEY, schema.encode_height(height))
        self._kv.write(batch)

    def search(
        self,
        address: bytes,
        *,
        min_height: int = 1,
        max_height: int = schema.MAX_HEIGHT,
        after: tuple[int, int] | None = None,
        descending: bool = False,
        limit: int = 100,
    ) -> list[IndexedTx]:
        """Entries of ``address`` within the heights, past the ``after`` cursor, at most ``limit``."""
        if not 1 <= limit <= MAX_SEARCH:
            raise ValueError(f"limit must be 1..{MAX_SEARCH}")
        out = []
        for entry in self._walk(address, min_height, max_height, after, descending):
            out.append(entry)
            if len(out) >= limit:
                break
        return out

    def _walk(
        self, address: bytes, lo: int, hi: int, after: tuple[int, int] | None, descending: bool
    ) -> Iterator[IndexedTx]:
        prefix = schema.addr_tx_prefix(address)
        if descending:
            start = schema.addr_tx_key(address, hi, (1 << 32) - 1)
            if after is not None:
                start = min(start, schema.addr_tx_key(address, after[0], after[1]))
        else:
            start = schema.addr_tx_key(address, lo, 0)
            if after is not None:
                start = max(start, schema.addr_tx_key(address, after[0], after[1]))
        for key, value in self._kv.iterate(prefix, start=start, reverse=descending):
            height, index = schema.decode_addr_tx_key(key)
            if after is not None and (height, index) == after:
                continue
            if height < lo or height > hi:
                return
            yield IndexedTx(height, index, value)
