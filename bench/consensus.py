"""Consensus benchmark: simulated committed heights per second, and the cost of verifying a commit.

The simulation figures run the real round machine, vote sets, signer logic and
Ed25519 signatures for every validator in one process (tests/sim's harness,
no network faults, in-memory signer state), so they measure the CPU cost of
consensus per height, not network latency.
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
