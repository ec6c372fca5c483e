"""Block sync through the real executor and driver: forged commits, large blocks, validator-set changes."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import threading
from pathlib import Path

import pytest

from consensus.bft.config import TimeoutConfig
from consensus.blocks import Block
from consensus.errors import ConsensusError, InvalidBlock
from consensus.jobs.types import SubmitJob
from consensus.params import MAINNET
from consensus.txs import SignedTx, Unbond
from consensus.votes import Commit, CommitSig, verify_commit
from node.clock import SystemClock
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockExecutor
from node.engine.sync import (
    BlockSyncer,
    FrameVerifier,
    compute_last_verifiable_height,
    compute_max_commit_bytes,
    compute_sync_frame_bytes,
)
from node.engine.wal import WriteAheadLog
from p2p.blocksync import BlockSyncServer
from p2p.config import DEFAULT_MAX_FRAME_BYTES, P2PConfig
from p2p.envelope import BlockFrame
from p2p.interface import Transport
from p2p.memory import MemoryHub, MemoryTransport
from storage import MemoryKV, NodeStore
from tests.kit.chain import TestChain

FAST = TimeoutConfig(
    propose_ms=300, propose_delta_ms=100, prevote_ms=150, prevote_delta_ms=50,
    precommit_ms=150, precommit_delta_ms=50, commit_ms=50,
)


class ListMempool:
    def reap(self, max_txs: int, max_bytes: int, **_: object) -> list[SignedTx]:
        return []


class SortedOrder:
    """Stands in for the client's random source: holders in peer-id order (the attack's best case)."""

    def shuffle(self, seq: list[str]) -> None:
        seq.sort()


Rows = list[tuple[bytes, bytes]]


class Producer:
    """Builds a chain with TestChain and commits it to a store of its own, so that state roots are right."""

    def __init__(self, chain: TestChain) -> None:
        self.chain = chain
        self.executor = BlockExecutor(NodeStore.open_memory(MemoryKV()), chain.genesis)
        self.executor.init_genesis()
        self.rows: Rows = []

    def next_block(self, txs: list[SignedTx] | tuple[SignedTx, ...] = ()) -> None:
        chain = self.chain
        block = chain.build_block(txs, state_root=self.executor.store.state_root)
        chain.apply(block)
        commit = chain.sign_commit(block)  # by the set that decided the block
        chain.last_commit = commit  # the next block carries this very commit
        self.executor.commit_block(block, commit)
        self.rows.append((block.encode(), commit.encode()))

    def build(self, count: int) -> Rows:
        for _ in range(count):
            self.next_block()
        return self.rows


def forge(rows: Rows) -> Rows:
    """Return the same blocks with commits whose signatures are flipped (a forging peer)."""
    out = []
    for block, raw in rows:
        c = Commit.decode(raw)
        sigs = tuple(CommitSig(s.validator, s.timestamp_ms, bytes([s.signature[0] ^ 1]) + s.signature[1:]) for s in c.signatures)
        out.append((block, dataclasses.replace(c, signatures=sigs).encode()))
    return out


class RowsProvider:
    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.calls = 0

    def get_status(self) -> tuple[int, bytes, int]:
        return len(self.rows), Block.decode(self.rows[-1][0], max_bytes=64 << 20).hash(), 1

    def get_blocks(self, start: int, end: int) -> Rows:
        self.calls += 1
        return self.rows[start - 1 : end]


class Node:
    """A follower: store, executor, WAL, driver (no signer) and block syncer over ``transport``."""

    def __init__(self, chain: TestChain, home: Path, transport: Transport) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.store = NodeStore.open_memory(MemoryKV())
        self.executor = BlockExecutor(self.store, chain.genesis)
        self.executor.init_genesis()
        self.wal = WriteAheadLog(home / "cs.wal")
        self.transport = transport
        self.driver = ConsensusDriver(
            executor=self.executor, wal=self.wal, clock=SystemClock(), mempool=ListMempool(),
            network=_Quiet(), timeouts=FAST,
        )
        self.syncer = BlockSyncer(self.transport, self.executor, self.driver, seed=7)
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def in_memory(cls, chain: TestChain, hub: MemoryHub, home: Path, peer_id: str) -> Node:
        cfg = P2PConfig(chain_id=chain.chain_id, key_path=str(home / "node_key"))
        return cls(chain, home, MemoryTransport(cfg, hub, peer_id=peer_id))

    async def start(self, peers: list[str]) -> None:
        await self.transport.start()
        for p in peers:
            await self.transport.connect(p if p.startswith("/") else f"/memory/{p}/p2p/{p}")
        self.driver.recover()
        self.task = asyncio.create_task(self.driver.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.driver.stop()
        await self.transport.stop()
        self.wal.close()
        self.store.close()


class _Quiet:
    """The driver's network for a follower: it never signs, so nothing is sent."""

    def broadcast_proposal(self, proposal: object, block: object) -> None: ...

    def broadcast_vote(self, vote: object) -> None: ...

    def broadcast_evidence(self, evidence: object) -> None: ...

    def report_peer(self, peer: str, reason: str) -> None: ...


async def serving_peer(chain: TestChain, hub: MemoryHub, home: Path, peer_id: str, rows: Rows) -> tuple[MemoryTransport, RowsProvider]:
    """A bare block-sync server of ``rows`` with the chain's frame cap (as a node would run it)."""
    t = MemoryTransport(P2PConfig(chain_id=chain.chain_id, key_path=str(home / f"{peer_id}.key")), hub, peer_id=peer_id)
    prov = RowsProvider(rows)
    BlockSyncServer(t, prov, max_frame_bytes=compute_sync_frame_bytes(chain.view().get_params()))
    await t.start()
    return t, prov


# -- forged commits ------------------------------------------------------------------------------


async def test_peer_serving_forged_commits_is_penalised_and_the_node_syncs_from_an_honest_one(tmp_path: Path) -> None:
    chain = TestChain()
    rows = Producer(chain).build(12)
    hub = MemoryHub()
    liar, liar_prov = await serving_peer(chain, hub, tmp_path, "a", forge(rows))  # the lowest peer id
    honest, honest_prov = await serving_peer(chain, hub, tmp_path, "b", rows)
    node = Node.in_memory(chain, hub, tmp_path / "me", "me")
    await node.start(["a", "b"])
    node.syncer.client.rng = SortedOrder()  # type: ignore[assignment]  # "a" is asked first, every time
    try:
        applied = await node.syncer.sync_once()
        assert applied == 12 and node.executor.height == 12
        assert node.store.blocks.load_block_hash(12) == Block.decode(rows[-1][0], max_bytes=64 << 20).hash()
        assert liar_prov.calls == 1 and honest_prov.calls >= 1
        assert "a" not in node.transport.peers() and node.transport.get_peer_score("a") < 0
        assert "b" in node.transport.peers() and node.transport.get_peer_score("b") == 0.0
    finally:
        await node.stop()
        await liar.stop()
        await honest.stop()


async def test_invalid_frames_are_refused_by_the_frame_verifier() -> None:
    chain = TestChain()
    rows = Producer(chain).build(3)
    params = chain.view().get_params()

    def verifier() -> FrameVerifier:
        genesis_set = TestChain().view().get_validator_set()
        return FrameVerifier(
            chain.chain_id, genesis_set, 0, bytes(32), 3,
            max_block_bytes=params.max_block_bytes, max_commit_bytes=compute_max_commit_bytes(params),
        )

    v = verifier()
    for h, (block, commit) in enumerate(rows, start=1):
        v(BlockFrame(h, block, commit))
    assert sorted(v.verified) == [1, 2, 3]
    forged = forge(rows)
    cases = [
        # (frames verified first, the bad frame, what the error says)
        (0, BlockFrame(1, rows[0][0], forged[0][1]), "does not verify"),
        (0, BlockFrame(1, rows[0][0], rows[1][1]), "another height"),
        (0, BlockFrame(2, *rows[1]), "before block 1 was verified"),
        (1, BlockFrame(2, *rows[0]), "another height"),
        (1, BlockFrame(3, *rows[2]), "before block 2 was verified"),
        (0, BlockFrame(4, *rows[0]), "outside the range"),
        (0, BlockFrame(1, b"\x93\x01\x02\x03", rows[0][1]), "block 1"),
    ]
    for verified, frame, message in cases:
        v = verifier()
        for h in range(1, verified + 1):
            v(BlockFrame(h, *rows[h - 1]))
        with pytest.raises(InvalidBlock, match=message):
            v(frame)
        assert frame.height not in v.verified
    # A block over the chain's max_block_bytes is refused before it is decoded.
    small = FrameVerifier(
        chain.chain_id, chain.view().get_validator_set(), 0, bytes(32), 3,
        max_block_bytes=len(rows[0][0]) - 1, max_commit_bytes=compute_max_commit_bytes(params),
    )
    with pytest.raises(InvalidBlock, match="exceeds the limit"):
        small(BlockFrame(1, *rows[0]))
    # Body swapped under a header whose commit is valid: the header's hashes catch it.
    b1 = Block.decode(rows[0][0])
    tampered = dataclasses.replace(b1, txs=(b"\x00" * 10,)).encode()
    with pytest.raises(InvalidBlock, match="txs_hash"):
        verifier()(BlockFrame(1, tampered, rows[0][1]))


# -- validator-set changes -------------------------------------------------------------------------


def test_last_verifiable_height_stops_at_the_epoch_boundary() -> None:
    assert compute_last_verifiable_height(1, 20) == 20
    assert compute_last_verifiable_height(20, 20) == 20
    assert compute_last_verifiable_height(21, 20) == 40


async def test_sync_across_an_epoch_where_the_validator_set_changes(tmp_path: Path) -> None:
    chain = TestChain(stakes=[10_000, 10_000, 10_000, 90_000])
    epoch = chain.view().get_params().epoch_blocks
    op3 = chain.operator_keys[3]
    producer = Producer(chain)
    producer.next_block([chain.tx(op3, Unbond(90_000))])  # the largest validator leaves at the epoch's end
    rows = producer.build(epoch + 5 - 1)
    genesis_set = TestChain(stakes=[10_000, 10_000, 10_000, 90_000]).view().get_validator_set()
    after = Commit.decode(rows[epoch + 2][1])
    # The set changed: a commit after the boundary does not verify under the first set.
    with pytest.raises(ConsensusError, match="not more than two thirds|not in the validator set"):
        verify_commit(chain.chain_id, genesis_set, after)
    hub = MemoryHub()
    peer, prov = await serving_peer(chain, hub, tmp_path, "a", rows)
    node = Node.in_memory(chain, hub, tmp_path / "me", "me")
    await node.start(["a"])
    try:
        assert await node.syncer.sync_once() == len(rows)
        assert node.executor.height == epoch + 5
        assert prov.calls == 2  # one fetch up to the boundary, one after it
        assert node.transport.get_peer_score("a") == 0.0
    finally:
        await node.stop()
        await peer.stop()


# -- large blocks ---------------------------------------------------------------------------------


def mainnet_chain() -> TestChain:
    """A chain under the mainnet preset (compute collateral lowered to what TestChain's genesis bonds)."""
    params = dataclasses.asdict(MAINNET) | {"min_nft_collateral": 1_000}
    return TestChain(
        params=params,
        stakes=[MAINNET.min_self_bond * (i + 1) for i in range(4)],
        computes=[max(MAINNET.min_verified_compute, 100)] * 4,
    )


def build_big_block(producer: Producer, tx_count: int = 9, tx_input: int = 1_000_000) -> Rows:
    """Block 1 empty, block 2 carrying ``tx_count`` job submissions of ``tx_input`` inline bytes, block 3 empty."""
    chain = producer.chain
    key = chain.account_keys[0]
    txs = []
    for i in range(tx_count):
        inputs = bytes([i + 1]) * tx_input
        body = SubmitJob(
            job_kind=1, spec=b"\x00", inputs=inputs, input_seed=b"", input_hash=hashlib.sha256(inputs).digest(),
            min_units=0, bid_per_unit=1, escrow=10**15, redundancy=1, deadline_blocks=10,
        )
        txs.append(chain.tx(key, body, fee=1_000_000))
    producer.next_block()
    producer.next_block(txs)
    producer.next_block()
    return producer.rows


async def test_block_over_8_mib_syncs_under_the_mainnet_preset(tmp_path: Path) -> None:
    chain = mainnet_chain()
    params = chain.view().get_params()
    assert params.max_block_bytes == MAINNET.max_block_bytes == 16 << 20
    hub = MemoryHub()
    # The server is a node too: its store holds the chain, served by its own syncer's server.
    server = Node.in_memory(chain, hub, tmp_path / "srv", "a")
    producer = Producer(chain)
    producer.executor = server.executor
    rows = build_big_block(producer)
    assert len(rows[1][0]) > DEFAULT_MAX_FRAME_BYTES  # over the 8 MiB transport default
    node = Node.in_memory(chain, hub, tmp_path / "me", "me")
    await server.start([])
    await node.start(["a"])
    try:
        assert await node.syncer.sync_once() == 3
        assert node.executor.height == 3
        assert node.store.blocks.load_block(2) == rows[1][0]
        assert node.transport.get_peer_score("a") == 0.0 and "a" in node.transport.peers()
    finally:
        await node.stop()
        await server.stop()


@pytest.mark.slow
async def test_block_over_8_mib_syncs_under_the_mainnet_preset_over_libp2p(tmp_path: Path) -> None:
    from p2p.host import Libp2pTransport

    chain = mainnet_chain()
    before = {t.name for t in threading.enumerate()}

    def host(name: str) -> Libp2pTransport:
        # The transports' own frame cap stays at the 8 MiB default: the syncer passes the chain's.
        return Libp2pTransport(P2PConfig(chain_id=chain.chain_id, key_path=str(tmp_path / f"{name}.key"), listen_port=0))

    server = Node(chain, tmp_path / "srv", host("srv"))
    producer = Producer(chain)
    producer.executor = server.executor
    rows = build_big_block(producer)
    assert len(rows[1][0]) > DEFAULT_MAX_FRAME_BYTES
    node = Node(chain, tmp_path / "me", host("me"))
    try:
        await server.start([])
        await node.start(server.transport.listen_addrs())
        assert await node.syncer.sync_once() == 3
        assert node.store.blocks.load_block(2) == rows[1][0]
        assert node.transport.get_peer_score(server.transport.peer_id) == 0.0
    finally:
        await node.stop()
        await server.stop()
    assert {t.name for t in threading.enumerate()} <= before


# -- caps in the daemon's p2p config -----------------------------------------------------------------


def test_daemon_p2p_config_carries_the_chains_largest_block(tmp_path: Path) -> None:
    from node.app import Node as Daemon
    from node.config import load_config
    from node.init import init_home, make_genesis, write_genesis

    made = init_home(tmp_path / "home", moniker="n0", passphrase=None)
    sizes = {"max_block_bytes": MAINNET.max_block_bytes, "max_tx_bytes": MAINNET.max_tx_bytes,
             "max_validators": MAINNET.max_validators}
    write_genesis(made.home, make_genesis("cstake-sync", [made], monikers=["n0"], params=sizes))
    daemon = Daemon(made.home, load_config(made.home.config_file))
    cfg = daemon._p2p_config()
    params = daemon.genesis.params
    assert params.max_block_bytes == 16 << 20
    assert cfg.max_frame_bytes == compute_sync_frame_bytes(params) > params.max_block_bytes
    assert cfg.max_request_bytes >= cfg.max_frame_bytes
    cfg.validate()


def test_largest_commit_fits_the_commit_allowance() -> None:
    sig = CommitSig(b"\xff" * 20, (1 << 62) - 1, b"\xff" * 64)
    commit = Commit(height=(1 << 62) - 1, round=(1 << 31), block_hash=b"\xff" * 32,
                    signatures=(sig,) * MAINNET.max_validators)
    assert len(commit.encode()) <= compute_max_commit_bytes(MAINNET)


# -- blocks the driver refuses -------------------------------------------------------------------------


async def test_block_refused_by_the_driver_for_a_bad_commit_penalises_its_server(tmp_path: Path) -> None:
    chain = TestChain()
    rows = Producer(chain).build(3)
    # Commits by another chain's validators: a verifier holding the wrong set (as if it could not know
    # the set after an epoch boundary) lets them through, and the driver, which knows it, refuses them.
    other = TestChain(seed=b"other-validators")
    other_set = other.view().get_validator_set()
    forged = []
    for block, _ in rows:
        forged.append((block, other.sign_commit(Block.decode(block), vset=other_set).encode()))
    hub = MemoryHub()
    liar, _ = await serving_peer(chain, hub, tmp_path, "a", forged)
    node = Node.in_memory(chain, hub, tmp_path / "me", "me")
    params = chain.view().get_params()
    node.syncer._verifier = lambda start, end: FrameVerifier(  # type: ignore[method-assign]
        chain.chain_id, other_set, start - 1, node.executor.last_block_hash(), end,
        max_block_bytes=params.max_block_bytes, max_commit_bytes=compute_max_commit_bytes(params),
    )
    await node.start(["a"])
    try:
        with pytest.raises(InvalidBlock, match="commit does not verify"):
            await node.syncer.sync_once()
        assert node.executor.height == 0
        assert "a" not in node.transport.peers() and node.transport.get_peer_score("a") < 0
    finally:
        await node.stop()
        await liar.stop()


async def test_block_with_a_valid_commit_refused_by_the_driver_is_not_its_servers_fault(tmp_path: Path) -> None:
    chain = TestChain()
    # TestChain alone leaves state roots zero: the commits are valid, the blocks fail execution here.
    for _ in range(3):
        chain.next_block()
    commits = [b.last_commit for b in chain.blocks[1:]] + [chain.last_commit]
    rows = [(b.encode(), c.encode()) for b, c in zip(chain.blocks, commits, strict=True) if c is not None]
    assert len(rows) == 3
    hub = MemoryHub()
    peer, _ = await serving_peer(chain, hub, tmp_path, "a", rows)
    node = Node.in_memory(chain, hub, tmp_path / "me", "me")
    await node.start(["a"])
    try:
        with pytest.raises(InvalidBlock, match="state root"):
            await node.syncer.sync_once()
        assert "a" in node.transport.peers() and node.transport.get_peer_score("a") == 0.0
    finally:
        await node.stop()
        await peer.stop()


async def test_apply_never_hangs_on_a_driver_that_does_not_answer(monkeypatch) -> None:
    """Block sync waits a bounded time for the driver's task, then tries again later."""
    import node.engine.sync as sync_mod

    class SilentDriver:
        def deliver_synced_blocks(self, blocks, done) -> None:
            pass  # queued, never applied

    syncer = sync_mod.BlockSyncer.__new__(sync_mod.BlockSyncer)
    syncer.driver = SilentDriver()  # type: ignore[assignment]
    monkeypatch.setattr(sync_mod, "APPLY_TIMEOUT_S", 0.05)
    assert await syncer._apply([]) == 0
