"""Test-only misbehaviour of the consensus engine, switched on by ``cstake start --byzantine``.

Faults live outside the driver: each wraps one of the driver's collaborators
and changes what leaves the node, so the driver that ships has no byzantine
branch. The daemon refuses every mode unless the chain's genesis sets
``params.allow_test_faults``.

- ``double-sign``: ``DoubleSigningNetwork`` sends, next to each of our
  prevotes, a second prevote for another block signed with the raw consensus
  key, bypassing the persistent signer's protection. Honest peers must turn
  the pair into duplicate-vote evidence and commit it.
- ``time-warp``: ``TimeWarpProposer`` dates the blocks we propose one hour
  ahead of our clock instead of the BFT time of their last commit, and
  ``TimeWarpSigner`` dates every vote we sign one hour ahead. Honest peers
  must find those blocks invalid (prevote nil, move to the next round), and
  our votes' timestamps must not move the chain's time while we hold less
  than 1/3 of the power.
"""

from __future__ import annotations

import dataclasses
import logging

from consensus.blocks import Block
from consensus.crypto import Domain, PrivateKey
from consensus.evidence import Evidence
from consensus.hashing import hash32
from consensus.state import State
from consensus.votes import Commit, Proposal, Vote, VoteType
from node.engine.driver import Network
from node.engine.proposer import BlockProposer
from node.engine.signer import PersistentSigner

log = logging.getLogger(__name__)

#: How far ahead of its clock the ``time-warp`` mode dates its blocks and votes.
TIME_WARP_MS = 3_600_000


def sign_conflicting_vote(vote: Vote, block_hash: bytes, key: PrivateKey, chain_id: str) -> Vote:
    """Return ``vote`` for ``block_hash`` instead, signed with ``key`` without any protection."""
    other = dataclasses.replace(vote, block_hash=block_hash, signature=b"")
    return other.with_signature(key.sign(Domain.VOTE, chain_id, other.sign_payload()))


def sign_conflicting_proposal(proposal: Proposal, block_hash: bytes, key: PrivateKey, chain_id: str) -> Proposal:
    """Return ``proposal`` of ``block_hash`` instead, signed with ``key`` without any protection."""
    other = dataclasses.replace(proposal, block_hash=block_hash, signature=b"")
    return other.with_signature(key.sign(Domain.PROPOSAL, chain_id, other.sign_payload()))


class DoubleSigningNetwork:
    """The ``double-sign`` mode: every prevote we send goes out with a conflicting twin."""

    def __init__(self, inner: Network, key: PrivateKey, chain_id: str) -> None:
        self.inner = inner
        self.key = key
        self.chain_id = chain_id
        self._done: set[tuple[int, int]] = set()

    def broadcast_proposal(self, proposal: Proposal, block: Block) -> None:
        self.inner.broadcast_proposal(proposal, block)

    def broadcast_vote(self, vote: Vote) -> None:
        self.inner.broadcast_vote(vote)
        if vote.vote_type != VoteType.PREVOTE or (vote.height, vote.round) in self._done:
            return
        self._done = {k for k in self._done if k[0] >= vote.height}
        self._done.add((vote.height, vote.round))
        other = hash32(b"double-sign" + vote.block_hash + vote.height.to_bytes(8, "big"))
        log.warning("test fault: signed a conflicting prevote at height %d round %d", vote.height, vote.round)
        self.inner.broadcast_vote(sign_conflicting_vote(vote, other, self.key, self.chain_id))

    def broadcast_evidence(self, evidence: Evidence) -> None:
        self.inner.broadcast_evidence(evidence)

    def report_peer(self, peer: str, reason: str) -> None:
        self.inner.report_peer(peer, reason)


class TimeWarpProposer(BlockProposer):
    """The ``time-warp`` mode's block builder: our blocks are dated an hour ahead of our clock."""

    def compute_time(self, head_state: State, last_commit: Commit | None, now_ms: int) -> int:
        log.warning("test fault: dating the block we propose %d ms ahead of the clock", TIME_WARP_MS)
        return now_ms + TIME_WARP_MS


class TimeWarpSigner(PersistentSigner):
    """The ``time-warp`` mode's signer: every vote is dated an hour later than asked."""

    def sign_vote(self, vote: Vote) -> Vote:
        return super().sign_vote(vote.with_timestamp(vote.timestamp_ms + TIME_WARP_MS))
