"""Block sync client and server: holder choice, per-frame verification, pruned peers, size caps, large blocks."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from p2p.blocksync import BlockSyncClient, BlockSyncServer
from p2p.config import P2PConfig, blocks_protocol
from p2p.envelope import BlockFrame, BlocksRequest
from p2p.errors import NoPeersAvailable
from p2p.memory import MemoryHub, MemoryTransport
from tests.kit.p2p_synthetic import ChainVerifier, make_chain
from tests.kit.p2p_synthetic import corrupt as corrupt_all

CHAIN = "memnet"


def _cfg(tmp_path, name: str, **kw) -> P2PConfig:
    return P2PConfig(chain_id=CHAIN, key_path=str(tmp_path / name), listen_port=0, **kw)


class Provider:
    """Serves ``rows`` (heights 1..len) and counts what it was asked."""

    def __init__(self, rows, earliest: int = 1) -> None:
        self.rows = rows
        self.earliest = earliest
        self.calls = 0
        self.status_calls = 0

    def get_status(self):
        self.status_calls += 1
        return (len(self.rows), b"\x07" * 32, self.earliest)

    def get_blocks(self, start, end):
        self.calls += 1
        start = max(start, self.earliest)
        return self.rows[start - 1 : end]


class Pruned(Provider):
    """Claims the whole range in its first status but has pruned it by the time it is asked."""

    def get_status(self):
        self.status_calls += 1
        earliest = 1 if self.status_calls == 1 else len(self.rows) + 1
        return (len(self.rows), b"\x07" * 32, earliest)

    def get_blocks(self, start, end):
        self.calls += 1
        return []


async def _network(tmp_path, names, **kw):
    hub = MemoryHub()
    nodes = {n: MemoryTransport(_cfg(tmp_path, n, **kw), hub, n) for n in names}
    return nodes


async def _start_and_link(me: MemoryTransport, others) -> None:
    for t in (me, *others):
        await t.start()
    for t in others:
        await me.connect(f"/memory/{t.peer_id}/p2p/{t.peer_id}")


# -- holder choice -------------------------------------------------------------------------


async def test_fetch_range_spreads_requests_over_holders_at_random(tmp_path):
    nodes = await _network(tmp_path, ("a", "b", "me"), max_request_blocks=10)
    rows = make_chain(CHAIN, 10, body_size=64)
    provs = {"a": Provider(rows), "b": Provider(rows)}
    for name, prov in provs.items():
        BlockSyncServer(nodes[name], prov)
    await _start_and_link(nodes["me"], [nodes["a"], nodes["b"]])
    client = BlockSyncClient(nodes["me"])
    client.rng = random.Random(1)  # pinned: the same choices every run
    for _ in range(8):
        frames = await client.fetch_range(1, 10, verify=ChainVerifier(CHAIN))
        assert [f.height for f in frames] == list(range(1, 11))
    # With a fixed order ("a" before "b") every one of the 8 syncs would go to "a".
    assert provs["a"].calls >= 1 and provs["b"].calls >= 1
    assert provs["a"].calls + provs["b"].calls == 8


async def test_seeded_clients_choose_the_same_holders(tmp_path):
    nodes = await _network(tmp_path, ("a", "b", "c", "me"), max_request_blocks=5)
    rows = make_chain(CHAIN, 30, body_size=32)
    for name in "abc":
        BlockSyncServer(nodes[name], Provider(rows))
    await _start_and_link(nodes["me"], [nodes[n] for n in "abc"])
    runs = []
    for _ in range(2):
        sources: dict[int, str] = {}
        await BlockSyncClient(nodes["me"], seed=42).fetch_range(1, 30, sources=sources)
        runs.append(sources)
    assert runs[0] == runs[1] and set(runs[0]) == set(range(1, 31))
    assert len(set(runs[0].values())) > 1


# -- per-frame verification ----------------------------------------------------------------


async def test_bad_frame_mid_answer_keeps_the_verified_prefix_and_penalises_only_its_server(tmp_path):
    nodes = await _network(tmp_path, ("a", "b", "me"), max_request_blocks=20)
    rows = make_chain(CHAIN, 20, body_size=64)
    # "a" (asked first in id order) serves heights 1-7 honestly, then forged commits.
    BlockSyncServer(nodes["a"], Provider(rows[:7] + corrupt_all(rows[7:])))
    BlockSyncServer(nodes["b"], Provider(rows))
    await _start_and_link(nodes["me"], [nodes["a"], nodes["b"]])
    client = BlockSyncClient(nodes["me"])
    client.rng = random.Random(0)
    client.rng.shuffle = lambda seq: seq.sort()  # type: ignore[method-assign]  # force "a" first
    sources: dict[int, str] = {}
    frames = await client.fetch_range(1, 20, verify=ChainVerifier(CHAIN), sources=sources)
    assert [f.height for f in frames] == list(range(1, 21))
    assert {h: p for h, p in sources.items() if h <= 7} == {h: "a" for h in range(1, 8)}
    assert {sources[h] for h in range(8, 21)} == {"b"}
    assert "a" not in nodes["me"].peers() and nodes["me"].get_peer_score("a") < 0
    assert "b" in nodes["me"].peers() and nodes["me"].get_peer_score("b") == 0.0


# -- pruned ranges -------------------------------------------------------------------------


async def test_empty_answer_for_a_pruned_range_is_not_penalised(tmp_path):
    nodes = await _network(tmp_path, ("a", "b", "me"))
    rows = make_chain(CHAIN, 12, body_size=64)
    pruned, honest = Pruned(rows), Provider(rows)
    BlockSyncServer(nodes["a"], pruned)
    BlockSyncServer(nodes["b"], honest)
    await _start_and_link(nodes["me"], [nodes["a"], nodes["b"]])
    client = BlockSyncClient(nodes["me"])
    client.rng.shuffle = lambda seq: seq.sort()  # type: ignore[method-assign]  # "a" is asked first
    frames = await client.fetch_range(1, 12, verify=ChainVerifier(CHAIN))
    assert [f.height for f in frames] == list(range(1, 13))
    assert pruned.calls == 1 and honest.calls == 1
    assert "a" in nodes["me"].peers() and nodes["me"].get_peer_score("a") == 0.0


async def test_only_a_pruned_holder_fails_after_asking_statuses_again_without_penalty(tmp_path):
    nodes = await _network(tmp_path, ("a", "me"))
    pruned = Pruned(make_chain(CHAIN, 5))
    BlockSyncServer(nodes["a"], pruned)
    await _start_and_link(nodes["me"], [nodes["a"]])
    with pytest.raises(NoPeersAvailable, match="holds no block from 1"):
        await BlockSyncClient(nodes["me"]).fetch_range(1, 5)
    assert pruned.status_calls == 2  # asked again after the empty answer: now it says it pruned
    assert "a" in nodes["me"].peers() and nodes["me"].get_peer_score("a") == 0.0


# -- size caps -----------------------------------------------------------------------------

_SMALL = {"max_message_bytes": 64 << 10, "max_frame_bytes": 512 << 10, "max_request_bytes": 1 << 20}


async def test_invalid_response_over_the_total_cap_is_refused_and_penalised(tmp_path):
    nodes = await _network(tmp_path, ("a", "me"), max_request_blocks=8, **_SMALL)
    rows = make_chain(CHAIN, 8, body_size=400 << 10)  # 8 frames of 400 KiB: each under the frame cap

    def flood(peer: str, data: bytes) -> list[bytes]:
        # Ignores the range asked and the server's byte budget: 3.2 MiB in one answer.
        req = BlocksRequest.decode(data)
        return [BlockFrame(req.start + i, *rows[i]).encode() for i in range(8)]

    BlockSyncServer(nodes["a"], Provider(rows))  # answers status honestly
    nodes["a"].set_request_handler(blocks_protocol(CHAIN), flood)
    await _start_and_link(nodes["me"], [nodes["a"]])
    with pytest.raises(NoPeersAvailable):
        await BlockSyncClient(nodes["me"]).fetch_range(1, 8)
    assert nodes["me"].get_peer_score("a") < 0 and "a" not in nodes["me"].peers()


async def test_large_frames_among_small_ones_are_fetched_within_the_response_cap(tmp_path):
    nodes = await _network(tmp_path, ("a", "me"), max_request_blocks=16, **_SMALL)
    sizes = [64] * 40
    for h in (5, 6, 7, 20, 33):
        sizes[h - 1] = 450 << 10  # within the 512 KiB frame cap, far over a 16-frame share
    rows = _chain_with_sizes(sizes)
    answers: list[int] = []

    class Counting(Provider):
        def get_blocks(self, start, end):
            got = super().get_blocks(start, end)
            answers.append(len(got))
            return got

    BlockSyncServer(nodes["a"], Counting(rows))
    await _start_and_link(nodes["me"], [nodes["a"]])
    client = BlockSyncClient(nodes["me"])
    frames = await client.fetch_range(1, 40, verify=ChainVerifier(CHAIN))
    assert [f.height for f in frames] == list(range(1, 41))
    assert nodes["me"].get_peer_score("a") == 0.0 and "a" in nodes["me"].peers()
    assert nodes["me"].stats.bytes_in <= (len(answers) + 1) * (1 << 20)


async def test_fetch_range_with_a_byte_budget_stops_after_the_answer_that_reaches_it(tmp_path):
    nodes = await _network(tmp_path, ("a", "me"), max_request_blocks=10)
    rows = make_chain(CHAIN, 100, body_size=1024)
    BlockSyncServer(nodes["a"], Provider(rows))
    await _start_and_link(nodes["me"], [nodes["a"]])
    budget = 25 << 10
    frames = await BlockSyncClient(nodes["me"]).fetch_range(1, 100, verify=ChainVerifier(CHAIN), max_bytes=budget)
    k = len(frames)
    assert [f.height for f in frames] == list(range(1, k + 1)) and k % 10 == 0 and k < 100
    sizes = [len(b) + len(c) for b, c in rows]
    assert sum(sizes[: k - 10]) < budget <= sum(sizes[:k])


def _chain_with_sizes(sizes: list[int]) -> list[tuple[bytes, bytes]]:
    """Return a synthetic chain whose block h carries a body of ``sizes[h-1]`` bytes."""
    from tests.kit import p2p_synthetic as syn

    keys = syn.validator_keys(4)
    out = []
    parent = syn.ZERO_HASH
    for h, size in enumerate(sizes, start=1):
        body = (h.to_bytes(8, "big") * (size // 8 + 1))[:size]
        block = syn.SynthBlock(h, parent, body).encode()
        bh = syn.hash32(block)
        sigs = tuple(
            syn.SynthSignature(k.public_key.raw, k.sign(syn.Domain.VOTE, CHAIN, syn._vote_bytes(h, bh))) for k in keys
        )
        out.append((block, syn.SynthCommit(h, bh, sigs).encode()))
        parent = bh
    return out


# -- the real transport ----------------------------------------------------------------------


@pytest.mark.slow
async def test_block_over_8_mib_syncs_between_two_libp2p_hosts(tmp_path):
    from p2p.host import Libp2pTransport

    block_bytes = 9 << 20  # over the 8 MiB default frame cap; mainnet allows 16 MiB
    rows = _chain_with_sizes([100, block_bytes, 100])
    frame_cap = 16 << 20
    before = {t.name for t in threading.enumerate()}
    a = Libp2pTransport(_cfg(tmp_path, "a"))
    BlockSyncServer(a, Provider(rows), max_frame_bytes=frame_cap)
    await a.start()
    b = Libp2pTransport(_cfg(tmp_path, "b", bootstrap=tuple(a.listen_addrs()), request_timeout=60.0))
    try:
        await b.start()
        for _ in range(200):
            if a.peers() and b.peers():
                break
            await asyncio.sleep(0.05)
        client = BlockSyncClient(b, max_frame_bytes=frame_cap, max_response_bytes=4 * frame_cap)
        frames = await client.fetch_range(1, 3)
        assert [(f.height, f.block, f.commit) for f in frames] == [(h, *rows[h - 1]) for h in (1, 2, 3)]
        assert len(frames[1].block) > block_bytes
        assert b.get_peer_score(a.peer_id) == 0.0
    finally:
        await b.stop()
        await a.stop()
    assert {t.name for t in threading.enumerate()} <= before
