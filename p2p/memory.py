"""The in-memory transport: many nodes in one process, for tests and simulations.

A ``MemoryHub`` connects ``MemoryTransport`` instances on one asyncio loop.
Gossip floods over the hub's links with de-duplication by message id, and
every hop applies the same gate (size, rate, envelope), validator verdicts,
relaying rule and penalties as the libp2p transport. Optional hooks decide,
per (sender, receiver, kind), whether a message is dropped and how long it is
delayed, so simulations can model loss, latency and partitions; seeded
randomness belongs to the hook, not here. A simulation with a manual clock
passes ``clock`` (read by rate limits and bans) and ``schedule`` (runs each
delivery after its delay on that clock) so a whole network runs on its time.
Connections take slots by the libp2p transport's rules (``p2p.peers``): the
dialler's side is outbound, the other's inbound (capped below ``max_peers``),
and a ``bootstrap`` peer evicts the lowest-scored inbound peer of a full node.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from p2p import scoring
from p2p.config import P2PConfig
from p2p.dispatch import Dispatcher, GateDrop, GossipGate
from p2p.envelope import encode_envelope
from p2p.errors import (
    BadPeerData,
    MessageTooLarge,
    PeerUnavailable,
    RequestFailed,
    RequestTimeout,
    TransportClosed,
)
from p2p.interface import (
    EventHandler,
    Handler,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
    PeerPenalised,
    Reject,
    RequestHandler,
    Transport,
    Validator,
    Verdict,
)
from p2p.peers import ConnectionSlots
from p2p.ratelimit import PeerRateLimiter
from p2p.stats import P2PStats

#: ``(sender, receiver, kind) -> True to drop``; kind is a gossip kind or a protocol id.
DropHook = Callable[[str, str, str], bool]
#: ``(sender, receiver, kind) -> seconds of delay``.
DelayHook = Callable[[str, str, str], float]
#: ``schedule(delay, fn)``: run ``fn`` after ``delay`` seconds of the simulation's clock.
Scheduler = Callable[[float, Callable[[], None]], object]

_SEEN_MAX = 50_000


class MemoryHub:
    """The in-process network: who is registered, who is linked, and the fault hooks."""

    def __init__(
        self,
        *,
        drop: DropHook | None = None,
        delay: DelayHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        schedule: Scheduler | None = None,
    ) -> None:
        self.drop = drop
        self.delay = delay
        self.clock = clock
        self.schedule = schedule
        self.nodes: dict[str, MemoryTransport] = {}
        self._ids = itertools.count()
        self._seqnos: dict[str, itertools.count[int]] = {}

    def next_id(self) -> str:
        """Return a fresh peer id for a transport created without one."""
        return f"mem{next(self._ids)}"

    def seqnos(self, peer_id: str) -> itertools.count[int]:
        """The message sequence of ``peer_id``, kept across its restarts: a restarted
        peer goes on above every seqno it used, as the libp2p transport does, so its
        peers never take its new messages for ones already seen."""
        return self._seqnos.setdefault(peer_id, itertools.count(1))

    def _send(self, src: str, dst: str, kind: str, fn: Callable[[], None]) -> None:
        if self.drop is not None and self.drop(src, dst, kind):
            return
        d = self.delay(src, dst, kind) if self.delay is not None else 0.0
        if self.schedule is not None:
            self.schedule(d, fn)
            return
        loop = asyncio.get_running_loop()
        if d > 0:
            loop.call_later(d, fn)
        else:
            loop.call_soon(fn)


class MemoryTransport(Transport):
    """A Transport whose peers live in the same process, linked through a MemoryHub."""

    def __init__(
        self, config: P2PConfig, hub: MemoryHub, peer_id: str | None = None, *, outbound_slots: int | None = None
    ) -> None:
        config.validate()
        self.config = config
        self.stats = P2PStats()
        self._hub = hub
        self._id = peer_id or hub.next_id()
        self._dispatcher = Dispatcher(config, self.stats, clock=hub.clock)
        self._gate = GossipGate(config)
        self._req_limiter = PeerRateLimiter({"request": config.request_rate})
        self._links: set[str] = set()
        # The libp2p transport's slot rules (p2p.peers): the dialler's link is outbound, the other's inbound.
        persistent = [addr.rsplit("/p2p/", 1)[-1] for addr in config.bootstrap]
        self.slots = ConnectionSlots(
            config.max_peers, persistent, config.outbound_slots if outbound_slots is None else outbound_slots
        )
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._seqno = hub.seqnos(self._id)
        self._handlers: dict[str, RequestHandler] = {}
        self._events: list[EventHandler] = []
        self._score: dict[str, float] = {}
        self._bans = scoring.BanList()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False

    # -- identity and lifecycle ------------------------------------------------

    @property
    def peer_id(self) -> str:
        return self._id

    def listen_addrs(self) -> list[str]:
        return [f"/memory/{self._id}/p2p/{self._id}"] if self._running else []

    async def start(self) -> None:
        if self._id in self._hub.nodes:
            raise TransportClosed(f"peer id {self._id} is already on this hub")
        self._hub.nodes[self._id] = self
        self._running = True
        self._dispatcher.start()
        for addr in self.config.bootstrap:
            try:
                await self.connect(addr)
            except PeerUnavailable:
                continue

    async def stop(self) -> None:
        if not self._running:
            return
        for peer in list(self._links):
            self._unlink(peer)
        self._running = False
        self._hub.nodes.pop(self._id, None)
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._dispatcher.stop()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- peers -----------------------------------------------------------------

    def peers(self) -> list[str]:
        return sorted(self._links)

    async def connect(self, addr: str) -> str:
        self._check_running()
        peer = addr.rsplit("/p2p/", 1)[-1]
        other = self._hub.nodes.get(peer)
        if other is None or peer == self._id:
            raise PeerUnavailable(f"no in-memory peer {peer!r}")
        now = self._hub.clock()
        if self._bans.is_banned(peer, now) or other._bans.is_banned(self._id, now):
            raise PeerUnavailable(f"peer {peer} is banned")
        if peer in self._links:
            return peer
        ours = self.slots.get_admission(peer, True, self.get_peer_score)
        theirs = other.slots.get_admission(self._id, False, other.get_peer_score)
        if not ours.accepted:
            self.slots.apply(ours, peer, True, now)
            raise PeerUnavailable(f"peer limit reached here ({ours.reason})")
        if not theirs.accepted:
            other.slots.apply(theirs, self._id, False, now)
            other.stats.peers_refused += 1
            raise PeerUnavailable(f"peer limit reached at {peer} ({theirs.reason})")
        for node, admission in ((self, ours), (other, theirs)):
            if admission.evict is not None:
                node._unlink(admission.evict)
        self.slots.apply(ours, peer, True, now)
        other.slots.apply(theirs, self._id, False, now)
        self._link(peer)
        other._link(self._id)
        return peer

    async def disconnect(self, peer_id: str) -> None:
        self._unlink(peer_id)

    def _link(self, peer: str) -> None:
        self._links.add(peer)
        self.stats.peers = len(self._links)
        self.stats.peers_connected_total += 1
        self._emit(PeerConnected(peer))

    def _unlink(self, peer: str) -> None:
        if peer not in self._links:
            return
        self._links.discard(peer)
        self.slots.on_disconnected(peer)
        self.stats.peers = len(self._links)
        self.stats.peers_disconnected_total += 1
        self._req_limiter.forget(peer)
        self._gate.limiter.forget(peer)
        self._emit(PeerDisconnected(peer))
        other = self._hub.nodes.get(peer)
        if other is not None:
            other._unlink(self._id)

    def add_event_handler(self, handler: EventHandler) -> None:
        self._events.append(handler)

    def _emit(self, event: PeerEvent) -> None:
        for h in self._events:
            h(event)

    def get_peer_score(self, peer_id: str) -> float:
        return self._score.get(peer_id, 0.0)

    def report_peer(self, peer_id: str, reason: str, *, disconnect: bool = False) -> None:
        self._penalise(peer_id, reason, scoring.get_penalty(reason), disconnect)

    def _penalise(self, peer_id: str, reason: str, amount: float, force: bool = False) -> None:
        score = self._score.get(peer_id, 0.0) - amount
        self._score[peer_id] = score
        self.stats.peers_penalised += 1
        cut = force or score < scoring.DISCONNECT_SCORE
        if cut:
            self._bans.ban(peer_id, self._hub.clock())
            self._unlink(peer_id)
        self._emit(PeerPenalised(peer_id, reason, cut))

    # -- gossip ----------------------------------------------------------------

    def subscribe(self, kind: str, validator: Validator, handler: Handler) -> None:
        self._dispatcher.subscribe(kind, validator, handler)

    async def publish(self, kind: str, payload: bytes) -> None:
        self._check_running()
        data = encode_envelope(kind, payload)
        if len(data) > self.config.max_message_bytes:
            raise MessageTooLarge(f"{kind} message of {len(data)} bytes > cap {self.config.max_message_bytes}")
        msg_id = self._id.encode() + b"/" + next(self._seqno).to_bytes(8, "big")
        self._mark_seen(msg_id)
        self._forward(kind, data, msg_id, exclude=())

    async def publish_raw(self, kind: str, data: bytes) -> None:
        """Gossip bytes exactly as given, with no envelope or size check (fault tests only)."""
        msg_id = self._id.encode() + b"/" + next(self._seqno).to_bytes(8, "big")
        self._mark_seen(msg_id)
        self._forward(kind, data, msg_id, exclude=())

    def _forward(self, kind: str, data: bytes, msg_id: bytes, exclude: tuple[str, ...]) -> None:
        for peer in sorted(self._links):
            if peer in exclude:
                continue
            other = self._hub.nodes.get(peer)
            if other is None:
                continue
            self.stats.messages_out += 1
            self.stats.bytes_out += len(data)
            self._hub._send(self._id, peer, kind, functools.partial(other._on_gossip, self._id, kind, data, msg_id))

    def _mark_seen(self, msg_id: bytes) -> bool:
        if msg_id in self._seen:
            return False
        self._seen[msg_id] = None
        if len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
        return True

    def _on_gossip(self, src: str, kind: str, data: bytes, msg_id: bytes) -> None:
        if not self._running or src not in self._links:
            return
        self.stats.messages_in += 1
        self.stats.bytes_in += len(data)
        if not self._mark_seen(msg_id):
            return
        try:
            payload = self._gate.admit(kind, src, data, self._hub.clock())
        except GateDrop as drop:
            self.stats.drop(drop.reason)
            self._penalise(src, drop.reason, scoring.PENALTY[drop.reason])
            return
        self._spawn(self._validate_and_relay(src, kind, data, payload, msg_id))

    async def _validate_and_relay(self, src: str, kind: str, data: bytes, payload: bytes, msg_id: bytes) -> None:
        verdict = await self._dispatcher.validate_async(kind, src, payload)
        if verdict is Verdict.ACCEPT:
            origin = msg_id.split(b"/", 1)[0].decode()
            self._forward(kind, data, msg_id, exclude=(src, origin))
        elif isinstance(verdict, Reject):
            self._penalise(src, verdict.reason, scoring.get_penalty(verdict.reason))

    # -- requests ----------------------------------------------------------------

    def set_request_handler(self, protocol: str, handler: RequestHandler) -> None:
        self._handlers[protocol] = handler

    async def request(
        self,
        peer_id: str,
        protocol: str,
        data: bytes,
        *,
        timeout: float | None = None,
        max_frames: int = 1,
        max_frame_bytes: int | None = None,
    ) -> list[bytes]:
        self._check_running()
        other = self._hub.nodes.get(peer_id)
        if other is None or peer_id not in self._links:
            raise PeerUnavailable(f"peer {peer_id} is not connected")
        limit = self.config.request_timeout if timeout is None else timeout
        frame_cap = self.config.max_frame_bytes if max_frame_bytes is None else max_frame_bytes
        if len(data) > self.config.max_message_bytes:
            raise MessageTooLarge(f"request of {len(data)} bytes > cap {self.config.max_message_bytes}")
        self.stats.requests_out += 1
        self.stats.bytes_out += len(data)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[bytes]] = loop.create_future()

        def deliver() -> None:
            other._spawn(other._serve(self._id, protocol, data, fut))

        self._hub._send(self._id, peer_id, protocol, deliver)
        try:
            frames = await asyncio.wait_for(fut, limit)
        except TimeoutError as exc:
            self.stats.requests_failed += 1
            raise RequestTimeout(f"{protocol} request to {peer_id} timed out after {limit} s") from exc
        except RequestFailed:
            self.stats.requests_failed += 1
            raise
        if len(frames) > max_frames:
            self.stats.requests_failed += 1
            raise BadPeerData(f"{peer_id} sent {len(frames)} frames, more than the {max_frames} asked")
        for f in frames:
            if len(f) > frame_cap:
                self.stats.requests_failed += 1
                raise BadPeerData(f"{peer_id} sent a {len(f)}-byte frame > cap {frame_cap}")
            self.stats.bytes_in += len(f)
        return frames

    async def _serve(self, src: str, protocol: str, data: bytes, fut: asyncio.Future[list[bytes]]) -> None:
        def answer(result: list[bytes] | Exception) -> None:
            def settle() -> None:
                if fut.done():
                    return
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

            self._hub._send(self._id, src, protocol, settle)

        handler = self._handlers.get(protocol)
        if handler is None or not self._running:
            answer(PeerUnavailable(f"{self._id} does not serve {protocol}"))
            return
        if not self._req_limiter.allow(src, "request", self._hub.clock()):
            self.stats.drop("rate")
            answer(RequestFailed(f"{self._id} refused the request: rate limit"))
            return
        self.stats.requests_in += 1
        try:
            res = handler(src, data)
            frames = list(await res) if inspect.isawaitable(res) else list(res)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            answer(RequestFailed(f"{self._id} failed to serve {protocol}: {exc}"))
            return
        self.stats.bytes_out += sum(len(f) for f in frames)
        answer(frames)

    def _check_running(self) -> None:
        if not self._running:
            raise TransportClosed("the in-memory transport is not running")
