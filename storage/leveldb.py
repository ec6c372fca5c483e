"""The LevelDB backend: the one place that holds a plyvel handle.

Tuning, for a load of one large synchronous batch per block plus random point
reads of state and trie records:

- ``write_buffer_size`` 64 MiB: with LevelDB's default 4 MiB memtable, sustained
  block commits filled it every few heights and writers stalled behind the
  level-0 flush (0.5-0.9 s p99 measured); 64 MiB absorbs a few dozen
  5,000-key heights between flushes and brought p99 to ~50 ms.
- ``lru_cache_size`` 128 MiB block cache: the upper trie levels and hot accounts
  stay decoded in memory across heights; small next to a node's RAM.
- ``bloom_filter_bits`` 10 (~1% false positives): point reads of absent keys
  (new accounts, trie slots) skip data blocks instead of reading them.
- ``max_file_size`` 32 MiB: fewer, larger tables for a state of millions of
  keys, so fewer open files and less compaction bookkeeping.
- snappy compression (LevelDB's default): hashes do not compress, but snappy
  gives up on incompressible blocks cheaply and still shrinks msgpack values.
- ``paranoid_checks``: LevelDB refuses to open on detected corruption instead
  of silently dropping data; we turn that into a CorruptStoreError.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import plyvel

from storage.errors import CorruptStoreError, StorageError, StoreClosedError, StoreLockedError
from storage.kv import WriteBatch

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class LevelDBOptions:
    """LevelDB tuning (see the module docstring for the reasons)."""

    write_buffer_size: int = 64 * MiB
    lru_cache_size: int = 128 * MiB
    bloom_filter_bits: int = 10
    max_file_size: int = 32 * MiB
    max_open_files: int = 1000
    compression: str | None = "snappy"
    paranoid_checks: bool = True


def _recovery_hint(path: Path) -> str:
    return (
        f"Restore {path} from a backup, or move it aside and resync the chain from peers "
        f"(plyvel.repair_db may salvage part of it, but the node must then re-verify it)."
    )


class LevelDBBatch:
    """A plyvel write batch that counts its operations."""

    __slots__ = ("_count", "_wb")

    def __init__(self, wb: plyvel._plyvel.WriteBatch) -> None:
        self._wb = wb
        self._count = 0

    def put(self, key: bytes, value: bytes) -> None:
        self._wb.put(key, value)
        self._count += 1

    def delete(self, key: bytes) -> None:
        self._wb.delete(key)
        self._count += 1

    def __len__(self) -> int:
        return self._count


class LevelDBSnapshot:
    """A plyvel snapshot: a consistent view at the instant it was taken."""

    def __init__(self, snap: plyvel._plyvel.Snapshot) -> None:
        self._snap: plyvel._plyvel.Snapshot | None = snap

    def _live(self) -> plyvel._plyvel.Snapshot:
        if self._snap is None:
            raise StoreClosedError("snapshot used after close")
        return self._snap

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._live().get(key)
        return value

    def iterate(
        self, prefix: bytes = b"", *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        return _iterate(self._live(), prefix, start, reverse)

    def close(self) -> None:
        if self._snap is not None:
            self._snap.close()
            self._snap = None


def _iterate(
    source: plyvel.DB | plyvel._plyvel.Snapshot, prefix: bytes, start: bytes | None, reverse: bool
) -> Iterator[tuple[bytes, bytes]]:
    if start is None:
        if prefix:
            return source.iterator(prefix=prefix, reverse=reverse)  # type: ignore[no-any-return]
        return source.iterator(reverse=reverse)  # type: ignore[no-any-return]
    # plyvel cannot combine prefix= with start=/stop=; bound by hand instead.
    if reverse:
        it = source.iterator(stop=start, include_stop=True, reverse=True)
    else:
        it = source.iterator(start=max(start, prefix))
    return _bounded(it, prefix, start, reverse)


def _bounded(
    it: Iterator[tuple[bytes, bytes]], prefix: bytes, start: bytes, reverse: bool
) -> Iterator[tuple[bytes, bytes]]:
    for key, value in it:
        if key.startswith(prefix):
            yield key, value
        elif (key > prefix) != reverse:
            return  # walked past the prefix's range
    return


class LevelDBKV:
    """A LevelDB database opened through plyvel."""

    def __init__(self, path: str | Path, options: LevelDBOptions | None = None) -> None:
        self.path = Path(path)
        opts = options or LevelDBOptions()
        try:
            self._db: plyvel.DB | None = plyvel.DB(
                str(self.path),
                create_if_missing=True,
                paranoid_checks=opts.paranoid_checks,
                write_buffer_size=opts.write_buffer_size,
                lru_cache_size=opts.lru_cache_size,
                bloom_filter_bits=opts.bloom_filter_bits,
                max_file_size=opts.max_file_size,
                max_open_files=opts.max_open_files,
                compression=opts.compression,
            )
        except plyvel.CorruptionError as exc:
            raise CorruptStoreError(
                f"LevelDB at {self.path} reports corruption: {exc}. {_recovery_hint(self.path)}"
            ) from exc
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise StoreLockedError(
                    f"LevelDB at {self.path} is locked by another process "
                    f"(is another node running on this data directory?): {exc}"
                ) from exc
            raise StorageError(f"cannot open LevelDB at {self.path}: {exc}") from exc
        except plyvel.Error as exc:
            raise StorageError(f"cannot open LevelDB at {self.path}: {exc}") from exc

    def _live(self) -> plyvel.DB:
        if self._db is None:
            raise StoreClosedError(f"LevelDB at {self.path} used after close")
        return self._db

    def get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._live().get(key)
        except plyvel.CorruptionError as exc:
            raise CorruptStoreError(
                f"LevelDB at {self.path} failed a read with corruption: {exc}. "
                f"{_recovery_hint(self.path)}"
            ) from exc
        return value

    def iterate(
        self, prefix: bytes = b"", *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        return _iterate(self._live(), prefix, start, reverse)

    def new_batch(self) -> LevelDBBatch:
        # Batches are always synchronous: a commit must be on disk before the
        # node says it happened.
        return LevelDBBatch(self._live().write_batch(sync=True))

    def write(self, batch: WriteBatch) -> None:
        if not isinstance(batch, LevelDBBatch):
            raise StorageError(f"LevelDBKV cannot write a {type(batch).__name__}")
        self._live()
        try:
            batch._wb.write()
        except plyvel.Error as exc:
            raise StorageError(f"write to LevelDB at {self.path} failed: {exc}") from exc

    def snapshot(self) -> LevelDBSnapshot:
        return LevelDBSnapshot(self._live().snapshot())

    def approximate_size(self, start: bytes, stop: bytes) -> int:
        """Return LevelDB's estimate of the on-disk bytes of keys in [start, stop)."""
        return int(self._live().approximate_size(start, stop))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
