"""Gossip admission and delivery shared by every transport.

A received gossip message passes two stages. The *gate* runs on the network
side before anything is decoded or handed on: size cap, the forwarder's
token bucket (a penalising one: beyond it, the message is dropped and the
forwarder penalised), then the envelope decode (kind must match the topic).
The *dispatcher* runs on the node's asyncio loop: the node's validator
answers ACCEPT, IGNORE or REJECT, and accepted payloads are queued for the
node's handler, which a single task per topic drains in arrival order.

A topic whose bucket does not penalise (``RateLimit.penalise`` False: the
proposal topic, counted in bytes) is metered here instead: beyond the
bucket, the validator still runs, a ``Reject`` still penalises (the
forwarder could have checked that), and what it would ACCEPT is IGNOREd:
neither relayed nor delivered, and never held against the forwarder.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from p2p import scoring
from p2p.config import GOSSIP_KINDS, P2PConfig
from p2p.envelope import decode_envelope
from p2p.errors import ConfigError, MalformedMessage
from p2p.interface import GossipVerdict, Handler, Reject, Validator, Verdict
from p2p.ratelimit import PeerRateLimiter
from p2p.stats import P2PStats

log = logging.getLogger("p2p.dispatch")

#: Longest an async validator may take before the message is ignored.
VALIDATOR_TIMEOUT = 5.0


class GateDrop(Exception):
    """A message refused by the gate; ``reason`` is a P2PStats drop reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class GossipGate:
    """Network-side checks on one received gossip message (no node code runs here)."""

    def __init__(self, config: P2PConfig) -> None:
        self.max_bytes = config.max_message_bytes
        self.limiter = PeerRateLimiter({k: v for k, v in config.rate_limits.items() if v.penalise})

    def admit(self, kind: str, forwarder: str, data: bytes, now: float) -> bytes:
        """Return the envelope's payload, or raise GateDrop(reason)."""
        if len(data) > self.max_bytes:
            raise GateDrop("oversize", f"{len(data)} bytes > cap {self.max_bytes}")
        if not self.limiter.allow_message(forwarder, kind, now, len(data)):
            raise GateDrop("rate", f"{forwarder} over its {kind} rate limit")
        try:
            return decode_envelope(data, kind, self.max_bytes)
        except MalformedMessage as exc:
            raise GateDrop("malformed", str(exc)) from exc


@dataclass(slots=True)
class _Subscription:
    kind: str
    validator: Validator
    handler: Handler
    queue: asyncio.Queue[tuple[str, bytes]] | None = None
    task: asyncio.Task[None] | None = None


class Dispatcher:
    """Runs the node's validators and handlers on the asyncio loop."""

    def __init__(self, config: P2PConfig, stats: P2PStats, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._stats = stats
        self._clock = clock
        #: Buckets that do not penalise: beyond them, an accepted message is ignored instead.
        self._budgets = PeerRateLimiter({k: v for k, v in config.rate_limits.items() if not v.penalise})
        self._subs: dict[str, _Subscription] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._running = False

    @property
    def kinds(self) -> list[str]:
        """Gossip kinds subscribed so far."""
        return list(self._subs)

    def subscribe(self, kind: str, validator: Validator, handler: Handler) -> None:
        """Register the node's validator and handler for ``kind`` (once per kind)."""
        if kind not in GOSSIP_KINDS:
            raise ConfigError(f"unknown gossip kind {kind!r}")
        if kind in self._subs:
            raise ConfigError(f"gossip kind {kind!r} already has a subscriber")
        sub = _Subscription(kind, validator, handler)
        self._subs[kind] = sub
        if self._running:
            self._start_sub(sub)

    def start(self) -> None:
        """Start one delivery task per subscribed kind (call on the running loop)."""
        self._running = True
        for sub in self._subs.values():
            self._start_sub(sub)

    def _start_sub(self, sub: _Subscription) -> None:
        sub.queue = asyncio.Queue(self._config.delivery_queue)
        sub.task = asyncio.get_running_loop().create_task(
            self._deliver_loop(sub), name=f"p2p-deliver-{sub.kind}"
        )

    async def stop(self) -> None:
        """Cancel delivery and pending validations; wait until they are gone."""
        self._running = False
        tasks = [s.task for s in self._subs.values() if s.task is not None] + list(self._pending)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for s in self._subs.values():
            s.task = None

    def validate(self, kind: str, peer_id: str, payload: bytes, done: Callable[[GossipVerdict], None]) -> None:
        """Run ``kind``'s validator and call ``done(verdict)`` (now, or when an async one ends)."""
        sub = self._subs.get(kind)
        if sub is None or not self._running:
            done(Verdict.IGNORE)
            return
        over = not self._budgets.allow_message(peer_id, kind, self._clock(), len(payload))
        try:
            result = sub.validator(peer_id, payload)
        except Exception:
            log.exception("validator for %s raised; message ignored", kind)
            self._stats.drop("validator_error")
            done(Verdict.IGNORE)
            return
        if inspect.isawaitable(result):
            task = asyncio.get_running_loop().create_task(
                self._await_verdict(sub, peer_id, payload, result, done, over)
            )
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        done(self._settle(sub, peer_id, payload, result, over))

    async def validate_async(self, kind: str, peer_id: str, payload: bytes) -> GossipVerdict:
        """Awaitable form of ``validate`` (used by the in-memory transport)."""
        fut: asyncio.Future[GossipVerdict] = asyncio.get_running_loop().create_future()

        def done(v: GossipVerdict) -> None:
            if not fut.done():
                fut.set_result(v)

        self.validate(kind, peer_id, payload, done)
        return await fut

    async def _await_verdict(
        self, sub: _Subscription, peer_id: str, payload: bytes, aw: object, done: Callable[[GossipVerdict], None],
        over: bool,
    ) -> None:
        try:
            result: object = await asyncio.wait_for(aw, VALIDATOR_TIMEOUT)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            done(Verdict.IGNORE)
            raise
        except Exception:
            log.exception("async validator for %s failed or timed out; message ignored", sub.kind)
            self._stats.drop("validator_error")
            done(Verdict.IGNORE)
            return
        done(self._settle(sub, peer_id, payload, result, over))

    def _settle(self, sub: _Subscription, peer_id: str, payload: bytes, result: object, over: bool) -> GossipVerdict:
        """The verdict the transport acts on: ACCEPT, IGNORE or a ``Reject`` naming a penalty.

        ``over``: the forwarder is beyond its (non-penalising) budget for this
        topic, so what the validator accepts is ignored instead.
        """
        if result is Verdict.REJECT:
            result = Reject()
        if isinstance(result, Reject):
            self._stats.drop("rejected")
            if result.reason not in scoring.PENALTY:
                log.error("validator for %s rejected for unknown reason %r", sub.kind, result.reason)
                return Reject()
            return result
        if not isinstance(result, Verdict):
            log.error("validator for %s returned %r, not a Verdict; message ignored", sub.kind, result)
            self._stats.drop("validator_error")
            return Verdict.IGNORE
        if result is Verdict.ACCEPT:
            if over:
                self._stats.drop("rate")
                return Verdict.IGNORE
            if sub.queue is None:
                return Verdict.IGNORE
            try:
                sub.queue.put_nowait((peer_id, payload))
            except asyncio.QueueFull:
                # The node is behind: do not relay what we could not process ourselves.
                self._stats.drop("queue_full")
                return Verdict.IGNORE
        else:
            self._stats.drop("ignored")
        return result

    async def _deliver_loop(self, sub: _Subscription) -> None:
        queue = sub.queue
        if queue is None:
            return
        while True:
            peer_id, payload = await queue.get()
            try:
                res = sub.handler(peer_id, payload)
                if inspect.isawaitable(res):
                    await res
                self._stats.delivered += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gossip handler for %s raised", sub.kind)
