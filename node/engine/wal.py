"""The consensus write-ahead log: every input is appended before it is handled.

Records are framed as ``u32 length | u32 CRC32(payload) | payload`` (big
endian). Inputs from the network are appended without waiting for the disk;
our own signed messages and height markers are appended with fsync, so a
validator restarted at any point replays into the round state it had.

Opening a log checks every record. A torn tail (the last record cut short by a
crash, a last record whose checksum fails, or a zero-filled tail) is cut off
and reported in ``truncated_bytes``; with ``repair=False`` it is refused
instead. Damage followed by further records cannot come from a crash and is
always refused with ``WalCorrupt``: replaying around a hole would
silently forget inputs.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Final

from node.errors import WalCorrupt, WalError

log = logging.getLogger(__name__)

HEADER: Final = struct.Struct(">II")
#: Largest record accepted (a proposal carrying a large block).
MAX_RECORD_BYTES: Final = 64 << 20


def _scan(data: bytes, max_record: int) -> tuple[list[bytes], int, str]:
    """Return (records, end of the last good record, reason the rest is bad or '')."""
    records: list[bytes] = []
    pos = 0
    size = len(data)
    while pos < size:
        if size - pos < HEADER.size:
            return records, pos, "a partial record header at the end"
        length, crc = HEADER.unpack_from(data, pos)
        body_start = pos + HEADER.size
        end = body_start + length
        if length == 0:
            if not any(data[pos:]):
                return records, pos, "a zero-filled tail"
            raise WalCorrupt(f"zero-length record at offset {pos}, followed by data")
        if length > max_record:
            # A crash cuts a record short; it does not invent a huge length. Refuse
            # rather than cut off everything from here (perhaps the whole log).
            raise WalCorrupt(
                f"record at offset {pos} declares {length} bytes (limit {max_record})"
            )
        if end > size:
            return (
                records,
                pos,
                f"a record at offset {pos} cut short ({size - body_start} of {length} bytes)",
            )
        payload = data[body_start:end]
        if zlib.crc32(payload) != crc:
            if end == size:
                return records, pos, f"the last record (offset {pos}) fails its checksum"
            raise WalCorrupt(
                f"record at offset {pos} fails its checksum and more records follow; "
                "the log is corrupt"
            )
        records.append(payload)
        pos = end
    return records, pos, ""


class WriteAheadLog:
    """An append-only log of framed records in one file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        repair: bool = True,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self.path = Path(path)
        self.max_record_bytes = max_record_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        self._records, good_end, reason = _scan(data, max_record_bytes)
        self.truncated_bytes = len(data) - good_end
        """Bytes of torn tail cut off when the log was opened."""
        self.truncation_reason = reason
        """Why the tail was cut (empty when nothing was)."""
        if self.truncated_bytes and not repair:
            raise WalCorrupt(
                f"WAL {self.path} ends with {reason} ({self.truncated_bytes} bytes); "
                "open with repair=True to cut it off"
            )
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if self.truncated_bytes:
            log.warning(
                "WAL %s: cutting off %d bytes of torn tail (%s)",
                self.path,
                self.truncated_bytes,
                reason,
            )
            os.ftruncate(self._fd, good_end)
            os.fsync(self._fd)
        os.lseek(self._fd, 0, os.SEEK_END)
        self._size = good_end

    def records(self) -> list[bytes]:
        """Return the records that were in the log when it was opened, in order."""
        return list(self._records)

    @property
    def size(self) -> int:
        """Current length of the log in bytes."""
        return self._size

    def append(self, payload: bytes, *, sync: bool = False) -> None:
        """Append one record; with ``sync`` it is on disk before this returns."""
        if not payload:
            raise WalError("a WAL record cannot be empty")
        if len(payload) > self.max_record_bytes:
            raise WalError(f"record of {len(payload)} bytes exceeds {self.max_record_bytes}")
        frame = HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        view = memoryview(frame)
        while view:
            view = view[os.write(self._fd, view) :]
        self._size += len(frame)
        if sync:
            os.fsync(self._fd)

    def reset(self) -> None:
        """Empty the log (its records are obsolete, e.g. once their height is committed)."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.fsync(self._fd)
        self._size = 0
        self._records = []

    def sync(self) -> None:
        """Flush every appended record to disk."""
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (appended records stay; unsynced ones may be lost on a crash)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
