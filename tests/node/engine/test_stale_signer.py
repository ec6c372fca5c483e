"""A validator restarted on a stale data directory: it never signs a height it may have signed before.

The attack: an operator restarts a validator on an old copy of its data
directory, so its block store and its signer state both go back to height
H_s while the network (and this very validator, before) went on. Without the
guards the node prevotes nil at H_s+1 (it had prevoted a block there) and,
once synced, signs at the heights right after the tip with a state that says
it never signed there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from consensus.bft.config import TimeoutConfig
from consensus.blocks import Block
from consensus.votes import NIL_HASH, Commit, Vote, VoteType
from node.clock import SystemClock
from node.engine.driver import ConsensusDriver, Network
from node.engine.executor import BlockExecutor
from node.engine.gossip import GossipAdapter
from node.engine.signer import FileSignerStore, PersistentSigner
from node.engine.sync import BlockSyncer
from node.errors import DoubleSignRefused
from p2p.config import P2PConfig
from p2p.memory import MemoryHub, MemoryTransport
from storage import MemoryKV, NodeStore
from tests.kit.chain import TestChain
from tests.node.engine.conftest import Recorder
from tests.node.engine.test_sync import FAST, ListMempool, serving_peer
from tests.sim.network import ManualClock
from tests.sim.simnode import MemoryWal

VICTIM_HEIGHT = 2
"""The height the stale copy of the data directory stops at."""
TIP = 5
"""The height the chain (and the victim, before the copy was restored) reached."""


class Producer:
    """The rest of the network: builds blocks and commits them to a store of its own."""

    def __init__(self, chain: TestChain) -> None:
        self.chain = chain
        self.executor = BlockExecutor(NodeStore.open_memory(MemoryKV()), chain.genesis)
        self.executor.init_genesis()
        self.blocks: list[tuple[Block, Commit]] = []

    def build(self, count: int) -> list[tuple[Block, Commit]]:
        out = []
        for _ in range(count):
            chain = self.chain
            block = chain.build_block(state_root=self.executor.store.state_root)
            chain.apply(block)
            commit = chain.sign_commit(block)
            chain.last_commit = commit
            self.executor.commit_block(block, commit)
            out.append((block, commit))
        self.blocks.extend(out)
        return out


def _victim_index(chain: TestChain, height_round_proposer: bytes) -> int:
    return next(i for i in range(chain.n_validators) if chain.operator_keys[i].address() != height_round_proposer)


def _stale_victim(tmp_path: Path) -> tuple[TestChain, Producer, int, BlockExecutor, PersistentSigner]:
    """The chain at TIP, signed by all four, and the victim's stale store and signer state at VICTIM_HEIGHT."""
    chain = TestChain(n_validators=4)
    producer = Producer(chain)
    producer.build(TIP)
    # A victim that is not the proposer of (VICTIM_HEIGHT + 1, round 0): it waits for timeout_propose.
    proposer = producer.executor.validator_set().compute_proposer(0).address
    victim = _victim_index(chain, proposer)
    stale = BlockExecutor(NodeStore.open_memory(MemoryKV()), chain.genesis)
    stale.init_genesis()
    for block, commit in producer.blocks[:VICTIM_HEIGHT]:
        stale.apply_synced_block(block, commit)
    address = chain.operator_keys[victim].address()
    signer = PersistentSigner(
        chain.consensus_keys[victim], chain.chain_id, FileSignerStore(tmp_path / "signer_state"), address
    )
    # The stale signer state: the victim's precommit of the last block of the copy.
    block, commit = producer.blocks[VICTIM_HEIGHT - 1]
    ts = next(s.timestamp_ms for s in commit.signatures if s.validator == address)
    signer.sign_vote(Vote(VICTIM_HEIGHT, commit.round, VoteType.PRECOMMIT, block.hash(), address, ts))
    return chain, producer, victim, stale, signer


def _driver(chain: TestChain, executor: BlockExecutor, signer: PersistentSigner, network: Recorder) -> ConsensusDriver:
    return ConsensusDriver(
        executor=executor,
        wal=MemoryWal(),
        clock=ManualClock(chain.genesis_time_ms + 60_000),
        mempool=ListMempool(),
        network=network,
        timeouts=TimeoutConfig(),
        signer=signer,
        address=signer.address,
    )


def _time_out_propose(driver: ConsensusDriver) -> None:
    clock = driver.clock
    assert isinstance(clock, ManualClock)
    assert clock.run_next(), "no propose timeout was armed"
    driver.process_inputs()


def test_stale_validator_signs_nothing_until_caught_up_then_refuses_proven_heights(
    tmp_path: Path, recorder: Recorder
) -> None:
    chain, producer, victim, stale, signer = _stale_victim(tmp_path)
    driver = _driver(chain, stale, signer, recorder)
    # As the node starts it (node/app.py): no signature until block sync says we are not behind.
    driver.hold_signing()
    driver.recover()
    assert driver.state.height == VICTIM_HEIGHT + 1
    _time_out_propose(driver)
    # Before the rollback the victim prevoted (and precommitted) block 3: a nil prevote would conflict.
    assert driver.state.step >= 2
    assert recorder.votes == [] and recorder.proposals == []
    assert driver.held_signatures >= 1

    # Block sync brings the tip; the synced commits carry the victim's own precommits.
    driver.deliver_synced_blocks(producer.blocks[VICTIM_HEIGHT:])
    driver.process_inputs()
    assert stale.height == TIP and driver.state.height == TIP + 1
    floor = TIP + 2
    assert signer.last.height == floor
    driver.release_signing("caught up with peers")

    # Heights TIP+1 and TIP+2 (the old process may have signed there) are refused.
    _time_out_propose(driver)
    assert recorder.votes == []
    assert driver.refused_signatures >= 1

    # The rest of the network goes on without the victim; from TIP+3 on it signs again.
    chain.absent = {victim}
    driver.deliver_synced_blocks(producer.build(2))
    driver.process_inputs()
    assert driver.state.height == floor + 1
    _time_out_propose(driver)
    assert [(v.height, v.round, v.vote_type, v.block_hash) for v in recorder.votes] == [
        (floor + 1, 0, VoteType.PREVOTE, NIL_HASH)
    ]
    assert signer.last.height == floor + 1


def test_the_floor_survives_a_restart(tmp_path: Path, recorder: Recorder) -> None:
    chain, producer, victim, stale, signer = _stale_victim(tmp_path)
    driver = _driver(chain, stale, signer, recorder)
    driver.recover()
    driver.deliver_synced_blocks(producer.blocks[VICTIM_HEIGHT:])
    driver.process_inputs()
    driver.stop()
    assert isinstance(signer.store, FileSignerStore)
    signer.store.close()
    again = PersistentSigner(
        chain.consensus_keys[victim], chain.chain_id, FileSignerStore(tmp_path / "signer_state"), signer.address
    )
    for height in (TIP + 1, TIP + 2):
        vote = Vote(height, 0, VoteType.PREVOTE, NIL_HASH, signer.address, chain.genesis_time_ms)
        try:
            again.sign_vote(vote)
        except DoubleSignRefused:
            continue
        raise AssertionError(f"height {height} was signed after a restart")
    again.sign_vote(Vote(TIP + 3, 0, VoteType.PREVOTE, NIL_HASH, signer.address, chain.genesis_time_ms))


def test_stale_head_is_caught_at_start(tmp_path: Path, recorder: Recorder) -> None:
    """A store ahead of the signer state (restored alone, or the key used elsewhere) is proof too."""
    chain, producer, victim, stale, signer = _stale_victim(tmp_path)
    for block, commit in producer.blocks[VICTIM_HEIGHT:]:
        stale.apply_synced_block(block, commit)
    driver = _driver(chain, stale, signer, recorder)
    driver.recover()
    assert signer.last.height == TIP + 2
    _time_out_propose(driver)
    assert recorder.votes == []


# -- the start guard over block sync (node.engine.sync.BlockSyncer.catch_up_at_start) ----------------


class Validator:
    """The driver of a validator with its signer and block syncer over the memory transport."""

    def __init__(
        self, chain: TestChain, hub: MemoryHub, home: Path, index: int, startup_timeout_ms: int,
        network: Network | None = None, peer_id: str = "victim",
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.recorder = Recorder()
        self.executor = BlockExecutor(NodeStore.open_memory(MemoryKV()), chain.genesis)
        self.executor.init_genesis()
        address = chain.operator_keys[index].address()
        self.signer = PersistentSigner(
            chain.consensus_keys[index], chain.chain_id, FileSignerStore(home / "signer_state"), address
        )
        self.driver = ConsensusDriver(
            executor=self.executor, wal=MemoryWal(), clock=SystemClock(), mempool=ListMempool(),
            network=network or self.recorder, timeouts=FAST, signer=self.signer, address=address,
        )
        cfg = P2PConfig(chain_id=chain.chain_id, key_path=str(home / "node_key"))
        self.transport = MemoryTransport(cfg, hub, peer_id=peer_id)
        self.syncer = BlockSyncer(
            self.transport, self.executor, self.driver, poll_s=0.05, seed=3, startup_timeout_ms=startup_timeout_ms
        )

    async def run_start(self, peers: list[str]) -> float:
        """Start as the daemon does; return the seconds until signing was released."""
        await self.transport.start()
        for p in peers:
            await self.transport.connect(f"/memory/{p}/p2p/{p}")
        self.driver.hold_signing()
        self.driver.recover()
        self.task = asyncio.create_task(self.driver.run())
        t0 = asyncio.get_running_loop().time()
        async with asyncio.timeout(30):
            await self.syncer.catch_up_at_start()
        return asyncio.get_running_loop().time() - t0

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.driver.stop()
        await self.transport.stop()
        assert isinstance(self.signer.store, FileSignerStore)
        self.signer.store.close()


async def test_lone_validator_signs_after_the_startup_timeout(tmp_path: Path) -> None:
    chain = TestChain(n_validators=1)
    node = Validator(chain, MemoryHub(), tmp_path, 0, startup_timeout_ms=300)
    try:
        waited = await node.run_start([])
        assert waited >= 0.3
        assert not node.driver.is_signing_held
        # Its round 0 proposal was held back while it waited for peers.
        assert node.driver.held_signatures >= 1
        # Then it signs: a one-validator chain decides alone.
        async with asyncio.timeout(20):
            while node.executor.height < 1:
                await asyncio.sleep(0.05)
        assert node.recorder.proposals and node.signer.last.height >= 1
    finally:
        await node.stop()


async def test_validator_behind_its_peers_syncs_before_it_signs(tmp_path: Path) -> None:
    chain, producer, victim, _stale, signer = _stale_victim(tmp_path)
    assert isinstance(signer.store, FileSignerStore)
    signer.store.close()
    hub = MemoryHub()
    rows = [(b.encode(), c.encode()) for b, c in producer.blocks]
    peer, _ = await serving_peer(chain, hub, tmp_path, "peer", rows)
    try:
        node = Validator(chain, hub, tmp_path, victim, startup_timeout_ms=60_000)
        assert node.signer.last.height == VICTIM_HEIGHT  # the stale state
        waited = await node.run_start(["peer"])
        # Released on the peers' answer after syncing, long before the timeout.
        assert waited < 30 and not node.driver.is_signing_held
        assert node.executor.height == TIP
        assert node.recorder.votes == [] and node.recorder.proposals == []
        assert node.signer.last.height == TIP + 2
        await node.stop()
    finally:
        await peer.stop()


async def test_whole_network_restarting_together_starts_signing_on_the_peers_answers(tmp_path: Path) -> None:
    """Four validators start at once (a devnet restart): each releases on its peers' status, no timeout."""
    chain = TestChain(n_validators=4)
    hub = MemoryHub()
    nodes = []
    gossips: list[GossipAdapter] = []
    for i in range(4):
        cfg = P2PConfig(chain_id=chain.chain_id, key_path=str(tmp_path / f"g{i}.key"))
        transport = MemoryTransport(cfg, hub, peer_id=f"v{i}")
        gossip = GossipAdapter(transport, chain.chain_id, part_key=chain.consensus_keys[i])
        node = Validator(chain, hub, tmp_path / f"v{i}", i, startup_timeout_ms=60_000, network=gossip, peer_id=f"v{i}")
        node.transport = transport  # the gossip adapter's transport carries block sync too
        node.syncer = BlockSyncer(transport, node.executor, node.driver, poll_s=0.05, seed=i, startup_timeout_ms=60_000)
        gossip.attach(node.driver)
        nodes.append(node)
        gossips.append(gossip)
    try:
        waits = await asyncio.gather(*(n.run_start([f"v{j}" for j in range(i)]) for i, n in enumerate(nodes)))
        assert max(waits) < 30
        async with asyncio.timeout(30):
            while min(n.executor.height for n in nodes) < 3:
                await asyncio.sleep(0.05)
        assert len({n.executor.store.blocks.load_block_hash(3) for n in nodes}) == 1
        assert all(n.driver.refused_signatures == 0 for n in nodes)
    finally:
        for n, g in zip(nodes, gossips, strict=True):
            await g.close()
            await n.stop()


async def test_a_peer_claiming_a_height_it_never_serves_cannot_hold_signing(tmp_path: Path) -> None:
    """Held only while sync makes progress: a liar's status (height one million, no blocks)
    delays signing by the startup timeout, not for ever (it would starve the validator into
    downtime slashing)."""
    chain = TestChain(n_validators=1)
    hub = MemoryHub()
    liar, prov = await serving_peer(chain, hub, tmp_path, "liar", [])
    prov.get_status = lambda: (1_000_000, bytes(32), 1)  # type: ignore[method-assign]
    node = Validator(chain, hub, tmp_path / "me", 0, startup_timeout_ms=400)
    try:
        waited = await node.run_start(["liar"])
        assert 0.4 <= waited < 10 and not node.driver.is_signing_held
        async with asyncio.timeout(20):  # and it signs: a one-validator chain decides alone
            while node.executor.height < 1:
                await asyncio.sleep(0.05)
    finally:
        await node.stop()
        await liar.stop()
