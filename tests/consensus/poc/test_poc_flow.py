"""One challenge through every pure rule in the order the state transition applies them."""

from __future__ import annotations

from consensus.hashing import hash32
from consensus.poc import (
    DEVNET_POC_PARAMS,
    PocCommitment,
    PocOpenings,
    RowOpening,
    compute_verified_units,
    derive_challenge,
    derive_sample_indices,
    get_openings_deadline,
    get_sample_height,
    is_commitment_in_time,
    verify_fraud_proof,
    verify_openings,
)
from node.compute.prover import compute_commitment, compute_path, compute_rows


def run_flow(cheat_fraction: float) -> tuple[int, bool]:
    params = DEVNET_POC_PARAMS
    # Epoch boundary at height 100: the challenge for an NFT claiming 2 units.
    ch = derive_challenge(hash32(b"commit of block 100"), b"nft-42", 2, 100, params)
    assert (ch.n, ch.rows) == (1664, 1664)  # 2 units x 5 s = 1e10 operations
    # The prover commits; the chain includes the commitment at height 104, 4.2 s later.
    work = compute_commitment(ch.seed, ch.n, ch.rows, cheat_fraction=cheat_fraction)
    commitment = PocCommitment.decode(PocCommitment(challenge_id=ch.id, root=work.root).encode())
    assert is_commitment_in_time(ch, 104)
    units = compute_verified_units(ch, 50_000, 54_200)
    # Samples fixed at the end of block 106 from its parent's hash (block 105); openings due by block 109.
    assert get_sample_height(104, params) == 106 and get_openings_deadline(104, params) == 109
    sample_hash = hash32(b"block 105")
    indices = derive_sample_indices(ch, commitment.root, sample_hash)
    rows = compute_rows(ch.seed, ch.n, ch.rows, list(indices), cheat_fraction=cheat_fraction)
    openings = PocOpenings(challenge_id=ch.id, openings=tuple(
        RowOpening(index=i, row=r, path=compute_path(work.levels, i))
        for i, r in zip(indices, rows, strict=True)))
    verdict = verify_openings(ch, commitment.root, sample_hash, PocOpenings.decode(openings.encode()))
    if verdict.fraud_proof is not None:
        verify_fraud_proof(ch, commitment.root, verdict.fraud_proof)
    return units, verdict.passed


def test_flow_honest_prover_verified() -> None:
    units, passed = run_flow(0.0)
    # 2·1664³ operations over 4,200 ms: 2.19 GFLOP/s, floored, capped at the claim of 2.
    assert units == 2 and passed


def test_flow_cheating_prover_convicted() -> None:
    _, passed = run_flow(0.01)
    assert not passed
