"""The ``time-warp`` fault against three honest drivers: its blocks are never committed, time stays honest.

Four real ``ConsensusDriver``s (executor, memory store, signer, WAL) deliver to
one another at once, on one manual clock, so every run is the same. Validator
3 holds 2000 of the 6146 voting power (under 1/3): it proposes blocks dated an
hour ahead of its clock (or at 2^64 - 1) and, in the first case, dates its own
votes an hour ahead too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from consensus.bft.config import TimeoutConfig
from consensus.blocks import Block
from consensus.evidence import Evidence
from consensus.state import State
from consensus.votes import MAX_TIMESTAMP_MS, Commit, Proposal, Vote
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockCommitted, BlockExecutor
from node.engine.faults import TIME_WARP_MS, TimeWarpProposer, TimeWarpSigner
from node.engine.proposer import BlockProposer
from node.engine.signer import MemorySignerStore, PersistentSigner
from storage import NodeStore
from tests.kit.chain import TestChain
from tests.node.engine.conftest import Recorder
from tests.sim.network import ManualClock
from tests.sim.simnode import MemoryWal

WARP = 3
TARGET_HEIGHT = 12
TIMEOUTS = TimeoutConfig(
    propose_ms=300, propose_delta_ms=150, prevote_ms=150, prevote_delta_ms=75,
    precommit_ms=150, precommit_delta_ms=75, commit_ms=100,
)


class NoMempool:
    def reap(self, max_txs: int, max_bytes: int, **_: object) -> list[object]:
        return []


class FarFutureProposer(BlockProposer):
    """Dates its blocks at the largest 64-bit time."""

    def compute_time(self, head_state: State, last_commit: Commit | None, now_ms: int) -> int:
        return 2**64 - 1


class CappedSigner(PersistentSigner):
    """Signs whatever it is asked, dated no later than a vote can be (its own block's votes would overflow)."""

    def sign_vote(self, vote: Vote) -> Vote:
        return super().sign_vote(vote.with_timestamp(min(vote.timestamp_ms, MAX_TIMESTAMP_MS)))


@dataclass
class Relay:
    """One node's network: every message goes at once to every other node."""

    index: int
    nodes: list[ConsensusDriver]
    proposals: list[tuple[Proposal, Block]] = field(default_factory=list)

    def broadcast_proposal(self, proposal: Proposal, block: Block) -> None:
        self.proposals.append((proposal, block))
        for j, d in enumerate(self.nodes):
            if j != self.index:
                d.deliver_proposal(f"n{self.index}", proposal, block)

    def broadcast_vote(self, vote: Vote) -> None:
        for j, d in enumerate(self.nodes):
            if j != self.index:
                d.deliver_vote(f"n{self.index}", vote)

    def broadcast_evidence(self, evidence: Evidence) -> None:
        for j, d in enumerate(self.nodes):
            if j != self.index:
                d.deliver_evidence(evidence)

    def report_peer(self, peer: str, reason: str) -> None:
        pass


def _run(mode: str) -> tuple[TestChain, list[list[tuple[BlockCommitted, int]]], list[Relay], ManualClock]:
    """Run the four drivers until the honest ones have committed TARGET_HEIGHT blocks."""
    chain = TestChain(n_validators=4)
    clock = ManualClock(chain.genesis_time_ms + 60_000)
    drivers: list[ConsensusDriver] = []
    relays: list[Relay] = []
    commits: list[list[tuple[BlockCommitted, int]]] = []
    for i in range(4):
        executor = BlockExecutor(NodeStore.open_memory(), chain.genesis)
        executor.init_genesis()
        address = chain.operator_keys[i].address()
        signer_cls: type[PersistentSigner] = PersistentSigner
        proposer = None
        if i == WARP and mode == "hour":
            signer_cls, proposer = TimeWarpSigner, TimeWarpProposer(executor, NoMempool(), address)
        elif i == WARP:
            signer_cls, proposer = CappedSigner, FarFutureProposer(executor, NoMempool(), address)
        signer = signer_cls(chain.consensus_keys[i], chain.chain_id, MemorySignerStore(), address)
        relay = Relay(i, drivers)
        driver = ConsensusDriver(
            executor=executor, wal=MemoryWal(), clock=clock, mempool=NoMempool(), network=relay,
            timeouts=TIMEOUTS, signer=signer, address=address, proposer=proposer,
        )
        seen: list[tuple[BlockCommitted, int]] = []
        driver.committed_listeners.append(lambda c, seen=seen: seen.append((c, clock.now_ms())))
        drivers.append(driver)
        relays.append(relay)
        commits.append(seen)
    for d in drivers:
        d.recover()
    honest = [d for i, d in enumerate(drivers) if i != WARP]
    for _ in range(100_000):
        while sum(d.process_inputs() for d in drivers):
            pass
        if all(d.executor.height >= TARGET_HEIGHT for d in honest):
            break
        if not clock.run_next():
            break
    assert all(d.executor.height >= TARGET_HEIGHT for d in honest), "the chain stopped committing"
    return chain, commits, relays, clock


@pytest.mark.parametrize("mode", ["hour", "max"])
def test_time_warp_blocks_are_never_committed_and_time_stays_honest(mode: str) -> None:
    chain, commits, relays, _ = _run(mode)
    warp_address = chain.operator_keys[WARP].address()
    warped = {b.hash() for p, b in relays[WARP].proposals if p.proposer == warp_address}
    assert len(warped) >= 2, "the warping validator never proposed"
    # Honest validators agree, and none of the warped blocks is among what they committed.
    first = [c.block.hash() for c, _ in commits[0]]
    for i in (1, 2):
        assert [c.block.hash() for c, _ in commits[i]][:TARGET_HEIGHT] == first[:TARGET_HEIGHT]
    assert warped.isdisjoint(first)
    assert all(c.block.header.proposer != warp_address for c, _ in commits[0])
    # Every committed block is dated no later than the clock when it was committed
    # (one machine, no honest skew), and time only moves forward.
    times = [c.block.header.time_ms for c, _ in commits[0]]
    assert times == sorted(set(times))
    for c, committed_at in commits[0]:
        assert c.block.header.time_ms <= committed_at
    if mode == "hour":
        # The warping validator's precommits, an hour ahead, are in the commits but move no time.
        blocks = {c.height: c.block for c, _ in commits[0]}
        late = 0
        for c, _ in commits[0]:
            last = c.block.last_commit
            for s in last.signatures if last is not None else ():
                if s.validator == warp_address:
                    late += 1
                    assert s.timestamp_ms > blocks[last.height].header.time_ms + TIME_WARP_MS
        assert late > 0


def test_votes_for_a_block_are_dated_after_it_and_nil_votes_keep_the_clock(recorder: Recorder) -> None:
    """A validator whose clock is behind the block still dates its votes for it later than the block."""
    chain = TestChain(n_validators=1)
    executor = BlockExecutor(NodeStore.open_memory(), chain.genesis)
    executor.init_genesis()
    address = chain.operator_keys[0].address()
    clock = ManualClock(chain.genesis_time_ms - 5_000)
    driver = ConsensusDriver(
        executor=executor, wal=MemoryWal(), clock=clock, mempool=NoMempool(), network=recorder,
        timeouts=TIMEOUTS, address=address,
        signer=PersistentSigner(chain.consensus_keys[0], chain.chain_id, MemorySignerStore(), address),
    )
    driver.recover()  # alone, it decides height 1 at once
    assert executor.height == 1
    block_time = chain.genesis_time_ms + 1
    assert [v.timestamp_ms for v in recorder.votes] == [block_time + 1, block_time + 1]
    commit = Commit.decode(executor.store.blocks.load_commit(1) or b"")
    assert [s.timestamp_ms for s in commit.signatures] == [block_time + 1]

    chain = TestChain(n_validators=4)
    executor = BlockExecutor(NodeStore.open_memory(), chain.genesis)
    executor.init_genesis()
    proposer = executor.validator_set().compute_proposer(0).address
    waiting = next(i for i in range(4) if chain.operator_keys[i].address() != proposer)
    address = chain.operator_keys[waiting].address()
    clock = ManualClock(chain.genesis_time_ms - 5_000)
    driver = ConsensusDriver(
        executor=executor, wal=MemoryWal(), clock=clock, mempool=NoMempool(), network=recorder,
        timeouts=TIMEOUTS, address=address,
        signer=PersistentSigner(chain.consensus_keys[waiting], chain.chain_id, MemorySignerStore(), address),
    )
    recorder.votes.clear()
    driver.recover()
    assert clock.run_next()  # the propose timeout: prevote nil
    driver.process_inputs()
    assert [(v.is_nil(), v.timestamp_ms) for v in recorder.votes] == [(True, clock.now_ms())]


@pytest.mark.parametrize("allowed", [0, 1])
def test_time_warp_mode_is_refused_unless_the_genesis_allows_test_faults(tmp_path: Path, allowed: int) -> None:
    from node.app import Node
    from node.config import load_config
    from node.errors import InvalidConfig
    from node.init import init_home, make_genesis, write_genesis

    made = init_home(tmp_path / "home", moniker="n0", passphrase=None)
    write_genesis(made.home, make_genesis("cstake-warp", [made], monikers=["n0"],
                                          params={"allow_test_faults": allowed}))
    cfg = load_config(made.home.config_file)
    if allowed:
        assert Node(made.home, cfg, byzantine="time-warp").byzantine == "time-warp"
    else:
        with pytest.raises(InvalidConfig, match="allow_test_faults"):
            Node(made.home, cfg, byzantine="time-warp")
