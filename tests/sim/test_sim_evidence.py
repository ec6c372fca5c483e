"""Evidence: every equivocation is detected by every honest validator and committed exactly once."""

from __future__ import annotations

from collections import Counter

import pytest

from .harness import Simulation, check_agreement, committed_evidence
from .scenarios import evidence_config


@pytest.mark.parametrize("seed", range(30))
def test_every_equivocation_detected_and_committed_once(seed: int) -> None:
    result = Simulation(evidence_config(seed)).run()
    check_agreement(result)
    assert result.reached_target
    faults = set(result.equivocations)
    assert faults, f"seed {seed}: no equivocation happened; the test proved nothing"
    for i in result.honest:
        missed = faults - result.detected[i]
        assert not missed, (
            f"seed {seed}: honest node {i} missed {sorted(result.equivocations[h] for h in missed)}"
        )
    chain_evidence = Counter(committed_evidence(result, result.honest[0]))
    for digest in faults:
        assert chain_evidence[digest] == 1, (
            f"seed {seed}: {result.equivocations[digest]} committed {chain_evidence[digest]} times"
        )
    # Nothing but real equivocations ever gets committed as evidence.
    assert set(chain_evidence) <= faults
