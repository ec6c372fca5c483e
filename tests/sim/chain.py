"""Synthetic blocks, wire messages and WAL records of the simulation.

Blocks are deliberately simple (height, round, parent, proposer, payload,
evidence) but travel, hash and verify like real ones: commits and evidence use
the real consensus types and real Ed25519 signatures.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.codec import Encodable
from consensus.hashing import ZERO_HASH, hash32
from consensus.votes import Commit, Proposal, Vote

INVALID_PAYLOAD = b"INVALID"


@dataclass(frozen=True, slots=True)
class SimEvidence(Encodable):
    """Evidence as a block carries it: ``(kind, canonical bytes)``."""

    kind: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SimBlock(Encodable):
    height: int
    round: int
    parent_hash: bytes
    proposer: bytes
    payload: bytes
    evidence: tuple[SimEvidence, ...]

    def hash(self) -> bytes:
        return hash32(self.encode())


@dataclass(frozen=True, slots=True)
class ProposalMsg:
    proposal: Proposal
    block: SimBlock


@dataclass(frozen=True, slots=True)
class VoteMsg:
    vote: Vote


@dataclass(frozen=True, slots=True)
class StatusMsg:
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """A committed block with the proof and the proposal that decided it."""

    block: SimBlock
    commit: Commit
    proposal: Proposal
    state_hash: bytes


GENESIS_STATE = ZERO_HASH


def compute_state_hash(previous: bytes, block: SimBlock) -> bytes:
    """The simulated application state: a hash chain over committed blocks."""
    return hash32(previous + block.hash())


# --- WAL records -------------------------------------------------------------

WAL_START = 1
WAL_PROPOSAL = 2
WAL_VOTE = 3
WAL_TIMEOUT = 4
WAL_BLOCK_BUILT = 5
WAL_OWN_PROPOSAL = 6
WAL_OWN_VOTE = 7


@dataclass(frozen=True, slots=True)
class WalEntry(Encodable):
    """One consensus input as the driver logs it before handling it."""

    kind: int
    now_ms: int
    height: int
    round: int = 0
    step: int = 0
    data: bytes = b""
    """Encoded vote, proposal or block, by kind."""
    extra: bytes = b""
    """The block of a proposal."""
    flag: int = 0
    """The block verdict of a proposal (1 valid)."""
