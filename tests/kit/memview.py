"""An in-memory twin of a node for RPC and CLI tests: a real chain, no network.

``MemoryNodeView`` implements ``NodeView`` over a ``tests.kit.chain.TestChain``
(real signed blocks and commits, the real state transition) and an in-memory
``storage.NodeStore`` (real state roots, block store and transaction index).
Submitted transactions go through the real ``Mempool``; ``produce_block``
reaps them into the next block, executes it with the mempool's signature
cache, commits it, updates the mempool and announces it on the event bus —
the same order the daemon's executor follows. ``run_blocks`` does that on a
timer so ``broadcast_tx`` mode=commit and ``tx ... --wait`` complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from consensus.blocks import Block
from consensus.genesis import compute_genesis_state
from consensus.records import TxResult
from consensus.state import State
from consensus.state_reader import StateReader
from consensus.txs import SignedTx
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit
from node.mempool.pool import Mempool
from node.rpc.chain_events import get_chain_events, get_new_slashing_records
from node.rpc.events import EventBus
from node.rpc.indexer import TxIndexer
from node.rpc.nodeview import prove_in_snapshot
from node.rpc.view import CommittedTx, PeerInfo, ProvedValue, SubmitResult
from storage import NodeStore
from storage.tx_index import AddressTxIndex
from tests.kit.chain import TestChain


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class MemoryNodeView:
    """A NodeView over an in-memory chain that executes submitted transactions."""

    def __init__(
        self,
        chain: TestChain | None = None,
        *,
        mempool: Mempool | None = None,
        moniker: str = "memory-node",
        node_id: str = "12D3KooWMemoryNode",
        validator_index: int | None = 0,
        peers: list[PeerInfo] | None = None,
    ) -> None:
        # Block times follow the wall clock, as on a live chain.
        self.chain = chain if chain is not None else TestChain(genesis_time_ms=_now_ms() - 1_000)
        self.store = NodeStore.open_memory()
        self.store.commit_genesis(compute_genesis_state(self.chain.genesis))
        self._events = EventBus()
        self._mempool = mempool if mempool is not None else Mempool()
        self._mempool.update((), State(self.store.state))
        self._moniker = moniker
        self._node_id = node_id
        self._validator = (
            None if validator_index is None else self.chain.operator_keys[validator_index].address()
        )
        self._peers = peers or []
        self._vsets: dict[int, ValidatorSet] = {}
        self._catching_up = False
        self._task: asyncio.Task[None] | None = None
        self.last_commit_monotonic: float | None = None
        self._tx_index = AddressTxIndex.open_memory()
        self.indexer = TxIndexer(self._tx_index, self._load_block, lambda: self.store.blocks.earliest_height() or 1)

    # -- identity ---------------------------------------------------------------------------

    @property
    def chain_id(self) -> str:
        return self.chain.chain_id

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def moniker(self) -> str:
        return self._moniker

    @property
    def validator_address(self) -> bytes | None:
        return self._validator

    @property
    def events(self) -> EventBus:
        return self._events

    @property
    def mempool(self) -> Mempool:
        return self._mempool

    # -- chain reads ------------------------------------------------------------------------

    def latest_height(self) -> int:
        return self.store.latest_height or 0

    def latest_state_root(self) -> bytes:
        return self.store.state_root

    def earliest_height(self) -> int:
        return self.store.blocks.earliest_height() or 0

    def get_block(self, height: int) -> tuple[Block, bytes] | None:
        data = self.store.blocks.load_block(height)
        if data is None:
            return None
        block = Block.decode(data, max_bytes=Block.MAX_BYTES)
        return block, block.hash()

    def get_block_by_hash(self, block_hash: bytes) -> tuple[Block, bytes] | None:
        height = self.store.blocks.get_height(block_hash)
        return None if height is None else self.get_block(height)

    def get_commit(self, height: int) -> Commit | None:
        data = self.store.blocks.load_commit(height)
        return None if data is None else Commit.decode(data)

    def get_tx(self, tx_hash: bytes) -> CommittedTx | None:
        loc = self.store.blocks.load_tx(tx_hash)
        if loc is None:
            return None
        found = self.get_block(loc.height)
        if found is None:
            return None
        raw = found[0].txs[loc.index]
        return CommittedTx(SignedTx.decode(raw, max_bytes=len(raw)), loc.height, loc.index, TxResult(loc.code, loc.log))

    def get_tx_result(self, tx_hash: bytes) -> TxResult | None:
        loc = self.store.blocks.load_tx(tx_hash)
        return None if loc is None else TxResult(loc.code, loc.log)

    def read_state(self) -> AbstractContextManager[StateReader]:
        return self.store.snapshot()

    def read_state_at(self, height: int) -> AbstractContextManager[StateReader] | None:
        return self.store.snapshot() if height == self.latest_height() else None

    def validator_set(self, height: int) -> ValidatorSet | None:
        if height == self.latest_height() + 1:
            return State(self.store.state).get_validator_set()
        return self._vsets.get(height)

    def peers(self) -> list[PeerInfo]:
        return list(self._peers)

    def listen_addrs(self) -> list[str]:
        return []

    def catching_up(self) -> bool:
        return self._catching_up

    def attestations(self, validator: bytes | None) -> list[dict[str, Any]] | None:
        return None

    def challenges(self, height: int | None, nft_id: int | None) -> list[dict[str, Any]] | None:
        return None

    def jobs(self, status: str | None) -> list[dict[str, Any]] | None:
        return None

    def job(self, job_id: bytes) -> dict[str, Any] | None:
        return None

    # -- writes -------------------------------------------------------------------------------

    async def submit_tx(self, tx: SignedTx) -> SubmitResult:
        res = self._mempool.add(tx)
        return SubmitResult(tx.tx_hash, res.code, res.log)

    def produce_block(self, max_txs: int = 10_000) -> tuple[Block, list[SignedTx]]:
        """Reap, execute, commit and announce the next block; return it and its transactions."""
        head = State(self.store.state)
        params = head.get_params()
        txs = self._mempool.reap(
            min(max_txs, params.max_block_txs), params.max_block_bytes - (64 << 10), state=head
        )
        step = max(1, _now_ms() - self.chain.time_ms)
        vset = head.get_validator_set()
        block = self.chain.build_block(txs, time_step_ms=step, state_root=self.store.state_root)
        result = self.chain.apply(block, sig_cache=self._mempool.sig_cache)
        commit = self.chain.last_commit
        if commit is None:
            raise RuntimeError("the test chain produced no commit")
        height = block.header.height
        entries = {
            h: (height, i, r.code, r.log)
            for i, (h, r) in enumerate(zip(result.tx_hashes, result.tx_results, strict=True))
        }
        self.store.commit_height(height, block.hash(), block.encode(), commit.encode(), entries, result.changes)
        self._vsets[height] = vset
        self.last_commit_monotonic = time.monotonic()
        self._mempool.update(result.tx_hashes, State(self.store.state))
        self.indexer.on_committed(height, result.txs)
        slashes = get_new_slashing_records(result.changes, self.store.state.get)
        chain_events = get_chain_events(block, result.events, slashes)
        self._events.publish_block(block, block.hash(), txs, result.tx_results, chain_events)
        return block, txs

    def _load_block(self, height: int) -> Block | None:
        found = self.get_block(height)
        return None if found is None else found[0]

    @property
    def tx_index(self) -> AddressTxIndex:
        return self._tx_index

    def prove_state(self, key: bytes) -> ProvedValue:
        return prove_in_snapshot(self.store, key)

    async def run_blocks(self, interval_s: float = 0.05, *, empty_blocks: bool = False) -> None:
        """Produce a block every ``interval_s`` (only when the mempool holds txs, unless told)."""
        while True:
            await asyncio.sleep(interval_s)
            if empty_blocks or self._mempool.size:
                self.produce_block()

    def start_blocks(self, interval_s: float = 0.05, *, empty_blocks: bool = False) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run_blocks(interval_s, empty_blocks=empty_blocks))

    async def stop_blocks(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def iter_committed_txs(self) -> Iterator[CommittedTx]:
        for height in range(1, self.latest_height() + 1):
            found = self.get_block(height)
            if found is None:
                continue
            for raw in found[0].txs:
                tx = SignedTx.decode(raw, max_bytes=len(raw))
                done = self.get_tx(tx.tx_hash)
                if done is not None:
                    yield done
