"""Vote sets: the votes of one (height, round, type), tallied by voting power.

A ``VoteSet`` is immutable; adding a vote returns a new set. It keeps the
first vote of each validator; a second vote by the same validator for a
different block is not counted but returned as a conflict, which is the raw
material of duplicate-vote evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from consensus.validator_set import ValidatorSet
from consensus.votes import NIL_HASH, Vote

_EMPTY: Final[Mapping[bytes, Vote]] = MappingProxyType({})
_EMPTY_POWER: Final[Mapping[bytes, int]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class VoteSet:
    """The votes for one height, round and vote type, weighted by power."""

    height: int
    round: int
    vote_type: int
    votes: Mapping[bytes, Vote] = field(default=_EMPTY)
    """First vote of each validator, in arrival order."""
    power_by_hash: Mapping[bytes, int] = field(default=_EMPTY_POWER)
    """Power voting for each block hash (``NIL_HASH`` for nil), in first-seen order."""
    power: int = 0
    """Total power of all counted votes."""

    def get_power_for(self, block_hash: bytes) -> int:
        """Return the power voting for ``block_hash``."""
        return self.power_by_hash.get(block_hash, 0)

    def get_votes_for(self, block_hash: bytes) -> tuple[Vote, ...]:
        """Return the votes for ``block_hash``, in arrival order."""
        return tuple(v for v in self.votes.values() if v.block_hash == block_hash)


def add_vote(vote_set: VoteSet, vote: Vote, power: int) -> tuple[VoteSet, Vote | None]:
    """Return the set with ``vote`` (of a validator with ``power``) counted.

    The second value is the validator's earlier vote when the two conflict
    (then the set is unchanged). A repeat of a vote for the same block is ignored.
    """
    existing = vote_set.votes.get(vote.validator)
    if existing is not None:
        if existing.block_hash != vote.block_hash:
            return vote_set, existing
        return vote_set, None
    votes = dict(vote_set.votes)
    votes[vote.validator] = vote
    tally = dict(vote_set.power_by_hash)
    tally[vote.block_hash] = tally.get(vote.block_hash, 0) + power
    return (
        VoteSet(
            vote_set.height,
            vote_set.round,
            vote_set.vote_type,
            MappingProxyType(votes),
            MappingProxyType(tally),
            vote_set.power + power,
        ),
        None,
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
