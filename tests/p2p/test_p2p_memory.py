"""In-memory transport: validator verdicts, relaying, penalties, rate limits, caps, hooks, requests."""

from __future__ import annotations

import asyncio

import pytest

from p2p import scoring
from p2p.config import P2PConfig, RateLimit
from p2p.envelope import encode_envelope
from p2p.errors import BadPeerData, MessageTooLarge, PeerUnavailable, RequestFailed, RequestTimeout
from p2p.interface import PeerConnected, PeerDisconnected, PeerPenalised, Reject, Verdict
from p2p.memory import MemoryHub, MemoryTransport


def _cfg(tmp_path, name: str, **kw) -> P2PConfig:
    return P2PConfig(chain_id="memnet", key_path=str(tmp_path / name), listen_port=0, **kw)


class Node:
    """A transport plus what its validator saw and its handler got."""

    def __init__(self, t: MemoryTransport, verdict_of=None) -> None:
        self.t = t
        self.seen: list[bytes] = []
        self.got: list[tuple[str, bytes]] = []
        self.arrived = asyncio.Event()
        self._verdict_of = verdict_of or (lambda p: Verdict.ACCEPT)

        def validator(peer: str, payload: bytes) -> Verdict:
            self.seen.append(payload)
            return self._verdict_of(payload)

        def handler(peer: str, payload: bytes) -> None:
            self.got.append((peer, payload))
            self.arrived.set()

        t.subscribe("vote", validator, handler)

    async def wait_got(self, n: int, timeout: float = 5.0) -> None:
        async def until() -> None:
            while len(self.got) < n:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), timeout)


async def _line(tmp_path, n: int, hub: MemoryHub | None = None, verdict_of=None, **kw) -> tuple[MemoryHub, list[Node]]:
    """n nodes in a line 0 - 1 - ... - n-1, so relaying is observable."""
    hub = hub or MemoryHub()
    nodes = [Node(MemoryTransport(_cfg(tmp_path, f"k{i}", **kw), hub, peer_id=f"p{i}"), verdict_of) for i in range(n)]
    for node in nodes:
        await node.t.start()
    for a, b in zip(nodes, nodes[1:], strict=False):
        await a.t.connect(b.t.listen_addrs()[0])
    return hub, nodes


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def _verdict_by_prefix(payload: bytes) -> Verdict:
    return {b"A": Verdict.ACCEPT, b"I": Verdict.IGNORE, b"R": Verdict.REJECT}[payload[:1]]


async def test_accepted_message_is_delivered_and_relayed(tmp_path):
    _, (a, b, c) = await _line(tmp_path, 3)
    await a.t.publish("vote", b"A-hello")
    await c.wait_got(1)
    assert b.got == [("p0", b"A-hello")]
    assert c.got == [("p1", b"A-hello")]  # came through b
    assert a.got == []  # no loopback of own publishes
    assert b.t.stats.delivered == 1


async def test_ignored_message_is_not_delivered_nor_relayed_nor_penalised(tmp_path):
    _, (a, b, c) = await _line(tmp_path, 3, verdict_of=_verdict_by_prefix)
    await a.t.publish("vote", b"I-stale")
    await a.t.publish("vote", b"A-next")
    await c.wait_got(1)
    assert b.seen == [b"I-stale", b"A-next"]
    assert [p for _, p in b.got] == [b"A-next"]
    assert c.seen == [b"A-next"]  # the ignored one never reached c
    assert b.t.get_peer_score("p0") == 0.0
    assert b.t.stats.dropped["ignored"] == 1
    assert "p0" in b.t.peers()


async def test_rejected_message_is_dropped_and_penalises_the_sender(tmp_path):
    _, (a, b, c) = await _line(tmp_path, 3, verdict_of=_verdict_by_prefix)
    events = []
    b.t.add_event_handler(events.append)
    await a.t.publish("vote", b"R-forged")
    await a.t.publish("vote", b"A-fine")
    await c.wait_got(1)
    assert [p for _, p in b.got] == [b"A-fine"]
    assert c.seen == [b"A-fine"]
    assert b.t.get_peer_score("p0") < 0
    assert b.t.stats.dropped["rejected"] == 1
    assert PeerPenalised("p0", "rejected", False) in events


async def test_a_named_reject_penalises_under_its_entry_of_the_penalty_table(tmp_path):
    def verdict(payload: bytes) -> Verdict | Reject:
        return {b"S": Reject("bad_signature"), b"U": Reject("no-such-entry")}.get(payload[:1], Verdict.ACCEPT)

    _, (a, b, c) = await _line(tmp_path, 3, verdict_of=verdict)
    events = []
    b.t.add_event_handler(events.append)
    await a.t.publish("vote", b"S-forged")
    await _settle()
    assert b.t.get_peer_score("p0") == -scoring.PENALTY["bad_signature"]
    assert PeerPenalised("p0", "bad_signature", False) in events
    # An unknown name counts as a plain REJECT.
    await a.t.publish("vote", b"U-odd")
    await a.t.publish("vote", b"A-fine")
    await c.wait_got(1)
    assert b.t.get_peer_score("p0") == -scoring.PENALTY["bad_signature"] - scoring.PENALTY["rejected"]
    assert PeerPenalised("p0", "rejected", False) in events
    assert c.seen == [b"A-fine"]  # neither rejected message was relayed
    assert b.t.stats.dropped["rejected"] == 2


async def test_repeated_rejects_cut_the_peer_off_and_ban_it(tmp_path):
    _, (a, b, c) = await _line(tmp_path, 3, verdict_of=_verdict_by_prefix)
    events = []
    b.t.add_event_handler(events.append)
    for i in range(20):
        await a.t.publish("vote", b"R-%d" % i)
        await _settle()
    assert "p0" not in b.t.peers()
    assert PeerDisconnected("p0") in events
    assert any(isinstance(e, PeerPenalised) and e.disconnected for e in events)
    with pytest.raises(PeerUnavailable):
        await a.t.connect(b.t.listen_addrs()[0])  # banned
    assert c.seen == []  # nothing rejected was ever relayed


async def test_rate_limit_drops_a_flood_and_counts_it(tmp_path):
    limits = {k: RateLimit(rate=1.0, burst=5.0) for k in ("tx", "proposal", "vote", "attestation", "evidence")}
    _, (a, b) = await _line(tmp_path, 2, rate_limits=limits)
    for i in range(12):
        await a.t.publish("vote", b"A-%d" % i)
    await _settle()
    assert len(b.got) == 5
    assert b.t.stats.dropped["rate"] == 7
    assert b.t.get_peer_score("p0") < 0  # flooding costs score, a little per message


async def test_invalid_oversize_and_malformed_messages_are_dropped_before_the_validator(tmp_path):
    _, (a, b) = await _line(tmp_path, 2, max_message_bytes=4096, tx_batch_max_bytes=1024)
    with pytest.raises(MessageTooLarge):
        await a.t.publish("vote", b"A" * 5000)
    await a.t.publish_raw("vote", encode_envelope("vote", b"A" * 5000))
    await a.t.publish_raw("vote", b"\xc1not msgpack")
    await a.t.publish_raw("vote", encode_envelope("proposal", b"A-wrong-topic"))
    await _settle()
    assert b.seen == []
    assert b.t.stats.dropped["oversize"] == 1
    assert b.t.stats.dropped["malformed"] == 2
    assert b.t.get_peer_score("p0") < 0


async def test_async_validator_and_async_handler(tmp_path):
    hub = MemoryHub()
    a = MemoryTransport(_cfg(tmp_path, "a"), hub, "a")
    b = MemoryTransport(_cfg(tmp_path, "b"), hub, "b")
    got = asyncio.Queue()

    async def validator(peer: str, payload: bytes) -> Verdict:
        await asyncio.sleep(0)
        return Verdict.ACCEPT if payload.startswith(b"ok") else Verdict.REJECT

    async def handler(peer: str, payload: bytes) -> None:
        await got.put(payload)

    b.subscribe("vote", validator, handler)
    for t in (a, b):
        await t.start()
    await a.connect("/memory/b/p2p/b")
    await a.publish("vote", b"no")
    await a.publish("vote", b"ok-1")
    assert await asyncio.wait_for(got.get(), 5) == b"ok-1"
    assert b.stats.dropped["rejected"] == 1


async def test_validator_that_raises_ignores_the_message_without_penalty(tmp_path):
    _, (a, b) = await _line(tmp_path, 2, verdict_of=lambda p: 1 // 0)
    await a.t.publish("vote", b"A")
    await _settle()
    assert b.got == [] and b.t.stats.dropped["validator_error"] == 1
    assert b.t.get_peer_score("p0") == 0.0


async def test_drop_and_delay_hooks_model_a_partition_and_latency(tmp_path):
    cut = {"on": True}
    hub = MemoryHub(
        drop=lambda src, dst, kind: cut["on"] and {src, dst} == {"p0", "p1"},
        delay=lambda src, dst, kind: 0.05,
    )
    _, (a, b) = await _line(tmp_path, 2, hub=hub)
    await a.t.publish("vote", b"A-lost")
    await asyncio.sleep(0.1)
    assert b.got == []
    cut["on"] = False
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await a.t.publish("vote", b"A-late")
    await b.wait_got(1)
    assert loop.time() - t0 >= 0.045
    assert b.got == [("p0", b"A-late")]


async def test_connection_events_and_peer_limit(tmp_path):
    hub = MemoryHub()
    ts = [MemoryTransport(_cfg(tmp_path, f"k{i}", max_peers=1), hub, f"q{i}") for i in range(3)]
    events = []
    ts[0].add_event_handler(events.append)
    for t in ts:
        await t.start()
    await ts[0].connect("/memory/q1/p2p/q1")
    with pytest.raises(PeerUnavailable):
        await ts[0].connect("/memory/q2/p2p/q2")
    await ts[0].disconnect("q1")
    assert events == [PeerConnected("q1"), PeerDisconnected("q1")]
    assert ts[0].peers() == [] and ts[1].peers() == []
    for t in ts:
        await t.stop()


async def test_requests_answer_frames_and_fail_cleanly(tmp_path):
    hub = MemoryHub(delay=lambda s, d, k: 0.2 if k == "/slow/1" else 0.0)
    a = MemoryTransport(_cfg(tmp_path, "a"), hub, "a")
    b = MemoryTransport(_cfg(tmp_path, "b", max_frame_bytes=2 << 20), hub, "b")
    b.set_request_handler("/echo/1", lambda peer, data: [data, peer.encode()])
    b.set_request_handler("/slow/1", lambda peer, data: [b"late"])

    def refuse(peer: str, data: bytes) -> list[bytes]:
        raise ValueError("no such height")

    b.set_request_handler("/refuse/1", refuse)
    b.set_request_handler("/big/1", lambda peer, data: [b"x" * (1 << 20) + b"x"])
    for t in (a, b):
        await t.start()
    await a.connect("/memory/b/p2p/b")
    assert await a.request("b", "/echo/1", b"hi", max_frames=2) == [b"hi", b"a"]
    with pytest.raises(BadPeerData):
        await a.request("b", "/echo/1", b"hi", max_frames=1)
    with pytest.raises(RequestTimeout):
        await a.request("b", "/slow/1", b"", timeout=0.05)
    with pytest.raises(RequestFailed, match="no such height"):
        await a.request("b", "/refuse/1", b"")
    with pytest.raises(PeerUnavailable):
        await a.request("b", "/unknown/1", b"")
    with pytest.raises(BadPeerData):
        await a.request("b", "/big/1", b"", max_frame_bytes=1 << 20)
    assert a.stats.requests_failed == 5


async def test_invalid_request_flood_is_rate_limited(tmp_path):
    hub = MemoryHub()
    a = MemoryTransport(_cfg(tmp_path, "a"), hub, "a")
    b = MemoryTransport(_cfg(tmp_path, "b", request_rate=RateLimit(rate=1.0, burst=3.0)), hub, "b")
    b.set_request_handler("/echo/1", lambda peer, data: [data])
    for t in (a, b):
        await t.start()
    await a.connect("/memory/b/p2p/b")
    ok = refused = 0
    for _ in range(6):
        try:
            await a.request("b", "/echo/1", b"x")
            ok += 1
        except RequestFailed:
            refused += 1
    assert (ok, refused) == (3, 3)
    assert b.stats.dropped["rate"] == 3


async def test_manual_clock_and_scheduler_drive_delivery_and_rate_limits(tmp_path):
    now = [0.0]
    queue: list[tuple[float, object]] = []

    def schedule(delay: float, fn) -> None:
        queue.append((now[0] + delay, fn))

    def advance(to: float) -> None:
        now[0] = to
        for item in sorted((q for q in queue if q[0] <= to), key=lambda q: q[0]):
            queue.remove(item)
            item[1]()

    hub = MemoryHub(clock=lambda: now[0], schedule=schedule, delay=lambda s, d, k: 1.0)
    limits = {k: RateLimit(rate=1.0, burst=1.0) for k in ("tx", "proposal", "vote", "attestation", "evidence")}
    _, (a, b) = await _line(tmp_path, 2, hub=hub, rate_limits=limits)
    await a.t.publish("vote", b"A-1")
    await a.t.publish("vote", b"A-2")
    advance(0.5)
    await _settle()
    assert b.seen == []  # still in flight on the simulated clock
    advance(1.0)
    await _settle()
    assert b.seen == [b"A-1"] and b.t.stats.dropped["rate"] == 1  # both arrived at t=1; one token
    await a.t.publish("vote", b"A-3")
    advance(3.0)
    await _settle()
    assert b.seen == [b"A-1", b"A-3"]  # the bucket refilled on the simulated clock


async def test_a_restarted_peer_is_heard_again(tmp_path):
    # Same peer id after a restart: its new messages are not taken for ones already seen.
    hub, (a, b) = await _line(tmp_path, 2)
    await a.t.publish("vote", b"A-before")
    await b.wait_got(1)
    await a.t.stop()
    again = Node(MemoryTransport(_cfg(tmp_path, "k0"), hub, peer_id="p0"))
    await again.t.start()
    await again.t.connect(b.t.listen_addrs()[0])
    await again.t.publish("vote", b"A-after")
    await b.wait_got(2)
    assert [p for _, p in b.got] == [b"A-before", b"A-after"]
