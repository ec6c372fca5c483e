"""Effects: what the round machine asks its driver to do, returned as data.

Handlers never perform I/O. They return these values; the driver carries them
out in order (signing through the persistent signer, broadcasting, arming
timers, executing a committed block) and feeds results back in as inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.evidence import Evidence
from consensus.votes import Commit, Proposal, Vote


class Step:
    """Steps of a round, in order; COMMIT means the height is decided."""

    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    COMMIT = 4


@dataclass(frozen=True, slots=True)
class RequestBlock:
    """Build a block to propose at (height, round) and answer with ``on_block_built``."""

    height: int
    round: int


@dataclass(frozen=True, slots=True)
class SignProposal:
    """Sign this proposal (through the signer) and feed it back with ``on_proposal``."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class SignVote:
    """Sign this vote (through the signer) and feed it back with ``on_vote``."""

    vote: Vote


@dataclass(frozen=True, slots=True)
class BroadcastProposal:
    """Send our signed proposal, with its block, to every peer."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class BroadcastVote:
    """Send our signed vote to every peer."""

    vote: Vote


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Call ``on_timeout(height, round, step)`` at ``at_ms`` (COMMIT: start the next height)."""

    height: int
    round: int
    step: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class CommitBlock:
    """The block is final: execute and store it with its commit."""

    height: int
    round: int
    block_hash: bytes
    commit: Commit


@dataclass(frozen=True, slots=True)
class EquivocationDetected:
    """A validator signed two conflicting messages; the evidence proves it."""

    evidence: Evidence


@dataclass(frozen=True, slots=True)
class InputRejected:
    """An input failed validation (the sender of it may be penalised)."""

    reason: str


Effect = (
    RequestBlock
    | SignProposal
    | SignVote
    | BroadcastProposal
    | BroadcastVote
    | ScheduleTimeout
    | CommitBlock
    | EquivocationDetected
    | InputRejected
)
