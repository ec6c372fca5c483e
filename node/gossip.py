"""The consensus network adapter: gossip topics and requests in and out of the driver.

Proposals travel as ``[proposal_bytes, block_bytes]``; a block larger than
``INLINE_BLOCK_BYTES`` is left out (gossip messages stay well under Yamux's
64 KiB frame, see docs/p2p) and receivers fetch it by hash over the
``proposal-block`` request protocol from the peer that relayed the proposal,
then from any other peer. Votes travel as their canonical bytes, evidence as
``[kind, evidence_bytes]``. Validators answer REJECT only for messages an
honest peer never sends (malformed, bad signature on evidence), IGNORE for
messages that are merely useless now (far-away heights), so only the first
penalises the sender.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from consensus.blocks import Block
from consensus.codec import pack_raw, unpack_raw
from consensus.errors import ConsensusError
from consensus.evidence import Evidence, decode_evidence, encode_evidence, verify_evidence
from consensus.votes import Proposal, Vote
from node.driver import ConsensusDriver
from p2p.errors import P2PError
from p2p.interface import Transport, Verdict

log = logging.getLogger(__name__)

INLINE_BLOCK_BYTES = 48 * 1024
#: Heights around ours for which consensus messages are still useful.
HEIGHT_WINDOW = 4
FETCH_TIMEOUT_S = 3.0


def proposal_block_protocol(chain_id: str) -> str:
    return f"/cstake/{chain_id}/proposal-block/1"


class GossipAdapter:
    """Implements the driver's Network on a Transport, and feeds the driver from gossip."""

    def __init__(self, transport: Transport, chain_id: str) -> None:
        self.transport = transport
        self.chain_id = chain_id
        self.driver: ConsensusDriver | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.blocks_fetched = 0
        self.fetch_failures = 0

    def attach(self, driver: ConsensusDriver) -> None:
        """Subscribe the consensus topics and serve proposal blocks for ``driver``."""
        self.driver = driver
        t = self.transport
        t.subscribe("proposal", self._validate_proposal, self._on_proposal)
        t.subscribe("vote", self._validate_vote, self._on_vote)
        t.subscribe("evidence", self._validate_evidence, self._on_evidence)
        t.set_request_handler(proposal_block_protocol(self.chain_id), self._serve_block)

    # -- outgoing (the driver's Network) -------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, kind: str, payload: bytes) -> None:
        try:
            await self.transport.publish(kind, payload)
        except (P2PError, OSError) as exc:
            log.warning("publishing %s failed: %s", kind, exc)

    def broadcast_proposal(self, proposal: Proposal, block: Block) -> None:
        block_bytes = block.encode()
        inline = block_bytes if len(block_bytes) <= INLINE_BLOCK_BYTES else b""
        self._spawn(self._publish("proposal", pack_raw([proposal.encode(), inline])))

    def broadcast_vote(self, vote: Vote) -> None:
        self._spawn(self._publish("vote", vote.encode()))

    def broadcast_evidence(self, evidence: Evidence) -> None:
        kind, data = encode_evidence(evidence)
        self._spawn(self._publish("evidence", pack_raw([kind, data])))

    def report_peer(self, peer: str, reason: str) -> None:
        if peer:
            self.transport.report_peer(peer, reason)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- incoming ---------------------------------------------------------------------------

    def _height(self) -> int:
        return 0 if self.driver is None else self.driver.state.height

    @staticmethod
    def _decode_proposal(payload: bytes) -> tuple[Proposal, bytes]:
        raw = unpack_raw(payload, max_bytes=INLINE_BLOCK_BYTES + 4096)
        if type(raw) is not list or len(raw) != 2 or not all(type(x) is bytes for x in raw):
            raise ConsensusError("a proposal message is [proposal, block]")
        proposal = Proposal.decode(raw[0])  # type: ignore[arg-type]
        proposal.validate_basic()
        return proposal, raw[1]  # type: ignore[return-value]

    def _validate_proposal(self, peer: str, payload: bytes) -> Verdict:
        try:
            proposal, _ = self._decode_proposal(payload)
        except ConsensusError:
            return Verdict.REJECT
        if abs(proposal.height - self._height()) > HEIGHT_WINDOW:
            return Verdict.IGNORE
        return Verdict.ACCEPT

    async def _on_proposal(self, peer: str, payload: bytes) -> None:
        proposal, block_bytes = self._decode_proposal(payload)
        block: Block | None = None
        if block_bytes:
            try:
                block = Block.decode(block_bytes)
            except ConsensusError:
                self.report_peer(peer, "malformed proposal block")
                return
        else:
            block = await self._fetch_block(peer, proposal.block_hash)
        if block is not None and self.driver is not None:
            self.driver.deliver_proposal(peer, proposal, block)

    async def _fetch_block(self, first_peer: str, block_hash: bytes) -> Block | None:
        protocol = proposal_block_protocol(self.chain_id)
        peers = [first_peer] + [p for p in self.transport.peers() if p != first_peer]
        for attempt in range(3):
            for peer in peers:
                try:
                    frames = await self.transport.request(
                        peer, protocol, block_hash, timeout=FETCH_TIMEOUT_S, max_frames=1,
                        max_frame_bytes=Block.MAX_BYTES,
                    )
                except P2PError:
                    continue
                if not frames or not frames[0]:
                    continue
                try:
                    block = Block.decode(frames[0], max_bytes=Block.MAX_BYTES)
                except ConsensusError:
                    self.report_peer(peer, "served a malformed proposal block")
                    continue
                if block.hash() != block_hash:
                    self.report_peer(peer, "served a block with the wrong hash")
                    continue
                self.blocks_fetched += 1
                return block
            await asyncio.sleep(0.2 * (attempt + 1))
        self.fetch_failures += 1
        log.info("could not fetch proposal block %s", block_hash.hex()[:16])
        return None

    def _serve_block(self, peer: str, request: bytes) -> list[bytes]:
        if self.driver is None or len(request) != 32:
            return [b""]
        block = self.driver.get_block(request)
        return [block.encode() if block is not None else b""]

    def _validate_vote(self, peer: str, payload: bytes) -> Verdict:
        try:
            vote = Vote.decode(payload)
            vote.validate_basic()
        except ConsensusError:
            return Verdict.REJECT
        if abs(vote.height - self._height()) > HEIGHT_WINDOW:
            return Verdict.IGNORE
        return Verdict.ACCEPT

    def _on_vote(self, peer: str, payload: bytes) -> None:
        if self.driver is not None:
            self.driver.deliver_vote(peer, Vote.decode(payload))

    def _decode_evidence(self, payload: bytes) -> Evidence:
        raw = unpack_raw(payload)
        if type(raw) is not list or len(raw) != 2 or type(raw[0]) is not int or type(raw[1]) is not bytes:
            raise ConsensusError("an evidence message is [kind, evidence]")
        return decode_evidence(raw[0], raw[1])

    def _validate_evidence(self, peer: str, payload: bytes) -> Verdict:
        if self.driver is None:
            return Verdict.IGNORE
        try:
            evidence = self._decode_evidence(payload)
        except ConsensusError:
            return Verdict.REJECT
        if self.driver.pool.is_known(evidence.evidence_hash()):
            return Verdict.IGNORE
        state = self.driver.executor.head_state()
        vset = state.get_validator_set_at(evidence.height)
        if vset is None:
            return Verdict.IGNORE
        try:
            verify_evidence(
                self.chain_id, evidence, vset, self.driver.executor.height + 1,
                state.get_params().unbonding_blocks,
            )
        except ConsensusError:
            return Verdict.REJECT
        if state.is_fault_slashed(evidence.evidence_hash()):
            return Verdict.IGNORE
        return Verdict.ACCEPT

    def _on_evidence(self, peer: str, payload: bytes) -> None:
        if self.driver is not None:
            self.driver.deliver_evidence(self._decode_evidence(payload))

