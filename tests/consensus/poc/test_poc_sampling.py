"""Sampling: the sample count, deterministic indices, and the catch rate over 10,000 challenges."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import numpy as np
import pytest

from consensus.hashing import hash32
from consensus.poc.sampling import (
    FREIVALDS_BITS,
    MIN_SAMPLE_COUNT,
    SAMPLE_COUNT,
    compute_min_sample_count,
    compute_sample_count,
    compute_sample_seed,
    derive_freivalds_vector,
    derive_sample_indices_from_seed,
)

SIM_SEED = 20261125


def test_compute_min_sample_count_is_688_and_sample_count_has_margin() -> None:
    assert compute_min_sample_count(10_000, 999_000) == MIN_SAMPLE_COUNT == 688
    assert Fraction(99, 100) ** 688 <= Fraction(1, 1000) < Fraction(99, 100) ** 687
    assert SAMPLE_COUNT >= MIN_SAMPLE_COUNT
    assert Fraction(99, 100) ** SAMPLE_COUNT <= Fraction(1, 3000)
    assert compute_min_sample_count(500_000, 750_000) == 2


def test_compute_sample_count_caps_at_rows() -> None:
    assert compute_sample_count(64) == 64
    assert compute_sample_count(SAMPLE_COUNT) == SAMPLE_COUNT
    assert compute_sample_count(1 << 22) == SAMPLE_COUNT
    with pytest.raises(ValueError):
        compute_sample_count(0)


@pytest.mark.parametrize("rows", [1, 64, 799, 800, 801, 2048, 3000, 65536, 1 << 22])
def test_derive_sample_indices_distinct_sorted_in_range(rows: int) -> None:
    seed = hash32(rows.to_bytes(8, "big"))
    indices = derive_sample_indices_from_seed(seed, rows)
    assert len(indices) == compute_sample_count(rows)
    assert list(indices) == sorted(set(indices))
    assert all(0 <= i < rows for i in indices)
    assert derive_sample_indices_from_seed(seed, rows) == indices


def test_derive_sample_indices_follow_the_documented_stream() -> None:
    rows = 3000  # not a power of two: the rejection bound applies
    seed = hash32(b"doc")
    limit = (1 << 64) // rows * rows
    stream = hashlib.shake_256(b"cstake/poc/indices/v1" + seed).digest(8 * 4000)
    chosen: list[int] = []
    for pos in range(0, len(stream), 8):
        word = int.from_bytes(stream[pos:pos + 8], "little")
        if word < limit and word % rows not in chosen:
            chosen.append(word % rows)
        if len(chosen) == SAMPLE_COUNT:
            break
    assert derive_sample_indices_from_seed(seed, rows) == tuple(sorted(chosen))


def test_compute_sample_seed_depends_on_every_input() -> None:
    a, b, c = hash32(b"a"), hash32(b"b"), hash32(b"c")
    base = compute_sample_seed(a, b, c)
    assert len({base, compute_sample_seed(c, b, a), compute_sample_seed(a, c, b),
                compute_sample_seed(a, b, a)}) == 4
    with pytest.raises(ValueError):
        compute_sample_seed(a, b, c[:31])


def test_derive_freivalds_vector_range_and_stream() -> None:
    seed = hash32(b"r")
    r = derive_freivalds_vector(seed, 2048)
    assert r.dtype == np.int64 and r.shape == (2048,)
    assert int(r.min()) >= 0 and int(r.max()) < 1 << FREIVALDS_BITS
    raw = hashlib.shake_256(b"cstake/poc/freivalds/v1" + seed).digest(8)
    assert r[:2].tolist() == [int.from_bytes(raw[:4], "little") & 0xFFFFF,
                              int.from_bytes(raw[4:], "little") & 0xFFFFF]
    assert not np.array_equal(r, derive_freivalds_vector(hash32(b"s"), 2048))


def simulate_catch_rate(rows: int, trials: int, seed: int) -> int:
    """Return how many of ``trials`` challenges with 1% corrupted rows the samples catch."""
    rng = np.random.default_rng(seed)
    bad_count = -(-rows // 100)  # at least 1% of the rows
    caught = 0
    for trial in range(trials):
        bad = np.zeros(rows, dtype=bool)
        bad[rng.choice(rows, size=bad_count, replace=False)] = True
        sample_seed = hash32(seed.to_bytes(8, "big") + trial.to_bytes(8, "big"))
        indices = np.fromiter(derive_sample_indices_from_seed(sample_seed, rows), dtype=np.int64)
        caught += bool(bad[indices].any())
    return caught


@pytest.mark.parametrize("rows", [2048, 65536])
def test_sampling_catches_one_percent_corruption_999_in_1000(rows: int) -> None:
    trials = 10_000
    caught = simulate_catch_rate(rows, trials, SIM_SEED)
    print(f"rows={rows} sim_seed={SIM_SEED}: caught {caught}/{trials} = {caught / trials:.4%}")
    assert caught >= trials * 999 // 1000


def test_sampling_with_too_few_samples_would_miss() -> None:
    # The simulation can fail: with 100 samples a 1% cheater escapes ~37% of the time.
    rows, trials = 65536, 500
    rng = np.random.default_rng(SIM_SEED)
    misses = 0
    for trial in range(trials):
        bad = np.zeros(rows, dtype=bool)
        bad[rng.choice(rows, size=rows // 100, replace=False)] = True
        idx = np.fromiter(derive_sample_indices_from_seed(hash32(trial.to_bytes(8, "big")), rows),
                          dtype=np.int64)[:100]
        misses += not bad[idx].any()
    assert misses > trials // 5
