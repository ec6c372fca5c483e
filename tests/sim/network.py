"""The simulated world: a manual clock that runs scheduled callbacks, and an in-memory network with fault rules.

Everything random comes from one seeded ``random.Random``, and callbacks due
at the same millisecond run in the order they were scheduled, so one seed
always gives one run.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Partition:
    """Between ``start_ms`` and ``end_ms`` (heal), only nodes of the same group can talk."""

    start_ms: int
    end_ms: int
    groups: tuple[frozenset[int], ...]

    def is_cut(self, now_ms: int, a: int, b: int) -> bool:
        """Return True when the partition separates ``a`` from ``b`` at ``now_ms``."""
        if not self.start_ms <= now_ms < self.end_ms:
            return False
        return not any(a in g and b in g for g in self.groups)


@dataclass
class NetworkRules:
    """Fault rules applied to every message (probabilities are per message and link)."""

    min_delay_ms: int = 5
    max_delay_ms: int = 40
    """Each message is delayed uniformly in [min, max]: spread delays reorder messages."""
    drop_prob: float = 0.0
    duplicate_prob: float = 0.0
    slow_prob: float = 0.0
    """Probability that a message is held back much longer (``slow_delay_ms``): reordering."""
    slow_delay_ms: int = 400
    partitions: list[Partition] = field(default_factory=list)

    def is_cut(self, now_ms: int, a: int, b: int) -> bool:
        return any(p.is_cut(now_ms, a, b) for p in self.partitions)


class Timer:
    """A callback scheduled on the manual clock (``cancel`` keeps it from running)."""

    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """The simulation's clock: time moves only from one scheduled callback to the next.

    Callbacks run in (time, scheduling) order, so one seed always gives one
    run. It implements ``node.clock.Clock``: the drivers arm their timeouts on it.
    """

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = 0

    def now_ms(self) -> int:
        return self._now

    def call_at(self, at_ms: int, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` at ``at_ms`` (now, after what is already due, if that has passed)."""
        self._seq += 1
        timer = Timer(callback)
        heapq.heappush(self._heap, (max(at_ms, self._now), self._seq, timer))
        return timer

    def run_next(self) -> bool:
        """Advance the clock to the next callback and run it; False when none is left."""
        while self._heap:
            at, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self._now = at
            timer.callback()
            return True
        return False

    def __len__(self) -> int:
        return len(self._heap)


class Network:
    """Delivers messages between node indices through the fault rules."""

    def __init__(
        self,
        clock: ManualClock,
        rng: random.Random,
        rules: NetworkRules,
        deliver: Callable[[int, int, object], None],
        n: int,
    ) -> None:
        self.clock = clock
        self.rng = rng
        self.rules = rules
        self._deliver = deliver
        self.n = n
        self.sent = 0
        self.dropped = 0

    def send(self, src: int, dst: int, msg: object) -> None:
        """Send ``msg`` from ``src`` to ``dst`` under the rules."""
        self.sent += 1
        rules = self.rules
        now = self.clock.now_ms()
        if rules.is_cut(now, src, dst) or (rules.drop_prob and self.rng.random() < rules.drop_prob):
            self.dropped += 1
            return
        copies = 2 if rules.duplicate_prob and self.rng.random() < rules.duplicate_prob else 1
        for _ in range(copies):
            delay = self.rng.randint(rules.min_delay_ms, rules.max_delay_ms)
            if rules.slow_prob and self.rng.random() < rules.slow_prob:
                delay += rules.slow_delay_ms
            at = now + delay
            self.clock.call_at(at, lambda m=msg, a=at: self._arrive(src, dst, m, a))

    def _arrive(self, src: int, dst: int, msg: object, at: int) -> None:
        # A partition that started while the message was in flight cuts it too.
        if self.rules.is_cut(at, src, dst):
            self.dropped += 1
            return
        self._deliver(src, dst, msg)

    def broadcast(self, src: int, msg: object, exclude: int = -1) -> None:
        """Send ``msg`` from ``src`` to every other node (but ``exclude``)."""
        for dst in range(self.n):
            if dst != src and dst != exclude:
                self.send(src, dst, msg)
