"""The consensus driver, driven by hand: one queue, one writer, collaborators' failures never swallowed."""

from __future__ import annotations

import pytest

from consensus.bft.config import TimeoutConfig
from consensus.bft.effects import Step
from consensus.blocks import Block
from consensus.errors import ConsensusError, InvalidBlock
from consensus.votes import NIL_HASH, Commit, VoteType
from node.engine.driver import ConsensusDriver, Network
from node.engine.executor import BlockCommitted, BlockExecutor
from node.engine.inputs import InStart, InTimeout, decode_input
from node.engine.signer import MemorySignerStore, PersistentSigner
from storage import NodeStore
from tests.kit.chain import TestChain
from tests.node.engine.conftest import Recorder
from tests.sim.network import ManualClock
from tests.sim.simnode import MemoryWal


class NoMempool:
    def reap(self, max_txs: int, max_bytes: int, **_: object) -> list[object]:
        return []


class Killed(Exception):
    pass


class DyingExecutor(BlockExecutor):
    def commit_block(self, block: Block, commit: Commit) -> BlockCommitted:
        raise Killed("power cut while writing")


def _executor(chain: TestChain, cls: type[BlockExecutor] = BlockExecutor) -> BlockExecutor:
    ex = cls(NodeStore.open_memory(), chain.genesis)
    ex.init_genesis()
    return ex


def _synced_blocks(chain: TestChain, count: int) -> list[tuple[Block, Commit]]:
    """Blocks and commits as a peer that committed them serves them."""
    peer = _executor(chain)
    out = []
    for _ in range(count):
        block = chain.build_block(state_root=peer.store.state_root)
        chain.apply(block)
        assert chain.last_commit is not None
        peer.commit_block(block, chain.last_commit)
        out.append((block, chain.last_commit))
    return out


def _driver(
    chain: TestChain, executor: BlockExecutor, network: Network, validator: int | None = None
) -> ConsensusDriver:
    signer = None
    address = None
    if validator is not None:
        address = chain.operator_keys[validator].address()
        signer = PersistentSigner(chain.consensus_keys[validator], chain.chain_id, MemorySignerStore(), address)
    return ConsensusDriver(
        executor=executor,
        wal=MemoryWal(),
        clock=ManualClock(chain.genesis_time_ms + 10_000),
        mempool=NoMempool(),
        network=network,
        timeouts=TimeoutConfig(),
        signer=signer,
        address=address,
    )


def test_synced_blocks_are_applied_by_the_driver_task_then_the_next_height_starts(recorder: Network) -> None:
    chain = TestChain(n_validators=4)
    blocks = _synced_blocks(chain, 3)
    executor = _executor(chain)
    driver = _driver(chain, executor, recorder)
    driver.recover()
    answers: list[tuple[int, ConsensusError | None]] = []
    driver.deliver_synced_blocks(blocks, lambda n, err: answers.append((n, err)))
    # Nothing changes until the driver's task takes the request from its queue.
    assert executor.height == 0 and driver.state.height == 1 and answers == []
    assert driver.process_inputs() == 1
    assert answers == [(3, None)]
    assert executor.height == 3
    assert driver.state.height == 4 and driver.state.started
    assert [decode_input(r) for r in driver.wal.records()] == [InStart(4, driver.clock.now_ms())]


def test_invalid_synced_block_is_refused_and_reported(recorder: Network) -> None:
    chain = TestChain(n_validators=4)
    (block, commit), (second, _) = _synced_blocks(chain, 2)
    executor = _executor(chain)
    driver = _driver(chain, executor, recorder)
    driver.recover()
    answers: list[tuple[int, ConsensusError | None]] = []
    driver.deliver_synced_blocks([(block, commit), (second, commit)], lambda n, err: answers.append((n, err)))
    driver.process_inputs()
    assert executor.height == 1
    assert answers[0][0] == 1 and isinstance(answers[0][1], InvalidBlock)


def test_collaborator_failure_comes_out_of_process_inputs(recorder: Network) -> None:
    """A crash inside the executor is not swallowed: the node dies with it."""
    chain = TestChain(n_validators=1)
    executor = _executor(chain, DyingExecutor)
    driver = _driver(chain, executor, recorder, validator=0)
    with pytest.raises(Killed):
        driver.recover()  # a one-validator chain decides height 1 at once, then commits it


def test_timeouts_run_on_the_clock_and_feed_the_queue(recorder: Recorder) -> None:
    chain = TestChain(n_validators=4)
    proposer = chain.view().get_validator_set().compute_proposer(0).address
    waiting = next(i for i in range(4) if chain.operator_keys[i].address() != proposer)
    driver = _driver(chain, _executor(chain), recorder, validator=waiting)
    driver.recover()
    clock = driver.clock
    assert isinstance(clock, ManualClock)
    assert driver.state.step == Step.PROPOSE
    assert clock.run_next(), "no propose timeout was armed"
    # The timer only queued the timeout: the round state moves when the driver's task runs.
    assert driver.state.step == Step.PROPOSE
    assert driver.process_inputs() == 1
    assert driver.state.step == Step.PREVOTE
    assert [(v.round, v.vote_type, v.block_hash) for v in recorder.votes] == [(0, VoteType.PREVOTE, NIL_HASH)]


def test_stopped_driver_arms_no_timer(recorder: Network) -> None:
    chain = TestChain(n_validators=4)
    driver = _driver(chain, _executor(chain), recorder, validator=3)
    driver.recover()
    clock = driver.clock
    assert isinstance(clock, ManualClock)
    driver.stop()
    while clock.run_next():
        pass
    assert driver.process_inputs() == 0


def test_a_full_inbox_never_drops_the_drivers_own_timeout(recorder: Recorder) -> None:
    """Peers can fill the queue; the node's own timer inputs must still get in, or the round never moves.

    (Found by the fault runner: a node left at height 31 round 0 with no timer and no progress.)
    """
    chain = TestChain(n_validators=4)
    proposer = chain.view().get_validator_set().compute_proposer(0).address
    waiting = next(i for i in range(4) if chain.operator_keys[i].address() != proposer)
    driver = _driver(chain, _executor(chain), recorder, validator=waiting)
    driver.recover()
    inbox = driver._inbox
    inbox.max_queue = 50
    stale = InTimeout(1, 7, Step.PROPOSE, 0)  # a round the machine is not in: ignored when processed
    for i in range(200):
        inbox.put(stale, peer=f"peer{i}")
    assert len(inbox) == 50 and inbox.dropped == 150
    clock = driver.clock
    assert isinstance(clock, ManualClock)
    assert clock.run_next(), "no propose timeout was armed"
    driver.process_inputs()
    assert driver.state.step == Step.PREVOTE, "the propose timeout was dropped by the full queue"
    assert [(v.round, v.vote_type) for v in recorder.votes] == [(0, VoteType.PREVOTE)]
