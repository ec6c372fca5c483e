"""BFT time: a block's time is the power-weighted median of its last commit's timestamps.

No single proposer chooses a block's time. Every honest validator stamps its
precommit for a block with ``max(its clock, block time + 1 ms)``, and the next
block's time is the weighted median of the timestamps in that block's commit,
weighted by the voting power of the signers. A commit carries more than 2/3
of the power; if the byzantine validators hold less than 1/3, they hold less
than half of any commit, so the median lies between two honest timestamps:
it is at least one honest clock reading and at most another, and it is later
than the parent block (every honest precommit for the parent is). The proposer
may choose which valid precommits to include beyond the quorum, but every
choice gives a time inside the honest range.

The first block has no last commit; its time is the genesis time plus 1 ms.
Proof-of-compute deadlines, jail terms and unbonding all rest on this time.

``validate_block`` requires a header's time to equal ``compute_block_time``
of the block's own last commit, to be later than the parent's and no later
than year 9999. The timestamps of the commit's signatures are not checked one
by one (a precommit stamped before the parent is still a valid signature in
the commit). Requiring every one to be later than the parent would let a
byzantine validator halt the chain: if the decision of a height needed its
early-stamped precommit to reach +2/3 (the other honest validators precommitted
nil in that round), no valid last commit would exist for the next height. The
honest-majority bound above already gives monotonic time; a median at or before
the parent needs faulty signers holding half of a commit, i.e. at least 1/3 of
the power, the same power that can halt the chain anyway.
"""

from __future__ import annotations

from consensus.errors import InvalidBlock
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit


def compute_median_time(commit: Commit, validator_set: ValidatorSet) -> int:
    """Return the power-weighted median of ``commit``'s timestamps under ``validator_set``.

    Ties in time are broken by address so that the result depends only on the
    commit; signers unknown to the set carry no weight (``verify_commit``
    rejects such commits before this is asked).
    """
    weighted: list[tuple[int, bytes, int]] = []
    for sig in commit.signatures:
        info = validator_set.get_by_address(sig.validator)
        if info is not None and info.power > 0:
            weighted.append((sig.timestamp_ms, sig.validator, info.power))
    if not weighted:
        raise InvalidBlock("the last commit carries no voting power to take a time from")
    weighted.sort()
    total = sum(w for _, _, w in weighted)
    # The first timestamp at which the cumulative power reaches half of the total.
    half = total // 2
    for time_ms, _, power in weighted:
        if half < power:
            return time_ms
        half -= power
    return weighted[-1][0]  # unreachable: the loop returns by the last entry


def compute_block_time(
    last_commit: Commit | None, last_validator_set: ValidatorSet | None, parent_time_ms: int
) -> int:
    """Return the time a block must carry: the median of its last commit, or parent + 1 ms at height 1."""
    if last_commit is None:
        return parent_time_ms + 1
    if last_validator_set is None:
        raise InvalidBlock("no validator set is known for the previous height")
    return compute_median_time(last_commit, last_validator_set)


def compute_vote_time(now_ms: int, block_time_ms: int) -> int:
    """Return the timestamp an honest validator puts on a vote for a block dated ``block_time_ms``."""
    return max(now_ms, block_time_ms + 1)
