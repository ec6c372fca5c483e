"""A whole network starting together: signing held at start must not cost a round its votes.

Every validator holds its signing at start until block sync hears from its
peers (``ConsensusDriver.hold_signing``, ``BlockSyncer.catch_up_at_start``).
Meanwhile its round machine moves on as if it had voted: a validator still
held when its propose timeout fires is left prevoting, without a prevote out.
Seen on the compose devnet (4 containers started at once, test-docker): the
two validators released before their propose timeout prevoted nil; the two
released after it had no prevote to send, and precommitted nil once their
rearmed prevote timeout fired. Two prevotes and two precommits of four: no
step ever gathered two thirds of anything, so no timeout was armed again,
round 0 never ended and the chain never committed its first block.

Four real drivers over a direct, lossless network on the simulation's
manual clock; the release times are those of the stalled run.
"""

from __future__ import annotations

from functools import partial

from consensus.bft.config import TimeoutConfig
from consensus.blocks import Block
from consensus.evidence import Evidence
from consensus.votes import Proposal, Vote, VoteType
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockExecutor
from node.engine.signer import MemorySignerStore, PersistentSigner
from storage import MemoryKV, NodeStore
from tests.kit.chain import TestChain
from tests.node.engine.test_sync import ListMempool
from tests.sim.network import ManualClock
from tests.sim.simnode import MemoryWal

TIMEOUTS = TimeoutConfig(
    propose_ms=1_000, propose_delta_ms=500, prevote_ms=500, prevote_delta_ms=250,
    precommit_ms=500, precommit_delta_ms=250, commit_ms=500,
)
"""The devnet's timeouts (consensus.params.DEVNET)."""
LINK_MS = 20


class Bus:
    """Each node's Network: every broadcast reaches every other driver ``LINK_MS`` later."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.drivers: list[ConsensusDriver] = []
        self.sent: list[list[Vote]] = []

    def network(self, index: int) -> _Link:
        self.sent.append([])
        return _Link(self, index)

    def send(self, src: int, deliver: str, *args: object) -> None:
        for dst, driver in enumerate(self.drivers):
            if dst != src:
                self.clock.call_at(self.clock.now_ms() + LINK_MS, partial(getattr(driver, deliver), f"n{src}", *args))


class _Link:
    def __init__(self, bus: Bus, index: int) -> None:
        self.bus = bus
        self.index = index

    def broadcast_proposal(self, proposal: Proposal, block: Block) -> None:
        self.bus.send(self.index, "deliver_proposal", proposal, block)

    def broadcast_vote(self, vote: Vote) -> None:
        self.bus.sent[self.index].append(vote)
        self.bus.send(self.index, "deliver_vote", vote)

    def broadcast_evidence(self, evidence: Evidence) -> None:
        pass

    def report_peer(self, peer: str, reason: str) -> None:
        pass


def _network(chain: TestChain, clock: ManualClock) -> tuple[Bus, list[ConsensusDriver]]:
    bus = Bus(clock)
    for i in range(chain.n_validators):
        executor = BlockExecutor(NodeStore.open_memory(MemoryKV()), chain.genesis)
        executor.init_genesis()
        address = chain.operator_keys[i].address()
        signer = PersistentSigner(chain.consensus_keys[i], chain.chain_id, MemorySignerStore(), address)
        bus.drivers.append(ConsensusDriver(
            executor=executor, wal=MemoryWal(), clock=clock, mempool=ListMempool(), network=bus.network(i),
            timeouts=TIMEOUTS, signer=signer, address=address,
        ))
    return bus, bus.drivers


def _run_until(clock: ManualClock, drivers: list[ConsensusDriver], until_ms: int, height: int) -> None:
    for d in drivers:
        d.process_inputs()
    while clock.now_ms() < until_ms and min(d.executor.height for d in drivers) < height:
        if not clock.run_next():
            break
        for d in drivers:
            d.process_inputs()


def test_validators_released_after_their_propose_timeout_still_prevote() -> None:
    chain = TestChain(n_validators=4)
    clock = ManualClock(chain.genesis_time_ms + 60_000)
    bus, drivers = _network(chain, clock)
    t0 = clock.now_ms()
    proposer = drivers[0].state.validator_set.compute_proposer(0).address
    # The proposer (its proposal held from the start) and one other are released before the
    # propose timeout; the other two after it, as in the stalled compose run (0.55 s and 1.5 s).
    order = sorted(range(4), key=lambda i: chain.operator_keys[i].address() != proposer)
    early, late = order[:2], order[2:]
    for d in drivers:
        d.hold_signing()
        d.recover()
    assert drivers[late[0]].describe_round() == (
        "height 1 round 0 step propose, no proposal, no votes, signing held, 0 inputs queued"
    )
    for i in early:
        clock.call_at(t0 + 550, partial(drivers[i].release_signing, "peers answered"))
    for i in late:
        clock.call_at(t0 + 1_500, partial(drivers[i].release_signing, "peers answered"))

    _run_until(clock, drivers, t0 + 60_000, 3)

    heights = [d.executor.height for d in drivers]
    assert min(heights) >= 3, f"stalled at heights {heights}: {[d.describe_round() for d in drivers]}"
    assert len({d.executor.store.blocks.load_block_hash(3) for d in drivers}) == 1
    assert all(d.refused_signatures == 0 for d in drivers)
    # The late validators prevoted in round 0 of height 1: the prevote held at their
    # propose timeout went out on release.
    for i in late:
        assert any((v.height, v.round, v.vote_type) == (1, 0, VoteType.PREVOTE) for v in bus.sent[i]), i


def test_the_held_proposal_of_the_current_round_goes_out_on_release() -> None:
    """Released before its propose timeout, the proposer proposes the block it built while held."""
    chain = TestChain(n_validators=4)
    clock = ManualClock(chain.genesis_time_ms + 60_000)
    bus, drivers = _network(chain, clock)
    t0 = clock.now_ms()
    for d in drivers:
        d.hold_signing()
        d.recover()
    for d in drivers:
        clock.call_at(t0 + 300, partial(d.release_signing, "peers answered"))

    _run_until(clock, drivers, t0 + 60_000, 1)

    block = drivers[0].executor.store.blocks.load_block(1)
    assert block is not None
    assert Block.decode(block, max_bytes=len(block)).header.round == 0
    assert sum(d.held_signatures for d in drivers) >= 1  # the proposal, built while held
    assert all(d.refused_signatures == 0 for d in drivers)
