"""Epoch boundaries: the validator set changes there and only there, and consensus follows it.

The changes are real state changes: at the start, one validator unbonds its
whole self-bond (it leaves), one unbonds most of it (its power drops), and a
node that was only following bonds stake (it joins). The blocks of the first
epoch carry those transactions; the set of height 8, after the block that
ends the epoch, is the first to differ. Commits must verify against the set of
their own height, and only members of that set ever sign them.
"""

from __future__ import annotations

import pytest

from .harness import SimConfig, Simulation, check_agreement
from .network import NetworkRules

EPOCH = 8


@pytest.mark.parametrize("seed", range(6))
def test_validator_set_change_at_an_epoch_boundary(seed: int) -> None:
    config = SimConfig(
        seed=seed,
        powers=(10, 20, 30, 40, 0),
        rules=NetworkRules(drop_prob=0.02, slow_prob=0.05),
        target_height=16,
        epoch_blocks=EPOCH - 1,
        power_changes=((0, 0), (3, 15), (4, 25)),
    )
    sim = Simulation(config)
    result = sim.run()
    check_agreement(result)
    assert result.reached_target
    leaver, joiner = sim.nodes[0].address, sim.nodes[4].address
    joiner_signed = 0
    for entry in result.chains[1]:
        h = entry.height
        valset = sim.valset_at(h)
        # The set changes at the boundary and nowhere else.
        if h > 1:
            changed = valset.hash() != sim.valset_at(h - 1).hash()
            assert changed == (h == EPOCH)
        signers = {s.validator for s in entry.commit.signatures}
        assert signers <= {v.address for v in valset.validators}
        assert entry.block.header.proposer == valset.compute_proposer(entry.commit.round).address
        if h >= EPOCH:
            powers = {v.address: v.power for v in valset.validators}
            assert leaver not in powers
            assert powers[joiner] == 25 and powers[sim.nodes[3].address] == 15
            assert leaver not in signers
            joiner_signed += joiner in signers
        else:
            assert joiner not in signers
    assert joiner_signed > 0, "the new validator never signed a commit"
    # The follower that joined committed the same chain all along.
    assert (
        result.block_hashes(4)[: len(result.chains[1])]
        == result.block_hashes(1)[: len(result.chains[4])]
    )
