"""The node's one clock: wall time in milliseconds, and timers that fire at a time on it.

Consensus code never reads a clock; the driver reads this one, passes the
time in, and arms every timeout through ``call_at``. The production clock is
the operating system's time with timers on the running asyncio loop;
simulations supply a manual clock (tests/sim) whose timers fire when the
simulation advances it, so that a whole network of nodes runs
deterministically in one thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that has not necessarily fired yet."""

    def cancel(self) -> None:
        """Stop the callback from running (no effect once it ran)."""
        ...


class Clock(Protocol):
    def now_ms(self) -> int:
        """Return wall-clock milliseconds since the Unix epoch."""
        ...

    def call_at(self, at_ms: int, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once when the clock reaches ``at_ms`` (at once if that has passed)."""
        ...


class SystemClock:
    """The operating system's clock; timers run on the running asyncio loop."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def call_at(self, at_ms: int, callback: Callable[[], None]) -> TimerHandle:
        delay = max(0.0, (at_ms - self.now_ms()) / 1000)
        return asyncio.get_running_loop().call_later(delay, callback)


class OffsetClock:
    """Another clock shifted by a fixed offset: a node whose wall clock is wrong (test-only).

    Only ``now_ms`` moves; a timer armed at ``at_ms`` on this clock fires when
    this clock reads ``at_ms``, which is the inner clock's ``at_ms - offset``, so
    timeouts keep their real durations while every timestamp the node makes or
    compares is off by ``offset_ms``. Set by ``[test] clock_offset_ms``.
    """

    def __init__(self, inner: Clock, offset_ms: int) -> None:
        self.inner = inner
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return self.inner.now_ms() + self.offset_ms

    def call_at(self, at_ms: int, callback: Callable[[], None]) -> TimerHandle:
        return self.inner.call_at(at_ms - self.offset_ms, callback)
