"""The evidence pool: equivocations seen by this node, waiting to be put in a block.

The round machine detects conflicts among the votes of its current height; the
pool also watches verified votes and proposals of nearby heights (a second,
conflicting vote may arrive after this node moved on), keeps each fault once
by its evidence hash, hands pending evidence to the proposer, and forgets it
once a committed block carries it or it expires.

Only verified messages may enter: a forged vote or proposal remembered here
would turn an honest validator's real one into "evidence" that no block can
carry. The owner passes ``is_authentic`` (the driver checks the signature
against the set of the message's height, through its signature cache), and
the pool consults it before it remembers a vote or proposal or takes a piece
of evidence; without it, callers must pass verified messages only.

It is a mutable store (one per node, owned by the consensus driver), but does
no I/O: every method is a plain function of its arguments and the pool.
"""

from __future__ import annotations

from collections.abc import Callable

from consensus.evidence import (
    Evidence,
    compute_conflicting_proposal_evidence,
    compute_duplicate_vote_evidence,
)
from consensus.votes import Proposal, Vote


class EvidencePool:
    """Pending and committed evidence of one node."""

    def __init__(
        self,
        max_age_blocks: int,
        watch_window: int = 4,
        *,
        is_authentic: Callable[[Vote | Proposal | Evidence], bool] | None = None,
    ) -> None:
        self.max_age_blocks = max_age_blocks
        """Evidence older than this many blocks is dropped (it could not be committed)."""
        self.watch_window = watch_window
        """Votes and proposals are remembered for this many heights below the current one."""
        self.is_authentic = is_authentic
        """Whether a message's signatures verify; what fails it never enters the pool."""
        self.refused = 0
        """Messages refused because ``is_authentic`` said no."""
        self._votes: dict[tuple[int, int, int, bytes], Vote] = {}
        self._proposals: dict[tuple[int, int, bytes], Proposal] = {}
        self._pending: dict[bytes, Evidence] = {}
        self._committed: dict[bytes, int] = {}

    def check_vote(self, vote: Vote) -> Evidence | None:
        """Remember a verified vote; return evidence when it conflicts with an earlier one.

        The evidence is returned even when it is already pending or committed
        (this node still saw the fault itself); ``add`` it to make it pending.
        """
        if not self._admits(vote):
            return None
        key = (vote.height, vote.round, vote.vote_type, vote.validator)
        first = self._votes.get(key)
        if first is None:
            self._votes[key] = vote
            return None
        if first.block_hash == vote.block_hash:
            return None
        return compute_duplicate_vote_evidence(first, vote)

    def check_proposal(self, proposal: Proposal) -> Evidence | None:
        """Remember a verified proposal; return evidence when it conflicts with an earlier one.

        As for votes, ``add`` the evidence to make it pending.
        """
        if not self._admits(proposal):
            return None
        key = (proposal.height, proposal.round, proposal.proposer)
        first = self._proposals.get(key)
        if first is None:
            self._proposals[key] = proposal
            return None
        if first.block_hash == proposal.block_hash:
            return None
        return compute_conflicting_proposal_evidence(first, proposal)

    def add(self, evidence: Evidence) -> bool:
        """Add verified evidence; return True when it is new (neither pending nor committed)."""
        digest = evidence.evidence_hash()
        if digest in self._pending or digest in self._committed:
            return False
        if not self._admits(evidence):
            return False
        self._pending[digest] = evidence
        return True

    def _admits(self, message: Vote | Proposal | Evidence) -> bool:
        if self.is_authentic is None or self.is_authentic(message):
            return True
        self.refused += 1
        return False

    def is_committed(self, digest: bytes) -> bool:
        """Return True when a committed block already carried the evidence ``digest``."""
        return digest in self._committed

    def is_known(self, digest: bytes) -> bool:
        """Return True when the evidence ``digest`` is pending or committed."""
        return digest in self._pending or digest in self._committed

    def get_pending(self, current_height: int, limit: int) -> tuple[Evidence, ...]:
        """Return up to ``limit`` pending pieces of evidence still young enough, oldest first."""
        fresh = [
            e for e in self._pending.values() if current_height - e.height <= self.max_age_blocks
        ]
        return tuple(fresh[:limit])

    def mark_committed(self, height: int, evidence: tuple[Evidence, ...]) -> None:
        """Record that the block of ``height`` carried ``evidence``, and prune old entries."""
        for e in evidence:
            digest = e.evidence_hash()
            self._pending.pop(digest, None)
            self._committed[digest] = height
        self.prune(height + 1)

    def prune(self, current_height: int) -> None:
        """Forget votes and proposals outside the window and evidence past its age."""
        low = current_height - self.watch_window
        self._votes = {k: v for k, v in self._votes.items() if k[0] >= low}
        self._proposals = {k: p for k, p in self._proposals.items() if k[0] >= low}
        self._pending = {
            d: e
            for d, e in self._pending.items()
            if current_height - e.height <= self.max_age_blocks
        }
        self._committed = {
            d: h for d, h in self._committed.items() if current_height - h <= self.max_age_blocks
        }
