"""The consensus network adapter: gossip topics and requests in and out of the driver.

Proposals travel as ``[0, proposal_bytes, block_bytes, n_parts]``. A block up
to ``INLINE_BLOCK_BYTES`` rides inline; a larger one is gossiped as ``n_parts``
parts ``[1, height, round, block_hash, index, total, data, signature]`` of at
most 32 KiB (gossip messages stay well under Yamux's 64 KiB frame), each
signed by the proposer's consensus key so a peer cannot poison an assembly
with a forged part; the assembled block must hash to the signed proposal's
block hash. If parts do not arrive in time, receivers fetch the whole block by
hash over the ``proposal-block`` request protocol. Votes travel as their canonical bytes, evidence as
``[kind, evidence_bytes]``. Validators answer REJECT only for messages an
honest peer never sends (malformed, bad signature on evidence), IGNORE for
messages that are merely useless now (far-away heights), so only the first
penalises the sender.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from consensus.blocks import Block
from consensus.codec import pack_raw, unpack_raw
from consensus.crypto import Domain, PrivateKey, is_valid_signature, sign_bytes
from consensus.errors import ConsensusError
from consensus.evidence import Evidence, decode_evidence, encode_evidence
from consensus.hashing import hash32
from consensus.votes import Proposal, Vote
from node.engine.driver import ConsensusDriver
from p2p.errors import P2PError
from p2p.interface import Transport, Verdict

log = logging.getLogger(__name__)

INLINE_BLOCK_BYTES = 48 * 1024
#: Heights around ours for which consensus messages are still useful.
HEIGHT_WINDOW = 4
FETCH_TIMEOUT_S = 3.0


#: Blocks larger than the inline limit are gossiped in parts of this size, signed by the proposer.
PART_BYTES = 32 * 1024
MAX_PARTS = 2048
MAX_ASSEMBLIES = 16
#: How long a proposal waits for its parts before fetching the whole block instead.
PART_WAIT_S = 1.5
PART_PACE_S = 0.003
MSG_PROPOSAL = 0
MSG_PART = 1


def part_sign_payload(height: int, round_: int, block_hash: bytes, index: int, total: int, data: bytes) -> bytes:
    """The bytes a block part's signature covers (the part's data by its hash)."""
    return pack_raw([height, round_, block_hash, index, total, hash32(data)])


@dataclass(frozen=True, slots=True)
class _Part:
    height: int
    round: int
    block_hash: bytes
    index: int
    total: int
    data: bytes
    signature: bytes


@dataclass
class _Assembly:
    total: int
    parts: dict[int, bytes] = field(default_factory=dict)
    proposal: Proposal | None = None
    peer: str = ""


def proposal_block_protocol(chain_id: str) -> str:
    return f"/cstake/{chain_id}/proposal-block/1"


class GossipAdapter:
    """Implements the driver's Network on a Transport, and feeds the driver from gossip."""

    def __init__(self, transport: Transport, chain_id: str, part_key: PrivateKey | None = None) -> None:
        self.transport = transport
        self.chain_id = chain_id
        self.part_key = part_key
        self.driver: ConsensusDriver | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._assembly: OrderedDict[tuple[int, int, bytes], _Assembly] = OrderedDict()
        self._proposers: dict[tuple[int, int], bytes] = {}
        self.blocks_fetched = 0
        self.blocks_assembled = 0
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
        if len(block_bytes) <= INLINE_BLOCK_BYTES or self.part_key is None:
            inline = block_bytes if len(block_bytes) <= INLINE_BLOCK_BYTES else b""
            self._spawn(self._publish("proposal", pack_raw([MSG_PROPOSAL, proposal.encode(), inline, 0])))
            return
        parts = [block_bytes[i : i + PART_BYTES] for i in range(0, len(block_bytes), PART_BYTES)]
        total = len(parts)
        messages = [pack_raw([MSG_PROPOSAL, proposal.encode(), b"", total])]
        for index, data in enumerate(parts):
            sig = self.part_key.sign(
                Domain.PROPOSAL_PART, self.chain_id,
                part_sign_payload(proposal.height, proposal.round, proposal.block_hash, index, total, data),
            )
            messages.append(
                pack_raw([MSG_PART, proposal.height, proposal.round, proposal.block_hash, index, total, data, sig])
            )
        self._spawn(self._publish_all("proposal", messages))

    async def _publish_all(self, kind: str, payloads: list[bytes]) -> None:
        for payload in payloads:
            await self._publish(kind, payload)

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
    def _decode_message(payload: bytes) -> tuple[Proposal, bytes, int] | _Part:
        raw = unpack_raw(payload, max_bytes=INLINE_BLOCK_BYTES + 4096)
        if type(raw) is not list or not raw or type(raw[0]) is not int:
            raise ConsensusError("a proposal-topic message is [type, ...]")
        if raw[0] == MSG_PROPOSAL and len(raw) == 4:
            _, pb, bb, total = raw
            if type(pb) is not bytes or type(bb) is not bytes or type(total) is not int:
                raise ConsensusError("a proposal message is [0, proposal, block, parts]")
            if not 0 <= total <= MAX_PARTS or (total and bb):
                raise ConsensusError("a proposal carries its block inline or announces parts, not both")
            proposal = Proposal.decode(pb)
            proposal.validate_basic()
            return proposal, bb, total
        if raw[0] == MSG_PART and len(raw) == 8:
            _, height, round_, block_hash, index, total, data, sig = raw
            if not (
                type(height) is int and type(round_) is int and type(index) is int and type(total) is int
                and type(block_hash) is bytes and len(block_hash) == 32
                and type(data) is bytes and 0 < len(data) <= PART_BYTES
                and type(sig) is bytes and len(sig) == 64
                and 0 <= index < total <= MAX_PARTS and height >= 1 and round_ >= 0
            ):
                raise ConsensusError("malformed block part")
            return _Part(height, round_, block_hash, index, total, data, sig)
        raise ConsensusError("unknown proposal-topic message")

    def _validate_proposal(self, peer: str, payload: bytes) -> Verdict:
        try:
            msg = self._decode_message(payload)
        except ConsensusError:
            return Verdict.REJECT
        height = msg.height if isinstance(msg, _Part) else msg[0].height
        if abs(height - self._height()) > HEIGHT_WINDOW:
            return Verdict.IGNORE
        if isinstance(msg, _Part):
            pubkey = self._proposer_pubkey(msg.height, msg.round)
            if pubkey is not None and not is_valid_signature(
                pubkey,
                sign_bytes(Domain.PROPOSAL_PART, self.chain_id, part_sign_payload(
                    msg.height, msg.round, msg.block_hash, msg.index, msg.total, msg.data)),
                msg.signature,
            ):
                return Verdict.REJECT
        return Verdict.ACCEPT

    def _proposer_pubkey(self, height: int, round_: int) -> bytes | None:
        """The consensus key of the proposer of (height, round), when this node knows the set."""
        if self.driver is None or self.driver.state.height != height or round_ > 1_000:
            return None
        key = (height, round_)
        if key not in self._proposers:
            if len(self._proposers) > 64:
                self._proposers.clear()
            self._proposers[key] = self.driver.state.validator_set.compute_proposer(round_).pubkey
        return self._proposers[key]

    async def _on_proposal(self, peer: str, payload: bytes) -> None:
        msg = self._decode_message(payload)
        if isinstance(msg, _Part):
            self._on_part(peer, msg)
            return
        proposal, block_bytes, total = msg
        if block_bytes:
            try:
                block = Block.decode(block_bytes)
            except ConsensusError:
                self.report_peer(peer, "malformed proposal block")
                return
            if self.driver is not None:
                self.driver.deliver_proposal(peer, proposal, block)
            return
        log.debug("proposal %d/%d announced by %s: %d parts", proposal.height, proposal.round,
                  peer[-8:], total)
        if total:
            asm = self._get_assembly(proposal.height, proposal.round, proposal.block_hash, total)
            if asm is not None:
                asm.proposal, asm.peer = proposal, peer
                if self._try_complete(proposal.height, proposal.round, proposal.block_hash):
                    return
        # Handlers run in delivery order: never wait here, or the parts queued
        # behind this message would wait too.
        self._spawn(self._fetch_unless_assembled(peer, proposal, PART_WAIT_S if total else 0.0))

    async def _fetch_unless_assembled(self, peer: str, proposal: Proposal, delay: float) -> None:
        """Parts may be lost or late: fall back to fetching the whole block by hash."""
        key = (proposal.height, proposal.round, proposal.block_hash)
        if delay:
            await asyncio.sleep(delay)
            if key not in self._assembly:
                return  # assembled meanwhile
        log.debug("proposal %d/%d: fetching its block", proposal.height, proposal.round)
        fetched = await self._fetch_block(peer, proposal.block_hash)
        if fetched is not None and self.driver is not None:
            self._assembly.pop(key, None)
            self.driver.deliver_proposal(peer, proposal, fetched)

    def _get_assembly(self, height: int, round_: int, block_hash: bytes, total: int) -> _Assembly | None:
        key = (height, round_, block_hash)
        asm = self._assembly.get(key)
        if asm is None:
            asm = _Assembly(total)
            self._assembly[key] = asm
            while len(self._assembly) > MAX_ASSEMBLIES:
                self._assembly.popitem(last=False)
        return asm if asm.total == total else None

    def _on_part(self, peer: str, part: _Part) -> None:
        if part.height < self._height():
            return
        asm = self._get_assembly(part.height, part.round, part.block_hash, part.total)
        if asm is None or part.index in asm.parts:
            return
        asm.parts[part.index] = part.data
        self._try_complete(part.height, part.round, part.block_hash)

    def _try_complete(self, height: int, round_: int, block_hash: bytes) -> bool:
        key = (height, round_, block_hash)
        asm = self._assembly.get(key)
        if asm is None or asm.proposal is None or len(asm.parts) < asm.total:
            return False
        del self._assembly[key]
        data = b"".join(asm.parts[i] for i in range(asm.total))
        try:
            block = Block.decode(data, max_bytes=Block.MAX_BYTES)
        except ConsensusError:
            block = None
        if block is None or block.hash() != block_hash:
            log.warning("block parts for %s do not form the proposed block", block_hash.hex()[:16])
            return False
        self.blocks_assembled += 1
        if self.driver is not None:
            self.driver.deliver_proposal(asm.peer, asm.proposal, block)
        return True

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
        if block is not None:
            return [block.encode()]
        # A peer a little behind asks for a block this node already committed.
        stored = self.driver.executor.store.blocks.load_block_by_hash(request)
        return [stored if stored is not None else b""]

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
        # Age and membership depend on our own height: a failed check is not proof of a bad peer.
        return Verdict.ACCEPT if self.driver.is_admissible_evidence(evidence) else Verdict.IGNORE

    def _on_evidence(self, peer: str, payload: bytes) -> None:
        if self.driver is not None:
            self.driver.deliver_evidence(self._decode_evidence(payload))

