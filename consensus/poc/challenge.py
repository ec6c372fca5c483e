"""Deriving challenges, sizing them from claimed units, and turning observed time into units.

A compute unit is 1 GFLOP/s of the exact-integer kernel: 10^9 multiply-or-add
operations per second on the challenge product, counted as ``2 · rows · n²`` for
C = A·B with A of ``rows x n`` and B of ``n x n``. The hardware benchmark
(``node.compute.hwbench``) measures in the same unit over the same pipeline (generate
the matrices, multiply, commit to the rows).

Sizing: the target work is ``claimed_units · challenge_ms · 10^6`` operations.
If it is at most 2·2048³, the challenge is square: n = rows = the largest
multiple of 64 (at least 64) with 2n³ <= target. Above that, n = 2048 (the
largest exact inner dimension) and rows = target // (2·2048²) rounded down to a
multiple of 64, capped at ``max_rows``. So the product stays exact in float32
however fast the device, and a faster device gets a taller A.

Verified units: ``min(claimed_units, 2·rows·n² // (observed_ms · 10^6))``, where
``observed_ms`` is the commitment inclusion block's time minus the challenge
block's time. Only the chain's clock enters: never the prover's report. Block
granularity and inclusion latency only lengthen the observed time, so an
honest device is measured at or slightly below its true speed, and an
overclaimer at about its true speed.
"""

from __future__ import annotations

from consensus.hashing import tagged_hash
from consensus.poc.errors import InvalidChallengeParams, InvalidCommitment
from consensus.poc.sampling import compute_sample_seed, derive_sample_indices_from_seed
from consensus.poc.types import Challenge, PocParams

CHALLENGE_SEED_TAG = b"cstake/poc/challenge/v1"
CHALLENGE_ID_TAG = b"cstake/poc/challenge-id/v1"
#: n and rows are multiples of this (BLAS-friendly blocks), and at least this.
ROW_QUANTUM = 64
#: One compute unit is 10^9 operations per second, i.e. 10^6 per millisecond.
OPS_PER_UNIT_MS = 1_000_000


def _icbrt(value: int) -> int:
    """Return floor(cube root of value) for value >= 0, in integers."""
    lo, hi = 0, 1
    while hi**3 <= value:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid**3 <= value:
            lo = mid
        else:
            hi = mid
    return lo


def compute_challenge_size(claimed_units: int, params: PocParams) -> tuple[int, int]:
    """Return (n, rows) so a device of ``claimed_units`` needs about ``challenge_ms``."""
    if type(claimed_units) is not int or claimed_units < 0:
        raise InvalidChallengeParams("claimed units must be a non-negative integer")
    target = claimed_units * params.challenge_ms * OPS_PER_UNIT_MS
    max_n = params.max_n
    if target <= 2 * max_n**3:
        n = max(ROW_QUANTUM, _icbrt(target // 2) // ROW_QUANTUM * ROW_QUANTUM)
        return n, n
    rows = target // (2 * max_n * max_n) // ROW_QUANTUM * ROW_QUANTUM
    return max_n, min(max(rows, max_n), params.max_rows)


def _u(value: int, width: int) -> bytes:
    return value.to_bytes(width, "big")


def derive_challenge(
    epoch_seed: bytes, nft_id: bytes, claimed_units: int, height: int, params: PocParams
) -> Challenge:
    """Return the challenge of NFT ``nft_id`` derived at ``height`` from ``epoch_seed``.

    ``epoch_seed`` must be something no single party controls in advance (the
    state transition passes the hash of the commit of the epoch's last block).
    seed = tagged_hash("cstake/poc/challenge/v1", epoch_seed || u8 len(nft_id) ||
    nft_id || u64_be height); the id hashes the seed with every other field.
    """
    if type(epoch_seed) is not bytes or not epoch_seed:
        raise InvalidChallengeParams("the epoch seed must be non-empty bytes")
    if type(nft_id) is not bytes or not 1 <= len(nft_id) <= 64:
        raise InvalidChallengeParams("nft_id must be 1 to 64 bytes")
    if type(height) is not int or not 0 <= height < 1 << 63:
        raise InvalidChallengeParams("height must be a non-negative 63-bit integer")
    named = bytes((len(nft_id),)) + nft_id
    seed = tagged_hash(CHALLENGE_SEED_TAG, epoch_seed + named + _u(height, 8))
    n, rows = compute_challenge_size(claimed_units, params)
    deadline = height + params.commit_deadline_blocks
    cid = tagged_hash(
        CHALLENGE_ID_TAG,
        seed + named + _u(height, 8) + _u(n, 4) + _u(rows, 4)
        + _u(claimed_units, 8) + _u(deadline, 8),
    )
    return Challenge(
        id=cid, nft_id=nft_id, height=height, seed=seed, n=n, rows=rows,
        claimed_units=claimed_units, deadline_height=deadline,
    )


def is_commitment_in_time(challenge: Challenge, inclusion_height: int) -> bool:
    """Return whether a commitment included at ``inclusion_height`` meets the deadline."""
    return challenge.height < inclusion_height <= challenge.deadline_height


def get_sample_height(commit_height: int, params: PocParams) -> int:
    """Return the height at whose end the samples are fixed (from its parent's hash)."""
    return commit_height + params.sample_delay_blocks


def get_openings_deadline(commit_height: int, params: PocParams) -> int:
    """Return the last height at which the openings may be included."""
    return get_sample_height(commit_height, params) + params.openings_deadline_blocks


def derive_sample_indices(challenge: Challenge, root: bytes, sample_block_hash: bytes) -> tuple[int, ...]:
    """Return the sorted row indices the prover of ``challenge`` must open."""
    seed = compute_sample_seed(challenge.id, root, sample_block_hash)
    return derive_sample_indices_from_seed(seed, challenge.rows)


def compute_verified_units(challenge: Challenge, challenge_time_ms: int, commit_time_ms: int) -> int:
    """Return the verified units of a challenge whose commitment the chain saw in time.

    ``challenge_time_ms`` is the time of the block at the challenge height and
    ``commit_time_ms`` that of the block including the commitment (both from
    block headers, in milliseconds). The result never exceeds the claim.
    """
    observed_ms = commit_time_ms - challenge_time_ms
    if observed_ms <= 0:
        raise InvalidCommitment(
            f"commitment block time {commit_time_ms} is not after challenge block time "
            f"{challenge_time_ms}"
        )
    measured = challenge.work_flops // (observed_ms * OPS_PER_UNIT_MS)
    return min(measured, challenge.claimed_units)
