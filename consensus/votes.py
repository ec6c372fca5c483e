"""Votes, proposals and commits: the signed messages of the BFT round machine.

A validator signs a ``Proposal`` (this block hash is my proposal for height h,
round r) and ``Vote`` s (a prevote or precommit for a block hash, or for nil,
which is the empty hash). A ``Commit`` is the proof that a block is final: the
precommits of more than two thirds of the voting power for one block at one
height and round. A ``CommitSig`` keeps only what differs between those
precommits (the signer, its timestamp, its signature), so anyone can rebuild
each exact precommit and check its signature against the validator set.

Signatures cover ``sign_bytes(Domain.VOTE | Domain.PROPOSAL, chain_id,
sign_payload())``, where the payload is the canonical encoding of every field
but the signature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from consensus.codec import Encodable, pack_raw
from consensus.crypto import (
    ADDRESS_LEN,
    SIGNATURE_LEN,
    Domain,
    sign_bytes,
    verify_signature,
)
from consensus.errors import ConsensusError, InvalidSignature, ValidationError
from consensus.hashing import HASH_LEN
from consensus.validator_set import MAX_ROUND as MAX_ROUND  # messages share the round cap

if TYPE_CHECKING:
    from consensus.validator_set import ValidatorSet
#: The block hash of a vote for nil (no block).
NIL_HASH: Final = b""
#: Largest height or round accepted (keeps arithmetic far from the 64-bit edge).
MAX_HEIGHT: Final = (1 << 62) - 1
MAX_TIMESTAMP_MS: Final = (1 << 62) - 1

#: A signature checker ``(pubkey, message, signature) -> None`` raising InvalidSignature.
SignatureVerifier = Callable[[bytes, bytes, bytes], None]


class VoteType:
    """The two kinds of vote, encoded as plain integers."""

    PREVOTE: Final = 1
    PRECOMMIT: Final = 2


VOTE_TYPES: Final = (VoteType.PREVOTE, VoteType.PRECOMMIT)


class VoteError(ValidationError):
    """A vote, proposal or commit fails its stateless or stateful checks."""


class CommitError(ConsensusError):
    """A commit does not prove finality against the given validator set."""


def _check_height_round(kind: str, height: int, round_: int) -> None:
    if not 1 <= height <= MAX_HEIGHT:
        raise VoteError(f"{kind}: height {height} is outside [1, {MAX_HEIGHT}]")
    if not 0 <= round_ <= MAX_ROUND:
        raise VoteError(f"{kind}: round {round_} is outside [0, {MAX_ROUND}]")


def _check_block_hash(kind: str, block_hash: bytes, *, allow_nil: bool) -> None:
    if allow_nil and block_hash == NIL_HASH:
        return
    if len(block_hash) != HASH_LEN:
        raise VoteError(f"{kind}: block hash must be {HASH_LEN} bytes, got {len(block_hash)}")


def _check_address(kind: str, address: bytes) -> None:
    if len(address) != ADDRESS_LEN:
        raise VoteError(f"{kind}: address must be {ADDRESS_LEN} bytes, got {len(address)}")


def _check_timestamp(kind: str, timestamp_ms: int) -> None:
    if not 0 <= timestamp_ms <= MAX_TIMESTAMP_MS:
        raise VoteError(f"{kind}: timestamp {timestamp_ms} ms is out of range")


def _check_signature(kind: str, signature: bytes) -> None:
    if len(signature) != SIGNATURE_LEN:
        raise VoteError(f"{kind}: signature must be {SIGNATURE_LEN} bytes, got {len(signature)}")


@dataclass(frozen=True, slots=True)
class Vote(Encodable):
    """A signed prevote or precommit by one validator."""

    MAX_BYTES = 512

    height: int
    """Height the vote is for (first block is height 1)."""
    round: int
    """Round within the height (0, 1, ...)."""
    vote_type: int
    """``VoteType.PREVOTE`` or ``VoteType.PRECOMMIT``."""
    block_hash: bytes
    """Hash of the block voted for, or ``NIL_HASH`` (empty) for nil."""
    validator: bytes
    """20-byte address of the voting validator."""
    timestamp_ms: int
    """The voter's clock when it voted, in milliseconds since the Unix epoch."""
    signature: bytes = b""
    """Ed25519 signature over the sign payload (empty while unsigned)."""

    def is_nil(self) -> bool:
        """Return True when this is a vote for nil."""
        return self.block_hash == NIL_HASH

    def sign_payload(self) -> bytes:
        """Return the canonical bytes the signature covers (every field but the signature)."""
        return pack_raw(
            [
                self.height,
                self.round,
                self.vote_type,
                self.block_hash,
                self.validator,
                self.timestamp_ms,
            ]
        )

    def sign_bytes(self, chain_id: str) -> bytes:
        """Return the exact message an Ed25519 signature of this vote signs."""
        return sign_bytes(Domain.VOTE, chain_id, self.sign_payload())

    def with_signature(self, signature: bytes) -> Vote:
        """Return this vote carrying ``signature``."""
        return replace(self, signature=signature)

    def with_timestamp(self, timestamp_ms: int) -> Vote:
        """Return this vote dated ``timestamp_ms``, unsigned (the signature covers the time)."""
        return replace(self, timestamp_ms=timestamp_ms, signature=b"")

    def validate_basic(self) -> None:
        """Raise VoteError unless the vote is well formed (no state needed)."""
        _check_height_round("vote", self.height, self.round)
        if self.vote_type not in VOTE_TYPES:
            raise VoteError(f"vote: unknown vote type {self.vote_type}")
        _check_block_hash("vote", self.block_hash, allow_nil=True)
        _check_address("vote", self.validator)
        _check_timestamp("vote", self.timestamp_ms)
        _check_signature("vote", self.signature)


@dataclass(frozen=True, slots=True)
class Proposal(Encodable):
    """A proposer's signed statement: this block is my proposal for (height, round)."""

    MAX_BYTES = 512

    height: int
    """Height of the proposed block."""
    round: int
    """Round in which it is proposed."""
    pol_round: int
    """Round of the proof of lock the proposer re-proposes from, or -1 for none."""
    block_hash: bytes
    """Hash of the proposed block (never nil)."""
    proposer: bytes
    """20-byte address of the proposer."""
    timestamp_ms: int
    """The proposer's clock when it proposed, in milliseconds since the Unix epoch."""
    signature: bytes = b""
    """Ed25519 signature over the sign payload (empty while unsigned)."""

    def sign_payload(self) -> bytes:
        """Return the canonical bytes the signature covers (every field but the signature)."""
        return pack_raw(
            [
                self.height,
                self.round,
                self.pol_round,
                self.block_hash,
                self.proposer,
                self.timestamp_ms,
            ]
        )

    def sign_bytes(self, chain_id: str) -> bytes:
        """Return the exact message an Ed25519 signature of this proposal signs."""
        return sign_bytes(Domain.PROPOSAL, chain_id, self.sign_payload())

    def with_signature(self, signature: bytes) -> Proposal:
        """Return this proposal carrying ``signature``."""
        return replace(self, signature=signature)

    def validate_basic(self) -> None:
        """Raise VoteError unless the proposal is well formed (no state needed)."""
        _check_height_round("proposal", self.height, self.round)
        # A proof of lock comes from an earlier round of the same height.
        if not -1 <= self.pol_round < self.round:
            raise VoteError(
                f"proposal: pol_round {self.pol_round} must be -1 or below round {self.round}"
            )
        _check_block_hash("proposal", self.block_hash, allow_nil=False)
        _check_address("proposal", self.proposer)
        _check_timestamp("proposal", self.timestamp_ms)
        _check_signature("proposal", self.signature)


@dataclass(frozen=True, slots=True)
class CommitSig(Encodable):
    """One precommit of a commit, reduced to what differs between precommits."""

    validator: bytes
    """20-byte address of the signer."""
    timestamp_ms: int
    """Timestamp of its precommit."""
    signature: bytes
    """Its signature over the rebuilt precommit."""


@dataclass(frozen=True, slots=True)
class Commit(Encodable):
    """Proof that a block is final: +2/3 of the power precommitted it in one round."""

    # Each signature entry is about 22 bytes per object (address, time, 64-byte signature).
    OBJECT_BYTES = 16

    height: int
    """Height of the committed block."""
    round: int
    """Round whose precommits form the commit."""
    block_hash: bytes
    """Hash of the committed block."""
    signatures: tuple[CommitSig, ...]
    """Precommits for the block, sorted by validator address, one per validator."""

    def to_vote(self, sig: CommitSig) -> Vote:
        """Rebuild the exact precommit that ``sig`` signed."""
        return Vote(
            height=self.height,
            round=self.round,
            vote_type=VoteType.PRECOMMIT,
            block_hash=self.block_hash,
            validator=sig.validator,
            timestamp_ms=sig.timestamp_ms,
            signature=sig.signature,
        )

    def votes(self) -> tuple[Vote, ...]:
        """Return every precommit of the commit, rebuilt."""
        return tuple(self.to_vote(s) for s in self.signatures)

    def validate_basic(self) -> None:
        """Raise VoteError unless the commit is well formed (no state needed)."""
        _check_height_round("commit", self.height, self.round)
        _check_block_hash("commit", self.block_hash, allow_nil=False)
        if not self.signatures:
            raise VoteError("commit: no signatures")
        previous = b""
        for sig in self.signatures:
            _check_address("commit", sig.validator)
            _check_timestamp("commit", sig.timestamp_ms)
            _check_signature("commit", sig.signature)
            # Strictly ascending addresses: one encoding per commit, no duplicate signer.
            if sig.validator <= previous:
                raise VoteError("commit: signatures not sorted by validator or duplicated")
            previous = sig.validator


def compute_commit(height: int, round_: int, block_hash: bytes, precommits: list[Vote]) -> Commit:
    """Build the commit of ``block_hash`` from precommits for it (any order)."""
    sigs = sorted(
        (CommitSig(v.validator, v.timestamp_ms, v.signature) for v in precommits),
        key=lambda s: s.validator,
    )
    return Commit(height, round_, block_hash, tuple(sigs))


def verify_commit(
    chain_id: str,
    validator_set: ValidatorSet,
    commit: Commit,
    *,
    verify: SignatureVerifier = verify_signature,
) -> None:
    """Raise CommitError unless ``commit`` proves its block final under ``validator_set``.

    Every signature must come from a distinct member of the set and verify, and
    the signers must hold more than two thirds of the set's voting power.
    """
    try:
        commit.validate_basic()
    except VoteError as exc:
        raise CommitError(f"malformed commit: {exc}") from exc
    signed_power = 0
    for sig in commit.signatures:
        member = validator_set.get_by_address(sig.validator)
        if member is None:
            raise CommitError(
                f"commit at height {commit.height}: signer {sig.validator.hex()} "
                "is not in the validator set"
            )
        vote = commit.to_vote(sig)
        try:
            verify(member.pubkey, vote.sign_bytes(chain_id), sig.signature)
        except InvalidSignature as exc:
            raise CommitError(
                f"commit at height {commit.height}: signature of {sig.validator.hex()} "
                "does not verify"
            ) from exc
        signed_power += member.power
    total = validator_set.total_power
    if signed_power * 3 <= total * 2:
        raise CommitError(
            f"commit at height {commit.height}: signers hold {signed_power} of {total} power, "
            "not more than two thirds"
        )
