"""Block sync: a node that is behind fetches blocks with their commits from peers.

Each fetched frame is verified as it arrives (``FrameVerifier``): the block
decodes within the chain's ``max_block_bytes`` and is well formed, it links
to the block before it (the head, then the frame before), and its commit
holds more than two thirds of the power of the validator set that decided
it. That set is known ahead only until the next epoch boundary (the set of
height h+1 is fixed once h is applied, and its members and powers change
only after an epoch's last height), so one fetch never runs past the next
boundary: every frame of it is checked against the head's set, and the set
after the boundary is read from the state once the driver has applied it.
A bad frame gets its server penalised and disconnected by the client, and
the range is fetched from another holder.

The verified blocks go into the consensus driver's queue; the driver's task
checks each commit again against its own state, applies the block through
the same executor as a consensus commit, and starts the height after the
last one. So block sync never writes the store or the round state itself:
the driver stays their one writer. Should the driver refuse a block whose
commit does not verify, its server is penalised too. The loop only asks
peers when consensus has made no progress for a while, so a node that keeps
up never pays for it.

At start the loop first asks at once (``catch_up_at_start``): a validator
restarted on an old copy of its data directory must not sign before it knows
it is not behind. The driver holds its signing (the daemon asks it to) until
peers answered and none is more than one height ahead, after syncing to them
if need be, or until ``startup_timeout_ms`` passed with no peer answering (a
lone devnet node, a whole network restarting together) or with a round of
sync applying nothing (a peer claiming a height it never serves).

Frame and response caps derive from the chain's parameters
(``compute_sync_frame_bytes``, ``compute_sync_response_bytes``): the daemon
puts them in the p2p config, and the syncer passes them to its client and
server whatever the transport's config says.
"""

from __future__ import annotations

import asyncio
import logging

from consensus.blocks import Block
from consensus.errors import ConsensusError, InvalidBlock
from consensus.params import Params
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit, verify_commit
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockExecutor
from p2p.blocksync import BlockSyncClient, BlockSyncServer, compute_max_frame_bytes
from p2p.envelope import BlockFrame, StatusMessage
from p2p.errors import P2PError
from p2p.interface import Transport

log = logging.getLogger(__name__)

#: Longest wait for the driver's task to apply a batch of synced blocks.
APPLY_TIMEOUT_S = 60.0
#: How long a starting node waits for any peer's status before it signs without one (ms).
STARTUP_TIMEOUT_MS = 5_000
#: While no block commits, where consensus stands is logged this often (ms): a round that
#: never ends logs nothing else (a whole devnet once sat silent in round 0 for minutes).
STALL_LOG_MS = 15_000

#: A commit's bytes besides its signatures (height, round, block hash, msgpack headers), generously.
COMMIT_BASE_BYTES = 1024
#: One commit signature: a 20-byte address, a timestamp and a 64-byte signature (98 bytes encoded).
COMMIT_SIG_BYTES = 128
#: A response carries at most this many of the chain's largest frames.
RESPONSE_FRAMES = 4
#: The smallest response cap (the p2p default), so that small blocks travel many to a request.
MIN_RESPONSE_BYTES = 16 << 20


def compute_max_commit_bytes(params: Params) -> int:
    """Return the most bytes a commit of this chain takes: one signature per validator at most."""
    return COMMIT_BASE_BYTES + COMMIT_SIG_BYTES * params.max_validators


def compute_sync_frame_bytes(params: Params) -> int:
    """Return the largest block-sync frame of this chain: its largest block with a commit."""
    return compute_max_frame_bytes(params.max_block_bytes, compute_max_commit_bytes(params))


def compute_sync_response_bytes(params: Params) -> int:
    """Return the most bytes one block-sync response may carry, all frames together."""
    return max(MIN_RESPONSE_BYTES, RESPONSE_FRAMES * compute_sync_frame_bytes(params))


def compute_last_verifiable_height(start: int, epoch_blocks: int) -> int:
    """Return the last height from ``start`` whose commit the set deciding ``start`` verifies.

    Members and powers change only after an epoch's last height (a multiple of
    ``epoch_blocks``), so the set deciding ``start`` decides every height up to
    and including the next such multiple.
    """
    return -(-start // epoch_blocks) * epoch_blocks


class FrameVerifier:
    """Verifies fetched frames in height order from the head; keeps the decoded blocks.

    Called once per frame by the client as the frame arrives. Raises
    InvalidBlock (a ConsensusError) naming what is wrong; a frame that
    verifies is kept in ``verified`` by height, so that the blocks are decoded
    once.
    """

    def __init__(
        self,
        chain_id: str,
        validator_set: ValidatorSet,
        head_height: int,
        head_hash: bytes,
        last_height: int,
        *,
        max_block_bytes: int,
        max_commit_bytes: int,
    ) -> None:
        self.chain_id = chain_id
        self.validator_set = validator_set
        self.head_height = head_height
        self.head_hash = head_hash
        self.last_height = last_height
        self.max_block_bytes = max_block_bytes
        self.max_commit_bytes = max_commit_bytes
        #: Verified blocks with their commits, by height (at most last_height - head_height).
        self.verified: dict[int, tuple[Block, Commit]] = {}

    def __call__(self, frame: BlockFrame) -> None:
        h = frame.height
        if not self.head_height < h <= self.last_height:
            raise InvalidBlock(f"block {h} is outside the range {self.head_height + 1}..{self.last_height} asked")
        if h - 1 == self.head_height:
            parent_hash = self.head_hash
        elif h - 1 in self.verified:
            parent_hash = self.verified[h - 1][0].hash()
        else:
            raise InvalidBlock(f"block {h} arrived before block {h - 1} was verified")
        try:
            block = Block.decode(frame.block, max_bytes=self.max_block_bytes)
            commit = Commit.decode(frame.commit, max_bytes=self.max_commit_bytes)
            # The commit signs the header's hash; the header's hashes bind the body.
            block.validate_basic()
        except ConsensusError as exc:
            raise InvalidBlock(f"block {h}: {exc}") from exc
        if block.header.chain_id != self.chain_id:
            raise InvalidBlock(f"block {h} is for chain {block.header.chain_id!r}")
        if block.header.height != h or commit.height != h:
            raise InvalidBlock(f"block {h}: the block or its commit is for another height")
        if block.header.parent_hash != parent_hash:
            raise InvalidBlock(f"block {h} does not link to block {h - 1}")
        block_hash = block.hash()
        if commit.block_hash != block_hash:
            raise InvalidBlock(f"the commit of block {h} is for another block")
        try:
            verify_commit(self.chain_id, self.validator_set, commit)
        except ConsensusError as exc:
            raise InvalidBlock(f"block {h}: {exc}") from exc
        self.verified[h] = (block, commit)


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
        seed: int | None = None,
        startup_timeout_ms: int = STARTUP_TIMEOUT_MS,
    ) -> None:
        self.transport = transport
        self.executor = executor
        self.driver = driver
        self.stall_ms = stall_ms
        self.startup_timeout_ms = startup_timeout_ms
        self.poll_s = poll_s
        self.params = executor.head_state().get_params()
        frame_cap = compute_sync_frame_bytes(self.params)
        self.client = BlockSyncClient(
            transport,
            max_frame_bytes=frame_cap,
            max_response_bytes=compute_sync_response_bytes(self.params),
            seed=seed,
        )
        self.server = BlockSyncServer(transport, StoreBlockProvider(executor), max_frame_bytes=frame_cap)
        self.catching_up = False
        self.blocks_synced = 0
        self._stall_logged_ms = 0

    async def run(self) -> None:
        await self.catch_up_at_start()
        while True:
            await asyncio.sleep(self.poll_s)
            now = self.driver.clock.now_ms()
            self._log_stall(now)
            if now - self.driver.last_commit_ms < self.stall_ms or not self.transport.peers():
                continue
            try:
                await self.sync_once()
            except (P2PError, ConsensusError) as exc:
                log.info("block sync attempt failed: %s", exc)
            finally:
                self.catching_up = False

    def _log_stall(self, now: int) -> None:
        """Every ``STALL_LOG_MS`` without a commit, say where the round stands and how many peers we have."""
        stalled = now - self.driver.last_commit_ms
        if stalled < STALL_LOG_MS or now - self._stall_logged_ms < STALL_LOG_MS:
            return
        self._stall_logged_ms = now
        log.info("no block committed for %.0f s: %s; %d peers", stalled / 1000, self.driver.describe_round(),
                 len(self.transport.peers()))

    async def catch_up_at_start(self) -> None:
        """Sync up to the peers before the driver signs; then release its signing.

        Released once peers answered and none is more than one height ahead
        (after syncing to them if need be: until a round of answers brings no
        block to apply), or once ``startup_timeout_ms`` passed without any
        peer answering. Past that time it is released too as soon as a round
        applies nothing: held only while sync makes progress, so a peer that
        claims a height and serves nothing cannot keep a validator from signing.
        """
        deadline = self.driver.clock.now_ms() + self.startup_timeout_ms
        while True:
            statuses: dict[str, StatusMessage] = {}
            applied = best = 0
            try:
                if self.transport.peers():
                    statuses = await self.client.fetch_statuses()
                best = max((s.height for s in statuses.values()), default=0)
                if best > self.executor.height:
                    # Even one height: its commit may hold our precommit (the signer's floor).
                    applied = await self.sync_once()
                if statuses and best <= self.executor.height + 1 and not applied:
                    self.driver.release_signing(
                        f"{len(statuses)} peers answered, none more than one height ahead of {self.executor.height}"
                    )
                    return
            except (P2PError, ConsensusError) as exc:
                log.info("block sync at start failed: %s", exc)
            finally:
                self.catching_up = False
            if self.driver.clock.now_ms() >= deadline and not applied:
                # Held only while syncing makes progress: a peer that claims a height and
                # serves nothing (a liar, or one we cannot reach) must not keep us from signing.
                if statuses:
                    log.warning("peers claim height %d but block sync applied nothing beyond %d within "
                                "%d ms: signing released", best, self.executor.height, self.startup_timeout_ms)
                self.driver.release_signing(
                    f"no peer answered within {self.startup_timeout_ms} ms" if not statuses
                    else f"peers claim height {best}, nothing applicable came within {self.startup_timeout_ms} ms"
                )
                return
            if not applied:
                await asyncio.sleep(self.poll_s)

    def _verifier(self, start: int, end: int) -> FrameVerifier:
        return FrameVerifier(
            self.executor.chain_id,
            self.executor.validator_set(),
            start - 1,
            self.executor.last_block_hash(),
            end,
            max_block_bytes=self.params.max_block_bytes,
            max_commit_bytes=compute_max_commit_bytes(self.params),
        )

    async def sync_once(self) -> int:
        """Fetch every block peers have beyond ours and have the driver apply them; return how many it applied."""
        statuses = await self.client.fetch_statuses()
        best = max((s.height for s in statuses.values()), default=0)
        applied = 0
        while best > self.executor.height:
            self.catching_up = True
            start = self.executor.height + 1
            end = min(
                best,
                start + self.client.blocks_per_request - 1,
                compute_last_verifiable_height(start, self.params.epoch_blocks),
            )
            verifier = self._verifier(start, end)
            sources: dict[int, str] = {}
            # At most about one response's worth of blocks is held before the driver applies them.
            frames = await self.client.fetch_range(
                start, end, verify=verifier, statuses=statuses, sources=sources, max_bytes=self.client.max_response
            )
            blocks = [verifier.verified[f.height] for f in frames]
            if not blocks:
                break
            try:
                count = await self._apply(blocks)
            except ConsensusError as exc:
                self._on_refused(verifier, sources, exc)
                raise
            applied += count
            self.blocks_synced += count
            if count == 0:
                break  # consensus committed these heights meanwhile; look again next time
        return applied

    def _on_refused(self, verifier: FrameVerifier, sources: dict[int, str], error: ConsensusError) -> None:
        """Penalise the server of the block the driver refused, if that block's commit is bad."""
        height = self.executor.height + 1  # the driver stops at the first block it refuses
        peer = sources.get(height)
        fetched = verifier.verified.get(height)
        if peer is None or fetched is None:
            return
        block, commit = fetched
        try:
            if commit.block_hash != block.hash():
                raise InvalidBlock("the commit is not for this block")
            verify_commit(self.executor.chain_id, self.executor.validator_set(), commit)
        except ConsensusError as exc:
            log.warning("peer %s served block %d with a bad commit: %s", peer, height, exc)
            self.transport.report_peer(peer, "bad_data", disconnect=True)
            return
        # A block with a valid commit is the chain's block: refusing it is not the peer's doing.
        log.error("block %d has a valid commit but was refused: %s", height, error)

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
        try:
            # asyncio.timeout, not wait_for: wait_for (3.11) swallows a cancellation that arrives
            # as the answer does, and a stopping node's syncer then never stops.
            async with asyncio.timeout(APPLY_TIMEOUT_S):
                return await answer
        except TimeoutError:
            # The driver's task did not get to them: never hang block sync on it; ask again later.
            log.warning("block sync: the driver did not apply %d synced blocks within %.0f s",
                        len(blocks), APPLY_TIMEOUT_S)
            return 0
