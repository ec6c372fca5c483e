"""Evidence of equivocation: two conflicting messages signed by one validator.

``DuplicateVoteEvidence`` holds two votes by one validator for the same height,
round and vote type but different block hashes (nil counts as a value);
``ConflictingProposalEvidence`` holds two proposals by one proposer for the same
height and round but different blocks. The pair is stored in canonical order
(by encoding), so one fault has one encoding and one hash however it was seen.
A block carries evidence as ``(kind, canonical bytes)`` (``encode_evidence`` /
``decode_evidence``); the state transition
calls ``verify_evidence`` against the validator set of the fault's height and
slashes the validator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from consensus.codec import Encodable
from consensus.crypto import Domain, sign_bytes, verify_signature
from consensus.errors import ConsensusError, InvalidSignature
from consensus.hashing import tagged_hash
from consensus.validator_set import ValidatorSet
from consensus.votes import Proposal, SignatureVerifier, Vote, VoteError

EVIDENCE_HASH_TAG: Final = b"cstake/evidence/v1"


class EvidenceError(ConsensusError):
    """Evidence is malformed, expired, unverifiable or does not show a fault."""


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence(Encodable):
    """Two conflicting votes by one validator at one height, round and vote type."""

    MAX_BYTES = 1024

    vote_a: Vote
    """The vote whose encoding sorts first."""
    vote_b: Vote
    """The vote whose encoding sorts second."""

    @property
    def height(self) -> int:
        """Height of the fault."""
        return self.vote_a.height

    @property
    def validator(self) -> bytes:
        """Address of the validator that equivocated."""
        return self.vote_a.validator

    def validate_basic(self) -> None:
        """Raise EvidenceError unless the two votes are well formed and conflict."""
        try:
            self.vote_a.validate_basic()
            self.vote_b.validate_basic()
        except VoteError as exc:
            raise EvidenceError(f"duplicate-vote evidence holds a malformed vote: {exc}") from exc
        a, b = self.vote_a, self.vote_b
        if (a.height, a.round, a.vote_type, a.validator) != (
            b.height,
            b.round,
            b.vote_type,
            b.validator,
        ):
            raise EvidenceError(
                "duplicate-vote evidence: votes differ in height, round, type or validator"
            )
        if a.block_hash == b.block_hash:
            raise EvidenceError("duplicate-vote evidence: both votes are for the same block")
        if not a.encode() < b.encode():
            raise EvidenceError("duplicate-vote evidence: votes are not in canonical order")

    def evidence_hash(self) -> bytes:
        """Return the hash identifying this fault."""
        return tagged_hash(EVIDENCE_HASH_TAG, b"\x01" + self.encode())


@dataclass(frozen=True, slots=True)
class ConflictingProposalEvidence(Encodable):
    """Two proposals of different blocks by one proposer at one height and round."""

    MAX_BYTES = 1024

    proposal_a: Proposal
    """The proposal whose encoding sorts first."""
    proposal_b: Proposal
    """The proposal whose encoding sorts second."""

    @property
    def height(self) -> int:
        """Height of the fault."""
        return self.proposal_a.height

    @property
    def validator(self) -> bytes:
        """Address of the proposer that equivocated."""
        return self.proposal_a.proposer

    def validate_basic(self) -> None:
        """Raise EvidenceError unless the two proposals are well formed and conflict."""
        try:
            self.proposal_a.validate_basic()
            self.proposal_b.validate_basic()
        except VoteError as exc:
            raise EvidenceError(
                f"conflicting-proposal evidence holds a malformed proposal: {exc}"
            ) from exc
        a, b = self.proposal_a, self.proposal_b
        if (a.height, a.round, a.proposer) != (b.height, b.round, b.proposer):
            raise EvidenceError(
                "conflicting-proposal evidence: proposals differ in height, round or proposer"
            )
        if a.block_hash == b.block_hash:
            raise EvidenceError("conflicting-proposal evidence: both propose the same block")
        if not a.encode() < b.encode():
            raise EvidenceError(
                "conflicting-proposal evidence: proposals are not in canonical order"
            )

    def evidence_hash(self) -> bytes:
        """Return the hash identifying this fault."""
        return tagged_hash(EVIDENCE_HASH_TAG, b"\x02" + self.encode())


Evidence = DuplicateVoteEvidence | ConflictingProposalEvidence


#: Kind numbers of evidence as a block or a transaction carries it (kind, encoded bytes).
EVIDENCE_DUPLICATE_VOTE: Final = 1
EVIDENCE_CONFLICTING_PROPOSAL: Final = 2


def get_evidence_kind(evidence: Evidence) -> int:
    """Return the kind number of ``evidence``."""
    if isinstance(evidence, DuplicateVoteEvidence):
        return EVIDENCE_DUPLICATE_VOTE
    return EVIDENCE_CONFLICTING_PROPOSAL


def encode_evidence(evidence: Evidence) -> tuple[int, bytes]:
    """Return ``(kind, canonical bytes)`` of ``evidence``, the form blocks carry."""
    return get_evidence_kind(evidence), evidence.encode()


def decode_evidence(kind: int, data: bytes) -> Evidence:
    """Decode evidence of ``kind`` strictly; raise DecodeError or EvidenceError."""
    if kind == EVIDENCE_DUPLICATE_VOTE:
        return DuplicateVoteEvidence.decode(data)
    if kind == EVIDENCE_CONFLICTING_PROPOSAL:
        return ConflictingProposalEvidence.decode(data)
    raise EvidenceError(f"unknown evidence kind {kind}")


def compute_duplicate_vote_evidence(vote_1: Vote, vote_2: Vote) -> DuplicateVoteEvidence:
    """Return the evidence of two conflicting votes, in canonical order."""
    a, b = sorted((vote_1, vote_2), key=lambda v: v.encode())
    evidence = DuplicateVoteEvidence(a, b)
    evidence.validate_basic()
    return evidence


def compute_conflicting_proposal_evidence(
    proposal_1: Proposal, proposal_2: Proposal
) -> ConflictingProposalEvidence:
    """Return the evidence of two conflicting proposals, in canonical order."""
    a, b = sorted((proposal_1, proposal_2), key=lambda p: p.encode())
    evidence = ConflictingProposalEvidence(a, b)
    evidence.validate_basic()
    return evidence


def evidence_hash(evidence: Evidence) -> bytes:
    """Return the hash identifying a fault."""
    return evidence.evidence_hash()


def verify_evidence(
    chain_id: str,
    evidence: Evidence,
    validator_set_at_height: ValidatorSet,
    current_height: int,
    max_age_blocks: int,
    *,
    verify: SignatureVerifier = verify_signature,
) -> None:
    """Raise EvidenceError unless ``evidence`` proves a fault that may still be punished.

    Checks: well formed and truly conflicting; the fault's height is not in the
    future and at most ``max_age_blocks`` behind ``current_height``; the
    validator was in ``validator_set_at_height`` (the set of the fault's
    height); both signatures verify under its key.
    """
    inner = evidence
    if not isinstance(inner, DuplicateVoteEvidence | ConflictingProposalEvidence):
        raise EvidenceError(f"not evidence: {type(inner).__name__}")
    inner.validate_basic()
    if inner.height > current_height:
        raise EvidenceError(
            f"evidence height {inner.height} is above the current height {current_height}"
        )
    if current_height - inner.height > max_age_blocks:
        raise EvidenceError(
            f"evidence from height {inner.height} expired: older than {max_age_blocks} blocks "
            f"at height {current_height}"
        )
    member = validator_set_at_height.get_by_address(inner.validator)
    if member is None:
        raise EvidenceError(
            f"validator {inner.validator.hex()} was not in the set at height {inner.height}"
        )
    if isinstance(inner, DuplicateVoteEvidence):
        pairs = [
            (sign_bytes(Domain.VOTE, chain_id, v.sign_payload()), v.signature)
            for v in (inner.vote_a, inner.vote_b)
        ]
    else:
        pairs = [
            (sign_bytes(Domain.PROPOSAL, chain_id, p.sign_payload()), p.signature)
            for p in (inner.proposal_a, inner.proposal_b)
        ]
    for message, signature in pairs:
        try:
            verify(member.pubkey, message, signature)
        except InvalidSignature as exc:
            raise EvidenceError(
                f"evidence against {inner.validator.hex()} at height {inner.height}: "
                "a signature does not verify"
            ) from exc
