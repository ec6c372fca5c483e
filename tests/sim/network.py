"""The simulated world: a manual clock, an event queue and an in-memory network with fault rules.

Everything random comes from one seeded ``random.Random``, and events at the
same millisecond run in the order they were scheduled, so one seed always
gives one run.
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


class EventQueue:
    """Timed callbacks run in (time, insertion) order against a manual clock."""

    def __init__(self) -> None:
        self.now_ms = 0
        self._heap: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0

    def schedule(self, at_ms: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` at ``at_ms`` (now, if that is in the past)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(at_ms, self.now_ms), self._seq, callback))

    def run_next(self) -> bool:
        """Advance the clock to the next event and run it; False when none is left."""
        if not self._heap:
            return False
        at, _, callback = heapq.heappop(self._heap)
        self.now_ms = at
        callback()
        return True

    def __len__(self) -> int:
        return len(self._heap)


class Network:
    """Delivers messages between node indices through the fault rules."""

    def __init__(
        self,
        queue: EventQueue,
        rng: random.Random,
        rules: NetworkRules,
        deliver: Callable[[int, int, object], None],
        n: int,
    ) -> None:
        self.queue = queue
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
        now = self.queue.now_ms
        if rules.is_cut(now, src, dst) or (rules.drop_prob and self.rng.random() < rules.drop_prob):
            self.dropped += 1
            return
        copies = 2 if rules.duplicate_prob and self.rng.random() < rules.duplicate_prob else 1
        for _ in range(copies):
            delay = self.rng.randint(rules.min_delay_ms, rules.max_delay_ms)
            if rules.slow_prob and self.rng.random() < rules.slow_prob:
                delay += rules.slow_delay_ms
            at = now + delay
            self.queue.schedule(at, lambda m=msg, a=at: self._arrive(src, dst, m, a))

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
