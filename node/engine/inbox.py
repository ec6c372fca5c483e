"""The driver's inbox: every input waits here, bounded, until the driver's task takes it.

Two places hold inputs that peers can fill; only authenticated messages
enter either (the driver checks each on delivery), and both are bounded in
total and per forwarding peer, so one peer can never fill them alone:
- the queue of items for the driver's task (network votes and proposals of the
  current height, evidence, timeouts, synced blocks), at most ``MAX_QUEUE``,
  ``MAX_QUEUE_PER_PEER`` from one peer; only items the node itself waits for
  (synced blocks) may pass the bound;
- the buffer of messages for heights just ahead of ours, at most
  ``MAX_FUTURE`` messages (``MAX_FUTURE_PER_PEER`` from one peer),
  ``MAX_FUTURE_BYTES`` of proposal blocks and ``MAX_FUTURE_HEIGHTS`` heights
  ahead; they are released when the driver enters their height.

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
#: Items from one forwarding peer waiting in the queue.
MAX_QUEUE_PER_PEER = MAX_QUEUE // 2
#: Messages kept for heights ahead of ours (a lagging node catches up through them or sync).
MAX_FUTURE = 2_000
#: Messages from one forwarding peer kept for heights ahead of ours.
MAX_FUTURE_PER_PEER = MAX_FUTURE // 2
#: Bytes of proposal blocks kept for heights ahead of ours.
MAX_FUTURE_BYTES = 64 << 20
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
        max_queue_per_peer: int = MAX_QUEUE_PER_PEER,
        max_future: int = MAX_FUTURE,
        max_future_per_peer: int = MAX_FUTURE_PER_PEER,
        max_future_bytes: int = MAX_FUTURE_BYTES,
        max_future_heights: int = MAX_FUTURE_HEIGHTS,
    ) -> None:
        self.max_queue = max_queue
        self.max_queue_per_peer = max_queue_per_peer
        self.max_future = max_future
        self.max_future_per_peer = max_future_per_peer
        self.max_future_bytes = max_future_bytes
        self.max_future_heights = max_future_heights
        self._queue: deque[tuple[str, T]] = deque()
        self._queued_by: dict[str, int] = {}
        self._future: dict[int, list[tuple[str, int, F]]] = {}
        self._future_count = 0
        self._future_bytes = 0
        self._future_by: dict[str, int] = {}
        self._wakeup = asyncio.Event()
        #: Items refused because a bound was reached.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def future_count(self) -> int:
        """How many messages wait for a later height."""
        return self._future_count

    @property
    def future_bytes(self) -> int:
        """Bytes of proposal blocks waiting for a later height."""
        return self._future_bytes

    def put(self, item: T, *, bounded: bool = True, peer: str = "") -> bool:
        """Queue ``item`` (from ``peer``, if a peer sent it); return False (and count it) if a bound is reached."""
        if bounded and (
            len(self._queue) >= self.max_queue
            or (peer and self._queued_by.get(peer, 0) >= self.max_queue_per_peer)
        ):
            self.dropped += 1
            return False
        self._queue.append((peer, item))
        if peer:
            self._queued_by[peer] = self._queued_by.get(peer, 0) + 1
        self._wakeup.set()
        return True

    def take(self) -> T | None:
        """Return the oldest queued item, or None when the queue is empty."""
        if not self._queue:
            return None
        peer, item = self._queue.popleft()
        if peer:
            left = self._queued_by[peer] - 1
            if left:
                self._queued_by[peer] = left
            else:
                del self._queued_by[peer]
        return item

    def keep_for(self, height: int, current: int, item: F, *, peer: str = "", size: int = 0) -> bool:
        """Keep ``item`` (``size`` bytes of block, from ``peer``) until the driver enters ``height`` (> ``current``).

        Return False (and count it) if it is out of bounds.
        """
        if (
            height > current + self.max_future_heights
            or self._future_count >= self.max_future
            or (peer and self._future_by.get(peer, 0) >= self.max_future_per_peer)
            or self._future_bytes + size > self.max_future_bytes
        ):
            self.dropped += 1
            return False
        self._future.setdefault(height, []).append((peer, size, item))
        self._future_count += 1
        self._future_bytes += size
        if peer:
            self._future_by[peer] = self._future_by.get(peer, 0) + 1
        return True

    def release(self, height: int) -> list[F]:
        """Return (and forget) the messages kept for ``height``; drop those of heights below it."""
        ready = self._future.pop(height, [])
        stale = [h for h in self._future if h < height]
        for entries in [ready] + [self._future.pop(h) for h in stale]:
            for peer, size, _ in entries:
                self._future_count -= 1
                self._future_bytes -= size
                if peer:
                    left = self._future_by[peer] - 1
                    if left:
                        self._future_by[peer] = left
                    else:
                        del self._future_by[peer]
        return [item for _, _, item in ready]

    async def wait(self) -> None:
        """Sleep until something is queued (returns at once if something already is)."""
        if self._queue:
            return
        await self._wakeup.wait()
        self._wakeup.clear()
