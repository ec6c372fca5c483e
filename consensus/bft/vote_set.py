"""Vote sets: the votes of one (height, round, type), tallied by voting power.

A ``VoteSet`` is immutable; adding a vote returns a new set. It keeps the
first vote of each validator, and reports a later vote for a different block
as a conflict: the raw material of duplicate-vote evidence.

As in the paper, "+2/3 prevotes for v" means validators holding more than two
thirds of the power signed a prevote for v, so an equivocator's second vote
also counts for its block (quorum intersection still holds: two +2/3 sets
share more than 1/3 of the power, hence an honest validator, and honest
validators never equivocate). Without this, honest nodes that saw different
halves of an equivocation could never see the same polka and would stall.
Only ``MAX_VOTES_PER_VALIDATOR`` votes per validator are kept, so a faulty
validator signing many blocks cannot exhaust memory; power "for anything"
counts each validator once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from consensus.validator_set import ValidatorSet
from consensus.votes import NIL_HASH, Vote

_EMPTY: Final[Mapping[bytes, Vote]] = MappingProxyType({})
_EMPTY_EXTRA: Final[Mapping[tuple[bytes, bytes], Vote]] = MappingProxyType({})
#: Votes kept per validator in one set: its first, and one conflicting vote.
MAX_VOTES_PER_VALIDATOR: Final = 2
_EMPTY_POWER: Final[Mapping[bytes, int]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class VoteSet:
    """The votes for one height, round and vote type, weighted by power."""

    height: int
    round: int
    vote_type: int
    votes: Mapping[bytes, Vote] = field(default_factory=lambda: _EMPTY)
    """First vote of each validator, in arrival order."""
    power_by_hash: Mapping[bytes, int] = field(default_factory=lambda: _EMPTY_POWER)
    """Power voting for each block hash (``NIL_HASH`` for nil), in first-seen order."""
    power: int = 0
    """Total power of the validators that voted (each counted once)."""
    extra_votes: Mapping[tuple[bytes, bytes], Vote] = field(default_factory=lambda: _EMPTY_EXTRA)
    """Later votes of equivocating validators, by (validator, block hash)."""

    def get_power_for(self, block_hash: bytes) -> int:
        """Return the power voting for ``block_hash``."""
        return self.power_by_hash.get(block_hash, 0)

    def get_votes_for(self, block_hash: bytes) -> tuple[Vote, ...]:
        """Return the votes for ``block_hash`` (one per validator), in arrival order."""
        first = [v for v in self.votes.values() if v.block_hash == block_hash]
        extra = [v for (_, h), v in self.extra_votes.items() if h == block_hash]
        return (*first, *extra)


def add_vote(vote_set: VoteSet, vote: Vote, power: int) -> tuple[VoteSet, Vote | None]:
    """Return the set with ``vote`` (of a validator with ``power``) counted.

    The second value is the validator's first vote when ``vote`` conflicts
    with it (evidence material). A repeat leaves the set unchanged; so does a
    conflicting vote beyond ``MAX_VOTES_PER_VALIDATOR``.
    """
    existing = vote_set.votes.get(vote.validator)
    tally = dict(vote_set.power_by_hash)
    tally[vote.block_hash] = tally.get(vote.block_hash, 0) + power
    if existing is None:
        votes = dict(vote_set.votes)
        votes[vote.validator] = vote
        return (
            VoteSet(
                vote_set.height,
                vote_set.round,
                vote_set.vote_type,
                MappingProxyType(votes),
                MappingProxyType(tally),
                vote_set.power + power,
                vote_set.extra_votes,
            ),
            None,
        )
    if existing.block_hash == vote.block_hash:
        return vote_set, None
    key = (vote.validator, vote.block_hash)
    held = 1 + sum(1 for (a, _) in vote_set.extra_votes if a == vote.validator)
    if key in vote_set.extra_votes or held >= MAX_VOTES_PER_VALIDATOR:
        return vote_set, existing
    extra = dict(vote_set.extra_votes)
    extra[key] = vote
    return (
        VoteSet(
            vote_set.height,
            vote_set.round,
            vote_set.vote_type,
            vote_set.votes,
            MappingProxyType(tally),
            vote_set.power,
            MappingProxyType(extra),
        ),
        existing,
    )


def get_two_thirds_majority(vote_set: VoteSet, validator_set: ValidatorSet) -> bytes | None:
    """Return the block hash (``NIL_HASH`` for nil) with more than 2/3 of the power, or None."""
    for block_hash, power in vote_set.power_by_hash.items():
        if validator_set.has_two_thirds(power):
            return block_hash
    return None


def has_two_thirds_any(vote_set: VoteSet, validator_set: ValidatorSet) -> bool:
    """Return True when votes for anything (blocks and nil) hold more than 2/3 of the power."""
    return validator_set.has_two_thirds(vote_set.power)


def is_nil_majority(vote_set: VoteSet, validator_set: ValidatorSet) -> bool:
    """Return True when more than 2/3 of the power voted nil."""
    return validator_set.has_two_thirds(vote_set.get_power_for(NIL_HASH))
