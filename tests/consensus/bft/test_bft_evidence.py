"""Evidence: canonical pairs, verification against the set of the fault's height, expiry, the pool."""

from __future__ import annotations

import dataclasses

import pytest

from consensus.bft.evidence_pool import EvidencePool
from consensus.errors import DecodeError
from consensus.evidence import (
    EVIDENCE_CONFLICTING_PROPOSAL,
    EVIDENCE_DUPLICATE_VOTE,
    ConflictingProposalEvidence,
    DuplicateVoteEvidence,
    EvidenceError,
    compute_conflicting_proposal_evidence,
    compute_duplicate_vote_evidence,
    decode_evidence,
    encode_evidence,
    evidence_hash,
    verify_evidence,
)
from consensus.votes import NIL_HASH, VoteType


def _pair(kit, validator=0, height=5, block_b=None):
    addr = kit.keys[validator].address()
    a = kit.vote(addr, height, 1, VoteType.PREVOTE, kit.block("a"))
    b = kit.vote(
        addr, height, 1, VoteType.PREVOTE, block_b if block_b is not None else kit.block("b")
    )
    return a, b


def test_duplicate_vote_evidence_is_canonical(kit) -> None:
    a, b = _pair(kit)
    e1 = compute_duplicate_vote_evidence(a, b)
    e2 = compute_duplicate_vote_evidence(b, a)
    assert e1 == e2
    assert evidence_hash(e1) == e2.evidence_hash()
    assert e1.height == 5 and e1.validator == kit.keys[0].address()
    kind, data = encode_evidence(e1)
    assert kind == EVIDENCE_DUPLICATE_VOTE
    assert decode_evidence(kind, data) == e1


def test_verify_duplicate_vote_evidence(kit) -> None:
    vs = kit.make_valset()
    ev = compute_duplicate_vote_evidence(*_pair(kit))
    verify_evidence(kit.chain, ev, vs, current_height=10, max_age_blocks=100)
    # A nil vote against a block vote is equivocation too.
    ev_nil = compute_duplicate_vote_evidence(*_pair(kit, block_b=NIL_HASH))
    verify_evidence(kit.chain, ev_nil, vs, current_height=5, max_age_blocks=0)


def test_invalid_evidence_expired_or_from_the_future(kit) -> None:
    vs = kit.make_valset()
    ev = compute_duplicate_vote_evidence(*_pair(kit))
    with pytest.raises(EvidenceError, match="expired"):
        verify_evidence(kit.chain, ev, vs, current_height=106, max_age_blocks=100)
    verify_evidence(kit.chain, ev, vs, current_height=105, max_age_blocks=100)
    with pytest.raises(EvidenceError, match="above the current height"):
        verify_evidence(kit.chain, ev, vs, current_height=4, max_age_blocks=100)


def test_invalid_evidence_validator_not_in_the_set(kit) -> None:
    ev = compute_duplicate_vote_evidence(*_pair(kit, validator=6))
    with pytest.raises(EvidenceError, match="not in the set"):
        verify_evidence(kit.chain, ev, kit.make_valset(), 10, 100)


def test_invalid_evidence_bad_signature(kit) -> None:
    a, b = _pair(kit)
    forged = dataclasses.replace(b, signature=a.signature)
    ev = compute_duplicate_vote_evidence(a, forged)
    with pytest.raises(EvidenceError, match="does not verify"):
        verify_evidence(kit.chain, ev, kit.make_valset(), 10, 100)
    with pytest.raises(EvidenceError, match="does not verify"):
        verify_evidence(
            "other-chain", compute_duplicate_vote_evidence(a, b), kit.make_valset(), 10, 100
        )


@pytest.mark.parametrize("field", ["same-block", "height", "round", "type", "validator"])
def test_invalid_votes_that_do_not_conflict(kit, field: str) -> None:
    a, _ = _pair(kit)
    addr1 = kit.keys[1].address()
    other = {
        "same-block": kit.vote(a.validator, 5, 1, VoteType.PREVOTE, kit.block("a"), ts=9),
        "height": kit.vote(a.validator, 6, 1, VoteType.PREVOTE, kit.block("b")),
        "round": kit.vote(a.validator, 5, 2, VoteType.PREVOTE, kit.block("b")),
        "type": kit.vote(a.validator, 5, 1, VoteType.PRECOMMIT, kit.block("b")),
        "validator": kit.vote(addr1, 5, 1, VoteType.PREVOTE, kit.block("b")),
    }[field]
    with pytest.raises(EvidenceError):
        compute_duplicate_vote_evidence(a, other)


def test_invalid_evidence_not_in_canonical_order(kit) -> None:
    ev = compute_duplicate_vote_evidence(*_pair(kit))
    swapped = DuplicateVoteEvidence(ev.vote_b, ev.vote_a)
    with pytest.raises(EvidenceError, match="canonical order"):
        verify_evidence(kit.chain, swapped, kit.make_valset(), 10, 100)
    with pytest.raises(EvidenceError, match="canonical order"):
        decode_evidence(EVIDENCE_DUPLICATE_VOTE, swapped.encode()).validate_basic()


def test_conflicting_proposal_evidence(kit) -> None:
    vs = kit.make_valset()
    p1 = kit.proposal(vs, 4, 0, kit.block("x"))
    p2 = kit.proposal(vs, 4, 0, kit.block("y"))
    ev = compute_conflicting_proposal_evidence(p2, p1)
    assert ev == compute_conflicting_proposal_evidence(p1, p2)
    verify_evidence(kit.chain, ev, vs, 4, 10)
    kind, data = encode_evidence(ev)
    assert kind == EVIDENCE_CONFLICTING_PROPOSAL
    assert isinstance(decode_evidence(kind, data), ConflictingProposalEvidence)
    # Distinct kinds never share a hash, even for the same bytes.
    assert ev.evidence_hash() != compute_duplicate_vote_evidence(*_pair(kit)).evidence_hash()
    with pytest.raises(EvidenceError, match="same block"):
        compute_conflicting_proposal_evidence(p1, dataclasses.replace(p1, timestamp_ms=9))


def test_invalid_decode_unknown_kind_or_garbage() -> None:
    with pytest.raises(EvidenceError, match="unknown evidence kind"):
        decode_evidence(3, b"")
    with pytest.raises(DecodeError):
        decode_evidence(EVIDENCE_DUPLICATE_VOTE, b"\x92\x01")


def test_pool_detects_keeps_once_and_forgets_after_commit(kit) -> None:
    a, b = _pair(kit, height=3)
    pool = EvidencePool(max_age_blocks=10)
    assert pool.check_vote(a) is None
    assert pool.check_vote(a) is None  # a repeat is no fault
    ev = pool.check_vote(b)
    assert ev == compute_duplicate_vote_evidence(a, b)
    assert pool.get_pending(3, 10) == ()  # detection alone does not queue it
    assert pool.add(ev) is True
    assert pool.get_pending(3, 10) == (ev,)
    assert pool.add(ev) is False  # once
    assert pool.is_known(ev.evidence_hash())
    pool.mark_committed(4, (ev,))
    assert pool.get_pending(5, 10) == ()
    assert pool.is_committed(ev.evidence_hash())
    # Seeing the fault again later is still reported, but never pending again.
    assert pool.check_vote(b) == ev
    assert pool.add(ev) is False
    assert pool.get_pending(5, 10) == ()


def test_pool_drops_expired_evidence(kit) -> None:
    pool = EvidencePool(max_age_blocks=2)
    ev = compute_duplicate_vote_evidence(*_pair(kit, height=3))
    assert pool.add(ev)
    assert pool.get_pending(5, 10) == (ev,)
    assert pool.get_pending(6, 10) == ()
