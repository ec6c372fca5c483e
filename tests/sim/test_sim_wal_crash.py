"""Crash recovery: validators killed at random points come back from the WAL, never double-voting.

The persistent nodes keep a real signer state file and a real WAL (fsynced)
in a temporary directory. Crashing nodes are killed at random crash points
raised from inside the real driver's calls (see faults.py): after an input is
logged but before it is handled, after an input and its effects are done but
before the next is logged, after a signature is persisted but before the
signed vote is logged, and after a block is committed. Half of the crashes
also leave a torn record at the end of the WAL. On restart each node folds its
WAL through the machine (``node.engine.inputs.fold_wal``) and must reach
exactly the round state it died in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .faults import CRASH_POINTS
from .harness import SimConfig, Simulation, check_agreement
from .network import NetworkRules
from .scenarios import POWERS_4, POWERS_7

SEEDS = range(10)


def _run(seed: int, data_dir: Path) -> tuple[Simulation, object]:
    powers = POWERS_7 if seed % 3 == 2 else POWERS_4
    n = len(powers)
    config = SimConfig(
        seed=seed,
        powers=powers,
        rules=NetworkRules(drop_prob=0.02, duplicate_prob=0.02, slow_prob=0.05),
        target_height=12,
        data_dir=data_dir,
        persistent_nodes=tuple(range(n)),
        crash_nodes=(seed % n, (seed + 1) % n),
        tear_wal_on_crash=True,
    )
    sim = Simulation(config)
    return sim, sim.run()


@pytest.mark.slow
def test_killed_validators_replay_into_the_same_round_without_conflicting_votes(
    tmp_path: Path,
) -> None:
    points: set[str] = set()
    replays = torn = 0
    for seed in SEEDS:
        sim, result = _run(seed, tmp_path / f"seed{seed}")
        check_agreement(result)  # includes: no honest node ever sent two conflicting votes
        assert result.reached_target, f"seed {seed}: stalled at {result.end_ms} ms"
        assert result.crashes >= 2, f"seed {seed}: nothing crashed"
        # Outside replay the signer never had to refuse: the WAL brought each node
        # back to the exact step it had reached, so it never tried a conflicting vote.
        assert result.refused_signatures == 0, f"seed {seed}"
        points.update(c.point for node in sim.nodes for c in node.crashes)
        replays += result.replay_checks
        torn += result.torn_tails_repaired
    assert points == set(CRASH_POINTS), f"crash points never hit: {set(CRASH_POINTS) - points}"
    assert replays >= 20
    assert torn >= 5


@pytest.mark.parametrize("seed", [0, 1])
def test_signer_state_on_disk_matches_last_vote_sent(seed: int, tmp_path: Path) -> None:
    from node.engine.signer import FileSignerStore

    sim, result = _run(seed, tmp_path)
    check_agreement(result)
    for node in sim.nodes:  # the run released every node's files when it ended
        store = FileSignerStore(tmp_path / f"node{node.index}" / "signer.state")
        try:
            last = store.load()
        finally:
            store.close()
        # Whatever it sent, the signer state is at or past it.
        sent = [(k[1], k[2], 1 + k[3]) for k in sim.sent_votes if k[0] == node.address]
        assert sent, f"node {node.index} never voted"
        assert (last.height, last.round, last.step) >= max(sent)
