"""The Tendermint round machine as pure handlers: (state, input, now) -> (state, effects).

It follows Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon,
Milosevic), with power-weighted quorums: "2f+1" is more than two thirds of the
voting power and "f+1" more than one third. Each handler first records its
input (a proposal, a vote, a timeout, a built block), then ``_evaluate`` applies
every rule of the algorithm whose condition now holds, until none does; the
rules' line numbers in the paper are given in comments.

The machine never looks inside blocks: it knows a block by its hash, the driver
says whether a proposed block is valid (``block_valid``) and supplies the block
to propose (``RequestBlock`` -> ``on_block_built``). It never signs either: it
asks for signatures (``SignVote``/``SignProposal``) and receives the signed
message back through ``on_vote``/``on_proposal``, at which point it asks for
the broadcast. Inputs for other heights are ignored; invalid ones answered with
``InputRejected``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType

from consensus.bft.config import TimeoutConfig
from consensus.bft.effects import (
    BroadcastProposal,
    BroadcastVote,
    CommitBlock,
    Effect,
    EquivocationDetected,
    InputRejected,
    RequestBlock,
    ScheduleTimeout,
    SignProposal,
    SignVote,
    Step,
)
from consensus.bft.state import ProposalRecord, RoundState
from consensus.bft.validation import validate_proposal, validate_vote
from consensus.bft.vote_set import (
    add_vote,
    get_two_thirds_majority,
    has_two_thirds_any,
    is_nil_majority,
)
from consensus.crypto import verify_signature
from consensus.evidence import (
    Evidence,
    compute_conflicting_proposal_evidence,
    compute_duplicate_vote_evidence,
)
from consensus.hashing import HASH_LEN
from consensus.votes import (
    NIL_HASH,
    Proposal,
    SignatureVerifier,
    Vote,
    VoteError,
    VoteType,
    compute_commit,
)

Transition = tuple[RoundState, tuple[Effect, ...]]

#: Proposals for rounds further ahead of ours than this are ignored.
MAX_PROPOSAL_ROUNDS_AHEAD = 100


@dataclass(frozen=True, slots=True)
class MachineContext:
    """What the machine needs besides its state: identity, chain and timeouts."""

    chain_id: str
    """Chain id every signature is bound to."""
    address: bytes | None
    """Our validator address, or None for a node that follows without voting."""
    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    """Timeouts and their per-round growth."""
    verify: SignatureVerifier = verify_signature
    """Signature checker (a caching wrapper of the real one in simulations)."""


# --- handlers ----------------------------------------------------------------


def on_start(state: RoundState, ctx: MachineContext, now_ms: int) -> Transition:
    """Enter round 0 of the state's height."""
    if state.started:
        return state, ()
    effects: list[Effect] = []
    state = _start_round(replace(state, started=True), ctx, 0, now_ms, effects)
    state = _evaluate(state, ctx, now_ms, effects)
    return state, tuple(effects)


def on_block_built(
    state: RoundState, ctx: MachineContext, height: int, round_: int, block_hash: bytes, now_ms: int
) -> Transition:
    """Answer a ``RequestBlock``: ask to sign a proposal of ``block_hash``."""
    if (
        ctx.address is None
        or height != state.height
        or round_ != state.round
        or state.step != Step.PROPOSE
        or state.is_decided()
        or round_ in state.proposals
    ):
        return state, ()
    if len(block_hash) != HASH_LEN:
        return state, (InputRejected("a built block's hash must be 32 bytes"),)
    proposal = Proposal(height, round_, -1, block_hash, ctx.address, now_ms)
    return state, (SignProposal(proposal),)


def on_proposal(
    state: RoundState, ctx: MachineContext, proposal: Proposal, block_valid: bool, now_ms: int
) -> Transition:
    """Handle a signed proposal; ``block_valid`` is the driver's verdict on its block."""
    if proposal.height != state.height or state.is_decided() or not state.started:
        return state, ()
    if proposal.round > state.round + MAX_PROPOSAL_ROUNDS_AHEAD:
        # Checking the proposer of a far round costs a step per round; such a proposal
        # is no use before the round-skip rule brings us near it anyway.
        return state, ()
    try:
        validate_proposal(
            ctx.chain_id, proposal, state.validator_set, state.height, verify=ctx.verify
        )
    except VoteError as exc:
        return state, (InputRejected(str(exc)),)
    effects: list[Effect] = []
    record = ProposalRecord(proposal, block_valid)
    existing = state.proposals.get(proposal.round)
    if existing is None:
        proposals = dict(state.proposals)
        proposals[proposal.round] = record
        state = replace(state, proposals=MappingProxyType(proposals))
    elif existing.proposal.block_hash == proposal.block_hash:
        return state, ()  # a repeat (perhaps re-signed with another timestamp)
    else:
        evidence = compute_conflicting_proposal_evidence(existing.proposal, proposal)
        state = _report(state, evidence, effects)
        key = (proposal.round, proposal.block_hash)
        known = sum(1 for (r, _) in state.other_proposals if r == proposal.round)
        # Bounded: a faulty proposer cannot make us store more than one block per validator.
        if key in state.other_proposals or known >= len(state.validator_set):
            return state, tuple(effects)
        others = dict(state.other_proposals)
        others[key] = record
        state = replace(state, other_proposals=MappingProxyType(others))
    if proposal.proposer == ctx.address:
        effects.append(BroadcastProposal(proposal))
    state = _evaluate(state, ctx, now_ms, effects)
    return state, tuple(effects)


def on_vote(state: RoundState, ctx: MachineContext, vote: Vote, now_ms: int) -> Transition:
    """Handle a signed prevote or precommit."""
    if vote.height != state.height or state.is_decided() or not state.started:
        return state, ()
    try:
        member = validate_vote(
            ctx.chain_id, vote, state.validator_set, state.height, verify=ctx.verify
        )
    except VoteError as exc:
        return state, (InputRejected(str(exc)),)
    effects: list[Effect] = []
    key = (vote.round, vote.vote_type)
    vote_set, conflict = add_vote(state.get_vote_set(*key), vote, member.power)
    if conflict is not None:
        state = _report(state, compute_duplicate_vote_evidence(conflict, vote), effects)
    if vote_set is state.votes.get(key):
        return state, tuple(effects)  # a repeat, or a conflict beyond the bound
    votes = dict(state.votes)
    votes[key] = vote_set
    state = replace(state, votes=MappingProxyType(votes))
    if vote.validator == ctx.address:
        effects.append(BroadcastVote(vote))
    state = _evaluate(state, ctx, now_ms, effects)
    return state, tuple(effects)


def on_timeout(
    state: RoundState, ctx: MachineContext, height: int, round_: int, step: int, now_ms: int
) -> Transition:
    """Handle a timeout scheduled earlier; stale ones (other height or round) do nothing."""
    if height != state.height or round_ != state.round or state.is_decided():
        return state, ()
    effects: list[Effect] = []
    if step == Step.PROPOSE and state.step == Step.PROPOSE:
        # Line 57: no acceptable proposal in time, prevote nil.
        state = _cast(state, ctx, VoteType.PREVOTE, NIL_HASH, now_ms, effects)
    elif step == Step.PREVOTE and state.step == Step.PREVOTE:
        # Line 61: prevotes split, precommit nil.
        state = _cast(state, ctx, VoteType.PRECOMMIT, NIL_HASH, now_ms, effects)
    elif step == Step.PRECOMMIT:
        # Line 65: precommits split, go to the next round.
        state = _start_round(state, ctx, state.round + 1, now_ms, effects)
    else:
        return state, ()
    state = _evaluate(state, ctx, now_ms, effects)
    return state, tuple(effects)


# --- the rules -----------------------------------------------------------------


def _report(state: RoundState, evidence: Evidence, effects: list[Effect]) -> RoundState:
    """Report a fault once per height (a repeat delivery of it reports nothing)."""
    digest = evidence.evidence_hash()
    if digest in state.reported_evidence:
        return state
    effects.append(EquivocationDetected(evidence))
    return replace(state, reported_evidence=state.reported_evidence | {digest})


def _start_round(
    state: RoundState, ctx: MachineContext, round_: int, now_ms: int, effects: list[Effect]
) -> RoundState:
    """StartRound (line 11): enter ``round_`` at the propose step."""
    state = replace(
        state,
        round=round_,
        step=Step.PROPOSE,
        prevote_timeout_armed=False,
        precommit_timeout_armed=False,
        valid_updated=False,
        proposal_requested=False,
    )
    proposer = state.validator_set.compute_proposer(round_)
    if ctx.address is not None and proposer.address == ctx.address:
        state = replace(state, proposal_requested=True)
        if state.valid_round >= 0:
            # Re-propose the block that got +2/3 prevotes, with its proof-of-lock round.
            effects.append(
                SignProposal(
                    Proposal(
                        state.height,
                        round_,
                        state.valid_round,
                        state.valid_value,
                        ctx.address,
                        now_ms,
                    )
                )
            )
        else:
            effects.append(RequestBlock(state.height, round_))
    # Every node arms the propose timeout, the proposer too: if its block never
    # arrives (slow builder, crash) the round still moves on.
    effects.append(
        ScheduleTimeout(
            state.height, round_, Step.PROPOSE, now_ms + ctx.timeouts.get_propose_timeout(round_)
        )
    )
    return state


def _cast(
    state: RoundState,
    ctx: MachineContext,
    vote_type: int,
    block_hash: bytes,
    now_ms: int,
    effects: list[Effect],
) -> RoundState:
    """Move to the step after casting a vote, and ask for the vote's signature."""
    if ctx.address is not None and state.validator_set.get_by_address(ctx.address) is not None:
        effects.append(
            SignVote(Vote(state.height, state.round, vote_type, block_hash, ctx.address, now_ms))
        )
    return replace(state, step=Step.PREVOTE if vote_type == VoteType.PREVOTE else Step.PRECOMMIT)


def _decide(
    state: RoundState,
    ctx: MachineContext,
    record: ProposalRecord,
    now_ms: int,
    effects: list[Effect],
) -> RoundState:
    """Line 49: +2/3 precommits for a valid proposal's block decide the height."""
    p = record.proposal
    precommits = state.get_vote_set(p.round, VoteType.PRECOMMIT).get_votes_for(p.block_hash)
    commit = compute_commit(state.height, p.round, p.block_hash, list(precommits))
    effects.append(CommitBlock(state.height, p.round, p.block_hash, commit))
    effects.append(
        ScheduleTimeout(state.height, p.round, Step.COMMIT, now_ms + ctx.timeouts.commit_ms)
    )
    return replace(state, step=Step.COMMIT, decided_value=p.block_hash, decided_round=p.round)


def _skip_round(state: RoundState) -> int | None:
    """Line 55: the highest later round where validators with +1/3 of the power sent votes."""
    rounds = sorted({r for (r, _) in state.votes if r > state.round}, reverse=True)
    for r in rounds:
        voters: dict[bytes, int] = {}
        for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            vs = state.votes.get((r, vote_type))
            if vs is None:
                continue
            for address in vs.votes:
                member = state.validator_set.get_by_address(address)
                if member is not None:
                    voters[address] = member.power
        if state.validator_set.has_one_third(sum(voters.values())):
            return r
    return None


def _evaluate(
    state: RoundState, ctx: MachineContext, now_ms: int, effects: list[Effect]
) -> RoundState:
    """Apply every rule whose condition holds, until none does."""
    valset = state.validator_set
    while not state.is_decided() and state.started:
        # Line 49 (any round): a proposal with +2/3 precommits for its block.
        for r in sorted(state.proposals):
            precommits = state.votes.get((r, VoteType.PRECOMMIT))
            if precommits is None:
                continue
            for record in state.get_round_proposals(r):
                if record.block_valid and valset.has_two_thirds(
                    precommits.get_power_for(record.proposal.block_hash)
                ):
                    return _decide(state, ctx, record, now_ms, effects)
        # Line 55: +1/3 of the power is already in a later round: join it.
        skip_to = _skip_round(state)
        if skip_to is not None:
            state = _start_round(state, ctx, skip_to, now_ms, effects)
            continue
        fired = _apply_round_rules(state, ctx, now_ms, effects)
        if fired is None:
            break
        state = fired
    return state


def _apply_round_rules(
    state: RoundState, ctx: MachineContext, now_ms: int, effects: list[Effect]
) -> RoundState | None:
    """Apply the first rule of the current round that holds; None when none does."""
    valset = state.validator_set
    r = state.round
    record = state.proposals.get(r)
    prevotes = state.votes.get((r, VoteType.PREVOTE))
    if state.step == Step.PROPOSE and record is not None:
        p = record.proposal
        if p.pol_round == -1:
            # Line 22: a fresh proposal; prevote it unless locked on something else.
            acceptable = record.block_valid and (
                state.locked_round == -1 or state.locked_value == p.block_hash
            )
            value = p.block_hash if acceptable else NIL_HASH
            return _cast(state, ctx, VoteType.PREVOTE, value, now_ms, effects)
        pol = state.votes.get((p.pol_round, VoteType.PREVOTE))
        if pol is not None and valset.has_two_thirds(pol.get_power_for(p.block_hash)):
            # Line 28: a re-proposal backed by +2/3 prevotes in its pol_round.
            acceptable = record.block_valid and (
                state.locked_round <= p.pol_round or state.locked_value == p.block_hash
            )
            value = p.block_hash if acceptable else NIL_HASH
            return _cast(state, ctx, VoteType.PREVOTE, value, now_ms, effects)
    if prevotes is not None and state.step in (Step.PREVOTE, Step.PRECOMMIT):
        polka = get_two_thirds_majority(prevotes, valset)
        polka_record = (
            state.get_proposal_for(r, polka) if polka is not None and polka != NIL_HASH else None
        )
        if polka_record is not None and polka_record.block_valid and not state.valid_updated:
            # Line 36: +2/3 prevotes for a proposed block: lock (if still prevoting), mark valid.
            block_hash = polka_record.proposal.block_hash
            state = replace(state, valid_updated=True, valid_round=r, valid_value=block_hash)
            if state.step == Step.PREVOTE:
                state = replace(state, locked_round=r, locked_value=block_hash)
                state = _cast(state, ctx, VoteType.PRECOMMIT, block_hash, now_ms, effects)
            return state
        if state.step == Step.PREVOTE and is_nil_majority(prevotes, valset):
            # Line 44: +2/3 prevoted nil.
            return _cast(state, ctx, VoteType.PRECOMMIT, NIL_HASH, now_ms, effects)
        if (
            state.step == Step.PREVOTE
            and not state.prevote_timeout_armed
            and has_two_thirds_any(prevotes, valset)
        ):
            # Line 34: +2/3 prevotes for anything, but no majority yet.
            effects.append(
                ScheduleTimeout(
                    state.height, r, Step.PREVOTE, now_ms + ctx.timeouts.get_prevote_timeout(r)
                )
            )
            return replace(state, prevote_timeout_armed=True)
    precommits = state.votes.get((r, VoteType.PRECOMMIT))
    if (
        precommits is not None
        and not state.precommit_timeout_armed
        and has_two_thirds_any(precommits, valset)
    ):
        # Line 47: +2/3 precommits for anything: wait a little, then move on.
        effects.append(
            ScheduleTimeout(
                state.height, r, Step.PRECOMMIT, now_ms + ctx.timeouts.get_precommit_timeout(r)
            )
        )
        return replace(state, precommit_timeout_armed=True)
    return None
