"""Per-peer token buckets: our own rate limits, replacing GossipSub's spam limit.

A bucket refills at ``rate`` tokens per second up to ``burst``; each message
takes one token, or one per byte where the limit counts bytes (the proposal
topic, whose honest messages range from a 200-byte announcement to a 32 KiB
block part). Buckets are kept per (peer, key) and the table is bounded:
the least recently used entries are dropped first, so a stream of new peer
ids cannot grow memory without limit. Time comes in as an argument.
"""

from __future__ import annotations

from collections import OrderedDict

from p2p.config import RateLimit


class TokenBucket:
    """One bucket; ``try_take(now)`` answers whether a message may pass."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.rate = limit.rate
        self.burst = limit.burst
        self.tokens = limit.burst
        self.stamp = now

    def try_take(self, now: float, cost: float = 1.0) -> bool:
        """Refill for the time elapsed, then take ``cost`` tokens if there are enough."""
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class PeerRateLimiter:
    """Token buckets keyed by (peer, key), with a bounded table."""

    __slots__ = ("_buckets", "_limits", "_max_entries")

    def __init__(self, limits: dict[str, RateLimit], max_entries: int = 4096) -> None:
        self._limits = dict(limits)
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()
        self._max_entries = max_entries

    def allow(self, peer_id: str, key: str, now: float, cost: float = 1.0) -> bool:
        """Return True if ``peer_id`` may send one more ``key`` message at ``now``."""
        limit = self._limits.get(key)
        if limit is None:
            return True
        k = (peer_id, key)
        bucket = self._buckets.get(k)
        if bucket is None:
            bucket = TokenBucket(limit, now)
            self._buckets[k] = bucket
            if len(self._buckets) > self._max_entries:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(k)
        return bucket.try_take(now, cost)

    def allow_message(self, peer_id: str, key: str, now: float, size: int) -> bool:
        """Return True if ``peer_id`` may send one more ``key`` message of ``size`` bytes at ``now``."""
        limit = self._limits.get(key)
        return limit is None or self.allow(peer_id, key, now, limit.get_cost(size))

    def is_limited(self, key: str) -> bool:
        """Whether ``key`` has a bucket here."""
        return key in self._limits

    def forget(self, peer_id: str) -> None:
        """Drop every bucket of a disconnected peer."""
        for k in [k for k in self._buckets if k[0] == peer_id]:
            del self._buckets[k]

    def __len__(self) -> int:
        return len(self._buckets)
