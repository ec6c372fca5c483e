"""Turn fuzz bytes into choices: a small, dependency-free FuzzedDataProvider.

Reads never fail: past the end every integer is 0 and every byte string is
empty, so any input describes exactly one sequence of choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class FuzzInput:
    """A cursor over fuzz bytes handing out integers, byte strings and picks."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        """Return how many bytes are left."""
        return len(self.data) - self.pos

    def uint(self, n_bytes: int) -> int:
        """Return the next ``n_bytes`` as a big-endian unsigned integer (zero-padded at the end)."""
        chunk = self.data[self.pos : self.pos + n_bytes]
        self.pos += len(chunk)
        return int.from_bytes(chunk.ljust(n_bytes, b"\0"), "big")

    def byte(self) -> int:
        """Return the next byte (0 at the end)."""
        return self.uint(1)

    def below(self, n: int) -> int:
        """Return an integer in ``0..n-1`` from one byte (two when ``n`` > 256)."""
        if n <= 1:
            return 0
        return (self.uint(1) if n <= 256 else self.uint(2)) % n

    def pick(self, options: Sequence[T]) -> T:
        """Return one of ``options`` (not empty)."""
        return options[self.below(len(options))]

    def bytes(self, n: int) -> bytes:
        """Return the next ``n`` bytes (fewer at the end)."""
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def sized_bytes(self, max_len: int) -> bytes:
        """Return a byte string whose length is read first (at most ``max_len``)."""
        return self.bytes(self.below(max_len + 1))

    def rest(self) -> bytes:
        """Return every byte left."""
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk
