"""Stateful checks of proposals and votes against the validator set of their height.

Stateless checks are each message's ``validate_basic``; these add what needs
state: the right height, a signer that is in the set, the right proposer for
the round, and a signature that verifies under that member's key.
"""

from __future__ import annotations

from consensus.crypto import verify_signature
from consensus.errors import InvalidSignature
from consensus.validator_set import ValidatorInfo, ValidatorSet
from consensus.votes import Proposal, SignatureVerifier, Vote, VoteError


def validate_vote(
    chain_id: str,
    vote: Vote,
    validator_set: ValidatorSet,
    height: int,
    *,
    verify: SignatureVerifier = verify_signature,
) -> ValidatorInfo:
    """Raise VoteError unless ``vote`` is a valid vote at ``height``; return its signer."""
    vote.validate_basic()
    if vote.height != height:
        raise VoteError(f"vote for height {vote.height}, expected {height}")
    member = validator_set.get_by_address(vote.validator)
    if member is None:
        raise VoteError(f"vote from {vote.validator.hex()}, not a validator at height {height}")
    try:
        verify(member.pubkey, vote.sign_bytes(chain_id), vote.signature)
    except InvalidSignature as exc:
        raise VoteError(f"vote from {vote.validator.hex()}: signature does not verify") from exc
    return member


def validate_proposal(
    chain_id: str,
    proposal: Proposal,
    validator_set: ValidatorSet,
    height: int,
    *,
    verify: SignatureVerifier = verify_signature,
) -> ValidatorInfo:
    """Raise VoteError unless ``proposal`` comes from the round's proposer, signed; return it."""
    proposal.validate_basic()
    if proposal.height != height:
        raise VoteError(f"proposal for height {proposal.height}, expected {height}")
    expected = validator_set.compute_proposer(proposal.round)  # round <= MAX_ROUND (basic)
    if proposal.proposer != expected.address:
        raise VoteError(
            f"proposal for round {proposal.round} from {proposal.proposer.hex()}, "
            f"but the proposer is {expected.address.hex()}"
        )
    try:
        verify(expected.pubkey, proposal.sign_bytes(chain_id), proposal.signature)
    except InvalidSignature as exc:
        raise VoteError(
            f"proposal from {proposal.proposer.hex()}: signature does not verify"
        ) from exc
    return expected
