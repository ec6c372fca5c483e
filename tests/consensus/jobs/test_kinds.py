"""Pure tests of the job kinds: honest results pass, one wrong entry or step is caught exactly."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from consensus.jobs.iterate import IterateKind, IterateSpec, compute_step, compute_trace
from consensus.jobs.kinds import (
    InvalidJobSpec,
    JobInput,
    build_fraud_proof,
    compute_commitment,
    derive_indices,
    open_leaves,
    verify_opened_leaves,
)
from consensus.jobs.matmul import MatmulKind, MatmulSpec, get_matrices
from consensus.poc.merkle import ROW_DTYPE

SEED = hashlib.sha256(b"kinds").digest()
SAMPLE_SEED = hashlib.sha256(b"samples").digest()
MATMUL = MatmulKind()
ITERATE = IterateKind()


def _inline_matmul(m: int, n: int, p: int) -> JobInput:
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, size=(m, n), dtype=np.int8)
    b = rng.integers(-128, 128, size=(n, p), dtype=np.int8)
    return JobInput(MatmulSpec(m, n, p).encode(), a.tobytes() + b.tobytes(), b"")


def _seeded_matmul(m: int, n: int) -> JobInput:
    return JobInput(MatmulSpec(m, n, n).encode(), b"", SEED)


def _wrong_entry(leaves: list[bytes], row: int, col: int) -> list[bytes]:
    out = list(leaves)
    r = np.frombuffer(out[row], dtype=ROW_DTYPE).copy()
    r[col] += 1
    out[row] = r.tobytes()
    return out


@pytest.mark.parametrize("job", [_inline_matmul(12, 40, 24), _seeded_matmul(10, 64)], ids=["inline", "seeded"])
def test_matmul_execute_is_exact(job: JobInput) -> None:
    a, b = get_matrices(job)
    reference = a.astype(np.int64) @ b.astype(np.int64)
    got = np.stack([np.frombuffer(leaf, dtype=ROW_DTYPE) for leaf in MATMUL.execute(job)]).astype(np.int64)
    assert np.array_equal(got, reference)
    # Extreme inline entries: every product at -128 x -128 still exact.
    m, n = 3, 1024
    ext = JobInput(MatmulSpec(m, n, 2).encode(), bytes([0x80]) * (m * n + 2 * n), b"")
    row = np.frombuffer(MATMUL.execute(ext)[0], dtype=ROW_DTYPE)
    assert row.tolist() == [128 * 128 * n, 128 * 128 * n]


@pytest.mark.parametrize("job", [_inline_matmul(12, 40, 24), _seeded_matmul(10, 64)], ids=["inline", "seeded"])
def test_matmul_honest_samples_pass(job: JobInput) -> None:
    c = compute_commitment(MATMUL.execute(job))
    idx = MATMUL.compute_sample_indices(job, SAMPLE_SEED, 32)
    assert idx == tuple(range(MATMUL.get_leaf_count(job)))
    openings = open_leaves(c, idx)
    assert verify_opened_leaves(c.root, len(c.leaves), openings) == {o.index: o.leaf for o in openings}
    assert build_fraud_proof(MATMUL, job, SAMPLE_SEED, openings, 32) is None
    for i in idx:
        assert not MATMUL.is_fault(job, {i: c.leaves[i]})


@pytest.mark.parametrize(("row", "col"), [(0, 0), (5, 17), (11, 23)])
def test_matmul_one_wrong_entry_is_proven(row: int, col: int) -> None:
    job = _inline_matmul(12, 40, 24)
    c = compute_commitment(_wrong_entry(MATMUL.execute(job), row, col))
    idx = MATMUL.compute_sample_indices(job, SAMPLE_SEED, 32)
    proof = build_fraud_proof(MATMUL, job, SAMPLE_SEED, open_leaves(c, idx), 32)
    # One round: the fraud proof is the wrong row itself, and the chain's exact check convicts.
    assert proof is not None and [o.index for o in proof] == [row]
    leaves = verify_opened_leaves(c.root, len(c.leaves), proof)
    assert MATMUL.is_fault(job, leaves)


def test_matmul_wrong_sampled_row_is_caught_in_a_tall_result() -> None:
    job = _seeded_matmul(200, 32)
    idx = MATMUL.compute_sample_indices(job, SAMPLE_SEED, 16)
    assert len(idx) == 16 and len(set(idx)) == 16
    bad = idx[7]
    c = compute_commitment(_wrong_entry(MATMUL.execute(job), bad, 3))
    proof = build_fraud_proof(MATMUL, job, SAMPLE_SEED, open_leaves(c, idx), 16)
    assert proof is not None and proof[0].index == bad
    assert MATMUL.is_fault(job, {bad: proof[0].leaf})


def test_matmul_row_of_wrong_length_is_a_fault() -> None:
    job = _seeded_matmul(4, 16)
    leaves = MATMUL.execute(job)
    assert MATMUL.is_fault(job, {2: leaves[2][:-4]})
    assert not MATMUL.is_fault(job, {2: leaves[2]})


def test_invalid_matmul_inputs() -> None:
    with pytest.raises(InvalidJobSpec):
        MATMUL.validate_input(JobInput(MatmulSpec(2, 3, 4).encode(), b"\x00" * 5, b""), 1 << 20)
    with pytest.raises(InvalidJobSpec):
        MATMUL.validate_input(JobInput(MatmulSpec(2, 3, 4).encode(), b"", SEED), 1 << 20)  # seeded p != n
    with pytest.raises(InvalidJobSpec):
        MATMUL.validate_input(JobInput(MatmulSpec(0, 3, 3).encode(), b"", SEED), 1 << 20)
    with pytest.raises(InvalidJobSpec):
        MATMUL.validate_input(JobInput(MatmulSpec(64, 64, 64).encode(), b"\x01" * 8192, b""), 4096)
    with pytest.raises(InvalidJobSpec):
        MATMUL.validate_input(JobInput(b"\x01", b"", SEED), 1 << 20)
    # Seeded inputs the chain would have to generate: at most 4 x the input limit.
    MATMUL.validate_input(JobInput(MatmulSpec(64, 64, 64).encode(), b"", SEED), 2048)
    with pytest.raises(InvalidJobSpec):
        MATMUL.validate_input(JobInput(MatmulSpec(65, 64, 64).encode(), b"", SEED), 2048)


def _iterate(steps: int, width: int = 4) -> JobInput:
    return JobInput(IterateSpec(steps, width).encode(), b"", SEED)


def test_iterate_trace_matches_the_reference_step() -> None:
    job = _iterate(300, 5)
    trace = ITERATE.execute(job)
    assert len(trace) == 301 and trace[0] == ITERATE.get_initial_leaf(job)
    for t in range(300):
        assert compute_step(trace[t], t) == trace[t + 1]
    # Wrapping arithmetic: a state of all-ones words steps like the reference.
    ones = b"\xff" * 16
    assert compute_trace(ones, 3)[3] == compute_step(compute_step(compute_step(ones, 0), 1), 2)


def test_iterate_honest_samples_pass() -> None:
    job = _iterate(1000)
    c = compute_commitment(ITERATE.execute(job))
    idx = ITERATE.compute_sample_indices(job, SAMPLE_SEED, 16)
    assert 0 in idx and 1000 in idx and len(idx) <= 2 + 2 * 16
    assert build_fraud_proof(ITERATE, job, SAMPLE_SEED, open_leaves(c, idx), 16) is None


def test_iterate_one_wrong_step_is_proven_when_sampled() -> None:
    job = _iterate(20)
    leaves = ITERATE.execute(job)
    leaves[9] = bytes([leaves[9][0] ^ 4]) + leaves[9][1:]
    for t in range(9, 20):
        leaves[t + 1] = compute_step(leaves[t], t)
    c = compute_commitment(leaves)
    idx = ITERATE.compute_sample_indices(job, SAMPLE_SEED, 32)  # 20 steps: every step sampled
    proof = build_fraud_proof(ITERATE, job, SAMPLE_SEED, open_leaves(c, idx), 32)
    assert proof is not None and [o.index for o in proof] == [8, 9]
    assert ITERATE.is_fault(job, {o.index: o.leaf for o in proof})
    assert not ITERATE.is_fault(job, {9: leaves[9], 10: leaves[10]})


def test_iterate_wrong_input_state_is_proven() -> None:
    job = _iterate(10)
    leaves = ITERATE.execute(job)
    leaves[0] = bytes(len(leaves[0]))
    assert ITERATE.is_fault(job, {0: leaves[0]})
    c = compute_commitment(leaves)
    idx = ITERATE.compute_sample_indices(job, SAMPLE_SEED, 4)
    proof = build_fraud_proof(ITERATE, job, SAMPLE_SEED, open_leaves(c, idx), 4)
    assert proof is not None and [o.index for o in proof] == [0]


def test_invalid_iterate_inputs() -> None:
    with pytest.raises(InvalidJobSpec):
        ITERATE.validate_input(JobInput(IterateSpec(0, 4).encode(), b"", SEED), 1 << 20)
    with pytest.raises(InvalidJobSpec):
        ITERATE.validate_input(JobInput(IterateSpec(10, 4).encode(), b"\x00" * 31, b""), 1 << 20)


def test_derive_indices_sorted_distinct_and_deterministic() -> None:
    a = derive_indices(SAMPLE_SEED, 1000, 50)
    assert a == derive_indices(SAMPLE_SEED, 1000, 50)
    assert list(a) == sorted(set(a)) and len(a) == 50 and all(0 <= i < 1000 for i in a)
    assert derive_indices(SAMPLE_SEED, 7, 50) == tuple(range(7))
    assert derive_indices(hashlib.sha256(b"other").digest(), 1000, 50) != a


def test_invalid_openings_with_a_broken_path() -> None:
    from consensus.errors import JobError

    job = _seeded_matmul(8, 16)
    c = compute_commitment(MATMUL.execute(job))
    good = open_leaves(c, [3])
    forged = (type(good[0])(3, c.leaves[4], good[0].path),)
    with pytest.raises(JobError):
        verify_opened_leaves(c.root, 8, forged)
    with pytest.raises(JobError):
        verify_opened_leaves(c.root, 8, good + good)
