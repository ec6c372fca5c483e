"""The trio side of the libp2p transport: host, pubsub, connection slots and dialing, keep-alive, requests.

Who gets a connection slot and who is dialled follows ``p2p.peers`` (inbound
peers capped below ``max_peers``, persistent peers always in, evicting the
lowest-scored inbound peer when full); peer exchange, which feeds the
address book, is ``p2p.host.slots``.

Everything in this module runs in the libp2p thread under trio. It talks to
the asyncio side only through the ``TrioThread`` hand-offs and the callbacks
the transport gives it (``AsyncioSide``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import INotifee
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as x25519_keypair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

from p2p import scoring
from p2p.config import P2PConfig, peers_protocol, ping_protocol
from p2p.dispatch import VALIDATOR_TIMEOUT, GateDrop, GossipGate
from p2p.errors import PeerUnavailable, TransportClosed
from p2p.host.bridge import BatchedHandOff, TrioThread
from p2p.host.liveness import KeepAlive, abort_connection, serve_ping
from p2p.host.reqresp import RequestServer, send_request, serve_request
from p2p.host.router import CstakeGossipSub, GuardedPubsub
from p2p.host.slots import exchange_with, px_loop, serve_px
from p2p.host.streams import frame
from p2p.interface import (
    GossipVerdict,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
    PeerPenalised,
    Verdict,
)
from p2p.peers import ConnectionSlots, DialTarget, PeerBook, compute_backoff
from p2p.ratelimit import PeerRateLimiter
from p2p.stats import P2PStats

log = logging.getLogger("p2p.host")

DIAL_TIMEOUT = 5.0
#: A connection that lived this long resets its peer's redial backoff.
STABLE_CONNECTION = 10.0
#: A connection older than this loses to a new one from the same peer (the peer gave it up).
REPLACE_OLDER_THAN = 2.0


class AsyncioSide(RequestServer, Protocol):
    """What the trio side calls on the transport (each runs on the asyncio loop): ``serve`` and these."""

    def validate_item(self, item: tuple[str, str, bytes], done: Callable[[GossipVerdict], None]) -> None: ...

    def on_event(self, event: PeerEvent) -> None: ...


@dataclass(slots=True)
class _State:
    targets: dict[str, DialTarget] = field(default_factory=dict)
    """The persistent (bootstrap) peers; exchanged ones live in ``HostService.book``."""


class _Notifee(INotifee):
    def __init__(self, svc: HostService) -> None:
        self._svc = svc

    async def opened_stream(self, network: Any, stream: Any) -> None:
        await trio.lowlevel.checkpoint()

    async def closed_stream(self, network: Any, stream: Any) -> None:
        await trio.lowlevel.checkpoint()

    async def connected(self, network: Any, conn: Any) -> None:
        self._svc.on_new_connection(conn)
        self._svc.on_connected(conn.muxed_conn.peer_id, _is_outbound(conn))
        await trio.lowlevel.checkpoint()

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._svc.on_disconnected(conn.muxed_conn.peer_id)
        await trio.lowlevel.checkpoint()

    async def listen(self, network: Any, maddr: Any) -> None:
        await trio.lowlevel.checkpoint()

    async def listen_close(self, network: Any, maddr: Any) -> None:
        await trio.lowlevel.checkpoint()


class HostService:
    """Owns the py-libp2p host, pubsub and the background loops, inside the trio thread."""

    def __init__(
        self,
        config: P2PConfig,
        seed: bytes,
        stats: P2PStats,
        side: AsyncioSide,
        kinds: list[str],
        *,
        outbound_slots: int | None = None,
    ) -> None:
        self.config = config
        self.stats = stats
        self.side = side
        self.kinds = list(kinds)
        self.key_pair = create_new_key_pair(seed)
        self.my_id = ID.from_pubkey(self.key_pair.public_key)
        self.gate = GossipGate(config)
        self.req_limiter = PeerRateLimiter({"request": config.request_rate})
        self.bans = scoring.BanList()
        self.ledger = scoring.PenaltyLedger()
        self.scores: dict[str, float] = {}
        self._last_penalty_event: dict[str, float] = {}
        self.state = _State()
        self.own_addrs: list[str] = []
        self.known_addrs: dict[str, list[str]] = {}
        self.connected: set[ID] = set()
        self.protocols: set[str] = set()
        self.bridge: TrioThread | None = None
        self.validations: BatchedHandOff | None = None
        self.nursery: trio.Nursery | None = None
        self.host: Any = None
        self.pubsub: GuardedPubsub | None = None
        self.gossipsub: CstakeGossipSub | None = None
        self.keepalive: KeepAlive | None = None
        self._last_backoff_reset = -1e9
        self.kind_by_topic = {config.topic(k): k for k in kinds}
        for addr in config.bootstrap:
            pid = addr.rsplit("/p2p/", 1)[-1]
            self.state.targets.setdefault(pid, DialTarget([], keep=True)).addrs.append(addr)
        # Eclipse resistance (p2p.peers): inbound peers capped below max_peers, persistent peers always in.
        self.slots = ConnectionSlots(config.max_peers, self.state.targets, outbound_slots)
        self.book = PeerBook()

    @property
    def persistent(self) -> dict[str, DialTarget]:
        """The persistent (bootstrap) peers' dial targets, by peer id."""
        return self.state.targets

    # -- main ----------------------------------------------------------------------

    async def run(self, bridge: TrioThread) -> None:
        """Build and run the host until the bridge is asked to stop."""
        self.bridge = bridge
        self.validations = BatchedHandOff(bridge, self.side.validate_item)
        cfg = self.config
        self.host = new_host(
            key_pair=self.key_pair,
            sec_opt={TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(self.key_pair, noise_privkey=x25519_keypair().private_key)},
            muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
            connection_config=ConnectionConfig(max_connections_per_peer=1, dial_timeout=DIAL_TIMEOUT),
        )
        # The swarm's auto-connector dials peers from its peerstore (addresses any peer
        # can plant through identify) up to 150 connections, around our slots. Our
        # dialer alone decides whom we dial: never start it.
        self.host.get_network().auto_connector.start = _never_start
        self.gossipsub = CstakeGossipSub(self.stats, cfg.heartbeat_interval)
        self.pubsub = GuardedPubsub(
            self.host,
            self.gossipsub,
            max_message_bytes=cfg.max_message_bytes,
            stats=self.stats,
            on_gossip=self._on_gossip,
            on_fault=self.on_fault,
        )
        self.host.get_network().register_notifee(_Notifee(self))
        self.host.set_stream_handler(TProtocol(peers_protocol(cfg.chain_id)), functools.partial(serve_px, self))
        self.host.set_stream_handler(TProtocol(ping_protocol(cfg.chain_id)), serve_ping)
        self.keepalive = KeepAlive(
            self.host,
            ping_protocol(cfg.chain_id),
            interval=cfg.keepalive_interval,
            timeout=cfg.keepalive_timeout,
            misses=cfg.keepalive_misses,
            peers=lambda: self.connected,
            on_dead=self._drop_dead,
        )
        for proto in self.protocols:
            self._register(proto)
        listen = [multiaddr.Multiaddr(f"/ip4/{cfg.listen_host}/tcp/{cfg.listen_port}")]
        try:
            async with (
                self.host.run(listen_addrs=listen),
                background_trio_service(self.pubsub),
                background_trio_service(self.gossipsub),
            ):
                await self.pubsub.wait_until_ready()
                for kind in self.kinds:
                    await self.pubsub.subscribe(cfg.topic(kind))
                self.own_addrs = [str(a) for a in self.host.get_addrs()]
                if not self.own_addrs:
                    # py-libp2p logs a failed bind and carries on without a listener.
                    raise TransportClosed(f"not listening on {listen[0]} (address in use or not permitted)")
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    nursery.start_soon(self.validations.run)
                    nursery.start_soon(self._dial_loop)
                    nursery.start_soon(px_loop, self)
                    nursery.start_soon(self._score_loop)
                    nursery.start_soon(self.keepalive.run)
                    bridge.ready(nursery)
                    await bridge.wait_stop()
                    nursery.cancel_scope.cancel()
        finally:
            self.nursery = None
            # 0.8.1: the seen-messages cache owns an OS thread that Pubsub never stops.
            if self.pubsub is not None:
                self.pubsub.seen_messages.stop()

    def _register(self, protocol: str) -> None:
        async def handler(stream: Any) -> None:
            await self._serve_request(protocol, stream)

        self.host.set_stream_handler(TProtocol(protocol), handler)

    def add_protocol(self, protocol: str) -> None:
        """Serve ``protocol`` (called before start, or in the trio thread after)."""
        self.protocols.add(protocol)
        if self.host is not None:
            self._register(protocol)

    def add_kind(self, kind: str) -> None:
        """Subscribe to ``kind``'s topic after start (trio thread)."""
        topic = self.config.topic(kind)
        self.kind_by_topic[topic] = kind
        if self.nursery is not None and self.pubsub is not None:
            self.nursery.start_soon(self.pubsub.subscribe, topic)

    # -- gossip --------------------------------------------------------------------

    async def _on_gossip(self, forwarder: ID, topic: str, data: bytes) -> GossipVerdict:
        kind = self.kind_by_topic.get(topic)
        if kind is None or self.validations is None:
            return Verdict.IGNORE
        peer = forwarder.to_base58()
        try:
            payload = self.gate.admit(kind, peer, data, time.monotonic())
        except GateDrop as drop:
            self.stats.drop(drop.reason)
            if drop.reason == "rate":
                self.on_fault(forwarder, "rate")
                return Verdict.IGNORE
            # Oversize or malformed: an invalid message, penalised under its own reason.
            if self.gossipsub is not None and self.gossipsub.scorer is not None:
                self.gossipsub.scorer.on_invalid_message(forwarder, topic)
            self.on_fault(forwarder, drop.reason)
            return Verdict.IGNORE
        try:
            verdict: GossipVerdict = await self.validations.call((kind, peer, payload), timeout=VALIDATOR_TIMEOUT + 1)
        except TimeoutError:
            self.stats.drop("validator_error")
            return Verdict.IGNORE
        return verdict

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish on ``topic`` (trio thread)."""
        if self.pubsub is None:
            raise PeerUnavailable("pubsub is not running")
        await self.pubsub.publish(topic, data)

    async def mesh_peers(self, topic: str) -> list[str]:
        """Peers in our mesh for ``topic``."""
        if self.gossipsub is None:
            return []
        return sorted(p.to_base58() for p in self.gossipsub.mesh.get(topic, ()))

    async def publish_raw_frame(self, peer_id: str, raw: bytes) -> None:
        """Open a pubsub stream to a peer and write raw bytes as one frame (fault tests only)."""
        if self.pubsub is None:
            return
        stream = await self.host.new_stream(ID.from_base58(peer_id), list(self.pubsub.protocols))
        await stream.write(frame(raw))
        # Wait for the peer to react: it resets or closes the stream.
        with trio.move_on_after(2.0), contextlib.suppress(Exception):
            await stream.read(1)

    # -- faults, scores, bans ------------------------------------------------------

    def on_fault(self, peer: ID, reason: str, force_cut: bool = False) -> None:
        """Penalise ``peer`` for a fault (a ``scoring.PENALTY`` reason); cut it if its score is too low.

        Penalties go to our own ledger, because py-libp2p's scorer forgets a
        peer whenever its pubsub stream ends (which a bad frame causes).
        """
        pid = peer.to_base58()
        amount = scoring.get_penalty(reason)
        if self.ledger.get(pid) == 0:
            # Its first penalty: drop what it told us. While penalised its answers are
            # ignored, so a flood of penalties (one per dropped message) scans nothing more.
            self.book.on_source_penalised(pid)
        self.ledger.add(pid, amount)
        if reason == "rate" and self.gossipsub is not None and self.gossipsub.scorer is not None:
            self.gossipsub.scorer.penalize_behavior(peer, amount)
        self.stats.peers_penalised += 1
        cut = force_cut or self.score(peer) < scoring.DISCONNECT_SCORE
        if cut:
            self._cut(peer)
        # At most one event per peer per second (a flood must not flood the loop), but always a cut.
        now = time.monotonic()
        if self.bridge is not None and (cut or now - self._last_penalty_event.get(pid, -1e9) >= 1.0):
            self._last_penalty_event[pid] = now
            if len(self._last_penalty_event) > 4096:
                self._last_penalty_event.clear()
            self.bridge.post(self.side.on_event, PeerPenalised(pid, reason, cut))

    def report(self, peer_id: str, reason: str, disconnect: bool) -> None:
        """A penalty from the node (bad sync data); trio thread."""
        self.on_fault(ID.from_base58(peer_id), reason, force_cut=disconnect)

    def score(self, peer: ID) -> float:
        """GossipSub's score of ``peer`` over our topics, minus our penalty ledger."""
        base = 0.0
        if self.gossipsub is not None and self.gossipsub.scorer is not None:
            base = float(self.gossipsub.scorer.score(peer, list(self.kind_by_topic)))
        return base - self.ledger.get(peer.to_base58())

    def _cut(self, peer: ID) -> None:
        pid = peer.to_base58()
        if self.bans.is_banned(pid, time.monotonic()):
            return
        log.warning("disconnecting and banning peer %s (score %.1f)", pid, self.score(peer))
        self.bans.ban(pid, time.monotonic())
        if self.pubsub is not None:
            self.pubsub.blacklisted_peers.add(peer)
        self.book.forget(pid)
        if self.nursery is not None:
            self.nursery.start_soon(self._disconnect, peer)

    def remote_ip(self, peer: ID) -> str | None:
        """The IP address our (first) connection to ``peer`` sees it at; None when not connected."""
        if self.host is None:
            return None
        for conn in self.host.get_network().get_connections(peer):
            with contextlib.suppress(Exception):
                remote = conn.muxed_conn.get_remote_address()
                if remote:
                    return str(remote[0])
        return None

    async def _disconnect(self, peer: ID) -> None:
        try:
            await self.host.disconnect(peer)
        except Exception as exc:
            log.debug("disconnect %s: %s", peer, exc)

    async def _score_loop(self) -> None:
        while True:
            await trio.sleep(1.0)
            self.ledger.decay()
            scores = {}
            for peer in list(self.connected):
                score = scores[peer.to_base58()] = self.score(peer)
                if score < scoring.DISCONNECT_SCORE:
                    self._cut(peer)
            # Read by the asyncio side; replaced whole, never mutated, so no lock is needed.
            self.scores = scores
            for pid in self.bans.expired(time.monotonic()):
                if self.pubsub is not None:
                    self.pubsub.blacklisted_peers.discard(ID.from_base58(pid))

    # -- connections ---------------------------------------------------------------

    def on_connected(self, peer: ID, outbound: bool = False) -> None:
        """Notifee: gate the connection (bans, then slots), then tell the node and exchange peers."""
        pid = peer.to_base58()
        banned = self.bans.is_banned(pid, time.monotonic())
        if pid in self.slots and not banned:
            return  # another connection of a peer we keep
        # A banned peer is refused even while its old connection still holds a slot:
        # the disconnect closes every connection of it, the new one included.
        now = trio.current_time()
        admission = None if banned else self.slots.on_connected(pid, outbound, now, self._score_of)
        if admission is None or not admission.accepted:
            self.stats.peers_refused += 1
            if self.nursery is not None:
                self.nursery.start_soon(self._disconnect, peer)
            return
        if admission.evict is not None:
            log.info("evicting inbound peer %s to make room for persistent peer %s", admission.evict, pid)
            if self.nursery is not None:
                self.nursery.start_soon(self._disconnect, ID.from_base58(admission.evict))
        self.book.on_connected(pid, now)
        if peer in self.connected:
            return  # it was being evicted and got a slot back
        self.connected.add(peer)
        self.stats.peers = len(self.connected)
        self.stats.peers_connected_total += 1
        target = self._target(pid)
        if target is not None:
            target.connected_at = now
        if self.bridge is not None:
            self.bridge.post(self.side.on_event, PeerConnected(pid))
        if self.nursery is not None:
            self.nursery.start_soon(exchange_with, self, peer, 0.2)

    def on_new_connection(self, conn: Any) -> None:
        """Notifee, for every new connection: it replaces older ones to the same peer; links are back.

        A peer that connects again while we still hold a connection to it has
        given that one up (its keep-alive found it dead, or it restarted): the
        old one is half-open and would swallow whatever we send. The new one
        wins; the old one is aborted. Connections younger than
        ``REPLACE_OLDER_THAN`` are left alone, so two peers dialling each other
        at the same moment do not close each other's connection.
        """
        peer = conn.muxed_conn.peer_id
        if self.keepalive is not None:
            self.keepalive.alive(peer)
            self.keepalive.watch(conn)
        self._links_are_back()
        if self.host is None or self.nursery is None:
            return
        now = time.time()
        stale = [
            old
            for old in self.host.get_network().get_connections(peer)
            if old is not conn and now - float(getattr(old, "_created_at", 0.0) or 0.0) > REPLACE_OLDER_THAN
        ]
        if stale:
            log.info("peer %s connected again: replacing %d older connection(s)", peer, len(stale))
            if self.keepalive is not None:
                self.keepalive.replaced_total += len(stale)
            self.nursery.start_soon(self._replace, peer, stale)

    async def _replace(self, peer: ID, stale: list[Any]) -> None:
        for old in stale:
            await abort_connection(old)
        # Our pubsub stream to the peer ran over an old connection: open a new one.
        if self.pubsub is not None and peer in self.pubsub.peers:
            stream = self.pubsub.peers[peer]
            if any(getattr(stream, "muxed_conn", None) is old.muxed_conn for old in stale):
                self.pubsub._handle_dead_peer(peer)

    async def _drop_dead(self, peer: ID) -> None:
        """Keep-alive verdict: every connection to ``peer`` is dead; abort them (the dialer redials)."""
        if self.host is None:
            return
        for conn in list(self.host.get_network().get_connections(peer)):
            await abort_connection(conn)

    def _links_are_back(self) -> None:
        """A connection came up: redial the persistent peers we are not connected to now, not at their backoff."""
        now = trio.current_time()
        if now - self._last_backoff_reset < 1.0:
            return
        self._last_backoff_reset = now
        for target in self.state.targets.values():
            if target.keep and not target.dialing and target.next_try > now:
                target.delay = 0.0
                target.next_try = now

    def on_disconnected(self, peer: ID) -> None:
        """Notifee: forget per-peer state and tell the node."""
        if peer not in self.connected:
            return
        if self.host is not None and self.host.get_network().get_connections(peer):
            return
        self.connected.discard(peer)
        pid = peer.to_base58()
        self.slots.on_disconnected(pid)
        self.stats.peers = len(self.connected)
        self.stats.peers_disconnected_total += 1
        self.gate.limiter.forget(pid)
        self.req_limiter.forget(pid)
        if self.keepalive is not None:
            self.keepalive.forget(peer)
        target = self._target(pid)
        if target is not None:
            # A connection that lasted resets the backoff; one cut at once (peer
            # full, or it banned us) backs off further, so we never redial in a loop.
            if trio.current_time() - target.connected_at > STABLE_CONNECTION:
                target.delay = 0.0
            self._back_off(target)
        if self.bridge is not None:
            self.bridge.post(self.side.on_event, PeerDisconnected(pid))

    async def connect(self, addr: str) -> str:
        """Dial a multiaddr with /p2p/<id> and return the peer id."""
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        if info.peer_id == self.my_id:
            raise PeerUnavailable("refusing to dial ourselves")
        if self.bans.is_banned(info.peer_id.to_base58(), time.monotonic()):
            raise PeerUnavailable(f"peer {info.peer_id} is banned")
        # Our own backoff decides when to redial; the swarm's 60 s negative cache
        # would otherwise keep a restarted peer unreachable for a minute.
        network = self.host.get_network()
        if hasattr(network, "unblock_peer"):
            network.unblock_peer(info.peer_id)
        # The swarm dials one TCP address per peer, the first its peerstore holds, whatever
        # we pass: an address learnt earlier (a signed peer record's ``0.0.0.0:26656``, which
        # in a container is our own listener; an address since reused) would be dialled
        # instead, every time. We choose the address: the peerstore holds just that one.
        self.host.get_peerstore().clear_addrs(info.peer_id)
        try:
            with trio.fail_after(DIAL_TIMEOUT):
                await self.host.connect(info)
        except trio.TooSlowError as exc:
            raise PeerUnavailable(f"dialing {addr} timed out") from exc
        except Exception as exc:
            raise PeerUnavailable(f"dialing {addr} failed: {exc}") from exc
        return info.peer_id.to_base58()

    async def disconnect(self, peer_id: str) -> None:
        """Close the connection to a peer."""
        await self._disconnect(ID.from_base58(peer_id))

    def _target(self, pid: str) -> DialTarget | None:
        target = self.state.targets.get(pid)
        if target is None and (entry := self.book.get(pid)) is not None:
            target = entry.target
        return target

    def _score_of(self, pid: str) -> float:
        return self.score(ID.from_base58(pid))

    def _due_dials(self, now: float) -> list[tuple[str, DialTarget]]:
        """Targets to dial now: persistent ones even when full (they evict), exchanged ones into free slots."""
        connected = {p.to_base58() for p in self.connected}

        def skip(pid: str) -> bool:
            return pid in connected or self.bans.is_banned(pid, time.monotonic())

        due = [(p, t) for p, t in self.state.targets.items() if not t.dialing and t.next_try <= now and not skip(p)]
        in_flight = sum(1 for e in self.book.entries.values() if e.target.dialing)
        room = self.slots.get_outbound_room() - in_flight
        candidates = self.book.get_dial_candidates(now, lambda p: skip(p) or p in self.state.targets, room)
        return due + [(e.peer_id, e.target) for e in candidates]

    async def _dial_loop(self) -> None:
        while True:
            for pid, target in self._due_dials(trio.current_time()):
                target.dialing = True
                if self.nursery is not None:
                    self.nursery.start_soon(self._dial, pid, target)
            await trio.sleep(0.25)

    async def _dial(self, pid: str, target: DialTarget) -> None:
        try:
            for addr in target.addrs:
                try:
                    await self.connect(addr)
                    return
                except PeerUnavailable as exc:
                    log.debug("dial %s: %s", pid, exc)
            self._back_off(target)
            if not target.keep:
                self.book.on_dial_failed(pid)
        finally:
            target.dialing = False

    def _back_off(self, target: DialTarget) -> None:
        # Exponential backoff with jitter, so restarted peers are not hammered in step;
        # persistent peers are always redialled within persistent_reconnect_max.
        cap = self.config.persistent_reconnect_max if target.keep else self.config.reconnect_max
        target.delay = compute_backoff(target.delay, self.config.reconnect_min, cap)
        target.next_try = trio.current_time() + target.delay * random.uniform(0.8, 1.2)

    # -- request / response (p2p.host.reqresp) ------------------------------------------

    async def request(
        self, peer_id: str, protocol: str, data: bytes, timeout: float, max_frames: int, max_frame: int
    ) -> list[bytes]:
        """Send one request to a connected peer and return its frames (trio thread)."""
        return await send_request(self, peer_id, protocol, data, timeout, max_frames, max_frame)

    async def _serve_request(self, protocol: str, stream: Any) -> None:
        await serve_request(self, protocol, stream)


async def _never_start() -> None:
    """Stands in for the swarm auto-connector's ``start``, which then never dials."""
    await trio.lowlevel.checkpoint()


def _is_outbound(conn: Any) -> bool:
    """Whether we dialled ``conn`` (the swarm records its direction; the muxer knows who initiated)."""
    direction = getattr(getattr(conn, "direction", None), "name", "")
    if direction in ("INBOUND", "OUTBOUND"):
        return bool(direction == "OUTBOUND")
    return bool(getattr(conn.muxed_conn, "is_initiator", False))
