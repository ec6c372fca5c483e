"""Conformance of the key-value backends: the same behaviour from LevelDB and memory."""

from __future__ import annotations

import pytest

from storage import StorageError, StoreClosedError
from storage.kv import KVStore, MemoryBatch


def put_all(kv: KVStore, items: dict[bytes, bytes]) -> None:
    batch = kv.new_batch()
    for key, value in items.items():
        batch.put(key, value)
    kv.write(batch)


def test_get_returns_none_for_missing_key(kv: KVStore) -> None:
    assert kv.get(b"absent") is None


def test_put_then_get_round_trips_binary_keys_and_values(kv: KVStore) -> None:
    items = {b"\x00": b"", b"\xff\xff": b"\x00\x01", b"k": bytes(range(256)) * 10}
    put_all(kv, items)
    for key, value in items.items():
        assert kv.get(key) == value


def test_batch_later_operation_wins(kv: KVStore) -> None:
    batch = kv.new_batch()
    batch.put(b"a", b"1")
    batch.delete(b"a")
    batch.put(b"b", b"1")
    batch.put(b"b", b"2")
    batch.delete(b"c")  # deleting a missing key is not an error
    assert len(batch) == 5
    kv.write(batch)
    assert kv.get(b"a") is None
    assert kv.get(b"b") == b"2"


def test_batch_is_invisible_until_written(kv: KVStore) -> None:
    batch = kv.new_batch()
    batch.put(b"x", b"1")
    assert kv.get(b"x") is None
    kv.write(batch)
    assert kv.get(b"x") == b"1"


def test_delete_removes_key(kv: KVStore) -> None:
    put_all(kv, {b"a": b"1"})
    batch = kv.new_batch()
    batch.delete(b"a")
    kv.write(batch)
    assert kv.get(b"a") is None
    assert list(kv.iterate()) == []


KEYS = [b"a", b"a\x00", b"a\xff", b"ab", b"b", b"b\x00\x01", b"b\xff\xff", b"c", b"\xff", b"\xff\xff"]


@pytest.fixture
def filled(kv: KVStore) -> KVStore:
    # Insert in a scrambled order: iteration order must not depend on it.
    put_all(kv, {k: b"v" + k for k in reversed(KEYS)})
    return kv


def test_iterate_all_is_bytewise_ascending(filled: KVStore) -> None:
    assert [k for k, _ in filled.iterate()] == sorted(KEYS)
    assert all(v == b"v" + k for k, v in filled.iterate())


def test_iterate_prefix(filled: KVStore) -> None:
    # Bytewise order: b"ab" (0x62) sorts before b"a\xff".
    assert [k for k, _ in filled.iterate(b"a")] == [b"a", b"a\x00", b"ab", b"a\xff"]
    assert [k for k, _ in filled.iterate(b"b")] == [b"b", b"b\x00\x01", b"b\xff\xff"]
    assert [k for k, _ in filled.iterate(b"\xff")] == [b"\xff", b"\xff\xff"]
    assert list(filled.iterate(b"zz")) == []


def test_iterate_reverse(filled: KVStore) -> None:
    assert [k for k, _ in filled.iterate(reverse=True)] == sorted(KEYS, reverse=True)
    assert [k for k, _ in filled.iterate(b"a", reverse=True)] == [b"a\xff", b"ab", b"a\x00", b"a"]
    assert [k for k, _ in filled.iterate(b"\xff", reverse=True)] == [b"\xff\xff", b"\xff"]


def test_iterate_from_start(filled: KVStore) -> None:
    assert [k for k, _ in filled.iterate(b"a", start=b"a\x01")] == [b"ab", b"a\xff"]
    assert [k for k, _ in filled.iterate(b"b", start=b"a")] == [b"b", b"b\x00\x01", b"b\xff\xff"]
    assert [k for k, _ in filled.iterate(start=b"c")] == [b"c", b"\xff", b"\xff\xff"]


def test_iterate_reverse_from_start(filled: KVStore) -> None:
    assert [k for k, _ in filled.iterate(b"a", start=b"ab", reverse=True)] == [
        b"ab",
        b"a\x00",
        b"a",
    ]
    assert [k for k, _ in filled.iterate(b"a", start=b"zz", reverse=True)] == [
        b"a\xff",
        b"ab",
        b"a\x00",
        b"a",
    ]


def test_big_endian_heights_iterate_in_height_order(kv: KVStore) -> None:
    from storage import schema

    heights = [0, 1, 2, 9, 10, 255, 256, 65_536, 2**40, 2**64 - 1]
    put_all(kv, {schema.block_key(h): b"" for h in reversed(heights)})
    got = [schema.decode_height(k[len(schema.BLOCK_PREFIX) :]) for k, _ in kv.iterate(schema.BLOCK_PREFIX)]
    assert got == heights


def test_snapshot_is_isolated_from_later_writes(kv: KVStore) -> None:
    put_all(kv, {b"a": b"1", b"b": b"1"})
    snap = kv.snapshot()
    try:
        batch = kv.new_batch()
        batch.put(b"a", b"2")
        batch.delete(b"b")
        batch.put(b"c", b"3")
        kv.write(batch)
        assert snap.get(b"a") == b"1"
        assert snap.get(b"b") == b"1"
        assert snap.get(b"c") is None
        assert list(snap.iterate()) == [(b"a", b"1"), (b"b", b"1")]
        assert list(kv.iterate()) == [(b"a", b"2"), (b"c", b"3")]
    finally:
        snap.close()


def test_iteration_is_not_torn_by_a_concurrent_write(kv: KVStore) -> None:
    put_all(kv, {b"k%03d" % i: b"old" for i in range(100)})
    it = kv.iterate(b"k")
    first = next(it)
    batch = kv.new_batch()
    for i in range(100):
        batch.put(b"k%03d" % i, b"new")
    kv.write(batch)
    rest = list(it)
    assert first == (b"k000", b"old")
    assert {v for _, v in rest} == {b"old"}
    assert len(rest) == 99


def test_snapshot_used_after_close_raises(kv: KVStore) -> None:
    snap = kv.snapshot()
    snap.close()
    with pytest.raises(StoreClosedError):
        snap.get(b"a")


def test_store_used_after_close_raises(kv: KVStore) -> None:
    kv.close()
    with pytest.raises(StoreClosedError):
        kv.get(b"a")


def test_invalid_batch_of_another_backend_is_refused(kv: KVStore) -> None:
    foreign = MemoryBatch() if not isinstance(kv.new_batch(), MemoryBatch) else _OtherBatch()
    with pytest.raises(StorageError):
        kv.write(foreign)  # type: ignore[arg-type]


class _OtherBatch:
    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def __len__(self) -> int:
        return 0
