"""The round state: everything the round machine knows about the current height.

It is an immutable value. The handlers in ``machine`` take one and return the
next; a driver that replays the same inputs with the same times gets an equal
state, which is what lets a restarted validator resume from its WAL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from consensus.bft.effects import Step
from consensus.bft.vote_set import VoteSet
from consensus.validator_set import ValidatorSet
from consensus.votes import NIL_HASH, Proposal

_NO_PROPOSALS: Final[Mapping[int, ProposalRecord]] = MappingProxyType({})
_NO_OTHER_PROPOSALS: Final[Mapping[tuple[int, bytes], ProposalRecord]] = MappingProxyType({})
_NO_VOTES: Final[Mapping[tuple[int, int], VoteSet]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    """A proposal received for some round, with the driver's verdict on its block."""

    proposal: Proposal
    block_valid: bool
    """Whether the driver found the proposed block valid against the state."""


@dataclass(frozen=True, slots=True)
class RoundState:
    """The consensus state of one height (the paper's per-process variables)."""

    height: int
    """Height being decided."""
    validator_set: ValidatorSet
    """Validators of this height, with the priorities of round 0."""
    round: int = 0
    """Current round."""
    step: int = Step.PROPOSE
    """Current step of the round (``Step``)."""
    started: bool = False
    """Whether round 0 has been entered."""
    locked_round: int = -1
    """Round of the lock, -1 when unlocked."""
    locked_value: bytes = NIL_HASH
    """Block hash locked on (empty when unlocked)."""
    valid_round: int = -1
    """Last round in which a block got +2/3 prevotes, -1 for none."""
    valid_value: bytes = NIL_HASH
    """That block's hash (empty for none); a proposer re-proposes it."""
    proposals: Mapping[int, ProposalRecord] = field(default_factory=lambda: _NO_PROPOSALS)
    """The first valid proposal of each round (the one prevoted on)."""
    other_proposals: Mapping[tuple[int, bytes], ProposalRecord] = field(
        default_factory=lambda: _NO_OTHER_PROPOSALS
    )
    """Later proposals of a different block by an equivocating proposer, by (round, block hash).

    The rest of the network may have decided one of them; without it this node
    could never follow that decision."""
    votes: Mapping[tuple[int, int], VoteSet] = field(default_factory=lambda: _NO_VOTES)
    """Vote sets by (round, vote type)."""
    prevote_timeout_armed: bool = False
    """The prevote timeout of the current round was scheduled (+2/3 prevotes for anything)."""
    precommit_timeout_armed: bool = False
    """The precommit timeout of the current round was scheduled (+2/3 precommits for anything)."""
    valid_updated: bool = False
    """The current round already saw +2/3 prevotes for its proposal (lock / valid update done)."""
    proposal_requested: bool = False
    """We are this round's proposer and have asked for, or signed, a proposal."""
    decided_value: bytes = NIL_HASH
    """Hash of the decided block (empty until decided)."""
    decided_round: int = -1
    """Round of the decision, -1 until decided."""
    reported_evidence: frozenset[bytes] = frozenset()
    """Hashes of evidence already reported, so each fault is reported once."""

    def is_decided(self) -> bool:
        """Return True once the height is decided."""
        return self.decided_round >= 0

    def get_round_proposals(self, round_: int) -> tuple[ProposalRecord, ...]:
        """Return every proposal of ``round_``: the first, then any conflicting ones."""
        first = self.proposals.get(round_)
        if first is None:
            return ()
        others = tuple(rec for (r, _), rec in self.other_proposals.items() if r == round_)
        return (first, *others)

    def get_proposal_for(self, round_: int, block_hash: bytes) -> ProposalRecord | None:
        """Return the proposal of ``block_hash`` in ``round_``, if one arrived."""
        first = self.proposals.get(round_)
        if first is not None and first.proposal.block_hash == block_hash:
            return first
        return self.other_proposals.get((round_, block_hash))

    def get_vote_set(self, round_: int, vote_type: int) -> VoteSet:
        """Return the votes of (round, type), an empty set if none arrived."""
        vs = self.votes.get((round_, vote_type))
        return vs if vs is not None else VoteSet(self.height, round_, vote_type)


def new_round_state(height: int, validator_set: ValidatorSet) -> RoundState:
    """Return the state of a height not yet started (call ``on_start`` next)."""
    return RoundState(height=height, validator_set=validator_set)
