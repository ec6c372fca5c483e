"""Authentication before use: the driver checks every network message against the set of its height.

Driven by hand on the real driver (executor, memory store, signer): what
does not authenticate is never queued, kept for a later height, logged,
executed or shown to the evidence pool, and the driver never blames the
peer that forwarded it; faults a forwarder could have seen itself are named
for the gossip layer to penalise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consensus.bft.config import TimeoutConfig
from consensus.blocks import Block
from consensus.crypto import Domain, PrivateKey
from consensus.evidence import compute_duplicate_vote_evidence
from consensus.transition import TransitionResult
from consensus.txs import SignedTx
from consensus.validator_set import MAX_ROUND
from consensus.votes import Proposal, Vote, VoteType
from node.engine.auth import FUTURE_HEIGHTS, PROPOSAL_ROUNDS_AHEAD
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockExecutor
from node.engine.signer import MemorySignerStore, PersistentSigner
from node.engine.wal import WriteAheadLog
from node.errors import WalError
from p2p.scoring import PENALTY
from storage import NodeStore
from tests.kit.chain import TestChain
from tests.node.engine.conftest import Recorder
from tests.sim.network import ManualClock
from tests.sim.simnode import MemoryWal

OTHER = b"\x11" * 32


class NoMempool:
    def reap(self, max_txs: int, max_bytes: int, **_: object) -> list[object]:
        return []


class CountingExecutor(BlockExecutor):
    """The real executor, counting the blocks it is asked to execute."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.asked: list[bytes] = []

    def validate_block(self, block: Block, txs: list[SignedTx] | None = None) -> TransitionResult:
        self.asked.append(block.hash())
        return super().validate_block(block, txs)


def _index(chain: TestChain, address: bytes) -> int:
    return [k.address() for k in chain.operator_keys].index(address)


def _vote(chain: TestChain, i: int, height: int, round_: int, vote_type: int, block_hash: bytes) -> Vote:
    v = Vote(height, round_, vote_type, block_hash, chain.operator_keys[i].address(), chain.genesis_time_ms + 5)
    return v.with_signature(chain.consensus_keys[i].sign(Domain.VOTE, chain.chain_id, v.sign_payload()))


def _proposal(chain: TestChain, block: Block, round_: int = 0) -> Proposal:
    i = _index(chain, block.header.proposer)
    p = Proposal(block.header.height, round_, -1, block.hash(), block.header.proposer, block.header.time_ms)
    return p.with_signature(chain.consensus_keys[i].sign(Domain.PROPOSAL, chain.chain_id, p.sign_payload()))


def _forged(vote: Vote) -> Vote:
    return vote.with_signature(bytes(64))


def _setup(
    chain: TestChain, recorder: Recorder, *, validator: int | None = None, wal: object = None
) -> tuple[ConsensusDriver, CountingExecutor]:
    executor = CountingExecutor(NodeStore.open_memory(), chain.genesis)
    executor.init_genesis()
    signer = address = None
    if validator is not None:
        address = chain.operator_keys[validator].address()
        signer = PersistentSigner(chain.consensus_keys[validator], chain.chain_id, MemorySignerStore(), address)
    driver = ConsensusDriver(
        executor=executor, wal=wal or MemoryWal(), clock=ManualClock(chain.genesis_time_ms + 10_000),  # type: ignore[arg-type]
        mempool=NoMempool(), network=recorder, timeouts=TimeoutConfig(), signer=signer, address=address,
    )
    return driver, executor


def _not_proposer(chain: TestChain) -> int:
    proposer = chain.view().get_validator_set().compute_proposer(0).address
    return next(i for i in range(chain.n_validators) if chain.operator_keys[i].address() != proposer)


def _decide_height_one(chain: TestChain, driver: ConsensusDriver, executor: BlockExecutor, me: int) -> Block:
    """Deliver the round-0 proposal and every other validator's votes: height 1 is decided (and written)."""
    driver.recover()
    block = chain.build_block(state_root=executor.store.state_root)
    driver.deliver_proposal("peer", _proposal(chain, block), block)
    driver.process_inputs()
    for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
        for i in range(chain.n_validators):
            if i != me:
                driver.deliver_vote("peer", _vote(chain, i, 1, 0, vote_type, block.hash()))
        driver.process_inputs()
    assert driver.state.is_decided() and executor.height == 1
    return block


def test_forged_votes_are_refused_with_the_fault_a_forwarder_could_see(recorder: Recorder) -> None:
    chain = TestChain(n_validators=4)
    driver, _ = _setup(chain, recorder)
    driver.recover()
    real = _vote(chain, 1, 1, 0, VoteType.PREVOTE, OTHER)
    assert driver.check_vote(real).ok
    forged = driver.check_vote(_forged(real))
    assert not forged.ok and forged.fault == "bad_signature"
    stranger = PrivateKey.from_seed(b"\x07" * 32)
    v = Vote(1, 0, VoteType.PREVOTE, OTHER, stranger.address(), 5)
    v = v.with_signature(stranger.sign(Domain.VOTE, chain.chain_id, v.sign_payload()))
    assert driver.check_vote(v).fault == "not_validator"
    # Every fault named is an entry of the penalty table.
    assert {"bad_signature", "not_validator", "wrong_proposer", "malformed"} <= set(PENALTY)
    # Nothing forged is queued.
    driver.deliver_vote("peer", _forged(real))
    driver.deliver_vote("peer", v)
    assert driver.process_inputs() == 0
    assert driver.unauthenticated_inputs == 2


def test_far_heights_and_rounds_are_ignored_without_blame(recorder: Recorder) -> None:
    chain = TestChain(n_validators=4)
    driver, _ = _setup(chain, recorder)
    driver.recover()
    far_height = _forged(_vote(chain, 1, 2 + FUTURE_HEIGHTS, 0, VoteType.PREVOTE, OTHER))
    far_round = _forged(_vote(chain, 1, 1, MAX_ROUND, VoteType.PREVOTE, OTHER))
    for vote in (far_height, far_round):
        result = driver.check_vote(vote)
        assert not result.ok and result.fault == "", result
    # Checked before the signature: a forged signature there costs no verification.
    assert driver.sigcache.verified == 0


def test_future_sets_are_derived_exactly_within_an_epoch_and_unknown_across_it(recorder: Recorder) -> None:
    chain = TestChain(n_validators=4, params={"epoch_blocks": 3})
    driver, executor = _setup(chain, recorder)
    driver.recover()
    derived = driver.auth.get_set(2)
    assert derived is not None and driver.auth.get_set(3) is not None
    assert driver.auth.get_set(4) is None  # block 3 ends an epoch: the set of 4 is not known yet
    # The derived set is exactly the one the transition gives (priorities included).
    block = chain.build_block(state_root=executor.store.state_root)
    chain.apply(block)
    actual = chain.view().get_validator_set()
    assert [(v.address, v.power, v.proposer_priority) for v in derived.validators] == [
        (v.address, v.power, v.proposer_priority) for v in actual.validators
    ]
    # So votes of height 2 authenticate now, and height 4's are ignored, not blamed.
    assert driver.check_vote(_vote(chain, 1, 2, 0, VoteType.PREVOTE, OTHER)).ok
    result = driver.check_vote(_vote(chain, 1, 4, 0, VoteType.PREVOTE, OTHER))
    assert not result.ok and result.fault == ""


def test_a_proposal_for_a_far_round_is_ignored_and_never_executed(recorder: Recorder) -> None:
    chain = TestChain(n_validators=4)
    driver, executor = _setup(chain, recorder)
    driver.recover()
    vset = chain.view().get_validator_set()
    for round_ in (PROPOSAL_ROUNDS_AHEAD + 1, MAX_ROUND):
        proposer = vset.compute_proposer(round_).address
        block = chain.build_block(round=round_, state_root=executor.store.state_root)
        assert block.header.proposer == proposer
        proposal = _proposal(chain, block, round_)
        result = driver.check_proposal(proposal)
        assert not result.ok and result.fault == ""
        driver.deliver_proposal("peer", proposal, block)
        driver.process_inputs()
    assert executor.asked == [] and driver.state.proposals == {}
    # Within the window the same kind of proposal is taken (and its block executed once).
    block = chain.build_block(round=1, state_root=executor.store.state_root)
    proposal = _proposal(chain, block, 1)
    assert driver.check_proposal(proposal).ok
    wrong = Proposal(1, 1, -1, block.hash(), chain.operator_keys[_index(chain, block.header.proposer) ^ 1].address(), 5)
    assert driver.check_proposal(wrong.with_signature(bytes(64))).fault == "wrong_proposer"
    driver.deliver_proposal("peer", proposal, block)
    driver.process_inputs()
    assert executor.asked == [block.hash()]


def test_forged_votes_after_a_decision_never_reach_the_evidence_pool(recorder: Recorder) -> None:
    chain = TestChain(n_validators=4)
    me = _not_proposer(chain)
    driver, executor = _setup(chain, recorder, validator=me)
    block = _decide_height_one(chain, driver, executor, me)
    other = next(i for i in range(4) if i != me)
    # Height 1 is decided and the node waits for its commit timeout: votes of it still arrive.
    forged = _forged(_vote(chain, other, 1, 0, VoteType.PRECOMMIT, OTHER))
    driver.deliver_vote("peer", forged)
    driver.process_inputs()
    assert driver.pool.get_pending(2, 100) == ()
    # The pool refuses it even when handed it directly.
    assert driver.pool.check_vote(forged) is None and driver.pool.refused == 1
    # A real conflicting precommit is evidence, as it must be.
    real = _vote(chain, other, 1, 0, VoteType.PRECOMMIT, OTHER)
    driver.deliver_vote("peer", real)
    driver.process_inputs()
    pending = driver.pool.get_pending(2, 100)
    assert len(pending) == 1 and pending[0].validator == chain.operator_keys[other].address()
    assert recorder.evidence == list(pending)
    assert block.hash() == driver.state.decided_value


def test_evidence_is_authenticated_before_the_pool_sees_it(recorder: Recorder) -> None:
    chain = TestChain(n_validators=4)
    driver, _ = _setup(chain, recorder)
    driver.recover()
    a = _vote(chain, 2, 1, 0, VoteType.PREVOTE, OTHER)
    b = _vote(chain, 2, 1, 0, VoteType.PREVOTE, b"\x22" * 32)
    forged = compute_duplicate_vote_evidence(_forged(a), b)
    assert driver.check_evidence(forged).fault == "bad_signature"
    driver.deliver_evidence(forged)
    real = compute_duplicate_vote_evidence(a, b)
    assert driver.check_evidence(real).ok
    driver.deliver_evidence(real)
    driver.process_inputs()
    assert driver.pool.get_pending(1, 10) == (real,)
    known = driver.check_evidence(real)
    assert not known.ok and known.fault == ""


def test_the_driver_never_blames_a_forwarder(recorder: Recorder) -> None:
    chain = TestChain(n_validators=4)
    me = _not_proposer(chain)
    driver, executor = _setup(chain, recorder, validator=me)
    _decide_height_one(chain, driver, executor, me)
    block = chain.build_block(state_root=executor.store.state_root)
    driver.deliver_proposal("peer", _proposal(chain, block), dataclass_replace_height(block, 9))
    driver.deliver_vote("peer", _forged(_vote(chain, 1, 1, 0, VoteType.PREVOTE, OTHER)))
    driver.process_inputs()
    assert recorder.reports == []


def dataclass_replace_height(block: Block, height: int) -> Block:
    import dataclasses

    return dataclasses.replace(block, header=dataclasses.replace(block.header, height=height))


def test_a_record_the_wal_refuses_drops_that_input_only(recorder: Recorder, tmp_path: Path) -> None:
    chain = TestChain(n_validators=4)
    wal = WriteAheadLog(tmp_path / "wal", max_record_bytes=200)
    driver, executor = _setup(chain, recorder, wal=wal)
    driver.recover()
    block = chain.build_block(state_root=executor.store.state_root)
    assert len(block.encode()) > 200
    driver.deliver_proposal("peer", _proposal(chain, block), block)
    driver.process_inputs()  # does not raise: the proposal is dropped, before the machine sees it
    assert driver.dropped_inputs == 1 and driver.state.proposals == {}
    assert len(wal.records()) == 0 and wal.size > 0  # the start was logged, nothing else
    # What the node must log itself (a height start) still fails loudly.
    tiny = WriteAheadLog(tmp_path / "tiny", max_record_bytes=4)
    driver, _ = _setup(chain, recorder, wal=tiny)
    with pytest.raises(WalError):
        driver.recover()
