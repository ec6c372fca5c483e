"""The read view of the state that the state transition consumes.

Storage implements it (the live head state and frozen RPC snapshots); the
consensus layer depends only on this protocol, never on storage itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class StateReader(Protocol):
    """Read-only access to the logical state: key bytes to value bytes."""

    def get(self, key: bytes) -> bytes | None:
        """Return the value stored under ``key``, or None when there is none."""
        ...

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield every ``(key, value)`` whose key starts with ``prefix``, in ascending key order."""
        ...
