"""Block sync: a node that is behind fetches blocks with their commits from peers.

The fetched blocks go into the consensus driver's queue; the driver's task
verifies each block's commit against the validator set the node already
trusts for that height (its own state after the previous block), applies the
block through the same executor as a consensus commit, and starts the height
after the last one. So block sync never writes the store or the round state
itself: the driver stays their one writer. The loop only asks peers when
consensus has made no progress for a while, so a node that keeps up never
pays for it.
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
        """Fetch every block peers have beyond ours and have the driver apply them; return how many it applied."""
        statuses = await self.client.fetch_statuses()
        best = max((s.height for s in statuses.values()), default=0)
        applied = 0
        while best > self.executor.height:
            self.catching_up = True
            start = self.executor.height + 1
            end = min(best, start + self.client.blocks_per_request - 1)
            frames = await self.client.fetch_range(start, end, verify=self._verify, statuses=statuses)
            blocks = [
                (Block.decode(f.block, max_bytes=Block.MAX_BYTES), Commit.decode(f.commit))
                for f in frames
                if f.height >= start
            ]
            if not blocks:
                break
            count = await self._apply(blocks)
            applied += count
            self.blocks_synced += count
            if count == 0:
                break  # consensus committed these heights meanwhile; look again next time
        return applied

    async def _apply(self, blocks: list[tuple[Block, Commit]]) -> int:
        """Hand ``blocks`` to the driver's queue and wait until its task has applied them."""
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def done(applied: int, error: ConsensusError | None) -> None:
            if answer.done():
                return
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(applied)

        self.driver.deliver_synced_blocks(blocks, done)
        return await answer
