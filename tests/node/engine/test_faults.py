"""The daemon's test-only fault modes: what a double-signing node sends."""

from __future__ import annotations

from consensus.crypto import Domain
from consensus.evidence import compute_duplicate_vote_evidence, verify_evidence
from consensus.hashing import hash32
from consensus.votes import Vote, VoteType
from node.engine.faults import DoubleSigningNetwork
from tests.kit.chain import TestChain
from tests.node.engine.conftest import Recorder


def test_double_sign_sends_one_conflicting_prevote_per_round_that_proves_the_fault(recorder: Recorder) -> None:
    chain = TestChain(n_validators=4)
    key, address = chain.consensus_keys[0], chain.operator_keys[0].address()
    inner = recorder
    network = DoubleSigningNetwork(inner, key, chain.chain_id)
    unsigned = Vote(3, 1, VoteType.PREVOTE, hash32(b"block"), address, 1_000, b"")
    prevote = unsigned.with_signature(key.sign(Domain.VOTE, chain.chain_id, unsigned.sign_payload()))
    network.broadcast_vote(prevote)
    network.broadcast_vote(prevote)  # a rebroadcast is not signed twice
    precommit = Vote(3, 1, VoteType.PRECOMMIT, prevote.block_hash, address, 1_000, b"")
    network.broadcast_vote(precommit)
    assert len(inner.votes) == 4
    honest, twin = inner.votes[0], inner.votes[1]
    assert honest == prevote and twin.block_hash != prevote.block_hash
    evidence = compute_duplicate_vote_evidence(honest, twin)
    verify_evidence(chain.chain_id, evidence, chain.view().get_validator_set(), 3, 100)
    assert inner.votes[2:] == [prevote, precommit]
