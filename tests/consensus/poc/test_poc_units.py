"""Challenge sizing and verified units, with a simulated 2x overclaim measured by block times."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from consensus.hashing import hash32
from consensus.poc import (
    DEVNET_POC_PARAMS,
    MAINNET_POC_PARAMS,
    OPS_PER_UNIT_MS,
    InvalidChallengeParams,
    InvalidCommitment,
    PocParams,
    compute_challenge_size,
    compute_verified_units,
    derive_challenge,
    get_openings_deadline,
    get_sample_height,
    is_commitment_in_time,
)
from consensus.poc.matrices import MAX_N

SIM_SEED = 7_2026


def test_compute_challenge_size_square_then_tall() -> None:
    params = DEVNET_POC_PARAMS
    assert compute_challenge_size(0, params) == (64, 64)
    n, rows = compute_challenge_size(1, params)  # 5e9 operations: a square of side ~1357
    assert n == rows == 1344 and 2 * n**3 <= 5 * 10**9 < 2 * (n + 64) ** 3
    n, rows = compute_challenge_size(113, params)
    assert n == MAX_N and rows % 64 == 0
    work = 2 * rows * n * n
    target = 113 * params.challenge_ms * OPS_PER_UNIT_MS
    assert target - 2 * 64 * n * n < work <= target
    assert compute_challenge_size(10**9, params) == (MAX_N, params.max_rows)
    with pytest.raises(InvalidChallengeParams):
        compute_challenge_size(-1, params)


def test_derive_challenge_deterministic_and_input_sensitive() -> None:
    seed = hash32(b"commit of epoch 3")
    ch = derive_challenge(seed, b"nft-9", 113, 60, DEVNET_POC_PARAMS)
    assert ch == derive_challenge(seed, b"nft-9", 113, 60, DEVNET_POC_PARAMS)
    assert ch.deadline_height == 60 + DEVNET_POC_PARAMS.commit_deadline_blocks
    others = [
        derive_challenge(hash32(b"x"), b"nft-9", 113, 60, DEVNET_POC_PARAMS),
        derive_challenge(seed, b"nft-8", 113, 60, DEVNET_POC_PARAMS),
        derive_challenge(seed, b"nft-9", 114, 60, DEVNET_POC_PARAMS),
        derive_challenge(seed, b"nft-9", 113, 80, DEVNET_POC_PARAMS),
    ]
    assert len({ch.id, *(o.id for o in others)}) == 5
    assert others[2].seed == ch.seed  # the matrices depend on the seed, not the claim
    with pytest.raises(InvalidChallengeParams):
        derive_challenge(seed, b"", 1, 60, DEVNET_POC_PARAMS)


def test_deadline_helpers() -> None:
    ch = derive_challenge(hash32(b"s"), b"n", 10, 100, DEVNET_POC_PARAMS)
    assert not is_commitment_in_time(ch, 100)
    assert is_commitment_in_time(ch, 101) and is_commitment_in_time(ch, ch.deadline_height)
    assert not is_commitment_in_time(ch, ch.deadline_height + 1)
    assert get_sample_height(105, DEVNET_POC_PARAMS) == 107
    assert get_openings_deadline(105, DEVNET_POC_PARAMS) == 110


def test_compute_verified_units_formula_and_cap() -> None:
    ch = derive_challenge(hash32(b"s"), b"n", 113, 100, DEVNET_POC_PARAMS)
    # Exactly the claimed speed: work / claim ms.
    ms = ch.work_flops // (113 * OPS_PER_UNIT_MS)
    assert compute_verified_units(ch, 1_000, 1_000 + ms) == 113
    assert compute_verified_units(ch, 1_000, 1_000 + 2 * ms) == 56
    assert compute_verified_units(ch, 1_000, 1_000 + ms // 10) == 113  # never above the claim
    assert compute_verified_units(ch, 0, ch.work_flops) == 0
    with pytest.raises(InvalidCommitment):
        compute_verified_units(ch, 5_000, 5_000)


def test_invalid_params() -> None:
    with pytest.raises(InvalidChallengeParams):
        dataclasses.replace(DEVNET_POC_PARAMS, challenge_ms=0)
    with pytest.raises(InvalidChallengeParams):
        PocParams(challenge_ms=1, commit_deadline_blocks=1, sample_delay_blocks=1,
                  openings_deadline_blocks=1, max_rows=1 << 25)


def simulate_challenge(true_units: int, claimed_units: int, params: PocParams, block_ms: int,
                       rng: np.random.Generator) -> int:
    """Return the verified units the chain records for one challenge, 0 on a missed deadline.

    Blocks come every ``block_ms`` plus up to 50% jitter. The prover sees the
    challenge block 50-300 ms after its time, computes for the time its true
    speed needs for the work of a challenge sized from its claim, and its
    commitment reaches the proposers 20-200 ms later; it lands in the first
    block whose time is after that. Observed time is block time to block time.
    """
    ch = derive_challenge(hash32(rng.bytes(8)), b"nft", claimed_units, 200, params)
    challenge_time = 1_000_000
    compute_ms = ch.work_flops / (true_units * OPS_PER_UNIT_MS)
    arrives = challenge_time + rng.uniform(50, 300) + compute_ms + rng.uniform(20, 200)
    height, time_ms = ch.height, challenge_time
    while time_ms < arrives:
        height += 1
        time_ms += block_ms + int(rng.integers(0, block_ms // 2 + 1))
    if not is_commitment_in_time(ch, height):
        return 0
    return compute_verified_units(ch, challenge_time, time_ms)


@pytest.mark.parametrize(("params", "block_ms"), [(DEVNET_POC_PARAMS, 1_000),
                                                  (MAINNET_POC_PARAMS, 5_000)])
@pytest.mark.parametrize("true_units", [5, 40, 113, 600, 3_000])
def test_two_x_overclaim_is_measured_near_true_speed(params: PocParams, block_ms: int,
                                                      true_units: int) -> None:
    rng = np.random.default_rng(SIM_SEED + true_units)
    verified = [simulate_challenge(true_units, 2 * true_units, params, block_ms, rng)
                for _ in range(200)]
    print(f"true {true_units}, claimed {2 * true_units}: verified {min(verified)}..{max(verified)}")
    assert all(0.75 * true_units <= v <= true_units for v in verified), verified


@pytest.mark.parametrize("true_units", [5, 113, 3_000])
def test_honest_claim_verified_close_to_claim(true_units: int) -> None:
    rng = np.random.default_rng(SIM_SEED)
    verified = [simulate_challenge(true_units, true_units, DEVNET_POC_PARAMS, 1_000, rng)
                for _ in range(200)]
    assert all(0.6 * true_units <= v <= true_units for v in verified), verified


def test_large_overclaim_misses_the_deadline() -> None:
    rng = np.random.default_rng(SIM_SEED)
    assert all(simulate_challenge(113, 5 * 113, DEVNET_POC_PARAMS, 1_000, rng) == 0
               for _ in range(100))
