"""Forged and oversize consensus messages, on the real gossip adapter and driver.

A byzantine validator (a quarter of the power) runs next to three honest
ones. Its messages travel as the bytes the p2p adapter publishes, and every
node validates them with the adapter's topic validators before relaying or
using them, so these runs prove the shipped authentication path:

- ``forge``: votes, proposals (inline, in parts, for the next height, for
  round ``MAX_ROUND``), evidence and votes of a height just decided, all in
  other validators' names with noise for signatures: refused at the first
  hop, the forger alone penalised, nothing relayed, nothing executed, no
  evidence, and the chain goes on;
- ``forge-huge``: forged proposals whose blocks, served by hash or sent in
  parts, are just under ``Block.MAX_BYTES``: never fetched, assembled or
  logged;
- ``oversize-fetch`` / ``oversize-parts``: the same blocks behind correctly
  signed proposals of a real proposer: capped at the chain's block size, so
  the driver never sees them and no WAL record overflows.
"""

from __future__ import annotations

import pytest

from p2p.interface import Verdict

from .faults import FORGE, FORGE_HUGE, OVERSIZE_FETCH, OVERSIZE_PARTS
from .harness import SimConfig, SimResult, Simulation, check_agreement, committed_evidence
from .network import NetworkRules

BYZANTINE = 3


def run(seed: int, behaviour: str, target: int = 8) -> tuple[Simulation, SimResult]:
    config = SimConfig(
        seed=seed,
        powers=(10, 10, 10, 10),
        behaviours={BYZANTINE: behaviour},
        rules=NetworkRules(duplicate_prob=0.02, slow_prob=0.02),
        target_height=target,
    )
    sim = Simulation(config)
    return sim, sim.run()


def check_honest_unharmed(sim: Simulation, result: SimResult) -> None:
    """The chain goes on and nothing the byzantine node made up reached an honest node's state."""
    check_agreement(result)
    assert result.reached_target, f"seed {result.seed}: stalled at {[len(c) for c in result.chains.values()]}"
    honest = set(result.honest)
    blamed = sorted({(by, peer, why) for by, peer, why in result.penalties if by in honest and peer in honest})
    assert not blamed, f"honest nodes penalised each other: {blamed}"
    for i in honest:
        node = sim.nodes[i]
        executed = sim.forged_blocks & node.attempted_blocks
        assert not executed, f"{len(executed)} made-up blocks reached node {i}'s executor"
        assert node.driver is not None
        assert not node.driver.pool.get_pending(node.height + 1, 1_000), f"node {i} holds evidence"
        assert committed_evidence(result, i) == [], f"node {i} committed evidence"


def check_forgeries_refused(sim: Simulation, result: SimResult) -> None:
    honest = set(result.honest)
    seen = [v for v in result.forged_verdicts if v[0] in honest]
    assert seen, "no forged message reached an honest node"
    relayed = [v for v in seen if v[3] is Verdict.ACCEPT]
    assert not relayed, f"{len(relayed)} forged messages accepted and relayed, e.g. {relayed[:3]}"
    # Each forgery was validated where the forger sent it: never one relayed by an honest node.
    assert {peer for _, peer, _, _ in seen} == {BYZANTINE}
    assert any(by in honest and peer == BYZANTINE for by, peer, _ in result.penalties), "the forger went unpunished"


@pytest.mark.parametrize("seed", [1, 2])
def test_forged_votes_proposals_parts_and_evidence_are_refused_at_the_first_hop(seed: int) -> None:
    sim, result = run(seed, FORGE)
    check_honest_unharmed(sim, result)
    check_forgeries_refused(sim, result)
    kinds = {kind for _, _, kind, _ in result.forged_verdicts}
    assert kinds == {"vote", "proposal", "evidence"}


def test_forged_oversize_blocks_are_never_fetched_or_assembled() -> None:
    sim, result = run(3, FORGE_HUGE, target=5)
    check_honest_unharmed(sim, result)
    check_forgeries_refused(sim, result)


@pytest.mark.parametrize("behaviour", [OVERSIZE_FETCH, OVERSIZE_PARTS])
def test_a_proposer_cannot_push_a_block_past_the_size_cap(behaviour: str) -> None:
    sim, result = run(4, behaviour, target=6)
    check_honest_unharmed(sim, result)
    honest = set(result.honest)
    reasons = {why for by, peer, why in result.penalties if by in honest and peer == BYZANTINE}
    assert reasons, "the proposer of oversize blocks went unpunished"
