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
from collections.abc import Callable

import pytest

from p2p.config import P2PConfig
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
        assert await _until(lambda: boot.peer_id in node.peers(), 15), node.peers()
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
    finally:
        for t in reversed(started):
            await t.stop()
        block.release()
