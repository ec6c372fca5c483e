"""The libp2p transport: the asyncio face of a py-libp2p host running in its own thread.

``Libp2pTransport`` implements ``p2p.interface.Transport``. Its ``start``
loads (or creates) the peer key, starts the trio thread (``TrioThread``)
running ``HostService`` and returns once the host listens. Every call from
the node crosses into the thread through the bridge; validators, request
handlers and events cross back onto the node's loop. ``stop`` ends the trio
run, joins the thread and cancels the delivery tasks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Callable
from typing import Any

from p2p.config import GOSSIP_KINDS, P2PConfig
from p2p.dispatch import Dispatcher
from p2p.envelope import encode_envelope
from p2p.errors import ConfigError, MessageTooLarge, RequestFailed, TransportClosed
from p2p.host.bridge import TrioThread
from p2p.host.logs import install_libp2p_logging
from p2p.host.service import HostService
from p2p.interface import (
    EventHandler,
    GossipVerdict,
    Handler,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
    RequestHandler,
    Transport,
    Validator,
)
from p2p.keys import load_or_create_peer_key, peer_id_from_seed
from p2p.peers import compute_reserved_outbound
from p2p.stats import P2PStats

log = logging.getLogger("p2p.transport")


class Libp2pTransport(Transport):
    """Transport over py-libp2p: TCP, Noise, Yamux, GossipSub 1.1, stream request/response."""

    def __init__(self, config: P2PConfig, *, outbound_slots: int | None = None) -> None:
        """``outbound_slots``: connections kept free of inbound peers (default: ``p2p.peers.compute_reserved_outbound``)."""
        config.validate()
        if outbound_slots is None:
            outbound_slots = config.outbound_slots
        compute_reserved_outbound(config.max_peers, outbound_slots)  # ConfigError now, not at start
        self.config = config
        self._outbound_slots = outbound_slots
        self.stats = P2PStats()
        self._dispatcher = Dispatcher(config, self.stats)
        self._handlers: dict[str, RequestHandler] = {}
        self._events: list[EventHandler] = []
        self._peers: set[str] = set()
        self._thread = TrioThread("libp2p-trio")
        self._service: HostService | None = None
        self._seed = load_or_create_peer_key(config.key_path)
        self._peer_id = peer_id_from_seed(self._seed)
        self._addrs: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- identity and lifecycle ----------------------------------------------------

    @property
    def peer_id(self) -> str:
        return self._peer_id

    def listen_addrs(self) -> list[str]:
        return list(self._addrs)

    async def start(self) -> None:
        if self._service is not None:
            raise TransportClosed("the transport was already started")
        install_libp2p_logging()
        if self.config.gil_switch_interval is not None:
            # Process-wide, on purpose: see P2PConfig.gil_switch_interval.
            sys.setswitchinterval(min(sys.getswitchinterval(), self.config.gil_switch_interval))
        svc = HostService(self.config, self._seed, self.stats, self, self._dispatcher.kinds, outbound_slots=self._outbound_slots)
        for proto in self._handlers:
            svc.add_protocol(proto)
        self._service = svc
        self._dispatcher.start()
        try:
            await self._thread.start(svc.run)
        except Exception as exc:
            await self._dispatcher.stop()
            self._service = None
            where = f"{self.config.listen_host}:{self.config.listen_port}"
            raise TransportClosed(f"the libp2p host could not start on {where}: {_describe(exc)}") from exc
        except BaseException:
            await self._dispatcher.stop()
            self._service = None
            raise
        self._addrs = [a if "/p2p/" in a else f"{a}/p2p/{self._peer_id}" for a in svc.own_addrs]

    async def stop(self) -> None:
        if self._service is None:
            return
        await self._thread.stop()
        self._service = None
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._dispatcher.stop()
        for peer in sorted(self._peers):
            self._emit(PeerDisconnected(peer))
        self._peers.clear()
        self._addrs = []

    def _svc(self) -> HostService:
        if self._service is None or not self._thread.running:
            raise TransportClosed("the libp2p transport is not running")
        return self._service

    # -- gossip ----------------------------------------------------------------------

    def subscribe(self, kind: str, validator: Validator, handler: Handler) -> None:
        self._dispatcher.subscribe(kind, validator, handler)
        if self._service is not None and self._thread.running:
            self._thread.call_soon(self._service.add_kind, kind)

    async def publish(self, kind: str, payload: bytes) -> None:
        if kind not in GOSSIP_KINDS:
            raise ConfigError(f"unknown gossip kind {kind!r}")
        data = encode_envelope(kind, payload)
        if len(data) > self.config.max_message_bytes:
            raise MessageTooLarge(f"{kind} message of {len(data)} bytes > cap {self.config.max_message_bytes}")
        svc = self._svc()
        await self._thread.call(svc.publish, self.config.topic(kind), data)

    async def publish_raw(self, kind: str, data: bytes) -> None:
        """Publish bytes exactly as given (no envelope, no size check): fault tests only."""
        svc = self._svc()
        await self._thread.call(svc.publish, self.config.topic(kind), data)

    async def send_raw_frame(self, peer_id: str, raw: bytes) -> None:
        """Write raw bytes as a pubsub frame to a peer: fault tests only."""
        svc = self._svc()
        await self._thread.call(svc.publish_raw_frame, peer_id, raw)

    async def mesh_peers(self, kind: str) -> list[str]:
        """Peers in our GossipSub mesh for ``kind``'s topic (for metrics and tests)."""
        svc = self._svc()
        return await self._thread.call(svc.mesh_peers, self.config.topic(kind))

    # Called from the trio thread through the bridge (runs on this loop):
    def validate_item(self, item: tuple[str, str, bytes], done: Callable[[GossipVerdict], None]) -> None:
        """Run the validator for one (kind, peer, payload) handed over from the trio side."""
        self._dispatcher.validate(*item, done)

    # -- requests ----------------------------------------------------------------------

    def set_request_handler(self, protocol: str, handler: RequestHandler) -> None:
        self._handlers[protocol] = handler
        if self._service is not None and self._thread.running:
            self._thread.call_soon(self._service.add_protocol, protocol)

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
        if len(data) > 64 * 1024:
            raise MessageTooLarge(f"request of {len(data)} bytes > 64 KiB")
        svc = self._svc()
        limit = self.config.request_timeout if timeout is None else timeout
        cap = self.config.max_frame_bytes if max_frame_bytes is None else max_frame_bytes
        return await self._thread.call(svc.request, peer_id, protocol, data, limit, max_frames, cap)

    def serve(self, protocol: str, peer_id: str, data: bytes, done: Callable[[Any], None]) -> None:
        """Run the node's handler for one inbound request (on this loop); ``done(frames | error)``."""
        handler = self._handlers.get(protocol)
        if handler is None:
            done(RequestFailed(f"no handler for {protocol}"))
            return
        try:
            res = handler(peer_id, data)
        except Exception as exc:
            done(RequestFailed(f"handler for {protocol} refused: {exc}"))
            return
        if not inspect.isawaitable(res):
            done(list(res))
            return

        async def finish() -> None:
            try:
                frames = await res
            except asyncio.CancelledError:
                done(RequestFailed("cancelled"))
                raise
            except Exception as exc:
                done(RequestFailed(f"handler for {protocol} refused: {exc}"))
                return
            done(list(frames))

        task = asyncio.get_running_loop().create_task(finish())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- peers and events ----------------------------------------------------------------

    def peers(self) -> list[str]:
        return sorted(self._peers)

    async def connect(self, addr: str) -> str:
        svc = self._svc()
        return await self._thread.call(svc.connect, addr)

    async def disconnect(self, peer_id: str) -> None:
        svc = self._svc()
        await self._thread.call(svc.disconnect, peer_id)

    def report_peer(self, peer_id: str, reason: str, *, disconnect: bool = False) -> None:
        svc = self._svc()
        self._thread.call_soon(svc.report, peer_id, reason, disconnect)

    def get_peer_score(self, peer_id: str) -> float:
        """The peer's score as of the last 1 s scoring round (GossipSub score minus penalties)."""
        svc = self._service
        return 0.0 if svc is None else svc.scores.get(peer_id, 0.0)

    def add_event_handler(self, handler: EventHandler) -> None:
        self._events.append(handler)

    def on_event(self, event: PeerEvent) -> None:
        """Called on this loop by the trio side for every peer event."""
        if isinstance(event, PeerConnected):
            if event.peer_id in self._peers:
                return
            self._peers.add(event.peer_id)
        elif isinstance(event, PeerDisconnected):
            if event.peer_id not in self._peers:
                return
            self._peers.discard(event.peer_id)
        self._emit(event)

    def _emit(self, event: PeerEvent) -> None:
        for h in self._events:
            try:
                h(event)
            except Exception:
                log.exception("peer event handler raised on %s", event)


def _describe(exc: BaseException) -> str:
    """Name the innermost cause of a (possibly grouped) start-up failure."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
