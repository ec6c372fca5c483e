"""Length-prefixed frames on libp2p streams, read through a buffer with caps.

A frame is ``uvarint(len) || bytes``. The reader pulls large chunks (not
one byte per varint digit as py-libp2p's reader does) and checks a frame's
declared length against its cap before reading or allocating the body.
A request is one frame; the response is zero or more frames, then EOF.
"""

from __future__ import annotations

from typing import Any

from libp2p.network.stream.exceptions import StreamEOF

from p2p.errors import BadPeerData, MessageTooLarge

_READ_CHUNK = 256 * 1024
_MAX_VARINT = 10
#: Frames joined into one stream write (fewer Yamux writes, far higher throughput).
WRITE_BATCH_BYTES = 1 << 20


def encode_uvarint(n: int) -> bytes:
    """Return the unsigned LEB128 encoding of ``n``."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def frame(data: bytes) -> bytes:
    """Return ``data`` with its length prefix."""
    return encode_uvarint(len(data)) + data


class FrameReader:
    """Reads capped frames from a stream through a buffer."""

    def __init__(self, stream: Any, max_frame: int) -> None:
        self._s = stream
        self._buf = bytearray()
        self._max = max_frame
        self._eof = False
        self.bytes_read = 0

    async def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            data = await self._s.read(_READ_CHUNK)
        except StreamEOF:
            data = b""
        if not data:
            self._eof = True
            return False
        self._buf += data
        self.bytes_read += len(data)
        return True

    async def read_frame(self) -> bytes | None:
        """Return the next frame, or None at a clean end of stream."""
        while True:
            n = 0
            shift = 0
            for i in range(min(len(self._buf), _MAX_VARINT)):
                b = self._buf[i]
                n |= (b & 0x7F) << shift
                if not b & 0x80:
                    header = i + 1
                    break
                shift += 7
            else:
                if len(self._buf) >= _MAX_VARINT:
                    raise BadPeerData("frame length prefix is not a valid varint")
                if not await self._fill():
                    if self._buf:
                        raise BadPeerData("stream ended inside a frame length")
                    return None
                continue
            if n > self._max:
                raise MessageTooLarge(f"frame of {n} bytes declared, cap {self._max}")
            if len(self._buf) - header >= n:
                out = bytes(self._buf[header : header + n])
                del self._buf[: header + n]
                return out
            if not await self._fill():
                raise BadPeerData("stream ended inside a frame")


async def write_frames(stream: Any, frames: list[bytes]) -> int:
    """Write frames, joined into writes of about WRITE_BATCH_BYTES; return bytes written."""
    total = 0
    batch: list[bytes] = []
    size = 0
    for f in frames:
        batch.append(frame(f))
        size += len(f) + 5
        if size >= WRITE_BATCH_BYTES:
            data = b"".join(batch)
            await stream.write(data)
            total += len(data)
            batch, size = [], 0
    if batch:
        data = b"".join(batch)
        await stream.write(data)
        total += len(data)
    return total
