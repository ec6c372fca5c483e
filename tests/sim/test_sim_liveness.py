"""Liveness: commits resume within 3 rounds of a partition healing; a silent proposer is skipped."""

from __future__ import annotations

import pytest

from .faults import SILENT
from .harness import SimConfig, Simulation, check_agreement
from .network import NetworkRules
from .scenarios import POWERS_4, POWERS_7, partition_config

#: Seeds that stalled while a node lagging behind a partition was catching up
#: (it marked far-ahead messages as seen and then dropped their resend).
PINNED_PARTITION_SEEDS = [2, 3, 4, 5, 6, 8, 9, 11, 13, 15, 16, 17]


@pytest.mark.parametrize("seed", sorted(set(range(20)) | set(PINNED_PARTITION_SEEDS)))
def test_commits_resume_within_three_rounds_after_heal(seed: int) -> None:
    result = Simulation(partition_config(seed)).run()
    check_agreement(result)
    assert result.reached_target, f"seed {seed}: stalled at {result.end_ms} ms"
    # The first two partitions always heal before the run ends.
    assert len(result.heal_checks) >= 2
    config = partition_config(seed)
    t = config.timeouts
    for heal_ms, round_at_heal, decided_round, commit_ms in result.heal_checks:
        assert decided_round <= round_at_heal + 3, (
            f"seed {seed}: after the heal at {heal_ms} ms the next block took until round "
            f"{decided_round} (round {round_at_heal} when healed)"
        )
        # In time too: at most the timeouts of those rounds, plus a gossip period to
        # notice the peers are back and the commit wait of the previous height.
        rounds = range(round_at_heal, round_at_heal + 4)
        budget = sum(
            t.get_propose_timeout(r) + t.get_prevote_timeout(r) + t.get_precommit_timeout(r)
            for r in rounds
        )
        budget += t.commit_ms + 2 * config.gossip_ms
        assert commit_ms - heal_ms <= budget, (
            f"seed {seed}: commit {commit_ms - heal_ms} ms after the heal (budget {budget} ms)"
        )


@pytest.mark.parametrize(
    ("powers", "silent"), [(POWERS_4, 2), (POWERS_7, 6), (POWERS_7, 5), (POWERS_4, 0)]
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_silent_proposer_round_advances_and_next_proposer_commits(
    seed: int, powers: tuple[int, ...], silent: int
) -> None:
    config = SimConfig(
        seed=seed,
        powers=powers,
        behaviours={silent: SILENT},
        rules=NetworkRules(),
        target_height=15,
    )
    sim = Simulation(config)
    result = sim.run()
    check_agreement(result)
    assert result.reached_target
    silent_address = sim.nodes[silent].address
    skipped = 0
    for entry in result.chains[result.honest[0]]:
        valset = sim.valset_at(entry.height)
        # The first round whose proposer is not the silent validator decides.
        first_live = next(
            r for r in range(10) if valset.compute_proposer(r).address != silent_address
        )
        assert entry.commit.round == first_live, (
            f"height {entry.height} decided in round {entry.commit.round}, "
            f"expected {first_live}"
        )
        assert entry.block.header.proposer == valset.compute_proposer(first_live).address
        skipped += first_live > 0
    assert skipped >= 1, "the silent validator never had a turn: the test proved nothing"
