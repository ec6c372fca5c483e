"""The consensus WAL: framing, replay, torn tails cut off, corruption refused."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from node.engine.wal import WriteAheadLog
from node.errors import WalCorrupt, WalError

RECORDS = [b"first", b"second record", bytes(range(256)), b"x" * 5000, b"last"]


def _write(path: Path, records: list[bytes]) -> None:
    with WriteAheadLog(path) as wal:
        for i, r in enumerate(records):
            wal.append(r, sync=i % 2 == 0)


def test_records_replay_in_order(tmp_path: Path) -> None:
    path = tmp_path / "w.wal"
    _write(path, RECORDS)
    with WriteAheadLog(path) as wal:
        assert wal.records() == RECORDS
        assert wal.truncated_bytes == 0
        wal.append(b"more", sync=True)
    with WriteAheadLog(path) as wal:
        assert wal.records() == [*RECORDS, b"more"]


def test_frame_layout_is_length_crc_payload(tmp_path: Path) -> None:
    path = tmp_path / "w.wal"
    _write(path, [b"abc"])
    assert path.read_bytes() == struct.pack(">II", 3, zlib.crc32(b"abc")) + b"abc"


def test_torn_tail_at_every_offset_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "w.wal"
    _write(path, RECORDS)
    full = path.read_bytes()
    last_start = len(full) - (8 + len(RECORDS[-1]))
    for cut in range(last_start + 1, len(full)):
        path.write_bytes(full[:cut])
        with WriteAheadLog(path) as wal:
            assert wal.records() == RECORDS[:-1], f"cut at {cut}"
            assert wal.truncated_bytes == cut - last_start
            assert wal.truncation_reason
            wal.append(b"after repair", sync=True)
        with WriteAheadLog(path) as wal:
            assert wal.records() == [*RECORDS[:-1], b"after repair"]
            assert wal.truncated_bytes == 0


def test_invalid_torn_tail_refused_without_repair(tmp_path: Path) -> None:
    path = tmp_path / "w.wal"
    _write(path, RECORDS)
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(WalCorrupt, match="repair"):
        WriteAheadLog(path, repair=False)
    # Refusing left the file as it was.
    with WriteAheadLog(path) as wal:
        assert wal.records() == RECORDS[:-1]


def test_last_record_failing_checksum_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "w.wal"
    _write(path, RECORDS)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with WriteAheadLog(path) as wal:
        assert wal.records() == RECORDS[:-1]
        assert "checksum" in wal.truncation_reason


def test_zero_filled_tail_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "w.wal"
    _write(path, RECORDS)
    with open(path, "ab") as f:
        f.write(bytes(4096))
    with WriteAheadLog(path) as wal:
        assert wal.records() == RECORDS
        assert wal.truncated_bytes == 4096


@pytest.mark.parametrize("record", [0, 1, 2, 3])
def test_invalid_corruption_before_the_tail_is_refused(record: int, tmp_path: Path) -> None:
    path = tmp_path / "w.wal"
    _write(path, RECORDS)
    data = bytearray(path.read_bytes())
    offset = sum(8 + len(r) for r in RECORDS[:record]) + 8  # first payload byte
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt, match="checksum"):
        WriteAheadLog(path)


def test_invalid_impossible_length_before_the_tail_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.wal"
    _write(path, RECORDS)
    data = bytearray(path.read_bytes())
    data[0:4] = struct.pack(">I", 1 << 30)
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt):
        WriteAheadLog(path, max_record_bytes=1 << 20)


def test_invalid_zero_length_record_followed_by_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.wal"
    path.write_bytes(struct.pack(">II", 0, 0) + b"junk")
    with pytest.raises(WalCorrupt):
        WriteAheadLog(path)


def test_invalid_empty_or_oversize_record_is_not_appended(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path / "w.wal", max_record_bytes=10) as wal:
        with pytest.raises(WalError):
            wal.append(b"")
        with pytest.raises(WalError):
            wal.append(b"x" * 11)
        assert wal.size == 0


def test_reset_empties_the_log_durably(tmp_path: Path) -> None:
    path = tmp_path / "w.wal"
    with WriteAheadLog(path) as wal:
        for r in RECORDS:
            wal.append(r)
        wal.reset()
        assert wal.size == 0 and wal.records() == []
        wal.append(b"next height", sync=True)
    with WriteAheadLog(path) as wal:
        assert wal.records() == [b"next height"]


def test_torn_tail_repair_is_logged_not_silent(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "w.wal"
    _write(path, RECORDS)
    path.write_bytes(path.read_bytes()[:-3])
    with caplog.at_level("WARNING", logger="node.engine.wal"), WriteAheadLog(path) as wal:
        assert wal.truncated_bytes > 0
    assert any("torn tail" in r.getMessage() for r in caplog.records)
