"""Challenge matrices: the documented SHAKE-256 stream, pinned vectors, range and determinism."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from consensus.poc.errors import InvalidChallengeParams
from consensus.poc.matrices import (
    MATRIX_A,
    MATRIX_B,
    MAX_N,
    _read_rows,
    _row_prefix,
    compute_matrices_digest,
    generate_a_rows,
    generate_b,
    generate_rows,
)

SEED = bytes(range(32))


def spec_row(seed: bytes, matrix: bytes, n: int, i: int) -> list[int]:
    """The row exactly as docs/proof-of-compute.md states it, one nibble at a time."""
    stream = hashlib.shake_256(b"cstake/poc/matrix/v1" + seed + matrix + n.to_bytes(4, "big")
                               + i.to_bytes(4, "big"))
    length = 64
    while True:
        out = []
        for byte in stream.digest(length):
            for nibble in (byte & 0x0F, byte >> 4):
                if nibble != 15:
                    out.append(nibble - 7)
                if len(out) == n:
                    return out
        length *= 2


@pytest.mark.parametrize("n", [1, 7, 64, 100, 333])
def test_generate_rows_matches_the_documented_stream(n: int) -> None:
    a = generate_a_rows(SEED, n, 0, 5)
    b = generate_b(SEED, n)
    for i in range(5):
        assert a[i].tolist() == spec_row(SEED, b"A", n, i)
    for i in (0, n // 2, n - 1):
        assert b[i].tolist() == spec_row(SEED, b"B", n, i)


def test_generate_rows_pinned_vectors() -> None:
    # Test vectors for other implementations (also in docs/proof-of-compute.md).
    assert generate_a_rows(SEED, 8, 0, 2).tolist() == [
        [-7, 1, -1, -4, -7, 0, -1, -1], [-2, -3, -6, -7, -1, 0, 3, -2]]
    assert generate_b(SEED, 8)[:2].tolist() == [
        [-6, 6, -2, -2, 6, -7, 5, -5], [1, 5, 3, -4, 5, 6, -3, 3]]
    assert compute_matrices_digest(SEED, 64, 64).hex() == (
        "6883cfa377e7c218f1a3bbeef475a66ecb9b191a385e50c60d367556ac25df23")
    assert compute_matrices_digest(SEED, 2048, 16).hex() == (
        "41b0ddf1a69aac58f31560c53895f56a7b78cf469c9980a0dfa3a81d677023c9")


def test_generate_rows_same_seed_same_matrices_in_a_fresh_process() -> None:
    code = ("from consensus.poc.matrices import compute_matrices_digest;"
            "print(compute_matrices_digest(bytes(range(32)), 512, 512).hex())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, timeout=60)
    here = compute_matrices_digest(SEED, 512, 512).hex()
    assert other.stdout.strip() == here
    assert compute_matrices_digest(SEED, 512, 512).hex() == here


def test_generate_rows_differs_by_seed_matrix_and_n() -> None:
    other_seed = bytes(31) + b"\x01"
    assert not np.array_equal(generate_b(SEED, 64), generate_b(other_seed, 64))
    assert not np.array_equal(generate_a_rows(SEED, 64, 0, 64), generate_b(SEED, 64))
    assert generate_b(SEED, 64)[0].tolist() != generate_b(SEED, 65)[0, :64].tolist()


def test_generate_rows_any_row_range_is_a_slice_of_the_whole() -> None:
    whole = generate_a_rows(SEED, 96, 0, 300)
    assert np.array_equal(generate_a_rows(SEED, 96, 123, 250), whole[123:250])
    assert np.array_equal(generate_rows(SEED, MATRIX_A, 96, [299, 5, 5]), whole[[299, 5, 5]])


def test_generate_rows_entries_in_range_and_uniform() -> None:
    b = generate_b(SEED, 1024)
    assert b.dtype == np.int8
    assert int(b.min()) == -7 and int(b.max()) == 7
    counts = np.bincount(b.ravel().astype(np.int64) + 7, minlength=15)
    expected = b.size / 15
    # Chi-square with 14 degrees of freedom; 50 is far beyond its 99.99th percentile (~36).
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 50, counts


def test_read_rows_short_first_read_gives_the_same_rows() -> None:
    prefix = _row_prefix(SEED, MATRIX_B, 256)
    normal = _read_rows(prefix, range(40), 256, 200)
    # 129 bytes = 258 nibbles: most rows lose more than 2 nibbles and take the retry path.
    assert np.array_equal(_read_rows(prefix, range(40), 256, 129), normal)
    assert np.array_equal(_read_rows(prefix, range(40), 256, 1), normal)


def test_invalid_generate_rows_shape() -> None:
    with pytest.raises(InvalidChallengeParams):
        generate_b(SEED, 0)
    with pytest.raises(InvalidChallengeParams):
        generate_b(SEED, MAX_N + 1)
    with pytest.raises(InvalidChallengeParams):
        generate_b(SEED[:31], 8)
    with pytest.raises(InvalidChallengeParams):
        generate_rows(SEED, b"C", 8, [0])
    with pytest.raises(InvalidChallengeParams):
        generate_rows(SEED, MATRIX_B, 8, [-1])
