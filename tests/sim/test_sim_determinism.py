"""Determinism: one seed, one run: identical block hashes and states, node by node."""

from __future__ import annotations

import pytest

from .harness import Simulation
from .scenarios import agreement_config, evidence_config


@pytest.mark.parametrize("make", [agreement_config, evidence_config])
@pytest.mark.parametrize("seed", [3, 8, 21])
def test_same_seed_gives_identical_blocks_and_states(make, seed: int) -> None:  # type: ignore[no-untyped-def]
    first = Simulation(make(seed)).run()
    second = Simulation(make(seed)).run()
    assert first.end_ms == second.end_ms
    assert first.messages_sent == second.messages_sent
    for i in first.chains:
        assert first.block_hashes(i) == second.block_hashes(i)
        assert first.state_hashes(i) == second.state_hashes(i)
        assert [e.commit for e in first.chains[i]] == [e.commit for e in second.chains[i]]
    assert first.equivocations == second.equivocations


def test_different_seeds_give_different_runs() -> None:
    a = Simulation(agreement_config(4)).run()
    b = Simulation(agreement_config(6)).run()
    assert a.block_hashes(a.honest[0]) != b.block_hashes(b.honest[0])
