"""The system clock: wall time, and timers on the running asyncio loop."""

from __future__ import annotations

import asyncio

from node.clock import SystemClock


async def test_call_at_fires_on_the_loop_and_cancel_stops_it() -> None:
    clock = SystemClock()
    fired: list[str] = []
    done = asyncio.Event()
    clock.call_at(clock.now_ms() + 20, lambda: (fired.append("later"), done.set()))
    cancelled = clock.call_at(clock.now_ms() + 5, lambda: fired.append("cancelled"))
    clock.call_at(clock.now_ms() - 1_000, lambda: fired.append("past"))
    cancelled.cancel()
    await asyncio.wait_for(done.wait(), timeout=5)
    assert fired == ["past", "later"]
