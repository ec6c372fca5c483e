"""Verifying openings (exact int64 Freivalds on sampled rows) and fraud proofs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from consensus.codec import pack_raw
from consensus.errors import DecodeError
from consensus.hashing import hash32
from consensus.poc import (
    InvalidFraudProof,
    InvalidOpenings,
    PocFraudProof,
    PocOpenings,
    RowOpening,
    compute_row,
    is_row_correct,
    verify_fraud_proof,
    verify_openings,
)
from consensus.poc.merkle import build_levels, compute_proof, encode_row, hash_leaf
from tests.kit.poc import Build, make_challenge


@pytest.mark.parametrize(("n", "rows"), [(64, 64), (64, 1000), (256, 2050)])
def test_verify_openings_honest_prover_passes(build_openings: Build, n: int, rows: int) -> None:
    ch, root, block_hash, openings = build_openings(n, rows)
    assert len(openings.openings) == min(800, rows)
    verdict = verify_openings(ch, root, block_hash, openings)
    assert verdict.passed and verdict.bad_indices == () and verdict.fraud_proof is None


def test_verify_openings_cheater_yields_a_valid_fraud_proof(build_openings: Build) -> None:
    # 5% of 512 rows corrupted; all 512 rows are opened, so every bad row shows.
    ch, root, block_hash, openings = build_openings(128, 512, cheat_fraction=0.05)
    verdict = verify_openings(ch, root, block_hash, openings)
    assert not verdict.passed
    assert len(verdict.bad_indices) == 26
    proof = verdict.fraud_proof
    assert proof is not None and proof.opening.index == verdict.bad_indices[0]
    verify_fraud_proof(ch, root, PocFraudProof.decode(proof.encode()))


def test_freivalds_catches_a_plus_one_error_at_n_2048() -> None:
    # A float32 Freivalds check misses this; the int64 one must not.
    ch = make_challenge(2048, 4)
    rows = [encode_row(compute_row(ch, i)) for i in range(4)]
    wrong = compute_row(ch, 2)
    wrong[1000] += 1
    rows[2] = encode_row(wrong)
    levels = build_levels([hash_leaf(r) for r in rows])
    root = levels[-1][0]
    openings = PocOpenings(challenge_id=ch.id, openings=tuple(
        RowOpening(index=i, row=rows[i], path=compute_proof(levels, i)) for i in range(4)))
    verdict = verify_openings(ch, root, hash32(b"b"), openings)
    assert verdict.bad_indices == (2,)
    assert verdict.fraud_proof is not None
    verify_fraud_proof(ch, root, verdict.fraud_proof)


def test_verify_openings_out_of_range_entry_is_a_fault_without_overflow() -> None:
    ch = make_challenge(2048, 2)
    good = compute_row(ch, 0)
    huge = good.copy()
    huge[0] = 2**31 - 1
    rows = [encode_row(huge), encode_row(compute_row(ch, 1))]
    levels = build_levels([hash_leaf(r) for r in rows])
    openings = PocOpenings(challenge_id=ch.id, openings=tuple(
        RowOpening(index=i, row=rows[i], path=compute_proof(levels, i)) for i in range(2)))
    verdict = verify_openings(ch, levels[-1][0], hash32(b"b"), openings)
    assert verdict.bad_indices == (0,)


def test_invalid_openings_rejected(build_openings: Build) -> None:
    ch, root, block_hash, openings = build_openings(64, 1000)
    ops = openings.openings
    with pytest.raises(InvalidOpenings, match="another challenge"):
        verify_openings(ch, root, block_hash, dataclasses.replace(openings, challenge_id=hash32(b"x")))
    with pytest.raises(InvalidOpenings, match="sampled rows"):
        verify_openings(ch, root, hash32(b"other block"), openings)
    with pytest.raises(InvalidOpenings, match="sampled rows"):
        verify_openings(ch, root, block_hash, dataclasses.replace(openings, openings=ops[1:]))
    with pytest.raises(InvalidOpenings, match="sampled rows"):
        verify_openings(ch, root, block_hash, dataclasses.replace(openings, openings=ops[::-1]))
    with pytest.raises(InvalidOpenings, match="bytes"):
        short = dataclasses.replace(ops[3], row=ops[3].row[:-4])
        verify_openings(ch, root, block_hash,
                        dataclasses.replace(openings, openings=(*ops[:3], short, *ops[4:])))
    # A row changed after the commitment no longer matches its path.
    changed = bytearray(ops[3].row)
    changed[0] ^= 1
    with pytest.raises(InvalidOpenings, match="Merkle path"):
        swapped = dataclasses.replace(ops[3], row=bytes(changed))
        verify_openings(ch, root, block_hash,
                        dataclasses.replace(openings, openings=(*ops[:3], swapped, *ops[4:])))


def test_invalid_fraud_proof_against_a_correct_row(build_openings: Build) -> None:
    ch, root, _, openings = build_openings(64, 100)
    opening = openings.openings[7]
    assert is_row_correct(ch, opening.index, opening.row)
    with pytest.raises(InvalidFraudProof, match="correct"):
        verify_fraud_proof(ch, root, PocFraudProof(challenge_id=ch.id, opening=opening))
    with pytest.raises(InvalidFraudProof, match="another challenge"):
        verify_fraud_proof(ch, root, PocFraudProof(challenge_id=hash32(b"x"), opening=opening))
    # A wrong row that was never committed proves nothing.
    fake = bytearray(opening.row)
    fake[0] ^= 1
    forged = dataclasses.replace(opening, row=bytes(fake))
    assert not is_row_correct(ch, forged.index, forged.row)
    with pytest.raises(InvalidFraudProof, match="not in the commitment"):
        verify_fraud_proof(ch, root, PocFraudProof(challenge_id=ch.id, opening=forged))
    with pytest.raises(InvalidFraudProof, match="out of range"):
        verify_fraud_proof(ch, root, PocFraudProof(
            challenge_id=ch.id, opening=dataclasses.replace(opening, index=100)))


def test_compute_row_matches_full_reference() -> None:
    from consensus.poc.matrices import compute_reference_product, generate_a_rows, generate_b

    ch = make_challenge(96, 10)
    ref = compute_reference_product(generate_a_rows(ch.seed, 96, 0, 10), generate_b(ch.seed, 96))
    assert all(np.array_equal(compute_row(ch, i), ref[i]) for i in range(10))
    with pytest.raises(ValueError):
        compute_row(ch, 10)


def test_poc_containers_roundtrip_and_strict_decode(build_openings: Build) -> None:
    ch, root, _, openings = build_openings(64, 900)
    assert PocOpenings.decode(openings.encode()) == openings
    assert type(ch).decode(ch.encode()) == ch
    with pytest.raises(DecodeError):
        PocOpenings.decode(openings.encode() + b"\x00")
    raw = ch.to_raw()
    assert isinstance(raw, list)
    raw[4] = 2049  # n beyond the exact bound
    with pytest.raises(DecodeError, match="n must be"):
        type(ch).decode(pack_raw(raw))
