"""Block sync: a node that is behind fetches blocks with their commits from peers and applies them.

Every block's commit is verified against the validator set the node already
trusts for that height (its own state after the previous block), then the
block goes through the same executor as a consensus commit. The loop only
asks peers when consensus has made no progress for a while, so a node that
keeps up never pays for it.
"""

from __future__ import annotations

import asyncio
import logging

from consensus.blocks import Block
from consensus.errors import ConsensusError
from consensus.votes import Commit
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockExecutor
from p2p.blocksync import BlockSyncClient, BlockSyncServer
from p2p.envelope import BlockFrame
from p2p.errors import P2PError
from p2p.interface import Transport

log = logging.getLogger(__name__)


class StoreBlockProvider:
    """Serves status and committed blocks from the store."""

    def __init__(self, executor: BlockExecutor) -> None:
        self.executor = executor

    def get_status(self) -> tuple[int, bytes, int]:
        blocks = self.executor.store.blocks
        height = self.executor.height
        earliest = blocks.earliest_height() or 0
        block_hash = blocks.load_block_hash(height) if height > 0 else None
        return height, block_hash or bytes(32), earliest

    def get_blocks(self, start: int, end: int) -> list[tuple[bytes, bytes]]:
        blocks = self.executor.store.blocks
        out = []
        for h in range(start, min(end, self.executor.height) + 1):
            block, commit = blocks.load_block(h), blocks.load_commit(h)
            if block is None or commit is None:
                break
            out.append((block, commit))
        return out


class BlockSyncer:
    """Catches the node up from its peers whenever consensus stalls behind them."""

    def __init__(
        self,
        transport: Transport,
        executor: BlockExecutor,
        driver: ConsensusDriver,
        *,
        stall_ms: int = 1_500,
        poll_s: float = 0.5,
    ) -> None:
        self.transport = transport
        self.executor = executor
        self.driver = driver
        self.stall_ms = stall_ms
        self.poll_s = poll_s
        self.client = BlockSyncClient(transport)
        self.server = BlockSyncServer(transport, StoreBlockProvider(executor))
        self.catching_up = False
        self.blocks_synced = 0

    def _verify(self, frame: BlockFrame) -> None:
        # Decoding only: the commit is checked against our own validator set when applied.
        Block.decode(frame.block, max_bytes=Block.MAX_BYTES)
        Commit.decode(frame.commit)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            now = self.driver.clock.now_ms()
            if now - self.driver.last_commit_ms < self.stall_ms or not self.transport.peers():
                continue
            try:
                await self.sync_once()
            except (P2PError, ConsensusError) as exc:
                log.info("block sync attempt failed: %s", exc)
            finally:
                self.catching_up = False

    async def sync_once(self) -> int:
        """Fetch and apply every block peers have beyond ours; return how many were applied."""
        statuses = await self.client.fetch_statuses()
        best = max((s.height for s in statuses.values()), default=0)
        applied = 0
        while best > self.executor.height:
            self.catching_up = True
            start = self.executor.height + 1
            end = min(best, start + self.client.blocks_per_request - 1)
            frames = await self.client.fetch_range(start, end, verify=self._verify, statuses=statuses)
            for frame in frames:
                if frame.height != self.executor.height + 1:
                    continue  # consensus committed it meanwhile
                block = Block.decode(frame.block, max_bytes=Block.MAX_BYTES)
                commit = Commit.decode(frame.commit)
                try:
                    committed = self.executor.apply_synced_block(block, commit)
                except ConsensusError as exc:
                    log.warning("synced block %d rejected: %s", frame.height, exc)
                    raise
                applied += 1
                self.blocks_synced += 1
                self.driver.note_committed(committed)
            self.driver.last_commit_ms = self.driver.clock.now_ms()
            self.driver.reset_to_head()
        if applied:
            log.info("block sync applied %d blocks; head is %d", applied, self.executor.height)
        return applied
