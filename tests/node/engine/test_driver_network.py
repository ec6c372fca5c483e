"""The real driver, executor, signer, WAL and gossip adapter: four validators over the memory transport."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from consensus.bft.config import TimeoutConfig
from consensus.txs import SignedTx, Transfer
from node.clock import SystemClock
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockCommitted, BlockExecutor
from node.engine.gossip import GossipAdapter
from node.engine.signer import FileSignerStore, PersistentSigner
from node.engine.sync import BlockSyncer
from node.engine.wal import WriteAheadLog
from p2p.config import P2PConfig
from p2p.memory import MemoryHub, MemoryTransport
from storage import MemoryKV, NodeStore
from tests.kit.chain import TestChain

FAST = TimeoutConfig(
    propose_ms=300, propose_delta_ms=100, prevote_ms=150, prevote_delta_ms=50,
    precommit_ms=150, precommit_delta_ms=50, commit_ms=50,
)


class ListMempool:
    def __init__(self) -> None:
        self.txs: list[SignedTx] = []

    def reap(self, max_txs: int, max_bytes: int, **_: object) -> list[SignedTx]:
        out, self.txs = self.txs[:max_txs], self.txs[max_txs:]
        return out


class MiniNode:
    def __init__(self, chain: TestChain, i: int, hub: MemoryHub, home: Path, kv: MemoryKV | None = None) -> None:
        self.chain, self.i, self.hub, self.home = chain, i, hub, home
        self.kv = kv or MemoryKV()
        self.commits: list[BlockCommitted] = []

    async def start(self, peers: list[str]) -> None:
        chain, i = self.chain, self.i
        self.store = NodeStore.open_memory(self.kv)
        self.executor = BlockExecutor(self.store, chain.genesis)
        self.executor.init_genesis()
        self.wal = WriteAheadLog(self.home / "cs.wal")
        self.signer_store = FileSignerStore(self.home / "signer")
        signer = PersistentSigner(
            chain.consensus_keys[i], chain.chain_id, self.signer_store, chain.operator_keys[i].address()
        )
        cfg = P2PConfig(chain_id=chain.chain_id, key_path=str(self.home / "node_key"))
        self.transport = MemoryTransport(cfg, self.hub, peer_id=f"n{i}")
        self.gossip = GossipAdapter(self.transport, chain.chain_id, part_key=chain.consensus_keys[i])
        self.mempool = ListMempool()
        self.driver = ConsensusDriver(
            executor=self.executor, wal=self.wal, clock=SystemClock(), mempool=self.mempool,
            network=self.gossip, timeouts=FAST, signer=signer,
            address=chain.operator_keys[i].address(),
        )
        self.driver.committed_listeners.append(self.commits.append)
        self.gossip.attach(self.driver)
        self.syncer = BlockSyncer(self.transport, self.executor, self.driver, stall_ms=800, poll_s=0.2)
        await self.transport.start()
        for p in peers:
            await self.transport.connect(f"/memory/{p}/p2p/{p}")
        self.driver.recover()
        self.tasks = [asyncio.create_task(self.driver.run()), asyncio.create_task(self.syncer.run())]

    async def stop(self, *, crash: bool = False) -> None:
        """Stop; ``crash`` leaves the in-memory store as a killed process would (not closed)."""
        if not hasattr(self, "tasks"):
            return
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.driver.stop()
        await self.gossip.close()
        await self.transport.stop()
        self.wal.close()
        self.signer_store.close()
        if not crash:
            self.store.close()


async def wait_for(cond, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.fixture
def chain() -> TestChain:
    return TestChain(n_validators=4, stakes=[10_000, 20_000, 30_000, 40_000])


async def test_four_validators_commit_identical_blocks(chain: TestChain, tmp_path: Path) -> None:
    hub = MemoryHub()
    nodes = [MiniNode(chain, i, hub, tmp_path / f"n{i}") for i in range(4)]
    try:
        for k, n in enumerate(nodes):
            await n.start([f"n{j}" for j in range(k)])
        a, b = chain.account_keys[0], chain.account_keys[1]
        tx = chain.tx(a, Transfer(b.address(), 77))
        for n in nodes:
            n.mempool.txs.append(tx)
        await wait_for(lambda: all(n.executor.height >= 6 for n in nodes))
        for h in range(1, 7):
            hashes = {n.store.blocks.load_block_hash(h) for n in nodes}
            assert len(hashes) == 1, f"fork at height {h}"
        roots = {n.store.state_root_at(6) for n in nodes}
        assert len(roots) == 1
        # Late precommits are carried into the next block: nobody looks absent.
        from consensus.blocks import Block

        full = 0
        for h in range(2, 7):
            block = Block.decode(nodes[0].store.blocks.load_block(h))  # type: ignore[arg-type]
            assert block.last_commit is not None
            full += len(block.last_commit.signatures) == 4
        assert full >= 4
        included = [c for c in nodes[0].commits if tx.tx_hash in c.tx_hashes]
        assert included and included[0].tx_results[list(included[0].tx_hashes).index(tx.tx_hash)].code == 0
        # A peer a little behind fetches a proposal block this node already committed:
        # it is served from the store; an unknown hash or a malformed request gets nothing.
        h2 = nodes[1].store.blocks.load_block_hash(2)
        assert h2 is not None
        assert nodes[1].gossip.serve_block("n0", h2) == [nodes[1].store.blocks.load_block(2)]
        assert nodes[1].gossip.serve_block("n0", bytes(32)) == [b""]
        assert nodes[1].gossip.serve_block("n0", b"short") == [b""]
    finally:
        for n in nodes:
            await n.stop()


async def test_large_blocks_travel_as_signed_parts(chain: TestChain, tmp_path: Path) -> None:
    hub = MemoryHub()
    nodes = [MiniNode(chain, i, hub, tmp_path / f"n{i}") for i in range(4)]
    try:
        for k, n in enumerate(nodes):
            await n.start([f"n{j}" for j in range(k)])
        a, b = chain.account_keys[0], chain.account_keys[1]
        txs = [chain.tx(a, Transfer(b.address(), 1)) for _ in range(600)]
        for n in nodes:
            n.mempool.txs.extend(txs)
        hashes = {t.tx_hash for t in txs}

        def included(n: MiniNode) -> int:
            return sum(len(hashes & set(c.tx_hashes)) for c in n.commits)

        await wait_for(lambda: all(included(n) == 600 for n in nodes), timeout=60)
        assert sum(n.gossip.blocks_assembled for n in nodes) >= 3
        h = min(n.executor.height for n in nodes)
        for height in range(1, h + 1):
            assert len({n.store.blocks.load_block_hash(height) for n in nodes}) == 1
    finally:
        for n in nodes:
            await n.stop()


async def test_restarted_validator_catches_up_by_sync(chain: TestChain, tmp_path: Path) -> None:
    hub = MemoryHub()
    nodes = [MiniNode(chain, i, hub, tmp_path / f"n{i}") for i in range(4)]
    try:
        for k, n in enumerate(nodes):
            await n.start([f"n{j}" for j in range(k)])
        await wait_for(lambda: all(n.executor.height >= 3 for n in nodes))
        victim = nodes[0]
        await victim.stop(crash=True)
        others = nodes[1:]
        start = max(n.executor.height for n in others)
        await wait_for(lambda: all(n.executor.height >= start + 5 for n in others))
        revived = MiniNode(chain, 0, hub, tmp_path / "n0", kv=victim.kv)
        nodes[0] = revived
        await revived.start(["n1", "n2", "n3"])
        target = max(n.executor.height for n in others) + 2
        await wait_for(lambda: revived.executor.height >= target)
        for h in range(1, target + 1):
            assert revived.store.blocks.load_block_hash(h) == others[0].store.blocks.load_block_hash(h)
        assert revived.driver.refused_signatures == 0
    finally:
        for n in nodes:
            await n.stop()
