"""Peer exchange on the trio side: what we tell peers, and what we take from their answers.

Each node asks a few connected peers every ``peer_exchange_interval`` (and each
new peer once) on ``/cstake/<chain-id>/peers/1``: the request carries our own
record, the answer the peer's own record and the peers it is connected to.
A peer's own record (its listen addresses) is kept in ``known_addrs`` so we
can pass it on; the peers it lists are attacker-chosen, so they only enter
the bounded, expiring, scored address book (``p2p.peers.PeerBook``): at most
``PX_MAX_SCANNED`` records of an answer are looked at, at most
``PX_MAX_PER_ANSWER`` new ones taken, none from a peer we hold penalties
against. We pass on only peers we are connected to, never book entries.

The host service is seen through ``PeersHost``, the narrow part of it used
here; ``p2p.host.service.HostService`` provides it and calls in here, never
the other way round. The slot rules themselves are pure: ``p2p.peers``.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Protocol

import multiaddr
import trio
from libp2p.peer.id import ID

from p2p.config import P2PConfig, peers_protocol
from p2p.envelope import PeerExchange, PeerRecord
from p2p.errors import BadPeerData
from p2p.host.reqresp import reset_stream
from p2p.host.streams import FrameReader, write_frames
from p2p.peers import PX_MAX_SCANNED, DialTarget, PeerBook
from p2p.ratelimit import PeerRateLimiter
from p2p.scoring import PenaltyLedger
from p2p.stats import P2PStats

log = logging.getLogger("p2p.host")

#: Records in one answer we send, and addresses per record.
PX_MAX_RECORDS = PX_MAX_SCANNED
PX_MAX_ADDRS = 4
#: Cap on one peer-exchange frame.
PX_MAX_BYTES = 64 * 1024
#: Peers asked per peer-exchange round.
PX_FANOUT = 4


class PeersHost(Protocol):
    """The part of the host service that peer exchange uses."""

    @property
    def config(self) -> P2PConfig: ...

    @property
    def stats(self) -> P2PStats: ...

    @property
    def my_id(self) -> ID: ...

    @property
    def own_addrs(self) -> list[str]: ...

    @property
    def known_addrs(self) -> dict[str, list[str]]: ...

    @property
    def connected(self) -> set[ID]: ...

    @property
    def persistent(self) -> dict[str, DialTarget]: ...

    @property
    def book(self) -> PeerBook: ...

    @property
    def ledger(self) -> PenaltyLedger: ...

    @property
    def req_limiter(self) -> PeerRateLimiter: ...

    @property
    def nursery(self) -> trio.Nursery | None: ...

    def remote_ip(self, peer: ID) -> str | None:
        """The IP address our connection to ``peer`` sees it at (None when not connected)."""
        ...

    def on_fault(self, peer: ID, reason: str) -> None: ...

    async def request(
        self, peer_id: str, protocol: str, data: bytes, timeout: float, max_frames: int, max_frame: int
    ) -> list[bytes]: ...


def get_own_record(h: PeersHost) -> PeerRecord:
    """Our own record: peer id and listen addresses."""
    return PeerRecord(h.my_id.to_base58(), tuple(h.own_addrs[:PX_MAX_ADDRS]))


def get_known_records(h: PeersHost, exclude: str) -> tuple[PeerRecord, ...]:
    """The connected peers whose addresses we know (their own records), but ``exclude``."""
    out = []
    for peer in sorted(h.connected, key=lambda p: p.to_base58()):
        pid = peer.to_base58()
        addrs = h.known_addrs.get(pid)
        if pid != exclude and addrs:
            out.append(PeerRecord(pid, tuple(addrs[:PX_MAX_ADDRS])))
    return tuple(out[:PX_MAX_RECORDS])


def on_peer_exchange(h: PeersHost, source: ID, msg: PeerExchange) -> None:
    """Take what ``source`` told us: its own record, and (bounded, scored) the peers it lists."""
    src = source.to_base58()
    source_ip = h.remote_ip(source)
    if msg.sender.peer_id == src:
        h.known_addrs.pop(src, None)
        h.known_addrs[src] = get_valid_addrs(msg.sender.addrs, src, source_ip, own=True)
        while len(h.known_addrs) > 4 * h.config.max_peers:
            h.known_addrs.pop(next(iter(h.known_addrs)))
    if h.ledger.get(src) > 0:
        return  # a penalised peer's addresses are not taken
    me = h.my_id.to_base58()
    # Sliced before any address is parsed: a 10,000-record answer costs what a 64-record one does.
    records = ((rec.peer_id, get_valid_addrs(rec.addrs, rec.peer_id, source_ip)) for rec in msg.peers[:PX_MAX_SCANNED])
    h.book.learn(src, records, trio.current_time(), lambda pid: pid == me or pid in h.persistent)


async def serve_px(h: PeersHost, stream: Any) -> None:
    """Answer one peer-exchange request (rate-limited like every request)."""
    peer = stream.muxed_conn.peer_id
    if not h.req_limiter.allow(peer.to_base58(), "request", time.monotonic()):
        h.stats.drop("rate")
        h.on_fault(peer, "rate")
        await reset_stream(stream)
        return
    try:
        with trio.fail_after(5):
            raw = await FrameReader(stream, PX_MAX_BYTES).read_frame()
            if raw is None:
                raise BadPeerData("empty peer exchange request")
            on_peer_exchange(h, peer, PeerExchange.decode(raw, max_bytes=PX_MAX_BYTES))
            reply = PeerExchange(get_own_record(h), get_known_records(h, peer.to_base58()))
            await write_frames(stream, [reply.encode()])
            await stream.close()
    except Exception as exc:
        log.debug("peer exchange with %s failed: %s", peer, exc)
        await reset_stream(stream)


async def exchange_with(h: PeersHost, peer: ID, delay: float = 0.0) -> None:
    """Ask ``peer`` whom it knows, after ``delay`` seconds (if still connected)."""
    await trio.sleep(delay)
    if peer not in h.connected:
        return
    req = PeerExchange(get_own_record(h), ()).encode()
    try:
        frames = await h.request(peer.to_base58(), peers_protocol(h.config.chain_id), req, 5.0, 1, PX_MAX_BYTES)
        if frames:
            on_peer_exchange(h, peer, PeerExchange.decode(frames[0], max_bytes=PX_MAX_BYTES))
    except Exception as exc:
        log.debug("peer exchange with %s failed: %s", peer, exc)


async def px_loop(h: PeersHost) -> None:
    """Every ``peer_exchange_interval``: expire stale book entries, ask a few peers."""
    while True:
        await trio.sleep(h.config.peer_exchange_interval)
        connected = {p.to_base58() for p in h.connected}
        h.book.expire(trio.current_time(), connected.__contains__)
        peers = list(h.connected)
        random.shuffle(peers)
        for peer in peers[:PX_FANOUT]:
            if h.nursery is not None:
                h.nursery.start_soon(exchange_with, h, peer, 0.0)


def get_valid_addrs(
    addrs: tuple[str, ...], peer_id: str, source_ip: str | None = None, *, own: bool = False
) -> list[str]:
    """The dialable addresses among ``addrs`` (IPv4 TCP), each ending in ``/p2p/<peer_id>``.

    ``source_ip`` is the address the record came from, as our connection sees it.
    A listener on ``0.0.0.0`` advertises that address, which anywhere else means
    "this host": dialled, it reaches the dialler itself (in a container, whose
    nodes all share one port, our own listener). In a peer's ``own`` record it
    is taken as the address the peer reached us from; otherwise it is dropped.
    Loopback addresses only mean something between peers on one host: they are
    dropped when the record came from another one.
    """
    remote_is_loopback = source_ip is None or source_ip.startswith("127.")
    out = []
    for a in addrs[:PX_MAX_ADDRS]:
        try:
            m = multiaddr.Multiaddr(a)
        except Exception:
            continue
        text = str(m)
        if not text.startswith("/ip4/") or "/tcp/" not in text:
            continue
        ip = text.split("/")[2]
        if ip == "0.0.0.0":
            if not own or source_ip is None:
                continue
            text = f"/ip4/{source_ip}" + text[len("/ip4/0.0.0.0"):]
        elif ip.startswith("127.") and not remote_is_loopback:
            continue
        if "/p2p/" not in text:
            text = f"{text}/p2p/{peer_id}"
        elif not text.endswith(f"/p2p/{peer_id}"):
            continue
        out.append(text)
    return out
