"""The driver's inbox: every input waits here, bounded, until the driver's task takes it.

Two places hold inputs that peers can fill, and both are bounded:
- the queue of items for the driver's task (network votes and proposals of the
  current height, evidence, timeouts, synced blocks), at most ``MAX_QUEUE``;
  only items the node itself waits for (synced blocks) may pass the bound;
- the buffer of messages for heights just ahead of ours, at most
  ``MAX_FUTURE`` messages and ``MAX_FUTURE_HEIGHTS`` heights ahead; they are
  released when the driver enters their height.

A full inbox drops (and counts) what arrives: gossip and the rebroadcast of
our peers bring votes and proposals again. Wake-ups go through one asyncio
event, so the driver's task sleeps while nothing waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

#: Items waiting for the driver; a full queue drops network input (gossip brings it again).
MAX_QUEUE = 20_000
#: Messages kept for heights ahead of ours (a lagging node catches up through them or sync).
MAX_FUTURE = 2_000
#: How far ahead of our height a message may be and still be kept.
MAX_FUTURE_HEIGHTS = 4

T = TypeVar("T")
F = TypeVar("F")


class Inbox(Generic[T, F]):
    """A bounded queue for the driver's task and a bounded buffer of future-height messages."""

    def __init__(
        self,
        *,
        max_queue: int = MAX_QUEUE,
        max_future: int = MAX_FUTURE,
        max_future_heights: int = MAX_FUTURE_HEIGHTS,
    ) -> None:
        self.max_queue = max_queue
        self.max_future = max_future
        self.max_future_heights = max_future_heights
        self._queue: deque[T] = deque()
        self._future: dict[int, list[F]] = {}
        self._future_count = 0
        self._wakeup = asyncio.Event()
        #: Items refused because a bound was reached.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def future_count(self) -> int:
        """How many messages wait for a later height."""
        return self._future_count

    def put(self, item: T, *, bounded: bool = True) -> bool:
        """Queue ``item`` for the driver; return False (and count it) if the queue is full."""
        if bounded and len(self._queue) >= self.max_queue:
            self.dropped += 1
            return False
        self._queue.append(item)
        self._wakeup.set()
        return True

    def take(self) -> T | None:
        """Return the oldest queued item, or None when the queue is empty."""
        return self._queue.popleft() if self._queue else None

    def keep_for(self, height: int, current: int, item: F) -> bool:
        """Keep ``item`` until the driver enters ``height`` (> ``current``); False if out of bounds."""
        if height > current + self.max_future_heights or self._future_count >= self.max_future:
            self.dropped += 1
            return False
        self._future.setdefault(height, []).append(item)
        self._future_count += 1
        return True

    def release(self, height: int) -> list[F]:
        """Return (and forget) the messages kept for ``height``; drop those of heights below it."""
        ready = self._future.pop(height, [])
        stale = [h for h in self._future if h < height]
        for h in stale:
            self._future_count -= len(self._future.pop(h))
        self._future_count -= len(ready)
        return ready

    async def wait(self) -> None:
        """Sleep until something is queued (returns at once if something already is)."""
        if self._queue:
            return
        await self._wakeup.wait()
        self._wakeup.clear()
