"""Authentication of consensus messages from the network, before anything uses them.

Every vote, proposal, block part and piece of evidence a peer sends is
checked here against the validator set of its height before it is accepted,
relayed, queued, logged, executed or shown to the evidence pool. The checks
run cheapest first: the height must be one whose set this node knows (its
current height, a few heights back for late votes, a few ahead when no epoch
boundary lies in between, so the set is certain), the round must be near the
current one (a proposal for a round far ahead is not worth executing), the
signer must be a member (for a proposal or part, the round's proposer), and
only then is the signature verified, through the node's ``SignatureCache``,
so the round machine and the evidence pool checking it again cost nothing.

Each answer is an ``AuthResult``: authentic, or refused with a ``fault`` (a
name of ``p2p.scoring.PENALTY``) when the forwarder could have found the
same fault itself with the same set (a bad signature from a member, a
signer outside the set, the wrong proposer, a malformed message), or with no
fault when the message is merely of no use here (unknown height or set,
round too far ahead, already known): refused quietly, never penalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from consensus.bft.state import RoundState
from consensus.crypto import Domain, sign_bytes
from consensus.errors import ConsensusError, InvalidSignature
from consensus.evidence import (
    ConflictingProposalEvidence,
    DuplicateVoteEvidence,
    Evidence,
    verify_evidence,
)
from consensus.validator_set import ValidatorInfo, ValidatorSet, compute_next_validator_set
from consensus.votes import Proposal, Vote
from node.engine.executor import BlockExecutor
from node.engine.sigcache import SignatureCache

#: Heights ahead of ours whose messages are authenticated and kept (the inbox's future buffer).
FUTURE_HEIGHTS = 4
#: Rounds ahead of ours for which a proposal or block part is taken; beyond, it is ignored, never executed.
PROPOSAL_ROUNDS_AHEAD = 4
#: Rounds ahead of ours for which votes are taken (a third of the power there moves us on).
VOTE_ROUNDS_AHEAD = 100

FAULT_MALFORMED = "malformed"
FAULT_SIGNATURE = "bad_signature"
FAULT_NOT_VALIDATOR = "not_validator"
FAULT_PROPOSER = "wrong_proposer"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The verdict on one message: ``ok``, or refused (``fault`` names a penalty when the sender is to blame)."""

    ok: bool
    fault: str = ""
    """A ``p2p.scoring.PENALTY`` name when the forwarder could have checked this itself; else empty."""
    detail: str = ""


AUTHENTIC = AuthResult(True)


def _ignore(detail: str) -> AuthResult:
    return AuthResult(False, "", detail)


def _fault(fault: str, detail: str) -> AuthResult:
    return AuthResult(False, fault, detail)


class DriverView(Protocol):
    """What the authenticator reads of the consensus driver (between its inputs)."""

    @property
    def state(self) -> RoundState: ...

    def get_recent_set(self, height: int) -> ValidatorSet | None:
        """The set that decided ``height`` (a height the driver left), if it still knows it."""
        ...

    def is_known_evidence(self, digest: bytes) -> bool: ...


class Authenticator:
    """Checks network messages against the validator sets of their heights, cheapest checks first."""

    def __init__(
        self,
        chain_id: str,
        verify: SignatureCache,
        executor: BlockExecutor,
        view: DriverView,
        *,
        past_heights: int,
        future_heights: int = FUTURE_HEIGHTS,
    ) -> None:
        self.chain_id = chain_id
        self.verify = verify
        self.executor = executor
        self.view = view
        self.past_heights = past_heights
        self.future_heights = future_heights
        params = executor.head_state().get_params()
        self.epoch_blocks = params.epoch_blocks
        self.max_evidence_age = params.unbonding_blocks
        self._future_head = -1
        self._future: dict[int, ValidatorSet] = {}

    # -- validator sets ----------------------------------------------------------------

    def get_set(self, height: int) -> ValidatorSet | None:
        """The set deciding ``height`` if this node knows it for sure (None: too far away, or unknown)."""
        st = self.view.state
        if height == st.height:
            return st.validator_set
        if height < st.height:
            return self.view.get_recent_set(height) if st.height - height <= self.past_heights else None
        if height > st.height + self.future_heights:
            return None
        return self._get_future_set(height)

    def _get_future_set(self, height: int) -> ValidatorSet | None:
        """The set of a height after the head's next one: the next set advanced one proposer step per
        height, as the state transition does, unless an epoch ends in between (then the set may change)."""
        head = self.executor.height
        if head != self._future_head:
            self._future_head = head
            self._future = {head + 1: self.executor.validator_set()}
        vset = self._future.get(height)
        if vset is not None:
            return vset
        h = max(k for k in self._future if k < height) if height > head + 1 else head + 1
        vset = self._future[h]
        while h < height:
            if h % self.epoch_blocks == 0:
                return None  # the set after an epoch's last block is known once it is committed
            vset = compute_next_validator_set(vset, [])
            h += 1
            self._future[h] = vset
        return vset

    def _verify(self, pubkey: bytes, message: bytes, signature: bytes) -> bool:
        try:
            self.verify(pubkey, message, signature)
        except InvalidSignature:
            return False
        return True

    def _round_limit(self, height: int, ahead: int) -> int:
        st = self.view.state
        return (st.round if height == st.height else 0) + ahead

    # -- checks ------------------------------------------------------------------------

    def check_vote(self, vote: Vote) -> AuthResult:
        """Authenticate a vote from the network."""
        try:
            vote.validate_basic()
        except ConsensusError as exc:
            return _fault(FAULT_MALFORMED, str(exc))
        st = self.view.state
        if not st.height - self.past_heights <= vote.height <= st.height + self.future_heights:
            return _ignore(f"vote for height {vote.height}, far from ours ({st.height})")
        if vote.height >= st.height and vote.round > self._round_limit(vote.height, VOTE_ROUNDS_AHEAD):
            return _ignore(f"vote for round {vote.round}, far ahead of ours")
        vset = self.get_set(vote.height)
        if vset is None:
            return _ignore(f"the validator set of height {vote.height} is not known yet")
        member = vset.get_by_address(vote.validator)
        if member is None:
            return _fault(FAULT_NOT_VALIDATOR, f"vote from {vote.validator.hex()}, not a validator at {vote.height}")
        if not self._verify(member.pubkey, vote.sign_bytes(self.chain_id), vote.signature):
            return _fault(FAULT_SIGNATURE, f"vote from {vote.validator.hex()}: signature does not verify")
        return AUTHENTIC

    def _check_proposer(self, height: int, round_: int, what: str) -> AuthResult | ValidatorInfo:
        """The proposer of (height, round) if a proposal or part for it is worth checking here."""
        st = self.view.state
        if not st.height <= height <= st.height + self.future_heights:
            return _ignore(f"{what} for height {height}, not ours ({st.height}) or just ahead")
        if round_ > self._round_limit(height, PROPOSAL_ROUNDS_AHEAD):
            return _ignore(f"{what} for round {round_}, far ahead of ours: not executed")
        vset = self.get_set(height)
        if vset is None:
            return _ignore(f"the validator set of height {height} is not known yet")
        return vset.compute_proposer(round_)

    def check_proposal(self, proposal: Proposal) -> AuthResult:
        """Authenticate a proposal from the network (before its block is looked at)."""
        try:
            proposal.validate_basic()
        except ConsensusError as exc:
            return _fault(FAULT_MALFORMED, str(exc))
        expected = self._check_proposer(proposal.height, proposal.round, "proposal")
        if isinstance(expected, AuthResult):
            return expected
        if proposal.proposer != expected.address:
            return _fault(FAULT_PROPOSER, f"proposal for round {proposal.round} from {proposal.proposer.hex()}, "
                                          f"but the proposer is {expected.address.hex()}")
        if not self._verify(expected.pubkey, proposal.sign_bytes(self.chain_id), proposal.signature):
            return _fault(FAULT_SIGNATURE, f"proposal from {proposal.proposer.hex()}: signature does not verify")
        return AUTHENTIC

    def check_part(self, height: int, round_: int, payload: bytes, signature: bytes) -> AuthResult:
        """Authenticate a block part: ``signature`` by the round's proposer over ``payload``."""
        expected = self._check_proposer(height, round_, "block part")
        if isinstance(expected, AuthResult):
            return expected
        message = sign_bytes(Domain.PROPOSAL_PART, self.chain_id, payload)
        if not self._verify(expected.pubkey, message, signature):
            return _fault(FAULT_SIGNATURE, f"block part of {height}/{round_}: signature does not verify")
        return AUTHENTIC

    def check_evidence(self, evidence: Evidence) -> AuthResult:
        """Authenticate evidence from the network: new, punishable, and signed twice by a member."""
        try:
            evidence.validate_basic()
        except ConsensusError as exc:
            return _fault(FAULT_MALFORMED, str(exc))
        if self.view.is_known_evidence(evidence.evidence_hash()):
            return _ignore("evidence already known")
        current = self.executor.height + 1
        if evidence.height > current or current - evidence.height > self.max_evidence_age:
            return _ignore(f"evidence of height {evidence.height} is not punishable at {current}")
        state = self.executor.head_state()
        vset = self.view.get_recent_set(evidence.height) or state.get_validator_set_at(evidence.height)
        if vset is None:
            return _ignore(f"the validator set of height {evidence.height} is not known")
        member = vset.get_by_address(evidence.validator)
        if member is None:
            return _fault(FAULT_NOT_VALIDATOR, f"evidence against {evidence.validator.hex()}, not a validator")
        if not all(self._verify(member.pubkey, m, s) for m, s in self._signed(evidence)):
            return _fault(FAULT_SIGNATURE, f"evidence against {evidence.validator.hex()}: a signature does not verify")
        try:
            verify_evidence(self.chain_id, evidence, vset, current, self.max_evidence_age, verify=self.verify)
        except ConsensusError as exc:
            return _ignore(str(exc))
        if state.is_fault_slashed(evidence.evidence_hash()):
            return _ignore("the fault is already punished")
        return AUTHENTIC

    def _signed(self, evidence: Evidence) -> list[tuple[bytes, bytes]]:
        if isinstance(evidence, DuplicateVoteEvidence):
            return [(v.sign_bytes(self.chain_id), v.signature) for v in (evidence.vote_a, evidence.vote_b)]
        if isinstance(evidence, ConflictingProposalEvidence):
            return [(p.sign_bytes(self.chain_id), p.signature) for p in (evidence.proposal_a, evidence.proposal_b)]
        return [(b"", b"")]

    def is_signed(self, message: Vote | Proposal | Evidence) -> bool:
        """Whether ``message`` is signed by a member of its height's set (the evidence pool's gate).

        No window applies: only that the signatures are real, checked through the cache.
        """
        if isinstance(message, Vote | Proposal):
            vset = self.get_set(message.height) or self.view.get_recent_set(message.height)
            signer = message.validator if isinstance(message, Vote) else message.proposer
            member = None if vset is None else vset.get_by_address(signer)
            return member is not None and self._verify(member.pubkey, message.sign_bytes(self.chain_id),
                                                       message.signature)
        vset = self.view.get_recent_set(message.height) or self.executor.head_state().get_validator_set_at(
            message.height
        )
        member = None if vset is None else vset.get_by_address(message.validator)
        return member is not None and all(self._verify(member.pubkey, m, s) for m, s in self._signed(message))
