"""Connection slots: sybils cannot eclipse a node's persistent peers (p2p/peers.py, p2p/host/service.py).

The attack: a node keeps ``max_peers`` connections and one bootstrap peer.
Well-behaved sybil hosts dial it over and over, so every slot that frees up is
taken at once. When the bootstrap peer's connection drops (here: it restarts
on the same port, knowing nobody), the node must still get it back: inbound
connections are capped below ``max_peers`` (reserved outbound slots), and a
persistent peer always gets a slot, evicting the lowest-scored inbound
non-persistent peer when the node is full.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from p2p.config import P2PConfig
from p2p.errors import ConfigError
from p2p.peers import Admission, ConnectionSlots, compute_reserved_outbound
from tests.kit.ports import reserve_ports

CHAIN = "slots"


def _cfg(tmp_path, name: str, **kw) -> P2PConfig:
    kw.setdefault("listen_port", 0)
    return P2PConfig(chain_id=CHAIN, key_path=str(tmp_path / name), **kw)


async def _until(cond: Callable[[], bool], timeout: float) -> bool:
    # Peer sets change on the trio thread's schedule; a short poll keeps the test simple.
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


# -- the slot manager ----------------------------------------------------------------------------


def _scores(table: dict[str, float]) -> Callable[[str], float]:
    return lambda pid: table.get(pid, 0.0)


def test_compute_reserved_outbound_defaults_and_invalid_values() -> None:
    assert [compute_reserved_outbound(n) for n in (1, 2, 4, 10, 32, 100)] == [0, 0, 1, 2, 8, 8]
    assert compute_reserved_outbound(10, 3) == 3 and compute_reserved_outbound(10, 0) == 0
    for max_peers, slots in ((10, 10), (10, -1), (1, 1), (0, None)):
        with pytest.raises(ConfigError):
            compute_reserved_outbound(max_peers, slots)


def test_inbound_peers_are_capped_below_max_peers_outbound_ones_fill_the_rest() -> None:
    slots = ConnectionSlots(6, outbound_slots=2)
    none = _scores({})
    assert [slots.on_connected(f"in{i}", False, float(i), none).accepted for i in range(5)] == [True] * 4 + [False]
    assert slots.on_connected("in4", False, 5.0, none).reason == "inbound_full"
    assert slots.get_outbound_room() == 2
    assert slots.on_connected("out0", True, 6.0, none).accepted
    assert slots.on_connected("out1", True, 7.0, none).accepted
    refused = slots.on_connected("out2", True, 8.0, none)
    assert not refused.accepted and refused.reason == "full" and refused.evict is None
    assert len(slots) == 6 and slots.refused_total == 3
    # A second connection of a peer that holds a slot takes nothing more.
    assert slots.on_connected("in0", False, 9.0, none) == Admission(True, "known")
    slots.on_disconnected("in0")
    assert slots.on_connected("in9", False, 10.0, none).accepted
    slots.on_disconnected("never-connected")  # nothing happens
    assert len(slots) == 6


def test_eviction_order_lowest_score_inbound_first_never_persistent_or_outbound() -> None:
    slots = ConnectionSlots(5, persistent=["p0", "p1", "p2", "p3", "p4"], outbound_slots=0)
    scores = {"out": -1000.0, "p0": -900.0, "good": 5.0, "meh": -3.0, "meh-newer": -3.0}
    score_of = _scores(scores)
    slots.on_connected("out", True, 1.0, score_of)
    slots.on_connected("p0", False, 2.0, score_of)  # a persistent peer that dialled in
    slots.on_connected("good", False, 3.0, score_of)
    slots.on_connected("meh", False, 4.0, score_of)
    slots.on_connected("meh-newer", False, 5.0, score_of)
    assert slots.compute_eviction(score_of) == "meh-newer"  # equal scores: the newest goes first
    evicted = []
    for p in ("p1", "p2", "p3", "p4"):
        adm = slots.on_connected(p, True, 6.0, score_of)
        assert adm.accepted and adm.reason == "persistent"
        evicted.append(adm.evict)
    # The lowest-scored inbound peers, in order; then nobody: "out" and "p0" are never evicted,
    # and the last persistent peer gets in over max_peers rather than being shut out.
    assert evicted == ["meh-newer", "meh", "good", None]
    assert sorted(slots._slots) == ["out", "p0", "p1", "p2", "p3", "p4"]
    assert slots.evicted_total == 3
    # A full node refuses everyone else.
    assert not slots.on_connected("late", False, 7.0, score_of).accepted
    assert not slots.on_connected("late", True, 7.0, score_of).accepted


def test_a_persistent_peer_takes_a_free_slot_without_evicting() -> None:
    slots = ConnectionSlots(4, persistent=["boot"], outbound_slots=1)
    none = _scores({})
    for i in range(3):
        assert slots.on_connected(f"s{i}", False, float(i), none).accepted
    assert not slots.on_connected("s3", False, 3.0, none).accepted  # inbound cap: 3
    adm = slots.on_connected("boot", False, 4.0, none)
    assert adm == Admission(True, "persistent", None) and slots.get_inbound_count() == 3


def test_the_host_service_gate_evicts_for_a_persistent_peer(tmp_path) -> None:
    import trio
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    from p2p.host.service import HostService
    from p2p.stats import P2PStats

    ids = [ID.from_pubkey(create_new_key_pair(bytes([60 + i]) * 32).public_key) for i in range(5)]
    boot = ids[0]
    cfg = _cfg(tmp_path, "k", bootstrap=(f"/ip4/10.0.0.1/tcp/1/p2p/{boot.to_base58()}",), max_peers=3)
    svc = HostService(cfg, bytes(32), P2PStats(), None, [], outbound_slots=0)  # type: ignore[arg-type]
    svc.ledger.add(ids[2].to_base58(), 50.0)  # the lowest score

    async def main() -> None:
        for peer in ids[1:4]:
            svc.on_connected(peer, outbound=False)
        assert svc.connected == set(ids[1:4])
        svc.on_connected(ids[4], outbound=False)
        assert ids[4] not in svc.connected and svc.stats.peers_refused == 1
        svc.on_connected(boot, outbound=True)
        assert boot.to_base58() in svc.slots and ids[2].to_base58() not in svc.slots
        assert svc.slots.evicted_total == 1
        svc.on_disconnected(ids[2])  # what the eviction's disconnect brings
        assert svc.connected == {boot, ids[1], ids[3]}

    trio.run(main)


def test_a_banned_peer_reconnecting_before_its_old_connection_closed_is_refused(tmp_path) -> None:
    # Its slot is still held (the disconnect is under way): the new connection must not ride on it.
    import trio
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    from p2p.host.service import HostService
    from p2p.stats import P2PStats

    bad = ID.from_pubkey(create_new_key_pair(bytes([77]) * 32).public_key)
    svc = HostService(_cfg(tmp_path, "k"), bytes(32), P2PStats(), None, [])  # type: ignore[arg-type]

    async def main() -> None:
        svc.on_connected(bad, outbound=False)
        svc.bans.ban(bad.to_base58(), time.monotonic())
        svc.on_connected(bad, outbound=False)  # its second connection
        assert svc.stats.peers_refused == 1

    trio.run(main)


async def test_the_memory_twin_keeps_the_same_slots(tmp_path) -> None:
    from p2p.errors import PeerUnavailable
    from p2p.memory import MemoryHub, MemoryTransport

    hub = MemoryHub()
    node = MemoryTransport(_cfg(tmp_path, "n", bootstrap=("/memory/boot/p2p/boot",), max_peers=3), hub, "node", outbound_slots=1)
    boot = MemoryTransport(_cfg(tmp_path, "b"), hub, "boot")
    sybils = [MemoryTransport(_cfg(tmp_path, f"s{i}"), hub, f"s{i}") for i in range(4)]
    for t in (node, boot, *sybils):
        await t.start()
    await sybils[0].connect("/memory/node/p2p/node")
    await sybils[1].connect("/memory/node/p2p/node")
    with pytest.raises(PeerUnavailable, match="inbound_full"):
        await sybils[2].connect("/memory/node/p2p/node")  # 3 peers, 1 slot kept for dialling out
    await node.connect("/memory/s3/p2p/s3")  # the outbound slot: now full
    node.report_peer("s1", "rate")  # s1 scores lowest
    await boot.connect("/memory/node/p2p/node")  # persistent: evicts the lowest-scored inbound peer
    assert node.peers() == ["boot", "s0", "s3"] and node.slots.evicted_total == 1
    assert "node" not in sybils[1].peers()
    assert node.stats.peers_refused == 1
    for t in (node, boot, *sybils):
        await t.stop()


def test_invalid_outbound_slots_fail_the_transport_at_construction(tmp_path) -> None:
    from p2p.host import Libp2pTransport

    with pytest.raises(ConfigError, match="outbound_slots"):
        Libp2pTransport(_cfg(tmp_path, "k", max_peers=4), outbound_slots=4)


# -- real libp2p hosts in one process ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("outbound_slots", [None, 0], ids=["reserved-slots", "eviction-only"])
async def test_sybils_filling_slots_do_not_take_the_bootstrap_peers_slot(tmp_path, outbound_slots):
    from p2p.host import Libp2pTransport

    max_peers = 4
    block = reserve_ports(1)
    started: list[Libp2pTransport] = []

    async def start(t: Libp2pTransport) -> Libp2pTransport:
        started.append(t)
        await t.start()
        return t

    try:
        boot_cfg = _cfg(tmp_path, "boot", listen_port=block.p2p_port(0))
        boot = await start(Libp2pTransport(boot_cfg))
        boot_addr = boot.listen_addrs()[0]
        node_cfg = _cfg(tmp_path, "node", bootstrap=(boot_addr,), max_peers=max_peers)
        node = await start(Libp2pTransport(node_cfg, outbound_slots=outbound_slots))
        assert await _until(lambda: boot.peer_id in node.peers(), 30)
        # Sybils: ordinary hosts that redial the node every 0.1-0.2 s, more of them than slots.
        sybil_cfg = {"bootstrap": tuple(node.listen_addrs()), "reconnect_min": 0.1, "persistent_reconnect_max": 0.2}
        sybils = [await start(Libp2pTransport(_cfg(tmp_path, f"s{i}", **sybil_cfg))) for i in range(max_peers)]
        sybil_ids = {s.peer_id for s in sybils}
        # Full: the bootstrap peer and as many sybils as the node lets in.
        assert await _until(lambda: len(node.peers()) == max_peers, 30), node.peers()
        # The bootstrap peer drops: it restarts on the same port and knows nobody, so only
        # the node's redial can bring it back; meanwhile the sybils hammer the freed slot.
        await boot.stop()
        assert await _until(lambda: boot.peer_id not in node.peers(), 10)
        await asyncio.sleep(1.0)
        boot2 = await start(Libp2pTransport(boot_cfg))
        assert boot2.peer_id == boot.peer_id
        t0 = asyncio.get_running_loop().time()
        assert await _until(lambda: boot.peer_id in node.peers(), 15), node.peers()
        back_after = asyncio.get_running_loop().time() - t0
        # Making room takes a moment: the evicted sybil's disconnect crosses back from the libp2p thread.
        assert await _until(lambda: len(node.peers()) <= max_peers, 10), node.peers()
        # It stays: the sybils keep dialling for 5 s more and never take its slot.
        for _ in range(50):
            assert boot.peer_id in node.peers()
            assert len(node.peers()) <= max_peers
            await asyncio.sleep(0.1)
        assert len(sybil_ids & set(node.peers())) >= 1
        slots = node._service.slots
        assert node.stats.peers_refused > 0  # the sybils did try
        if outbound_slots == 0:
            assert slots.evicted_total >= 1  # the bootstrap peer's slot was taken back from a sybil
        else:
            assert slots.get_inbound_count() <= slots.inbound_limit == max_peers - 1
        print(f"bootstrap peer back {back_after:.2f} s after its restart; sybil connections refused: "
              f"{node.stats.peers_refused}; evicted: {slots.evicted_total}")
    finally:
        for t in reversed(started):
            await t.stop()
        block.release()


def test_outbound_slots_come_from_the_config() -> None:
    from p2p.config import P2PConfig
    from p2p.errors import ConfigError
    from p2p.memory import MemoryHub, MemoryTransport

    cfg = P2PConfig(chain_id="c", key_path="k", max_peers=6, outbound_slots=3)
    cfg.validate()
    assert MemoryTransport(cfg, MemoryHub()).slots.reserved_outbound == 3
    for bad in (-1, 6):
        with pytest.raises(ConfigError, match="outbound_slots"):
            P2PConfig(chain_id="c", key_path="k", max_peers=6, outbound_slots=bad).validate()
