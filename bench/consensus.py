"""Consensus benchmark: simulated committed heights per second, the cost of verifying a commit,
and the cost of authenticating consensus gossip.

The simulation figures run the real round machine, vote sets, signer logic and
Ed25519 signatures for every validator in one process (tests/sim's harness,
no network faults, in-memory signer state), so they measure the CPU cost of
consensus per height, not network latency.

Gossip authentication (``node.engine.auth`` through the gossip adapter's topic
validators, on a real driver): the messages of one height (the proposal with
its block inline, every validator's prevote and precommit) checked the first
time (real Ed25519 through the signature cache), then again as the driver on
delivery, the round machine and the evidence pool check them (cache hits),
against raw Ed25519 for the same signatures (what the machine alone paid
before); forged messages (a noise signature; a proposal for round 10,000,
and the block execution the old path ran for it before any signature
check); and the transaction hot path: how many times a transaction's
signature is verified from admission to commit (the mempool's signature
cache reaches block execution).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from consensus.crypto import PrivateKey
from consensus.hashing import hash32
from consensus.validator_set import compute_genesis_validator_set
from consensus.votes import Vote, VoteType, compute_commit, verify_commit

_TESTS = Path(__file__).resolve().parents[1] / "tests"


def _simulate(validators: int, heights: int) -> tuple[float, int, int]:
    """Return (wall seconds, heights committed, simulated ms) for one fault-free run."""
    if str(_TESTS) not in sys.path:
        sys.path.insert(0, str(_TESTS))  # the harness lives with the simulation tests
    from sim.harness import SimConfig, Simulation
    from sim.network import NetworkRules

    powers = tuple(10 + 3 * i for i in range(validators))
    config = SimConfig(
        seed=1,
        powers=powers,
        rules=NetworkRules(min_delay_ms=2, max_delay_ms=10),
        target_height=heights,
        relay=False,
        quiet=True,
    )
    sim = Simulation(config)
    t0 = time.perf_counter()
    result = sim.run()
    wall = time.perf_counter() - t0
    if not result.reached_target or result.safety_violations:
        raise RuntimeError(f"benchmark simulation with {validators} validators did not finish")
    committed = min(len(result.chains[i]) for i in result.honest)
    return wall, committed, result.end_ms


def _commit_cost(n: int, repeats: int) -> tuple[float, float]:
    """Return (median ms, min ms) to verify a commit signed by all ``n`` validators."""
    keys = [PrivateKey.from_seed(hash32(b"bench-commit-%d" % i)) for i in range(n)]
    chain = "cstake-bench"
    valset = compute_genesis_validator_set([(k.address(), k.public_key.raw, 100) for k in keys])
    block = hash32(b"block")
    votes = []
    for i, k in enumerate(keys):
        v = Vote(10, 0, VoteType.PRECOMMIT, block, k.address(), 1_700_000_000_000 + i)
        votes.append(v.with_signature(k.sign(b"cstake/vote/v1", chain, v.sign_payload())))
    commit = compute_commit(10, 0, block, votes)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        verify_commit(chain, valset, commit)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times)


def _gossip_height(n: int) -> dict[str, float]:
    """Authentication costs for one height of ``n`` validators (ms per block, us per message)."""
    import dataclasses

    from consensus.bft.config import TimeoutConfig
    from consensus.crypto import Domain, verify_signature
    from consensus.validator_set import MAX_ROUND
    from consensus.votes import Proposal
    from node.engine.driver import ConsensusDriver
    from node.engine.executor import BlockExecutor
    from node.engine.gossip import GossipAdapter, encode_proposal_messages
    from p2p.interface import Verdict
    from storage import NodeStore
    from tests.kit.chain import TestChain
    from tests.sim.simnode import MemoryWal

    class _Quiet:
        def broadcast_proposal(self, *a: object) -> None: ...
        def broadcast_vote(self, *a: object) -> None: ...
        def broadcast_evidence(self, *a: object) -> None: ...
        def report_peer(self, *a: object) -> None: ...
        def peers(self) -> list[str]:
            return []

    class _NoMempool:
        def reap(self, *a: object, **k: object) -> list[object]:
            return []

    chain = TestChain(n_validators=n, n_accounts=0, stakes=[10_000] * n)
    executor = BlockExecutor(NodeStore.open_memory(), chain.genesis)
    executor.init_genesis()

    class _Clock:
        def now_ms(self) -> int:
            return chain.genesis_time_ms + 10_000

        def call_at(self, at_ms: int, cb: object) -> object:
            return _Timer()

    class _Timer:
        def cancel(self) -> None: ...

    driver = ConsensusDriver(executor=executor, wal=MemoryWal(), clock=_Clock(), mempool=_NoMempool(),
                             network=_Quiet(), timeouts=TimeoutConfig())
    driver.recover()
    adapter = GossipAdapter(_Quiet(), chain.chain_id)  # type: ignore[arg-type]
    adapter.bind(driver)
    block = chain.build_block(state_root=executor.store.state_root)
    index = {k.address(): i for i, k in enumerate(chain.operator_keys)}
    p = Proposal(1, 0, -1, block.hash(), block.header.proposer, block.header.time_ms)
    key = chain.consensus_keys[index[block.header.proposer]]
    p = p.with_signature(key.sign(Domain.PROPOSAL, chain.chain_id, p.sign_payload()))
    payloads = [("proposal", m) for m in encode_proposal_messages(chain.chain_id, p, block, None)]
    votes = []
    for t in (VoteType.PREVOTE, VoteType.PRECOMMIT):
        for i, op in enumerate(chain.operator_keys):
            v = Vote(1, 0, t, block.hash(), op.address(), chain.genesis_time_ms + i)
            v = v.with_signature(chain.consensus_keys[i].sign(Domain.VOTE, chain.chain_id, v.sign_payload()))
            votes.append(v)
            payloads.append(("vote", v.encode()))
    validate = {"proposal": adapter.validate_proposal, "vote": adapter.validate_vote}

    def check_all() -> float:
        t0 = time.perf_counter()
        for kind, payload in payloads:
            if validate[kind]("peer", payload) is not Verdict.ACCEPT:
                raise RuntimeError(f"an authentic {kind} was not accepted")
        return time.perf_counter() - t0

    first = check_all()
    again = min(check_all() for _ in range(5))
    t0 = time.perf_counter()
    for v in votes:
        member = driver.state.validator_set.get_by_address(v.validator)
        assert member is not None
        verify_signature(member.pubkey, v.sign_bytes(chain.chain_id), v.signature)
    verify_signature(driver.state.validator_set.compute_proposer(0).pubkey, p.sign_bytes(chain.chain_id), p.signature)
    raw = time.perf_counter() - t0
    # Forged: noise signatures (each a real verification, then remembered), and round 10,000.
    # Noise whose scalar is below the group order: the worst case, a full Ed25519 verification each.
    noise = [hash32(b"noise-a%d" % i) + hash32(b"noise-b%d" % i) for i in range(400)]
    forged = [votes[i % len(votes)].with_signature(sig[:63] + bytes([sig[63] & 0x0F])).encode()
              for i, sig in enumerate(noise)]
    t0 = time.perf_counter()
    for payload in forged:
        adapter.validate_vote("forger", payload)
    forged_us = (time.perf_counter() - t0) / len(forged) * 1e6
    far = dataclasses.replace(p, round=MAX_ROUND, signature=bytes(64))
    far_msg = encode_proposal_messages(chain.chain_id, far, block, None)[0]
    t0 = time.perf_counter()
    for _ in range(100):
        adapter.validate_proposal("forger", far_msg)
    far_us = (time.perf_counter() - t0) / 100 * 1e6
    # What the old path ran for such a proposal before any signature check: the block's execution.
    far_block = chain.build_block(round=MAX_ROUND, state_root=executor.store.state_root)
    fresh = BlockExecutor(NodeStore.open_memory(), chain.genesis)
    fresh.init_genesis()
    t0 = time.perf_counter()
    fresh.is_valid_block(far_block)
    exec_ms = (time.perf_counter() - t0) * 1000
    return {
        "messages": len(payloads), "first_ms": first * 1000, "again_ms": again * 1000, "raw_ms": raw * 1000,
        "forged_us": forged_us, "far_us": far_us, "far_exec_ms": exec_ms,
        "verified": driver.sigcache.verified,
    }


def _tx_verifications(n_txs: int) -> tuple[int, int, int, int]:
    """Tx signature verifications at admission, reaping, block validation and commit on one node."""
    import consensus.transition as transition
    from consensus.txs import Transfer
    from node.engine.executor import BlockExecutor
    from node.mempool.pool import Mempool
    from storage import NodeStore
    from tests.kit.chain import TestChain

    calls = [0]
    real = transition.is_valid_signature

    def counting(pubkey: bytes, message: bytes, signature: bytes) -> bool:
        calls[0] += 1
        return real(pubkey, message, signature)

    chain = TestChain(n_validators=4, n_accounts=4)
    mempool = Mempool()
    executor = BlockExecutor(NodeStore.open_memory(), chain.genesis, sig_cache=mempool.sig_cache)
    executor.init_genesis()
    txs = [chain.tx(chain.account_keys[i % 4], Transfer(chain.account_keys[(i + 1) % 4].address(), 1))
           for i in range(n_txs)]
    counts = []
    transition.is_valid_signature = counting  # type: ignore[assignment]
    try:
        for tx in txs:
            if not mempool.add(tx, executor.head_state()).accepted:
                raise RuntimeError("a benchmark transaction was refused")
        counts.append(calls[0])
        reaped = mempool.reap(n_txs, 1 << 30, state=executor.head_state())
        counts.append(calls[0] - sum(counts))
        block = chain.build_block(reaped, state_root=executor.store.state_root)
        executor.validate_block(block)
        counts.append(calls[0] - sum(counts))
    finally:
        transition.is_valid_signature = real  # type: ignore[assignment]
    chain.apply(block)  # the test chain's own execution (not this node's) signs the commit
    chain.build_block()
    assert chain.last_commit is not None
    transition.is_valid_signature = counting  # type: ignore[assignment]
    try:
        executor.commit_block(block, chain.last_commit)
        counts.append(calls[0] - sum(counts))
    finally:
        transition.is_valid_signature = real  # type: ignore[assignment]
    return counts[0], counts[1], counts[2], counts[3]


def run() -> None:
    for validators, heights in ((4, 300), (16, 40)):
        wall, committed, sim_ms = _simulate(validators, heights)
        print(
            f"simulated consensus, {validators:>2} validators: {committed / wall:8.1f} committed "
            f"heights/s, wall clock ({committed} heights in {wall:.2f} s; "
            f"{sim_ms / committed:.0f} ms simulated per height)"
        )
    for n, repeats in ((4, 200), (16, 100), (100, 30)):
        median, best = _commit_cost(n, repeats)
        print(
            f"verify_commit, {n:>3} signatures: {median:8.3f} ms median "
            f"({best:.3f} ms best, {median * 1000 / n:.0f} us per signature)"
        )
    for n in (4, 100):
        g = _gossip_height(n)
        m = g["messages"]
        print(
            f"gossip authentication, {n:>3} validators ({m} messages a height): first check "
            f"{g['first_ms']:7.2f} ms per block ({m / g['first_ms'] * 1000:,.0f} signature checks/s of gossip); "
            f"each later check (delivery, machine, pool) {g['again_ms']:.2f} ms; raw Ed25519 for the same "
            f"signatures {g['raw_ms']:.2f} ms; added per block {g['first_ms'] + 3 * g['again_ms'] - g['raw_ms']:.2f} ms"
        )
        print(
            f"forged gossip, {n:>3} validators: a vote with a noise signature {g['forged_us']:.0f} us "
            f"(refused, penalised, remembered); "
            f"a proposal for round 10,000 {g['far_us']:.0f} us (ignored before any signature check; "
            f"executing its block, as the old path did first: {g['far_exec_ms']:.1f} ms)"
        )
    admitted, reaped, validated, committed = _tx_verifications(500)
    print(
        f"tx signatures verified for 500 txs on one node: {admitted} at admission, {reaped} reaping, "
        f"{validated} validating the block, {committed} committing it (the mempool's cache reaches execution)"
    )
