"""The system clock: wall time, and timers on the running asyncio loop."""

from __future__ import annotations

import asyncio

from node.clock import OffsetClock, SystemClock


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


async def test_offset_clock_shifts_time_but_not_timer_durations() -> None:
    inner = SystemClock()
    ahead = OffsetClock(inner, 30_000)
    before = inner.now_ms()
    shifted = ahead.now_ms()
    after = inner.now_ms()
    assert before + 30_000 <= shifted <= after + 30_000
    done = asyncio.Event()
    t0 = inner.now_ms()
    # A timer 20 ms ahead on the shifted clock fires after about 20 ms, not at once or 30 s later.
    ahead.call_at(ahead.now_ms() + 20, done.set)
    await asyncio.wait_for(done.wait(), timeout=5)
    assert 15 <= inner.now_ms() - t0 < 5_000
    behind = OffsetClock(inner, -5_000)
    assert behind.now_ms() <= inner.now_ms() - 5_000 + 5
