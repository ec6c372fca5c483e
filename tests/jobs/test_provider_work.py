"""The provider's worker function: honest results match the kind, job-cheat is wrong in exactly one place."""

from __future__ import annotations

import numpy as np

from consensus.jobs.iterate import IterateSpec, compute_step
from consensus.jobs.kinds import JobInput, compute_commitment
from consensus.jobs.matmul import MatmulKind, MatmulSpec
from consensus.poc.merkle import ROW_DTYPE
from node.compute.provider import execute_job
from tests.jobs.chainkit import SEED


def test_execute_job_honest_and_cheating_matrix() -> None:
    spec = MatmulSpec(6, 32, 32).encode()
    honest = execute_job(1, spec, b"", SEED, False)
    assert honest.root == compute_commitment(MatmulKind().execute(JobInput(spec, b"", SEED))).root
    cheat = execute_job(1, spec, b"", SEED, True)
    diff = [i for i in range(6) if cheat.leaves[i] != honest.leaves[i]]
    assert diff == [0]
    delta = np.frombuffer(cheat.leaves[0], dtype=ROW_DTYPE).astype(np.int64) - np.frombuffer(
        honest.leaves[0], dtype=ROW_DTYPE
    )
    assert delta.tolist() == [1] + [0] * 31


def test_execute_job_cheating_iteration_has_one_wrong_step() -> None:
    spec = IterateSpec(50, 4).encode()
    honest = execute_job(2, spec, b"", SEED, False)
    cheat = execute_job(2, spec, b"", SEED, True)
    assert cheat.leaves[0] == honest.leaves[0] and cheat.root != honest.root
    wrong = [t for t in range(50) if compute_step(cheat.leaves[t], t) != cheat.leaves[t + 1]]
    assert wrong == [24]
