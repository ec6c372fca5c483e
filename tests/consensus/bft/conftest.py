"""Fixtures of the BFT unit tests: keys, validator sets and signed messages (``kit``)."""

from __future__ import annotations

import pytest

from consensus.crypto import Domain, PrivateKey
from consensus.hashing import hash32
from consensus.validator_set import ValidatorSet, compute_genesis_validator_set
from consensus.votes import Proposal, Vote

CHAIN = "cstake-bft-test"
KEYS = [PrivateKey.from_seed(hash32(b"bft-unit-%d" % i)) for i in range(8)]
BY_ADDRESS = {k.address(): k for k in KEYS}


def make_valset(powers: tuple[int, ...] = (1, 1, 1, 1)) -> ValidatorSet:
    return compute_genesis_validator_set(
        [(k.address(), k.public_key.raw, p) for k, p in zip(KEYS, powers, strict=False)]
    )


def block(tag: str) -> bytes:
    return hash32(tag.encode())


def vote(
    address: bytes, height: int, round_: int, vote_type: int, block_hash: bytes, ts: int = 1
) -> Vote:
    unsigned = Vote(height, round_, vote_type, block_hash, address, ts)
    key = BY_ADDRESS[address]
    return unsigned.with_signature(key.sign(Domain.VOTE, CHAIN, unsigned.sign_payload()))


def proposal(
    valset: ValidatorSet, height: int, round_: int, block_hash: bytes, pol_round: int = -1
) -> Proposal:
    proposer = valset.compute_proposer(round_).address
    unsigned = Proposal(height, round_, pol_round, block_hash, proposer, 1)
    key = BY_ADDRESS[proposer]
    return unsigned.with_signature(key.sign(Domain.PROPOSAL, CHAIN, unsigned.sign_payload()))


class Kit:
    """The builders above, handed to tests as the ``kit`` fixture."""

    chain = CHAIN
    keys = KEYS
    by_address = BY_ADDRESS
    make_valset = staticmethod(make_valset)
    block = staticmethod(block)
    vote = staticmethod(vote)
    proposal = staticmethod(proposal)


@pytest.fixture
def kit() -> Kit:
    return Kit()
