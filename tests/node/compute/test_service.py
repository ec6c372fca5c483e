"""The node's compute service pieces that need no network: attestation pool and gossip
verdicts, and the JSON the ``challenges`` and ``attestations`` RPC methods serve.

The service runs on ``tests.kit.compute_host.MemoryComputeHost``, the in-memory twin
of the ``ComputeHost`` protocol the daemon's ``DaemonHost`` implements."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from consensus.attestation import Attestation, make_attestation
from consensus.crypto import encode_address
from consensus.poc import Challenge, PocCommitment, PocOpenings, RowOpening
from consensus.poc_state import ChallengeStatus, iter_challenges_at
from consensus.records import HardwareSpec
from node.compute.prover import ProvedChallenge
from node.compute.service import (
    ATTESTATION_TOPIC,
    REGOSSIP_BLOCKS,
    AttestationPool,
    ComputeService,
)
from node.rpc.compute_format import list_attestations, list_challenges
from p2p.interface import Verdict
from tests.kit.chain import TestChain
from tests.kit.compute_host import MemoryComputeHost

SPEC = HardwareSpec(device_kind=0, model="test", cores=2, memory_mb=1024)


def attest(chain: TestChain, i: int, height: int, units: int = 3) -> Attestation:
    validator = chain.operator_keys[i].address()
    nft_id = next(iter(chain.view().iter_validator_nft_ids(validator)))
    return make_attestation(chain.consensus_keys[i], chain.chain_id, nft_id=nft_id, validator=validator,
                            spec=SPEC, measured_units=units, height=height)


def make_chain(blocks: int) -> TestChain:
    chain = TestChain(params={"attestation_max_age_blocks": 5, "attestation_min_interval_blocks": 3,
                              "epoch_blocks": 5})
    for _ in range(blocks):
        chain.next_block()
    return chain


def test_pool_keeps_the_freshest_and_selects_valid_ones() -> None:
    chain = make_chain(4)
    pool = AttestationPool()
    old, new = attest(chain, 0, 2), attest(chain, 0, 3, units=9)
    assert pool.add(new) and not pool.add(old)
    assert pool.add(attest(chain, 1, 3))
    assert len(pool) == 2 and pool.items()[0] == new
    selected = pool.select(chain.view(), chain.chain_id, chain.height + 1)
    assert [Attestation.decode(raw) for raw in selected] == pool.items()
    # Much later they are stale: not selected, and dropped from the pool.
    for _ in range(6):
        chain.next_block()
    assert pool.select(chain.view(), chain.chain_id, chain.height + 1) == ()
    assert len(pool) == 0


async def test_gossip_verdicts() -> None:
    chain = make_chain(4)
    host = MemoryComputeHost(chain)
    service = ComputeService(host)
    service.attach()
    good = attest(chain, 0, 3)
    assert await host.deliver(ATTESTATION_TOPIC, "peer", good.encode()) == Verdict.ACCEPT
    assert service.pool.items() == [good]
    forged = dataclasses.replace(good, measured_units=10_000)
    assert await host.deliver(ATTESTATION_TOPIC, "peer", forged.encode()) == Verdict.REJECT
    assert await host.deliver(ATTESTATION_TOPIC, "peer", b"\x93garbage") == Verdict.REJECT
    assert service.pool.items() == [good]
    stale = attest(chain, 0, 1)
    for _ in range(6):
        chain.next_block()
    host = MemoryComputeHost(chain)
    service = ComputeService(host)
    service.attach()
    assert await host.deliver(ATTESTATION_TOPIC, "peer", stale.encode()) == Verdict.IGNORE
    assert len(service.pool) == 0
    service._on_gossip("peer", good.encode())
    assert service.pool.items() == [good]


def test_rpc_json_of_challenges_and_attestations() -> None:
    chain = make_chain(5)  # height 5 is an epoch boundary: four challenges issued
    state = chain.view()
    issued = list_challenges(state, chain.height, None, None)
    assert len(issued) == 4 and {c["status"] for c in issued} == {"pending"}
    assert all(c["height"] == 5 and c["commit_deadline"] == 5 + 12 and c["root"] is None for c in issued)
    # Nobody has committed yet: no validator is liable for any of them.
    assert all(c["liable_validator"] is None for c in issued)
    one = list_challenges(state, chain.height, None, issued[0]["nft_id"])
    assert one == [issued[0]]
    assert list_challenges(state, chain.height, 4, None) == []
    pool = AttestationPool()
    att = attest(chain, 2, 4)
    pool.add(att)
    out = list_attestations(state, pool, None)
    assert out == [{
        "nft_id": att.nft_id, "validator": encode_address(att.validator),
        "spec": {"device": "cpu", "model": "test", "cores": 2, "memory_mb": 1024},
        "measured_units": 3, "height": 4, "signature": "0x" + att.signature.hex(), "source": "pool",
    }]
    assert list_attestations(state, pool, chain.operator_keys[1].address()) == []


def test_a_restarted_service_picks_up_challenges_issued_before_it_started() -> None:
    # A challenge issued at height 5 is still pending at height 12 (the next boundary, 10,
    # skipped it as open): a service started now must still answer it.
    chain = TestChain(params={"epoch_blocks": 5, "poc_commit_deadline_blocks": 30,
                              "poc_open_deadline_blocks": 30})
    for _ in range(12):
        chain.next_block()
    state = chain.view()
    nft_id = next(iter(state.iter_validator_nft_ids(chain.operator_keys[0].address())))
    issued = [c for c in iter_challenges_at(state, 5) if c.nft_id == nft_id]
    assert len(issued) == 1 and iter_challenges_at(state, 10) == []
    service = ComputeService(MemoryComputeHost(chain))
    service._last_attested = chain.height
    spawned: list[str] = []

    def record(coro: Any) -> None:
        spawned.append(coro.__qualname__)
        coro.close()

    service._spawn = record  # type: ignore[method-assign]
    service._scan()
    assert service._tracked == {issued[0].challenge.id: nft_id}
    # The NFT's prover worker is started (without a claim check: the challenge needs it), then proves.
    assert spawned == ["ComputeService._warm", "ComputeService._commit"]
    assert list(service._provers) == [nft_id]


class _ForgetfulProver:
    """A prover that lost its trees (a restart): it recomputes, giving ``root``."""

    def __init__(self, root: bytes) -> None:
        self.root = root
        self.calls: list[str] = []
        self.proved: set[bytes] = set()
        self.opened: list[PocOpenings] = []

    def has_proved(self, cid: bytes) -> bool:
        return cid in self.proved

    async def prove(self, ch: Challenge) -> ProvedChallenge:
        self.calls.append("prove")
        self.proved.add(ch.id)
        return ProvedChallenge(challenge=ch, root=self.root, levels=[self.root], seconds=0.0)

    async def open_rows(self, cid: bytes, indices: tuple[int, ...]) -> PocOpenings:
        self.calls.append("open")
        self.opened.append(PocOpenings(challenge_id=cid, openings=(RowOpening(index=indices[0], row=bytes(4), path=()),)))
        return self.opened[-1]


async def test_openings_after_a_restart_recompute_the_commitment_first() -> None:
    chain = make_chain(5)
    state = chain.view()
    pending = iter_challenges_at(state, 5)[0]
    committed = dataclasses.replace(pending, status=ChallengeStatus.COMMITTED, root=b"r" * 32,
                                    commit_height=6, sample_hash=b"s" * 32)
    for root, opened in ((b"r" * 32, True), (b"x" * 32, False)):
        host = MemoryComputeHost(chain)
        service = ComputeService(host)
        prover = _ForgetfulProver(root)
        service._provers[committed.nft_id] = prover  # type: ignore[assignment]
        timed: list[tuple[str, float]] = []
        service.on_prover_answer = lambda phase, seconds, timed=timed: timed.append((phase, seconds))
        await service._open(committed)
        # Same root: recompute, then open. A different root: never open against the commitment.
        assert prover.calls == (["prove", "open"] if opened else ["prove"])
        # The openings' time reaches the metrics hook only when they were computed.
        assert [p for p, _ in timed] == (["openings"] if opened else [])
        assert all(seconds >= 0 for _, seconds in timed)
        submitted = host.mempool.list_txs(10)
        if opened:
            assert [tx.payload.decode_body() for tx in submitted] == prover.opened
            assert submitted[0].payload.sender == host.address
            assert host.gossiped_txs == [submitted[0].raw]
        else:
            assert submitted == [] and host.gossiped_txs == []


def test_submit_signs_with_the_next_nonce_and_regossips_every_few_blocks() -> None:
    chain = make_chain(4)
    host = MemoryComputeHost(chain)
    service = ComputeService(host)
    cid = b"c" * 32
    service._submit(PocCommitment(cid, b"r" * 32), "commitment", (cid, "commit"))
    service._submit(PocCommitment(cid, b"q" * 32), "commitment")
    txs = sorted(host.mempool.list_txs(10), key=lambda tx: tx.payload.nonce)
    account = chain.view().get_account(host.address)
    assert [tx.payload.nonce for tx in txs] == [account.nonce, account.nonce + 1]
    assert all(tx.payload.sender == host.address and tx.payload.chain_id == chain.chain_id for tx in txs)
    assert host.gossiped_txs == [tx.raw for tx in txs]
    # Not seen on chain yet: published again after REGOSSIP_BLOCKS, not before.
    service._regossip(cid, "commit", chain.height + REGOSSIP_BLOCKS - 1)
    assert len(host.gossiped_txs) == 2
    service._regossip(cid, "commit", chain.height + REGOSSIP_BLOCKS)
    assert host.gossiped_txs[2:] == [txs[0].raw]


def test_submit_keeps_a_transaction_too_large_for_gossip_in_the_local_mempool() -> None:
    chain = make_chain(4)
    host = MemoryComputeHost(chain, max_gossip_bytes=64)
    service = ComputeService(host)
    cid = b"c" * 32
    service._submit(PocCommitment(cid, b"r" * 32), "commitment", (cid, "commit"))
    [tx] = host.mempool.list_txs(10)
    assert host.has_tx(tx.tx_hash) and host.gossiped_txs == []
    assert (cid, "commit") not in service._sent


async def test_scan_signs_and_publishes_an_attestation_per_bound_nft() -> None:
    chain = make_chain(4)
    host = MemoryComputeHost(chain, 1)
    service = ComputeService(host)
    service._scan()
    await asyncio.gather(*service._tasks)
    nft_ids = list(chain.view().iter_validator_nft_ids(host.address))
    assert [kind for kind, _ in host.published] == [ATTESTATION_TOPIC] * len(nft_ids) and nft_ids
    published = [Attestation.decode(payload) for _, payload in host.published]
    assert published == service.pool.items()
    assert [(a.nft_id, a.validator, a.height) for a in published] == [(n, host.address, 4) for n in nft_ids]
    # The attestation the proposer would include is the one published.
    assert service.select_attestations(chain.height + 1) == tuple(a.encode() for a in published)


def _register_bound(chain: TestChain, i: int, count: int) -> list[int]:
    """Validator ``i`` registers ``count`` NFTs and binds them to itself (at once: its own)."""
    from consensus.txs import BindNFT, RegisterCompute

    op = chain.operator_keys[i]
    first = chain.view().get_meta().next_nft_id
    ids = list(range(first, first + count))
    for start in range(0, count, 100):
        txs = []
        for nft_id in ids[start:start + 100]:
            txs.append(chain.tx(op, RegisterCompute(SPEC, 1, 100)))
            txs.append(chain.tx(op, BindNFT(nft_id, op.address())))
        result = chain.next_block(txs)
        assert all(r.code == 0 for r in result.tx_results), [r.log for r in result.tx_results][:3]
    return ids


def test_select_returns_at_most_a_block_limit_freshest_first() -> None:
    from consensus.attestation import MAX_ATTESTATIONS_PER_BLOCK

    chain = TestChain(params={"attestation_max_age_blocks": 20, "attestation_min_interval_blocks": 3,
                              "epoch_blocks": 50, "max_block_txs": 1000})
    ids = _register_bound(chain, 0, MAX_ATTESTATIONS_PER_BLOCK + 44)
    op, cons = chain.operator_keys[0].address(), chain.consensus_keys[0]
    pool = AttestationPool()
    h = chain.height
    # Older reports for the low ids, fresher ones for the high ids.
    for n, nft_id in enumerate(ids):
        height = h - 1 if n < 100 else h
        pool.add(make_attestation(cons, chain.chain_id, nft_id=nft_id, validator=op, spec=SPEC,
                                  measured_units=1, height=height))
    selected = [Attestation.decode(raw) for raw in pool.select(chain.view(), chain.chain_id, h + 1)]
    assert len(selected) == MAX_ATTESTATIONS_PER_BLOCK
    assert [(a.height, a.nft_id) for a in selected] == sorted(
        ((a.height, a.nft_id) for a in selected), key=lambda x: (-x[0], x[1]))
    # Every fresh one first (200 of them), then the oldest ids up to the cap.
    assert [a.nft_id for a in selected] == ids[100:] + ids[:MAX_ATTESTATIONS_PER_BLOCK - 200]
    # Deterministic: the same pool selects the same list again, and the rest stay pooled.
    assert pool.select(chain.view(), chain.chain_id, h + 1) == tuple(a.encode() for a in selected)
    assert len(pool) == len(ids)


def test_service_serves_a_strangers_nft_only_once_accepted() -> None:
    from consensus.txs import AcceptNFT, BindNFT, RegisterCompute, TransferNFT

    chain = make_chain(1)
    stranger, operator = chain.account_keys[0], chain.operator_keys[0]
    nft_id = chain.view().get_meta().next_nft_id
    chain.next_block([chain.tx(stranger, RegisterCompute(SPEC, 1, 100)),
                      chain.tx(stranger, BindNFT(nft_id, operator.address()))])
    service = ComputeService(MemoryComputeHost(chain, 0))
    nft = chain.view().get_nft(nft_id)
    assert nft is not None and nft.pending_validator == operator.address()
    served = {n.id for n in service._served_nfts(chain.view())}
    assert nft_id not in served and served  # its own genesis NFT only
    # Not served by another validator's node either, nor attested.
    assert nft_id not in {n.id for n in ComputeService(MemoryComputeHost(chain, 1))._served_nfts(chain.view())}
    chain.next_block([chain.tx(operator, AcceptNFT(nft_id))])
    assert nft_id in {n.id for n in service._served_nfts(chain.view())}
    # An NFT a stranger gives node0's account is not served either: only bindings are.
    gift = chain.view().get_meta().next_nft_id
    chain.next_block([chain.tx(stranger, RegisterCompute(SPEC, 1, 100)),
                      chain.tx(stranger, TransferNFT(gift, operator.address()))])
    assert chain.view().get_nft(gift).owner == operator.address()  # type: ignore[union-attr]
    assert gift not in {n.id for n in service._served_nfts(chain.view())}
    # Once bound to node0's validator, node1 never serves it, even if it owned it.
    assert not ComputeService(MemoryComputeHost(chain, 1))._serves(
        dataclasses.replace(chain.view().get_nft(nft_id), owner=chain.operator_keys[1].address()))  # type: ignore[arg-type]


def test_a_challenge_issued_before_acceptance_is_taken_once_accepted() -> None:
    from consensus.txs import AcceptNFT, BindNFT, RegisterCompute

    chain = TestChain(params={"epoch_blocks": 5, "poc_commit_deadline_blocks": 30,
                              "poc_open_deadline_blocks": 30})
    stranger, operator = chain.account_keys[0], chain.operator_keys[0]
    nft_id = chain.view().get_meta().next_nft_id
    chain.next_block([chain.tx(stranger, RegisterCompute(SPEC, 1, 100)),
                      chain.tx(stranger, BindNFT(nft_id, operator.address()))])
    service = ComputeService(MemoryComputeHost(chain, 0))
    service._last_attested = 1 << 40
    service._spawn = lambda coro: coro.close()  # type: ignore[method-assign,assignment,return-value]
    while chain.height < 6:
        chain.next_block()
        service._scan()
    (issued,) = [c for c in iter_challenges_at(chain.view(), 5) if c.nft_id == nft_id]
    assert issued.challenge.id not in service._tracked  # pending: not ours
    chain.next_block([chain.tx(operator, AcceptNFT(nft_id))])
    service._scan()
    assert service._tracked[issued.challenge.id] == nft_id
