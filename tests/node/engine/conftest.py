"""Fixtures of the engine tests: a network adapter that only records what the driver sends."""

from __future__ import annotations

import pytest

from consensus.blocks import Block
from consensus.evidence import Evidence
from consensus.votes import Proposal, Vote


class Recorder:
    """The driver's Network, remembering what it was asked to send."""

    def __init__(self) -> None:
        self.votes: list[Vote] = []
        self.proposals: list[Proposal] = []
        self.evidence: list[Evidence] = []
        self.reports: list[tuple[str, str]] = []

    def broadcast_proposal(self, proposal: Proposal, block: Block) -> None:
        self.proposals.append(proposal)

    def broadcast_vote(self, vote: Vote) -> None:
        self.votes.append(vote)

    def broadcast_evidence(self, evidence: Evidence) -> None:
        self.evidence.append(evidence)

    def report_peer(self, peer: str, reason: str) -> None:
        self.reports.append((peer, reason))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
