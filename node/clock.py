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
