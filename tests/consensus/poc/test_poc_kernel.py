"""The prover's BLAS kernel: float32 and float64 products equal the int64 reference exactly."""

from __future__ import annotations

import numpy as np
import pytest

from consensus.hashing import merkle_root
from consensus.poc.matrices import (
    FLOAT32_EXACT_LIMIT,
    MAX_N,
    PRODUCT_BOUND_PER_N,
    compute_reference_product,
    generate_a_rows,
    generate_b,
)
from consensus.poc.merkle import encode_row
from node.compute.prover import BLOCK_ROWS, compute_commitment, compute_rows, multiply_block

SEED = bytes(range(1, 33))


def test_bound_keeps_float32_exact_at_max_n() -> None:
    assert PRODUCT_BOUND_PER_N * MAX_N < FLOAT32_EXACT_LIMIT


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("n", "rows"), [(64, 64), (512, 512), (1024, 128), (2048, 48)])
def test_multiply_block_equals_integer_reference(dtype: str, n: int, rows: int) -> None:
    a = generate_a_rows(SEED, n, 0, rows)
    b = generate_b(SEED, n)
    got = multiply_block(a, b.astype(dtype), dtype)
    assert np.array_equal(got.astype(np.int64), compute_reference_product(a, b))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_multiply_block_exact_at_the_extreme_sums(dtype: str) -> None:
    # All-7 rows against a B mixing +7 and -7 columns reach the largest sums, +-49·2048.
    n = MAX_N
    a = np.full((8, n), 7, dtype=np.int8)
    a[1::2] = -7
    b = np.full((n, n), 7, dtype=np.int8)
    b[:, ::3] = -7
    b[: n // 2, 1::3] = -7
    ref = compute_reference_product(a, b)
    assert int(np.abs(ref).max()) == PRODUCT_BOUND_PER_N * n
    got = multiply_block(a, b.astype(dtype), dtype)
    assert np.array_equal(got.astype(np.int64), ref)


def test_float32_is_not_exact_beyond_the_bound() -> None:
    # The bound matters: with entries of 4095 the same float32 product rounds.
    rng = np.random.default_rng(7)
    a = rng.integers(-4095, 4096, size=(16, 2048))
    b = rng.integers(-4095, 4096, size=(2048, 64))
    approx = np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.int64)
    assert not np.array_equal(approx, a @ b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compute_commitment_root_is_merkle_root_of_reference_rows(dtype: str) -> None:
    n, rows = 64, BLOCK_ROWS + 77  # crosses a block boundary, odd leaf count
    ref = compute_reference_product(generate_a_rows(SEED, n, 0, rows), generate_b(SEED, n))
    work = compute_commitment(SEED, n, rows, dtype)
    assert work.root == merkle_root([encode_row(r) for r in ref])
    some = [0, 5, BLOCK_ROWS, rows - 1]
    assert compute_rows(SEED, n, rows, some, dtype) == [encode_row(ref[i]) for i in some]


def test_compute_commitment_cheat_changes_exactly_the_cheat_rows() -> None:
    from node.compute.prover import compute_cheat_rows

    n, rows = 64, 300
    ref = compute_reference_product(generate_a_rows(SEED, n, 0, rows), generate_b(SEED, n))
    bad = compute_cheat_rows(SEED, rows, 0.01)
    assert len(bad) == 3
    opened = compute_rows(SEED, n, rows, list(range(rows)), cheat_fraction=0.01)
    wrong = [i for i in range(rows) if opened[i] != encode_row(ref[i])]
    assert wrong == bad.tolist()
    assert compute_commitment(SEED, n, rows, cheat_fraction=0.01).root == merkle_root(opened)


def test_is_block_exact_detects_a_single_wrong_entry() -> None:
    from node.compute.prover import is_block_exact

    n = 2048
    a = generate_a_rows(SEED, n, 0, 16)
    b = generate_b(SEED, n)
    c = multiply_block(a, b.astype(np.float32), "float32")
    assert is_block_exact(a, b, c)
    c[9, 1234] += 1
    assert not is_block_exact(a, b, c)


def test_compute_commitment_refuses_an_inexact_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import node.compute.prover as prover
    from node.errors import ProverError

    def rounding_kernel(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
        # What a reduced-precision mode does: products rounded to a coarser grid.
        exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
        return (np.round(exact / 16) * 16).astype(np.int32)

    monkeypatch.setattr(prover, "multiply_block", rounding_kernel)
    with pytest.raises(ProverError, match="not exact"):
        prover.compute_commitment(SEED, 256, 300)
