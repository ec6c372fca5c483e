"""Opening a data directory: the lock, the head checks, and refusing corrupt data."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consensus.hashing import hash32
from storage import (
    CorruptStoreError,
    DirectoryLock,
    LevelDBKV,
    NodeStore,
    SchemaVersionError,
    StoreLockedError,
    schema,
)
from storage.node_store import LEVELDB_DIR

REPO = Path(__file__).resolve().parents[2]


def h32(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def build(path: Path, heights: int = 3, keys: int = 300) -> None:
    with NodeStore.open(path) as store:
        store.commit_genesis({b"k%d" % i: b"v%d" % i for i in range(keys)})
        for h in range(1, heights + 1):
            store.commit_height(
                h, h32(b"b%d" % h), b"b%d" % h, b"c%d" % h, {h32(b"t%d" % h): (h, 0, 0, "")},
                {b"k%d" % (h * 3 + i): b"h%d" % h for i in range(20)},
            )


def tamper(path: Path, puts: dict[bytes, bytes] | None = None, deletes: list[bytes] | None = None) -> None:
    kv = LevelDBKV(path / LEVELDB_DIR)
    try:
        batch = kv.new_batch()
        for key, value in (puts or {}).items():
            batch.put(key, value)
        for key in deletes or []:
            batch.delete(key)
        kv.write(batch)
    finally:
        kv.close()


def read_raw(path: Path, key: bytes) -> bytes | None:
    kv = LevelDBKV(path / LEVELDB_DIR)
    try:
        return kv.get(key)
    finally:
        kv.close()


def expect_corrupt(path: Path, match: str, verify: str = "quick") -> str:
    with pytest.raises(CorruptStoreError, match=match) as info:
        NodeStore.open(path, verify=verify)  # type: ignore[arg-type]
    message = str(info.value)
    assert str(path) in message
    assert "Restore" in message and "resync" in message
    # The failed open released both locks: a repaired store could open now.
    DirectoryLock.acquire(path).release()
    LevelDBKV(path / LEVELDB_DIR).close()
    return message


def test_reopen_full_verify_of_a_healthy_store(tmp_path: Path) -> None:
    build(tmp_path)
    with NodeStore.open(tmp_path, verify="full") as store:
        assert store.latest_height == 3
        store.verify()


def test_second_open_in_process_is_refused_while_locked(tmp_path: Path) -> None:
    store = NodeStore.open(tmp_path)
    try:
        with pytest.raises(StoreLockedError, match="another node is already running") as info:
            NodeStore.open(tmp_path)
        assert str(tmp_path) in str(info.value)
    finally:
        store.close()
    NodeStore.open(tmp_path).close()  # released on close


@pytest.mark.multiprocess
def test_second_process_is_refused_while_locked(tmp_path: Path) -> None:
    store = NodeStore.open(tmp_path)
    try:
        code = (
            "import sys\n"
            "from storage import NodeStore, StoreLockedError\n"
            "try:\n"
            "    NodeStore.open(sys.argv[1])\n"
            "except StoreLockedError as exc:\n"
            "    print(exc)\n"
            "    raise SystemExit(3)\n"
        )
        env = dict(os.environ, PYTHONPATH=str(REPO))
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )
        assert done.returncode == 3, done.stderr
        assert str(tmp_path) in done.stdout
        assert "another node is already running" in done.stdout
        assert f"pid {os.getpid()}" in done.stdout
    finally:
        store.close()


def test_head_without_its_block_is_refused(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, deletes=[schema.block_key(3)])
    expect_corrupt(tmp_path, "height 3 but its block is missing")


def test_head_without_its_commit_is_refused(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, deletes=[schema.commit_key(3)])
    expect_corrupt(tmp_path, "commit of head height 3 is missing")


def test_head_block_hash_mismatch_is_refused(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, puts={schema.block_hash_key(3): h32(b"other")})
    expect_corrupt(tmp_path, "differs from the stored block hash")


def test_recorded_root_mismatch_is_refused(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, puts={schema.root_key(3): h32(b"other")})
    expect_corrupt(tmp_path, "state root recorded for height 3")


def test_trie_root_mismatch_is_refused(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, puts={schema.TREE_ROOT_KEY: h32(b"other")})
    expect_corrupt(tmp_path, "root")


def test_damaged_root_branch_is_refused(tmp_path: Path) -> None:
    build(tmp_path)
    key = schema.node_key(0, bytes(32))
    record = read_raw(tmp_path, key)
    assert record is not None
    # Byte 4 is the first slot entry of the page's top record: the root branch.
    tamper(tmp_path, puts={key: record[:4] + bytes([record[4] ^ 1]) + record[5:]})
    expect_corrupt(tmp_path, "root branch does not hash")


def _deep_branch_key(path: Path) -> tuple[bytes, bytes]:
    kv = LevelDBKV(path / LEVELDB_DIR)
    try:
        for key, value in kv.iterate(schema.NODE_PREFIX):
            if key[len(schema.NODE_PREFIX)] >= 1:
                return key, value
    finally:
        kv.close()
    raise AssertionError("no branch below the root")


def test_damaged_deep_branch_is_found_by_full_verify_and_by_the_next_commit(tmp_path: Path) -> None:
    build(tmp_path)
    key, record = _deep_branch_key(tmp_path)
    # Flip a byte of a leaf's value hash (the last bytes of the record).
    tamper(tmp_path, puts={key: record[:-1] + bytes([record[-1] ^ 1])})
    expect_corrupt(tmp_path, "does not match its hash", verify="full")
    # A quick open does not walk the trie, but any commit that touches the
    # damaged branch checks it and refuses instead of producing a wrong root.
    with NodeStore.open(tmp_path) as store:
        every_key = {b"k%d" % i: b"x" for i in range(300)}
        with pytest.raises(CorruptStoreError, match="does not match its hash"):
            store.prepare_height(4, h32(b"b4"), b"b4", b"c4", {}, every_key)


def test_tampered_state_value_is_found_by_full_verify(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, puts={schema.state_key(b"k1"): b"forged"})
    expect_corrupt(tmp_path, "recomputed from the stored values", verify="full")


def test_orphan_branch_record_is_found_by_full_verify(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, puts={schema.node_key(9, hash32(b"nowhere")): b"\x00\x00\x00\x00"})
    expect_corrupt(tmp_path, "reachable", verify="full")


def test_unreadable_head_record_is_refused(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, puts={schema.HEAD_KEY: b"\x01\x02"})
    expect_corrupt(tmp_path, "head record")


def test_records_without_head_are_refused(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, deletes=[schema.HEAD_KEY])
    expect_corrupt(tmp_path, "no head pointer")


def test_data_without_schema_marker_is_refused(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, deletes=[schema.SCHEMA_KEY])
    expect_corrupt(tmp_path, "no schema marker")


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, puts={schema.SCHEMA_KEY: b"\x63"})
    with pytest.raises(SchemaVersionError, match="schema 63"):
        NodeStore.open(tmp_path)


def test_unreadable_tx_record_raises_corrupt(tmp_path: Path) -> None:
    build(tmp_path)
    tamper(tmp_path, puts={schema.tx_key(h32(b"t2")): b"\xc1"})
    with NodeStore.open(tmp_path) as store, pytest.raises(CorruptStoreError, match="unreadable"):
        store.blocks.load_tx(h32(b"t2"))


def test_corrupt_leveldb_files_are_refused(tmp_path: Path) -> None:
    build(tmp_path, heights=20)
    db_dir = tmp_path / LEVELDB_DIR
    files = sorted(p for p in db_dir.iterdir() if p.suffix in (".log", ".ldb") and p.stat().st_size > 4096)
    assert files, "no LevelDB data files to damage"
    for path in files:
        data = bytearray(path.read_bytes())
        for i in range(64, len(data) - 64, 997):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match="corrupt") as info:
        NodeStore.open(tmp_path, verify="full")
    assert "Restore" in str(info.value)
