"""The key-value interface every store is built on, and its in-memory backend.

A backend offers point reads, ordered prefix iteration, atomic write batches
and consistent snapshots. Two backends exist: LevelDB through plyvel
(storage/leveldb.py, the only module that touches plyvel) and the dict-backed
``MemoryKV`` here, an in-process twin for tests and simulations. Both must pass
the same conformance suite and give the same state roots.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from typing import Protocol

from storage.errors import StorageError, StoreClosedError


class KVReader(Protocol):
    """Point reads and ordered iteration."""

    def get(self, key: bytes) -> bytes | None:
        """Return the value of ``key`` or None."""
        ...

    def iterate(
        self, prefix: bytes = b"", *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` for keys starting with ``prefix`` in bytewise order.

        ``start`` (forward: first key >= start; reverse: first key <= start)
        narrows the walk; ``reverse`` walks from the largest key down.
        """
        ...


class KVSnapshot(KVReader, Protocol):
    """A frozen view of the store at one instant; release it with ``close``."""

    def close(self) -> None: ...


class WriteBatch(Protocol):
    """Puts and deletes applied atomically by ``KVStore.write`` (later ops win)."""

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def __len__(self) -> int: ...


class KVStore(KVReader, Protocol):
    """A key-value backend."""

    def new_batch(self) -> WriteBatch:
        """Return an empty batch for this backend."""
        ...

    def write(self, batch: WriteBatch) -> None:
        """Apply ``batch`` atomically and durably (fsync before returning)."""
        ...

    def snapshot(self) -> KVSnapshot:
        """Return a consistent read view that later writes do not affect."""
        ...

    def close(self) -> None: ...


def _check_bytes(key: object, what: str = "key") -> None:
    if type(key) is not bytes:
        raise StorageError(f"{what} must be bytes, got {type(key).__name__}")


class MemoryBatch:
    """A list of pending operations for ``MemoryKV``."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        _check_bytes(key)
        _check_bytes(value, "value")
        self.ops.append((key, value))

    def delete(self, key: bytes) -> None:
        _check_bytes(key)
        self.ops.append((key, None))

    def __len__(self) -> int:
        return len(self.ops)


class _SortedView:
    """A dict plus a lazily rebuilt sorted key list, iterated by bisection."""

    def __init__(self, data: dict[bytes, bytes], keys: list[bytes] | None = None) -> None:
        self.data = data
        self._keys = keys

    def keys(self) -> list[bytes]:
        if self._keys is None:
            self._keys = sorted(self.data)
        return self._keys

    def cached_keys(self) -> list[bytes] | None:
        """Return the sorted key list if it is current (it is never mutated, only replaced)."""
        return self._keys

    def invalidate(self) -> None:
        self._keys = None

    def collect(
        self, prefix: bytes, start: bytes | None, reverse: bool
    ) -> list[tuple[bytes, bytes]]:
        """Return the matching items, in order, as a list (taken all at once)."""
        keys = self.keys()
        lo = bisect.bisect_left(keys, prefix)
        succ = _prefix_successor(prefix)
        hi = len(keys) if succ is None else bisect.bisect_left(keys, succ)
        if start is not None:
            if reverse:
                hi = min(hi, bisect.bisect_right(keys, start))
            else:
                lo = max(lo, bisect.bisect_left(keys, start))
        data = self.data
        chosen = keys[lo:hi]
        if reverse:
            chosen.reverse()
        return [(k, data[k]) for k in chosen]


def _prefix_successor(prefix: bytes) -> bytes | None:
    """Return the smallest key greater than every key starting with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


class MemorySnapshot:
    """A copy of ``MemoryKV``'s contents taken under its lock."""

    def __init__(self, data: dict[bytes, bytes], keys: list[bytes] | None) -> None:
        self._view: _SortedView | None = _SortedView(data, keys)

    def _live(self) -> _SortedView:
        if self._view is None:
            raise StoreClosedError("snapshot used after close")
        return self._view

    def get(self, key: bytes) -> bytes | None:
        return self._live().data.get(key)

    def iterate(
        self, prefix: bytes = b"", *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._live().collect(prefix, start, reverse))

    def close(self) -> None:
        self._view = None


class MemoryKV:
    """A dict-backed key-value store with the same semantics as the LevelDB backend.

    Snapshots copy the dict (O(n)); fine for the test and simulation sizes this
    backend exists for.
    """

    def __init__(self) -> None:
        self._view: _SortedView | None = _SortedView({})
        self._lock = threading.Lock()

    def _live(self) -> _SortedView:
        if self._view is None:
            raise StoreClosedError("in-memory store used after close")
        return self._view

    def get(self, key: bytes) -> bytes | None:
        return self._live().data.get(key)

    def iterate(
        self, prefix: bytes = b"", *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        # The matching items are taken under the lock, like LevelDB's implicit
        # iterator snapshot, so a concurrent write cannot tear the walk.
        with self._lock:
            items = self._live().collect(prefix, start, reverse)
        return iter(items)

    def new_batch(self) -> MemoryBatch:
        return MemoryBatch()

    def write(self, batch: WriteBatch) -> None:
        if not isinstance(batch, MemoryBatch):
            raise StorageError(f"MemoryKV cannot write a {type(batch).__name__}")
        with self._lock:
            view = self._live()
            data = view.data
            for key, value in batch.ops:
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            view.invalidate()

    def snapshot(self) -> MemorySnapshot:
        with self._lock:
            view = self._live()
            return MemorySnapshot(dict(view.data), view.cached_keys())

    def close(self) -> None:
        self._view = None
