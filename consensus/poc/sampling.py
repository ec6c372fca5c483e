"""Which rows a prover must open, and the Freivalds vector the verifier multiplies by.

Both come from the *sample seed*, fixed only after the commitment is on chain::

    sample_seed = tagged_hash(b"cstake/poc/sample/v1",
                              challenge_id || root || sample_block_hash)

where ``sample_block_hash`` is the hash the state transition takes from a block
after the one that included the commitment (see docs/proof-of-compute.md), so
the prover cannot know the samples when it commits.

Sample indices: the stream ``SHAKE-256(b"cstake/poc/indices/v1" || sample_seed)``
is read as little-endian u64 words. A word ``w >= floor(2^64 / rows) · rows`` is
skipped (so ``w mod rows`` is exactly uniform); otherwise ``w mod rows`` is a
draw, and a draw equal to an earlier one is skipped. The first ``k`` distinct
draws, sorted ascending, are the sample (``k = min(SAMPLE_COUNT, rows)``: with no
more rows than that, every row is opened).

Why k = 800: a prover whose commitment has a fraction f >= 1% of wrong rows
escapes only if no sample lands on one. Without replacement that chance is at
most (1 - f)^k <= 0.99^k. The least k meeting the 99.9% goal is 688 (0.99^688
= 0.000992 <= 0.001, while 0.99^687 = 0.001002); we open 800, so the escape
chance is at most 0.99^800 = 0.000324, a third of the allowed 0.001. The
margin absorbs the Freivalds slip below and makes the goal checkable: in
10,000 simulated challenges the expected escapes are ~3 against the 10
allowed, where k = 688 would expect ~9.9 and pass or fail by luck. A wrong row
that is sampled fails the Freivalds check unless (c' - c)·r = 0, which for r
uniform on [0, 2^20)^n happens with probability at most 2^-20
(Schwartz-Zippel); so the catch rate is at least (1 - 0.000324)(1 - 2^-20)
> 0.9996.

Freivalds vector: ``r_j`` is the j-th little-endian u32 word of
``SHAKE-256(b"cstake/poc/freivalds/v1" || sample_seed)`` masked to its low 20
bits, for j = 0..n-1.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from consensus.hashing import HASH_LEN, tagged_hash

SAMPLE_TAG = b"cstake/poc/sample/v1"
INDICES_TAG = b"cstake/poc/indices/v1"
FREIVALDS_TAG = b"cstake/poc/freivalds/v1"
#: The least k with 0.99^k <= 0.001 (see compute_min_sample_count).
MIN_SAMPLE_COUNT = 688
#: Rows opened per challenge: MIN_SAMPLE_COUNT with a margin (0.99^800 = 0.000324).
SAMPLE_COUNT = 800
#: The Freivalds vector's entries lie in [0, 2^FREIVALDS_BITS).
FREIVALDS_BITS = 20
#: Catch-rate target the sample count is chosen for (per million) and the bad-row fraction.
TARGET_CATCH_PPM = 999_000
TARGET_BAD_FRACTION_PPM = 10_000


def compute_sample_count(rows: int) -> int:
    """Return how many rows a challenge with ``rows`` rows opens."""
    if rows < 1:
        raise ValueError("a challenge has at least one row")
    return min(SAMPLE_COUNT, rows)


def compute_min_sample_count(bad_fraction_ppm: int, catch_ppm: int) -> int:
    """Return the least k with (1 - bad)^k <= 1 - catch, exactly in integers (ppm inputs).

    Compares (10^6 - bad)^k <= (10^6 - catch) · 10^(6(k-1)) with Python integers, so
    the published SAMPLE_COUNT can be re-derived without floating point.
    """
    if not 0 < bad_fraction_ppm < 1_000_000 or not 0 < catch_ppm < 1_000_000:
        raise ValueError("fractions are given in parts per million, strictly between 0 and 10^6")
    keep = 1_000_000 - bad_fraction_ppm
    miss = 1_000_000 - catch_ppm
    k = 1
    power = keep
    scale = 1
    while power > miss * scale:
        k += 1
        power *= keep
        scale *= 1_000_000
    return k


def compute_sample_seed(challenge_id: bytes, root: bytes, sample_block_hash: bytes) -> bytes:
    """Return the seed the sample indices and the Freivalds vector are drawn from."""
    for name, value in (("challenge id", challenge_id), ("root", root), ("block hash", sample_block_hash)):
        if type(value) is not bytes or len(value) != HASH_LEN:
            raise ValueError(f"the {name} is {HASH_LEN} bytes")
    return tagged_hash(SAMPLE_TAG, challenge_id + root + sample_block_hash)


def derive_sample_indices_from_seed(sample_seed: bytes, rows: int) -> tuple[int, ...]:
    """Return the sorted row indices to open for ``rows`` rows (see the module docstring)."""
    k = compute_sample_count(rows)
    if k == rows:
        return tuple(range(rows))
    limit = ((1 << 64) // rows) * rows
    words = 2 * k + 64
    stream = hashlib.shake_256(INDICES_TAG + sample_seed)
    while True:
        draws = np.frombuffer(stream.digest(8 * words), dtype="<u8")
        if limit < 1 << 64:  # rows a power of two: every word maps uniformly
            draws = draws[draws < np.uint64(limit)]
        draws = draws % np.uint64(rows)
        # First occurrence of each value, in stream order.
        _, first = np.unique(draws, return_index=True)
        if len(first) >= k:
            chosen = draws[np.sort(first)[:k]]
            return tuple(sorted(int(v) for v in chosen))
        # Not enough distinct draws yet: read a longer prefix of the same stream.
        words *= 2


def derive_freivalds_vector(sample_seed: bytes, n: int) -> npt.NDArray[np.int64]:
    """Return the Freivalds vector r (n entries in [0, 2^20)) as int64."""
    raw = hashlib.shake_256(FREIVALDS_TAG + sample_seed).digest(4 * n)
    words = np.frombuffer(raw, dtype="<u4")
    mask = np.uint32((1 << FREIVALDS_BITS) - 1)
    r: npt.NDArray[np.int64] = (words & mask).astype(np.int64)
    return r
