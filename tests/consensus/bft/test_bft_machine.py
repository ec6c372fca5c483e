"""The round machine: each rule of the algorithm, driven input by input."""

from __future__ import annotations

import dataclasses

import pytest

from consensus.bft.config import TimeoutConfig
from consensus.bft.effects import (
    BroadcastProposal,
    BroadcastVote,
    CommitBlock,
    EquivocationDetected,
    InputRejected,
    RequestBlock,
    ScheduleTimeout,
    SignProposal,
    SignVote,
    Step,
)
from consensus.bft.machine import (
    MachineContext,
    on_block_built,
    on_proposal,
    on_start,
    on_timeout,
    on_vote,
)
from consensus.bft.state import RoundState, new_round_state
from consensus.crypto import Domain
from consensus.evidence import ConflictingProposalEvidence, DuplicateVoteEvidence
from consensus.votes import NIL_HASH, VoteType, verify_commit

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT
B = b""  # set per test from kit.block


class Node:
    """One validator's machine plus the signing a driver would do for it."""

    def __init__(self, kit, me: int | None, powers=(1, 1, 1, 1), height: int = 1) -> None:
        self.kit = kit
        self.vs = kit.make_valset(powers)
        self.addr = None if me is None else self.vs.validators[me].address
        self.ctx = MachineContext(kit.chain, self.addr, TimeoutConfig())
        self.state: RoundState = new_round_state(height, self.vs)
        self.height = height
        self.effects: list = []

    def others(self) -> list[bytes]:
        return [v.address for v in self.vs.validators if v.address != self.addr]

    def _run(self, result) -> tuple:
        self.state, effects = result
        self.effects.extend(effects)
        # Like a driver: sign what is asked and feed it back.
        for e in effects:
            if isinstance(e, SignVote):
                key = self.kit.by_address[e.vote.validator]
                signed = e.vote.with_signature(
                    key.sign(Domain.VOTE, self.kit.chain, e.vote.sign_payload())
                )
                self._run(on_vote(self.state, self.ctx, signed, 0))
            elif isinstance(e, SignProposal):
                key = self.kit.by_address[e.proposal.proposer]
                signed = e.proposal.with_signature(
                    key.sign(Domain.PROPOSAL, self.kit.chain, e.proposal.sign_payload())
                )
                self._run(on_proposal(self.state, self.ctx, signed, True, 0))
        return effects

    def start(self, now: int = 0):
        return self._run(on_start(self.state, self.ctx, now))

    def propose(self, round_: int, block_hash: bytes, pol: int = -1, valid: bool = True, now=0):
        p = self.kit.proposal(self.vs, self.height, round_, block_hash, pol)
        return self._run(on_proposal(self.state, self.ctx, p, valid, now))

    def votes(self, addrs, round_: int, vote_type: int, block_hash: bytes, now: int = 0):
        out = []
        for a in addrs:
            v = self.kit.vote(a, self.height, round_, vote_type, block_hash)
            out += self._run(on_vote(self.state, self.ctx, v, now))
        return out

    def timeout(self, round_: int, step: int, now: int = 0):
        return self._run(on_timeout(self.state, self.ctx, self.height, round_, step, now))

    def signed(self, vote_type: int) -> list:
        return [
            e.vote
            for e in self.effects
            if isinstance(e, SignVote) and e.vote.vote_type == vote_type
        ]


def _non_proposer(kit, rounds=(0, 1, 2)) -> int:
    vs = kit.make_valset()
    proposers = {vs.compute_proposer(r).address for r in rounds}
    return next(i for i, v in enumerate(vs.validators) if v.address not in proposers)


def test_start_arms_the_propose_timeout(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    assert n.start(now=5000) == (ScheduleTimeout(1, 0, Step.PROPOSE, 6000),)
    assert n.state.started and n.state.round == 0 and n.state.step == Step.PROPOSE
    assert n.start(now=9999) == ()  # once


def test_proposer_requests_a_block_then_signs_and_broadcasts_its_proposal(kit) -> None:
    vs = kit.make_valset()
    me = next(i for i, v in enumerate(vs.validators) if v.address == vs.compute_proposer(0).address)
    n = Node(kit, me)
    assert RequestBlock(1, 0) in n.start(now=10)
    blk = kit.block("mine")
    n._run(on_block_built(n.state, n.ctx, 1, 0, blk, 20))
    sign = [e for e in n.effects if isinstance(e, SignProposal)]
    assert sign and sign[0].proposal.block_hash == blk and sign[0].proposal.pol_round == -1
    assert any(isinstance(e, BroadcastProposal) for e in n.effects)
    assert [v.block_hash for v in n.signed(PV)] == [blk]
    # A stale or second answer asks for nothing.
    assert on_block_built(n.state, n.ctx, 1, 0, kit.block("again"), 30)[1] == ()


def test_happy_path_prevote_lock_precommit_commit(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    blk = kit.block("b1")
    n.propose(0, blk)
    assert [v.block_hash for v in n.signed(PV)] == [blk]
    assert any(isinstance(e, BroadcastVote) for e in n.effects)
    others = n.others()
    n.votes(others[:1], 0, PV, blk)
    assert n.signed(PC) == []  # 2 of 4 is no quorum
    n.votes(others[1:2], 0, PV, blk, now=700)
    assert [v.block_hash for v in n.signed(PC)] == [blk]
    assert (n.state.locked_round, n.state.locked_value) == (0, blk)
    assert (n.state.valid_round, n.state.valid_value) == (0, blk)
    effects = n.votes(others[:2], 0, PC, blk, now=900)
    commits = [e for e in effects if isinstance(e, CommitBlock)]
    assert len(commits) == 1 and commits[0].block_hash == blk and commits[0].height == 1
    verify_commit(kit.chain, n.vs, commits[0].commit)
    assert ScheduleTimeout(1, 0, Step.COMMIT, 900 + 500) in effects
    assert n.state.step == Step.COMMIT and n.state.is_decided()
    # After the decision nothing moves.
    assert n.votes(others[2:], 0, PC, blk) == []


def test_invalid_block_gets_a_nil_prevote(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    n.propose(0, kit.block("bad"), valid=False)
    assert [v.block_hash for v in n.signed(PV)] == [NIL_HASH]


def test_propose_timeout_prevotes_nil_and_stale_timeouts_do_nothing(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    assert n.timeout(3, Step.PROPOSE) == ()
    assert n.timeout(0, Step.PREVOTE) == ()  # not in that step
    n.timeout(0, Step.PROPOSE)
    assert [v.block_hash for v in n.signed(PV)] == [NIL_HASH]
    assert n.state.step == Step.PREVOTE


def test_split_prevotes_arm_the_prevote_timeout_then_precommit_nil(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    n.propose(0, kit.block("b"))
    others = n.others()
    n.votes(others[:1], 0, PV, NIL_HASH)
    effects = n.votes(others[1:2], 0, PV, kit.block("z"), now=100)
    assert ScheduleTimeout(1, 0, Step.PREVOTE, 100 + 500) in effects
    assert n.signed(PC) == []
    n.timeout(0, Step.PREVOTE)
    assert [v.block_hash for v in n.signed(PC)] == [NIL_HASH]


def test_nil_polka_precommits_nil(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    n.timeout(0, Step.PROPOSE)
    n.votes(n.others()[:2], 0, PV, NIL_HASH)
    assert [v.block_hash for v in n.signed(PC)] == [NIL_HASH]


def test_precommit_timeout_starts_the_next_round_with_longer_timeouts(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    n.timeout(0, Step.PROPOSE)
    n.votes(n.others()[:2], 0, PV, NIL_HASH)
    effects = n.votes(n.others()[:2], 0, PC, NIL_HASH, now=2000)
    assert ScheduleTimeout(1, 0, Step.PRECOMMIT, 2000 + 500) in effects
    effects = n.timeout(0, Step.PRECOMMIT, now=2500)
    assert n.state.round == 1 and n.state.step == Step.PROPOSE
    assert ScheduleTimeout(1, 1, Step.PROPOSE, 2500 + 1000 + 500) in effects
    cfg = TimeoutConfig()
    assert cfg.get_prevote_timeout(3) == 500 + 3 * 250
    assert cfg.get_precommit_timeout(2) == 500 + 2 * 250


def _lock_in_round_0(kit, n: Node, blk: bytes) -> None:
    n.start()
    n.propose(0, blk)
    others = n.others()
    n.votes(others[:2], 0, PV, blk)
    assert n.state.locked_value == blk
    # Precommits split: nobody else saw the polka; on to round 1.
    n.votes(others[:2], 0, PC, NIL_HASH)
    n.timeout(0, Step.PRECOMMIT)
    assert n.state.round == 1


def test_locked_validator_refuses_other_blocks_until_a_newer_polka(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    b, c = kit.block("B"), kit.block("C")
    _lock_in_round_0(kit, n, b)
    n.propose(1, c)  # a fresh proposal of another block: prevote nil
    assert [v.block_hash for v in n.signed(PV)] == [b, NIL_HASH]
    others = n.others()
    n.votes(others[:2], 1, PV, c)  # no polka yet: 2 of 4
    n.timeout(1, Step.PREVOTE)
    n.votes(others[:2], 1, PC, NIL_HASH)
    n.timeout(1, Step.PRECOMMIT)
    assert n.state.round == 2 and n.state.locked_value == b
    # Round 2 re-proposes C with its proof of lock from round 1, and the missing
    # round-1 prevote arrives: a polka newer than our lock, so we prevote C.
    n.propose(2, c, pol=1)
    assert n.state.step == Step.PROPOSE
    n.votes(others[2:], 1, PV, c)
    assert n.signed(PV)[-1].block_hash == c and n.signed(PV)[-1].round == 2


def test_polka_while_prevoting_moves_the_lock(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    b, c = kit.block("B"), kit.block("C")
    _lock_in_round_0(kit, n, b)
    n.propose(1, c)
    n.votes(n.others(), 1, PV, c)  # +2/3 prevote C while we are still at prevote
    assert (n.state.locked_round, n.state.locked_value) == (1, c)
    assert n.signed(PC)[-1].block_hash == c


def test_locked_validator_prevotes_its_block_when_re_proposed(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    b = kit.block("B")
    _lock_in_round_0(kit, n, b)
    n.propose(1, b, pol=0)
    assert n.signed(PV)[-1].block_hash == b


def test_re_proposal_without_its_polka_waits(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    n.propose(0, kit.block("x"), pol=-1, valid=True)
    n.votes(n.others()[:2], 0, PC, NIL_HASH)
    n.votes(n.others(), 0, PV, NIL_HASH)
    n.timeout(0, Step.PRECOMMIT)
    before = len(n.signed(PV))
    n.propose(1, kit.block("y"), pol=0)  # claims a polka in round 0 that does not exist
    assert len(n.signed(PV)) == before and n.state.step == Step.PROPOSE


def test_proposer_re_proposes_its_valid_value(kit) -> None:
    vs = kit.make_valset()
    me = next(i for i, v in enumerate(vs.validators) if v.address == vs.compute_proposer(1).address)
    assert vs.compute_proposer(0).address != vs.validators[me].address
    n = Node(kit, me)
    b = kit.block("B")
    _lock_in_round_0(kit, n, b)
    props = [e.proposal for e in n.effects if isinstance(e, SignProposal)]
    assert props and props[-1].round == 1 and props[-1].block_hash == b and props[-1].pol_round == 0


def test_one_third_of_power_in_a_later_round_pulls_us_there(kit) -> None:
    n = Node(kit, _non_proposer(kit, rounds=(0, 5)))
    n.start()
    n.votes(n.others()[:1], 5, PV, NIL_HASH)
    assert n.state.round == 0  # 1 of 4 is not more than a third
    n.votes(n.others()[1:2], 5, PC, NIL_HASH)
    assert n.state.round == 5 and n.state.step == Step.PROPOSE


def test_decides_on_precommits_of_an_earlier_round(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    blk = kit.block("late")
    n.propose(0, blk)
    n.timeout(0, Step.PROPOSE)
    n.votes(n.others(), 1, PV, NIL_HASH)  # we move on to round 1
    assert n.state.round == 1
    effects = n.votes(n.others(), 0, PC, blk)
    commit = [e for e in effects if isinstance(e, CommitBlock)]
    assert commit and commit[0].round == 0 and commit[0].block_hash == blk


def test_no_decision_without_the_proposal(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    effects = n.votes(n.others(), 0, PC, kit.block("unseen"))
    assert not any(isinstance(e, CommitBlock) for e in effects)
    n.propose(0, kit.block("unseen"))
    assert n.state.is_decided()


def test_invalid_inputs_are_rejected_or_ignored(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    before = n.state
    vs = n.vs
    # A proposal signed by the wrong proposer.
    wrong = next(v.address for v in vs.validators if v.address != vs.compute_proposer(0).address)
    p = kit.proposal(vs, 1, 0, kit.block("b"))
    forged = dataclasses.replace(p, proposer=wrong)
    assert isinstance(on_proposal(n.state, n.ctx, forged, True, 0)[1][0], InputRejected)
    # A vote with a bad signature, and one from outside the set.
    v = kit.vote(n.others()[0], 1, 0, PV, kit.block("b"))
    bad = dataclasses.replace(v, block_hash=kit.block("c"))
    assert isinstance(on_vote(n.state, n.ctx, bad, 0)[1][0], InputRejected)
    outsider = kit.vote(kit.keys[7].address(), 1, 0, PV, kit.block("b"))
    assert isinstance(on_vote(n.state, n.ctx, outsider, 0)[1][0], InputRejected)
    malformed = dataclasses.replace(v, signature=b"short")
    assert isinstance(on_vote(n.state, n.ctx, malformed, 0)[1][0], InputRejected)
    # Another height: ignored, not an offence.
    other_height = kit.vote(n.others()[0], 2, 0, PV, kit.block("b"))
    assert on_vote(n.state, n.ctx, other_height, 0) == (n.state, ())
    assert n.state == before


def test_equivocating_votes_are_reported_once_and_both_count(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    x = n.others()[0]
    b, c = kit.block("b"), kit.block("c")
    n.votes([x], 0, PV, b)
    effects = n.votes([x], 0, PV, c)
    reports = [e for e in effects if isinstance(e, EquivocationDetected)]
    assert len(reports) == 1 and isinstance(reports[0].evidence, DuplicateVoteEvidence)
    assert n.votes([x], 0, PV, c) == []
    vs = n.state.get_vote_set(0, PV)
    # Each block counts the equivocator; "any" counts it once.
    assert vs.get_power_for(b) == 1 and vs.get_power_for(c) == 1 and vs.power == 1


def test_conflicting_proposals_are_reported_and_both_kept(kit) -> None:
    n = Node(kit, _non_proposer(kit))
    n.start()
    n.propose(0, kit.block("p1"))
    effects = n.propose(0, kit.block("p2"))
    reports = [e for e in effects if isinstance(e, EquivocationDetected)]
    assert len(reports) == 1 and isinstance(reports[0].evidence, ConflictingProposalEvidence)
    # The second block can still be followed if the others decide it.
    effects = n.votes(n.others(), 0, PC, kit.block("p2"))
    assert any(isinstance(e, CommitBlock) and e.block_hash == kit.block("p2") for e in effects)


def test_observer_follows_without_asking_to_sign(kit) -> None:
    n = Node(kit, None)
    n.start()
    blk = kit.block("o")
    n.propose(0, blk)
    assert n.state.step == Step.PREVOTE
    n.votes([v.address for v in n.vs.validators][:3], 0, PV, blk)
    effects = n.votes([v.address for v in n.vs.validators][:3], 0, PC, blk)
    assert any(isinstance(e, CommitBlock) for e in effects)
    assert n.signed(PV) == [] and n.signed(PC) == []


def test_handlers_are_pure_and_deterministic(kit) -> None:
    vs = kit.make_valset((3, 1, 4, 1))
    me = vs.validators[_non_proposer(kit)].address
    ctx = MachineContext(kit.chain, me)
    s0 = new_round_state(1, vs)
    s1, e1 = on_start(s0, ctx, 0)
    assert s0 == new_round_state(1, vs) and not s0.started
    p = kit.proposal(vs, 1, 0, kit.block("d"))
    a = on_proposal(s1, ctx, p, True, 10)
    b = on_proposal(s1, ctx, p, True, 10)
    assert a == b
    assert s1.proposals == {}


@pytest.mark.parametrize("height", [1, 7])
def test_commit_from_unequal_powers_verifies(kit, height: int) -> None:
    n = Node(kit, None, powers=(5, 1, 1, 1), height=height)
    n.start()
    blk = kit.block("w")
    n.propose(0, blk)
    heavy = max(n.vs.validators, key=lambda v: v.power).address
    light = [v.address for v in n.vs.validators if v.address != heavy]
    assert not any(isinstance(e, CommitBlock) for e in n.votes(light, 0, PC, blk))
    effects = n.votes([heavy], 0, PC, blk)
    commit = next(e.commit for e in effects if isinstance(e, CommitBlock))
    verify_commit(kit.chain, n.vs, commit)
    assert commit.height == height


def test_invalid_round_beyond_the_cap_and_far_proposals(kit) -> None:
    from consensus.bft.machine import MAX_PROPOSAL_ROUNDS_AHEAD
    from consensus.votes import MAX_ROUND, VoteError

    n = Node(kit, _non_proposer(kit))
    n.start()
    with pytest.raises(VoteError):
        dataclasses.replace(
            kit.vote(n.others()[0], 1, 0, PV, NIL_HASH), round=MAX_ROUND + 1
        ).validate_basic()
    far = kit.proposal(n.vs, 1, MAX_PROPOSAL_ROUNDS_AHEAD + 1, kit.block("far"))
    assert on_proposal(n.state, n.ctx, far, True, 0) == (n.state, ())
