"""Votes, proposals and commits: stateless checks, sign bytes, and commit verification."""

from __future__ import annotations

import dataclasses

import pytest

from consensus.crypto import Domain
from consensus.votes import (
    NIL_HASH,
    Commit,
    CommitError,
    CommitSig,
    Proposal,
    Vote,
    VoteError,
    VoteType,
    compute_commit,
    verify_commit,
)


def test_vote_round_trips_and_signs_everything_but_the_signature(kit) -> None:
    v = kit.vote(kit.keys[0].address(), 3, 1, VoteType.PRECOMMIT, kit.block("b"), ts=77)
    v.validate_basic()
    assert Vote.decode(v.encode()) == v
    assert v.sign_payload() == dataclasses.replace(v, signature=b"").sign_payload()
    kit.keys[0].public_key.verify(Domain.VOTE, kit.chain, v.sign_payload(), v.signature)
    # Domain separation: the same bytes do not verify as a proposal or on another chain.
    with pytest.raises(Exception, match="verify"):
        kit.keys[0].public_key.verify(Domain.PROPOSAL, kit.chain, v.sign_payload(), v.signature)
    with pytest.raises(Exception, match="verify"):
        kit.keys[0].public_key.verify(Domain.VOTE, "other-chain", v.sign_payload(), v.signature)


def test_nil_vote_is_valid(kit) -> None:
    v = kit.vote(kit.keys[0].address(), 1, 0, VoteType.PREVOTE, NIL_HASH)
    v.validate_basic()
    assert v.is_nil()


GOOD_VOTE = Vote(1, 0, VoteType.PREVOTE, b"\x01" * 32, b"\x02" * 20, 5, b"\x03" * 64)


@pytest.mark.parametrize(
    "change",
    [
        {"height": 0},
        {"round": -1},
        {"vote_type": 3},
        {"block_hash": b"\x01" * 31},
        {"validator": b"\x02" * 21},
        {"timestamp_ms": -1},
        {"signature": b""},
    ],
    ids=lambda c: next(iter(c)),
)
def test_invalid_vote_fields(change: dict) -> None:
    with pytest.raises(VoteError):
        dataclasses.replace(GOOD_VOTE, **change).validate_basic()


GOOD_PROPOSAL = Proposal(2, 3, 1, b"\x01" * 32, b"\x02" * 20, 5, b"\x03" * 64)


@pytest.mark.parametrize(
    "change",
    [
        {"height": 0},
        {"pol_round": 3},
        {"pol_round": -2},
        {"block_hash": b""},
        {"proposer": b""},
        {"signature": b"\x00" * 63},
    ],
    ids=["height", "pol-not-earlier", "pol-below-minus-one", "nil-block", "proposer", "sig"],
)
def test_invalid_proposal_fields(change: dict) -> None:
    GOOD_PROPOSAL.validate_basic()
    with pytest.raises(VoteError):
        dataclasses.replace(GOOD_PROPOSAL, **change).validate_basic()


def _commit(kit, signers: list[int], powers=(1, 1, 1, 1), block_hash=None):
    vs = kit.make_valset(powers)
    target = block_hash or kit.block("committed")
    votes = [
        kit.vote(kit.keys[i].address(), 9, 2, VoteType.PRECOMMIT, target, ts=100 + i)
        for i in signers
    ]
    return vs, compute_commit(9, 2, target, votes)


def test_commit_of_more_than_two_thirds_verifies(kit) -> None:
    vs, commit = _commit(kit, [2, 0, 3])
    verify_commit(kit.chain, vs, commit)
    assert [s.validator for s in commit.signatures] == sorted(
        s.validator for s in commit.signatures
    )
    assert Commit.decode(commit.encode()) == commit
    # Anyone can rebuild the exact precommits from the commit.
    for v in commit.votes():
        assert v.vote_type == VoteType.PRECOMMIT and v.block_hash == commit.block_hash
        kit.by_address[v.validator].public_key.verify(
            Domain.VOTE, kit.chain, v.sign_payload(), v.signature
        )


def test_commit_weighs_power_not_heads(kit) -> None:
    powers = (1, 1, 1, 10)
    vs, commit = _commit(kit, [3], powers)  # 10 of 13 > 2/3
    verify_commit(kit.chain, vs, commit)
    vs, commit = _commit(kit, [0, 1, 2], powers)  # 3 of 13
    with pytest.raises(CommitError, match="not more than two thirds"):
        verify_commit(kit.chain, vs, commit)


def test_invalid_commit_of_exactly_two_thirds(kit) -> None:
    vs, commit = _commit(kit, [0, 1], (2, 2, 2))
    # 4 of 6 is exactly two thirds: not enough.
    with pytest.raises(CommitError, match="two thirds"):
        verify_commit(kit.chain, vs, commit)


def test_invalid_commit_with_unknown_signer(kit) -> None:
    vs, commit = _commit(kit, [0, 1, 2])
    outsider = kit.vote(kit.keys[6].address(), 9, 2, VoteType.PRECOMMIT, commit.block_hash)
    bad = compute_commit(9, 2, commit.block_hash, [*commit.votes(), outsider])
    with pytest.raises(CommitError, match="not in the validator set"):
        verify_commit(kit.chain, vs, bad)


def test_invalid_commit_with_duplicate_signer(kit) -> None:
    vs, commit = _commit(kit, [0, 1, 2])
    dup = dataclasses.replace(commit, signatures=(*commit.signatures, commit.signatures[-1]))
    with pytest.raises(CommitError, match="sorted|duplicated"):
        verify_commit(kit.chain, vs, dup)


def test_invalid_commit_with_a_forged_signature(kit) -> None:
    vs, commit = _commit(kit, [0, 1, 2])
    sig = commit.signatures[1]
    forged = dataclasses.replace(sig, timestamp_ms=sig.timestamp_ms + 1)
    bad = dataclasses.replace(
        commit, signatures=(commit.signatures[0], forged, commit.signatures[2])
    )
    with pytest.raises(CommitError, match="does not verify"):
        verify_commit(kit.chain, vs, bad)


def test_invalid_commit_for_another_block_or_chain(kit) -> None:
    vs, commit = _commit(kit, [0, 1, 2])
    with pytest.raises(CommitError, match="does not verify"):
        verify_commit(kit.chain, vs, dataclasses.replace(commit, block_hash=kit.block("other")))
    with pytest.raises(CommitError, match="does not verify"):
        verify_commit("another-chain", vs, commit)


def test_invalid_empty_commit(kit) -> None:
    vs, commit = _commit(kit, [0, 1, 2])
    with pytest.raises(CommitError, match="no signatures"):
        verify_commit(kit.chain, vs, dataclasses.replace(commit, signatures=()))


def test_commit_sig_fields_are_what_differs_between_precommits() -> None:
    assert [f.name for f in dataclasses.fields(CommitSig)] == [
        "validator",
        "timestamp_ms",
        "signature",
    ]
