"""Errors of the proof-of-compute rules: what a commitment, openings or fraud proof got wrong."""

from __future__ import annotations

from consensus.errors import ConsensusError


class PocError(ConsensusError):
    """Base of every proof-of-compute rejection."""


class InvalidChallengeParams(PocError, ValueError):
    """Proof-of-compute parameters or a challenge's shape are out of their allowed range.

    Also a ValueError, so the codec turns it into a DecodeError when decoding.
    """


class InvalidCommitment(PocError):
    """A commitment transaction does not fit its challenge (unknown id, malformed root)."""


class InvalidOpenings(PocError):
    """Openings are malformed: wrong challenge, wrong index set, bad row length or Merkle path.

    Malformed openings are rejected as a transaction; they are not themselves proof
    of a wrong computation (the prover may still post correct openings in time).
    """


class InvalidFraudProof(PocError):
    """A fraud proof does not prove a fault: its path fails or its row is actually correct."""
