"""Blocks and headers.

A block's hash is SHA-256 of its canonical header. The header commits to the
block's contents through Merkle roots of the transaction ids, the attestations
and the evidence, and to the previous block through ``parent_hash`` and the
hash of ``last_commit``. ``state_root`` is the authenticated root of the state
after executing the previous block (as CometBFT's app hash): a proposer can
build a block without executing it first, and every node checks the root it
computed at the last commit against the header.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.codec import Encodable
from consensus.crypto import ADDRESS_LEN
from consensus.errors import ValidationError
from consensus.hashing import HASH_LEN, ZERO_HASH, hash32, merkle_root
from consensus.txs import validate_chain_id
from consensus.votes import Commit

#: Evidence kinds carried in blocks.
EVIDENCE_DUPLICATE_VOTE = 1
EVIDENCE_CONFLICTING_PROPOSAL = 2


@dataclass(frozen=True, slots=True)
class Header(Encodable):
    """Everything a block commits to."""

    chain_id: str
    height: int
    #: Consensus round in which the block was proposed.
    round: int
    #: Proposer's block time, milliseconds since the Unix epoch.
    time_ms: int
    #: Address of the proposer.
    proposer: bytes
    #: Hash of the previous block (zero at height 1).
    parent_hash: bytes
    #: Hash of the previous block's commit (zero at height 1).
    last_commit_hash: bytes
    #: Merkle root of the transaction ids.
    txs_hash: bytes
    #: Merkle root of the attestations.
    attestations_hash: bytes
    #: Merkle root of the evidence.
    evidence_hash: bytes
    #: State root after executing the previous block.
    state_root: bytes
    #: Hash of the validator set that decides this height.
    validators_hash: bytes

    def hash(self) -> bytes:
        """Return the block hash."""
        return hash32(self.encode())

    def validate_basic(self) -> None:
        """Raise ValidationError unless the header is well formed."""
        validate_chain_id(self.chain_id)
        if self.height < 1:
            raise ValidationError("header.height starts at 1")
        if self.round < 0:
            raise ValidationError("header.round must not be negative")
        if len(self.proposer) != ADDRESS_LEN:
            raise ValidationError("header.proposer must be a 20-byte address")
        for name in (
            "parent_hash",
            "last_commit_hash",
            "txs_hash",
            "attestations_hash",
            "evidence_hash",
            "state_root",
            "validators_hash",
        ):
            if len(getattr(self, name)) != HASH_LEN:
                raise ValidationError(f"header.{name} must be {HASH_LEN} bytes")
        if self.height == 1 and (self.parent_hash != ZERO_HASH or self.last_commit_hash != ZERO_HASH):
            raise ValidationError("the first block has zero parent and last-commit hashes")


@dataclass(frozen=True, slots=True)
class EvidenceItem(Encodable):
    """Evidence of a double-sign as carried in a block."""

    #: EVIDENCE_DUPLICATE_VOTE or EVIDENCE_CONFLICTING_PROPOSAL.
    kind: int
    #: Canonical encoding of the evidence object.
    data: bytes

    def hash(self) -> bytes:
        return hash32(self.encode())


#: Most evidence items one block may carry (a consensus rule: a proposer cannot
#: make every node verify an unbounded list).
MAX_BLOCK_EVIDENCE = 16

#: The latest representable block time: 9999-12-31T23:59:59.999Z. A block dated
#: later is invalid, so no proposer can move the chain's clock to where later
#: headers could no longer be encoded or compared.
MAX_BLOCK_TIME_MS = 253_402_300_799_999


@dataclass(frozen=True, slots=True)
class Block(Encodable):
    """A block: header, contents and the commit of the previous block."""

    MAX_BYTES = 64 << 20
    # Densest valid content: commit signatures, about 22 bytes per object; txs are far larger.
    OBJECT_BYTES = 16

    header: Header
    #: Signed transactions in wire form.
    txs: tuple[bytes, ...]
    #: Encoded compute attestations.
    attestations: tuple[bytes, ...]
    evidence: tuple[EvidenceItem, ...]
    #: Commit of the previous block (None at height 1).
    last_commit: Commit | None

    def hash(self) -> bytes:
        return self.header.hash()

    def validate_basic(self) -> None:
        """Raise ValidationError unless the block is well formed and its hashes match."""
        self.header.validate_basic()
        h = self.header
        if (self.last_commit is None) != (h.height == 1):
            raise ValidationError("every block but the first carries the previous block's commit")
        if self.last_commit is not None:
            self.last_commit.validate_basic()
            if self.last_commit.height != h.height - 1:
                raise ValidationError("last_commit is not for the previous height")
            if self.last_commit.block_hash != h.parent_hash:
                raise ValidationError("last_commit is not for the parent block")
            if hash32(self.last_commit.encode()) != h.last_commit_hash:
                raise ValidationError("header.last_commit_hash does not match last_commit")
        if compute_txs_hash(self.txs) != h.txs_hash:
            raise ValidationError("header.txs_hash does not match the transactions")
        if merkle_root([hash32(a) for a in self.attestations]) != h.attestations_hash:
            raise ValidationError("header.attestations_hash does not match the attestations")
        if merkle_root([e.hash() for e in self.evidence]) != h.evidence_hash:
            raise ValidationError("header.evidence_hash does not match the evidence")


def compute_txs_hash(txs: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Return the Merkle root of the transaction ids."""
    return merkle_root([hash32(t) for t in txs])


def compute_commit_hash(commit: Commit | None) -> bytes:
    """Return the hash of a commit as a header stores it (zero for none)."""
    return ZERO_HASH if commit is None else hash32(commit.encode())


def make_block(
    *,
    chain_id: str,
    height: int,
    round: int,
    time_ms: int,
    proposer: bytes,
    parent_hash: bytes,
    last_commit: Commit | None,
    txs: tuple[bytes, ...],
    attestations: tuple[bytes, ...],
    evidence: tuple[EvidenceItem, ...],
    state_root: bytes,
    validators_hash: bytes,
) -> Block:
    """Assemble a block and its header hashes."""
    header = Header(
        chain_id=chain_id,
        height=height,
        round=round,
        time_ms=time_ms,
        proposer=proposer,
        parent_hash=parent_hash,
        last_commit_hash=compute_commit_hash(last_commit),
        txs_hash=compute_txs_hash(txs),
        attestations_hash=merkle_root([hash32(a) for a in attestations]),
        evidence_hash=merkle_root([e.hash() for e in evidence]),
        state_root=state_root,
        validators_hash=validators_hash,
    )
    return Block(header, txs, attestations, evidence, last_commit)
