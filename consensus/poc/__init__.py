"""Proof of compute: how a compute NFT's claimed units become verified units.

The pure rules, in the order a challenge lives through them:

1. ``derive_challenge`` at an epoch boundary: matrices A (rows x n) and B (n x n)
   with entries in [-7, 7] from a SHAKE-256 stream (``matrices``), sized from the
   claimed units so an honest device needs about ``challenge_ms``.
2. The prover computes C = A·B (exact in float32 BLAS) and commits to the Merkle
   root over C's rows (``merkle``); ``is_commitment_in_time`` checks the deadline
   and ``compute_verified_units`` turns the chain's observed time into units.
3. ``derive_sample_indices`` picks 800 rows (``sampling``) from a later block hash;
   ``verify_openings`` checks their paths and an exact int64 Freivalds test
   (``verify``); a wrong row yields a ``PocFraudProof`` that ``verify_fraud_proof``
   checks exactly.

docs/proof-of-compute.md gives the whole specification with its bounds.
"""

from consensus.poc.challenge import (
    OPS_PER_UNIT_MS,
    compute_challenge_size,
    compute_verified_units,
    derive_challenge,
    derive_sample_indices,
    get_openings_deadline,
    get_sample_height,
    is_commitment_in_time,
)
from consensus.poc.errors import (
    InvalidChallengeParams,
    InvalidCommitment,
    InvalidFraudProof,
    InvalidOpenings,
    PocError,
)
from consensus.poc.sampling import SAMPLE_COUNT, compute_sample_count
from consensus.poc.types import (
    DEVNET_POC_PARAMS,
    MAINNET_POC_PARAMS,
    Challenge,
    PocCommitment,
    PocFraudProof,
    PocOpenings,
    PocParams,
    RowOpening,
)
from consensus.poc.verify import (
    MAX_OPENING_CHUNKS,
    OpeningsVerdict,
    compute_row,
    get_min_chunk_rows,
    is_row_correct,
    verify_fraud_proof,
    verify_fraud_proof_inclusion,
    verify_openings,
)

__all__ = [
    "DEVNET_POC_PARAMS",
    "MAINNET_POC_PARAMS",
    "MAX_OPENING_CHUNKS",
    "OPS_PER_UNIT_MS",
    "SAMPLE_COUNT",
    "Challenge",
    "InvalidChallengeParams",
    "InvalidCommitment",
    "InvalidFraudProof",
    "InvalidOpenings",
    "OpeningsVerdict",
    "PocCommitment",
    "PocError",
    "PocFraudProof",
    "PocOpenings",
    "PocParams",
    "RowOpening",
    "compute_challenge_size",
    "compute_row",
    "compute_sample_count",
    "compute_verified_units",
    "derive_challenge",
    "derive_sample_indices",
    "get_min_chunk_rows",
    "get_openings_deadline",
    "get_sample_height",
    "is_commitment_in_time",
    "is_row_correct",
    "verify_fraud_proof",
    "verify_fraud_proof_inclusion",
    "verify_openings",
]
