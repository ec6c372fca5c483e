"""Evidence: every equivocation is detected by every honest validator; each equivocator is punished once.

The state punishes a double-sign by slashing and tombstoning the validator,
and refuses evidence against a tombstoned one. So of all the equivocations a
byzantine validator sends, exactly one is committed as evidence (once), the
validator ends tombstoned, and nothing but real equivocations is ever committed.
"""

from __future__ import annotations

from collections import Counter

import pytest

from .harness import Simulation, check_agreement, committed_evidence
from .scenarios import evidence_config


@pytest.mark.parametrize("seed", range(30))
def test_every_equivocation_detected_and_its_validator_punished_once(seed: int) -> None:
    sim = Simulation(evidence_config(seed))
    result = sim.run()
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
    # Nothing but real equivocations ever gets committed as evidence, and nothing twice.
    assert set(chain_evidence) <= faults
    assert all(count == 1 for count in chain_evidence.values()), f"seed {seed}: {chain_evidence}"
    # One piece of evidence per equivocator, and the state tombstoned it.
    punished = Counter(result.equivocators[digest] for digest in chain_evidence)
    equivocators = set(result.equivocators.values())
    assert set(punished) == equivocators, f"seed {seed}: not every equivocator was punished"
    assert all(count == 1 for count in punished.values())
    head = sim.nodes[result.honest[0]].executor.head_state()
    for address in equivocators:
        validator = head.get_validator(address)
        assert validator is not None and validator.tombstoned
