"""The consensus network adapter: gossip topics and requests in and out of the driver.

Proposals travel as ``[0, proposal_bytes, block_bytes, n_parts]``. A block up
to ``INLINE_BLOCK_BYTES`` rides inline. A larger one, where the adapter has the
mempool to rebuild blocks from (``tx_lookup``; the node always does), travels
compact: ``[2, proposal_bytes, compact_bytes]``, its transactions as ids, rebuilt
by each receiver from its mempool (``node.engine.compact``: checked whole
before it is accepted or relayed; missing transactions asked of the sender over
``block-txs``, then the whole block fetched by hash if that fails). Without a
mempool, or when even the compact form is over ``COMPACT_MAX_BYTES``, it is
gossiped as ``n_parts``
parts ``[1, height, round, block_hash, index, total, data, signature]`` of at
most 32 KiB (gossip messages stay well under Yamux's 64 KiB frame), each
signed by the proposer's consensus key so a peer cannot poison an assembly
with a forged part, and assembled by ``node.engine.parts`` (bounded per peer
and in all, expiring with the driver's height). Whenever the parts do not
form the block (not in time, evicted, not decodable, not the proposed block),
receivers fetch the whole block by hash over the ``proposal-block`` request
protocol, as long as the proposal is still wanted. Votes travel as their
canonical bytes, evidence as ``[kind, evidence_bytes]``.

Authentication first: each topic validator decodes the message (REJECT
``malformed`` if it cannot), then asks the driver to authenticate it against
the validator set of its height (``node.engine.auth``, signatures through the
node's signature cache) before it is ACCEPTed, relayed or handed on. A fault
the forwarder could have checked itself is a ``Reject`` naming its entry of
``p2p.scoring.PENALTY`` (``bad_signature``, ``not_validator``,
``wrong_proposer``, ``malformed``, ``bad_block`` for an inline block that is
not the signed one, ``oversize`` for more parts than the chain's block size
allows); a message of no use here (unknown height or set, round far ahead,
known evidence, a part the assembler would not keep) is IGNOREd: not
relayed, not penalised. A part the assembler would not keep is ignored
before its signature is checked.

Proposal blocks from the network are capped at the driver's
``max_block_bytes`` (``params.max_block_bytes`` plus a commit allowance, far
under every frame and WAL record limit): more parts than that announces are
refused, an assembly or a fetched block larger than that is dropped, and a
peer serving one is penalised (``oversize``, or ``bad_data`` for a block
that is malformed or not the one asked for).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from consensus.blocks import Block
from consensus.codec import pack_raw, unpack_raw
from consensus.crypto import PrivateKey
from consensus.errors import ConsensusError
from consensus.evidence import Evidence, decode_evidence, encode_evidence
from consensus.votes import Proposal, Vote
from node.engine.auth import AuthResult
from node.engine.compact import (
    COMPACT_MAX_BYTES,
    TxLookup,
    block_txs_protocol,
    check_compact,
    decode_compact,
    decode_txs_answer,
    decode_txs_request,
    encode_compact,
    encode_txs_request,
    fill,
    rebuild,
    serve_txs,
)
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockCommitted
from node.engine.parts import (
    MAX_PARTS,
    PART_BYTES,
    Assembled,
    AssemblyKey,
    AssemblyState,
    Part,
    PartAssembler,
    compute_parts,
    part_sign_payload,
)
from p2p.errors import BadPeerData, P2PError
from p2p.interface import GossipVerdict, Reject, Transport, Verdict

__all__ = [
    "FETCH_TIMEOUT_S", "INLINE_BLOCK_BYTES", "MAX_PARTS", "MSG_COMPACT", "MSG_PART", "MSG_PROPOSAL", "PART_BYTES", "PART_WAIT_S",
    "GossipAdapter", "encode_evidence_message", "encode_proposal_messages", "encode_vote_message",
    "part_sign_payload", "proposal_block_protocol",
]

log = logging.getLogger(__name__)

INLINE_BLOCK_BYTES = 48 * 1024
FETCH_TIMEOUT_S = 3.0
#: How long a proposal waits for its parts before fetching the whole block instead.
PART_WAIT_S = 1.5
MSG_PROPOSAL = 0
MSG_PART = 1
MSG_COMPACT = 2


@dataclass(frozen=True, slots=True)
class CompactProposal:
    """A decoded compact proposal message: the signed proposal and its block with transaction ids."""

    proposal: Proposal
    compact: Block


def proposal_block_protocol(chain_id: str) -> str:
    return f"/cstake/{chain_id}/proposal-block/1"


def encode_proposal_messages(
    chain_id: str, proposal: Proposal, block: Block, part_key: PrivateKey | None, *, compact: bool = False
) -> list[bytes]:
    """The proposal-topic payloads announcing ``proposal``: inline block, compact block, or the announcement then signed parts."""
    block_bytes = block.encode()
    if compact and len(block_bytes) > INLINE_BLOCK_BYTES:
        compact_bytes = encode_compact(block)
        if len(compact_bytes) <= COMPACT_MAX_BYTES:
            return [pack_raw([MSG_COMPACT, proposal.encode(), compact_bytes])]
    if len(block_bytes) <= INLINE_BLOCK_BYTES or part_key is None:
        inline = block_bytes if len(block_bytes) <= INLINE_BLOCK_BYTES else b""
        return [pack_raw([MSG_PROPOSAL, proposal.encode(), inline, 0])]
    parts = compute_parts(chain_id, proposal, block_bytes, part_key)
    announcement = pack_raw([MSG_PROPOSAL, proposal.encode(), b"", len(parts)])
    return [announcement] + [pack_raw([MSG_PART, *part.to_fields()]) for part in parts]


def encode_vote_message(vote: Vote) -> bytes:
    """The vote-topic payload of ``vote``."""
    return vote.encode()


def encode_evidence_message(evidence: Evidence) -> bytes:
    """The evidence-topic payload of ``evidence``."""
    kind, data = encode_evidence(evidence)
    return pack_raw([kind, data])


class GossipAdapter:
    """Implements the driver's Network on a Transport, and feeds the driver from gossip."""

    def __init__(
        self, transport: Transport, chain_id: str, part_key: PrivateKey | None = None,
        tx_lookup: TxLookup | None = None,
        before_proposal: Callable[[], None] | None = None,
    ) -> None:
        self.transport = transport
        self.chain_id = chain_id
        self.part_key = part_key
        #: Called before our proposal goes out: the transaction gossip sends the batch it
        #: holds (see ``broadcast_proposal``).
        self.before_proposal = before_proposal
        #: The mempool's transactions by id: large proposal blocks travel compact (None: in parts).
        self.tx_lookup = tx_lookup
        #: Compact proposal blocks rebuilt here, whole from the mempool or with transactions asked for.
        self.blocks_rebuilt = 0
        self.txs_requested = 0
        self.driver: ConsensusDriver | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.assembler = PartAssembler(Block.MAX_BYTES)
        #: Blocks being fetched by hash (one fetch at a time per assembly key).
        self._fetching: set[AssemblyKey] = set()
        #: The proposal whose block this node last sent in parts (a re-broadcast sends the announcement only).
        self._parts_sent: AssemblyKey | None = None
        self.blocks_fetched = 0
        self.fetch_failures = 0
        #: Messages refused, by penalty name (``""``: ignored, no penalty).
        self.refused: dict[str, int] = {}

    def bind(self, driver: ConsensusDriver) -> None:
        """Feed ``driver`` (without subscribing: a simulation calls the validators and handlers itself)."""
        self.driver = driver
        self.assembler = PartAssembler(driver.max_block_bytes)
        self._follow_driver()

    def attach(self, driver: ConsensusDriver) -> None:
        """Subscribe the consensus topics and serve proposal blocks for ``driver``."""
        self.bind(driver)
        # Assemblies of a committed height expire at once, whether or not more parts arrive.
        driver.committed_listeners.append(self._on_committed)
        t = self.transport
        t.subscribe("proposal", self.validate_proposal, self._on_proposal)
        t.subscribe("vote", self.validate_vote, self.receive_vote)
        t.subscribe("evidence", self.validate_evidence, self.receive_evidence)
        t.set_request_handler(proposal_block_protocol(self.chain_id), self.serve_block)
        t.set_request_handler(block_txs_protocol(self.chain_id), self.serve_block_txs)

    def _on_committed(self, committed: BlockCommitted) -> None:
        self.assembler.prune(committed.height + 1)

    @property
    def blocks_assembled(self) -> int:
        """Proposal blocks formed from their parts and handed to the driver."""
        return self.assembler.assembled

    @property
    def max_block_bytes(self) -> int:
        """The largest proposal block taken from the network."""
        return Block.MAX_BYTES if self.driver is None else self.driver.max_block_bytes

    @property
    def max_parts(self) -> int:
        """The most parts a proposal block of at most ``max_block_bytes`` needs."""
        return min(MAX_PARTS, -(-self.max_block_bytes // PART_BYTES))

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
        if _key(proposal) == self._parts_sent:
            # A re-broadcast while the height stalls: re-sending every part each time would
            # cost every peer a whole block again. Announced without parts, the block is
            # fetched by hash by the peers that still lack it (and ignored by the others).
            self._spawn(self._publish("proposal", pack_raw([MSG_PROPOSAL, proposal.encode(), b"", 0])))
            return
        if self.before_proposal is not None:
            # The block carries transactions that reached us (over RPC) within the last
            # batch delay and are not gossiped yet: a compact block of them sent first
            # made every peer ask us for them, a round trip on the way to its prevote.
            # Published before the proposal, on the same stream to each peer, the batch
            # arrives (and is checked into the peer's mempool) ahead of it.
            self.before_proposal()
        messages = encode_proposal_messages(
            self.chain_id, proposal, block, self.part_key, compact=self.tx_lookup is not None
        )
        if len(messages) == 1:
            self._spawn(self._publish("proposal", messages[0]))
        else:
            self._parts_sent = _key(proposal)
            self._spawn(self._publish_all("proposal", messages))

    async def _publish_all(self, kind: str, payloads: list[bytes]) -> None:
        for payload in payloads:
            await self._publish(kind, payload)

    def broadcast_vote(self, vote: Vote) -> None:
        self._spawn(self._publish("vote", encode_vote_message(vote)))

    def broadcast_evidence(self, evidence: Evidence) -> None:
        self._spawn(self._publish("evidence", encode_evidence_message(evidence)))

    def report_peer(self, peer: str, reason: str) -> None:
        """Penalise ``peer`` under ``reason``, a name of ``p2p.scoring.PENALTY``."""
        if peer:
            self.transport.report_peer(peer, reason)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- verdicts ---------------------------------------------------------------------------

    def _verdict(self, result: AuthResult) -> GossipVerdict:
        if result.ok:
            return Verdict.ACCEPT
        self.refused[result.fault] = self.refused.get(result.fault, 0) + 1
        if result.fault:
            log.debug("refused: %s", result.detail)
            return Reject(result.fault)
        return Verdict.IGNORE

    def _malformed(self) -> Reject:
        self.refused["malformed"] = self.refused.get("malformed", 0) + 1
        return Reject("malformed")

    # -- proposals and parts ------------------------------------------------------------------

    @staticmethod
    def _decode_message(payload: bytes) -> tuple[Proposal, bytes, int] | Part | CompactProposal:
        raw = unpack_raw(payload, max_bytes=max(INLINE_BLOCK_BYTES, COMPACT_MAX_BYTES) + 4096)
        if type(raw) is not list or not raw or type(raw[0]) is not int:
            raise ConsensusError("a proposal-topic message is [type, ...]")
        if raw[0] == MSG_COMPACT and len(raw) == 3:
            _, pb, cb = raw
            if type(pb) is not bytes or type(cb) is not bytes:
                raise ConsensusError("a compact proposal message is [2, proposal, compact block]")
            proposal = Proposal.decode(pb)
            proposal.validate_basic()
            return CompactProposal(proposal, decode_compact(cb))
        if raw[0] == MSG_PROPOSAL and len(raw) == 4:
            _, pb, bb, total = raw
            if type(pb) is not bytes or type(bb) is not bytes or type(total) is not int:
                raise ConsensusError("a proposal message is [0, proposal, block, parts]")
            if len(bb) > INLINE_BLOCK_BYTES:
                raise ConsensusError(f"an inline block is at most {INLINE_BLOCK_BYTES} bytes")
            if not 0 <= total <= MAX_PARTS or (total and bb):
                raise ConsensusError("a proposal carries its block inline or announces parts, not both")
            proposal = Proposal.decode(pb)
            proposal.validate_basic()
            return proposal, bb, total
        if raw[0] == MSG_PART:
            return Part.from_fields(raw[1:])
        raise ConsensusError("unknown proposal-topic message")

    def _follow_driver(self) -> None:
        """Move the assembler to the driver's (height, round): assemblies of past heights expire."""
        if self.driver is not None:
            st = self.driver.state
            self.assembler.advance(st.height, st.round)

    def validate_proposal(self, peer: str, payload: bytes) -> GossipVerdict:
        """Proposal topic: decode, bound the parts, authenticate, then check an inline block is the signed one."""
        driver = self.driver
        if driver is None:
            return Verdict.IGNORE
        self._follow_driver()
        try:
            msg = self._decode_message(payload)
        except ConsensusError:
            return self._malformed()
        if isinstance(msg, Part):
            if msg.total > self.max_parts:
                return self._verdict(AuthResult(False, "oversize", f"a block of {msg.total} parts"))
            # Before the signature: a part that would not be kept is not worth a verification.
            if not self.assembler.is_admissible(peer, msg):
                return self._verdict(AuthResult(False, "", "a block part this node would not keep"))
            return self._verdict(driver.check_part(msg.height, msg.round, msg.sign_payload(), msg.signature))
        if isinstance(msg, CompactProposal):
            result = driver.check_proposal(msg.proposal)
            if not result.ok:
                return self._verdict(result)
            # Checked whole, so no forwarder can have altered it: a mismatch is the sender's.
            fault = check_compact(msg.compact, msg.proposal)
            return Verdict.ACCEPT if fault is None else self._verdict(AuthResult(False, "bad_block", fault))
        proposal, block_bytes, total = msg
        if total > self.max_parts:
            return self._verdict(AuthResult(False, "oversize", f"a block of {total} parts"))
        result = driver.check_proposal(proposal)
        if not result.ok or not block_bytes:
            return self._verdict(result)
        try:
            block = Block.decode(block_bytes, max_bytes=INLINE_BLOCK_BYTES)
        except ConsensusError:
            return self._malformed()
        if block.hash() != proposal.block_hash or block.header.height != proposal.height:
            return self._verdict(AuthResult(False, "bad_block", "the inline block is not the proposed one"))
        return Verdict.ACCEPT

    async def _on_proposal(self, peer: str, payload: bytes) -> None:
        wanted = self.receive_proposal(peer, payload)
        if wanted is not None:
            proposal, total = wanted
            # Handlers run in delivery order: never wait here, or the parts queued
            # behind this message would wait too.
            self._spawn(self._fetch_unless_assembled(peer, proposal, PART_WAIT_S if total else 0.0))
        for gone in self.assembler.pop_abandoned():
            log.info("block parts of %d/%d %s: fetching the block", gone.proposal.height, gone.proposal.round,
                     gone.state.value)
            self._spawn(self._fetch_unless_assembled(gone.peer, gone.proposal, 0.0))

    def receive_proposal(self, peer: str, payload: bytes) -> tuple[Proposal, int] | None:
        """Handle an accepted proposal-topic message; return (proposal, parts) when its block must be fetched.

        ``parts`` is 0 when the block is to be fetched at once (no parts on
        their way, or its assembly already ended without it); otherwise the
        fetch waits ``PART_WAIT_S`` for them.
        """
        msg = self._decode_message(payload)
        self._follow_driver()
        if isinstance(msg, Part):
            self._deliver(self.assembler.add_part(peer, msg))
            return None
        if isinstance(msg, CompactProposal):
            return self._receive_compact(peer, msg)
        proposal, block_bytes, total = msg
        if block_bytes:
            if self.driver is not None:
                block = Block.decode(block_bytes, max_bytes=INLINE_BLOCK_BYTES)
                self.driver.deliver_proposal(peer, proposal, block, len(block_bytes))
            return None
        log.debug("proposal %d/%d announced by %s: %d parts", proposal.height, proposal.round,
                  peer[-8:], total)
        if self._deliver_held(peer, proposal):
            return None  # its block is here already (a re-broadcast, or a block proposed again)
        if total:
            assembled = self.assembler.add_proposal(peer, proposal, total)
            if assembled is not None:
                self._deliver(assembled)
                return None
        state = self.assembler.get_state(_key(proposal))
        if state is AssemblyState.COMPLETE:
            return None
        if state is AssemblyState.PENDING:
            # Its parts are on their way (a re-broadcast announces without them): wait for them first.
            return proposal, total or 1
        return proposal, 0  # none announced, or evicted, failed, refused: the parts will not form it here

    def _receive_compact(self, peer: str, msg: CompactProposal) -> tuple[Proposal, int] | None:
        """Rebuild an accepted compact block from the mempool; ask ``peer`` for what it lacks."""
        proposal, compact = msg.proposal, msg.compact
        key = _key(proposal)
        if self.assembler.get_state(key) is AssemblyState.COMPLETE or key in self._fetching:
            return None  # delivered already (a relayed copy), or being completed
        if self._deliver_held(peer, proposal):
            # A re-broadcast of a block we hold. After our commit its assembly is pruned and
            # its transactions have left the mempool: rebuilding it found every one missing
            # and asked the proposer for the whole block's transactions, under load nearly
            # every height (the proposer re-broadcasts after a second without a commit).
            return None
        txs, missing = rebuild(compact, self.tx_lookup or _no_txs)
        if not missing:
            block = fill(compact, txs, [], [])
            if block is not None:
                self.blocks_rebuilt += 1
                self.deliver_fetched(peer, block, len(block.encode()), proposal=proposal)
                return None
        log.debug("compact proposal %d/%d: %d of %d transactions not in the mempool", proposal.height,
                  proposal.round, len(missing), len(compact.txs))
        self._fetching.add(key)
        self._spawn(self._complete_compact(peer, proposal, compact, txs, missing))
        return None

    async def _complete_compact(self, peer: str, proposal: Proposal, compact: Block,
                                txs: list[bytes | None], missing: list[int]) -> None:
        """Ask ``peer`` for the missing transactions; fetch the whole block if that fails."""
        key = _key(proposal)
        try:
            block: Block | None = None
            if self.is_wanted(proposal):
                self.txs_requested += len(missing)
                try:
                    frames = await self.transport.request(
                        peer, block_txs_protocol(self.chain_id), encode_txs_request(proposal.block_hash, missing),
                        timeout=FETCH_TIMEOUT_S, max_frames=1, max_frame_bytes=self.max_block_bytes,
                    )
                except (P2PError, BadPeerData) as exc:
                    log.debug("asking %s for %d transactions failed: %s", peer[-8:], len(missing), exc)
                    frames = []
                found = decode_txs_answer(frames, self.max_block_bytes)
                if found is not None:
                    block = fill(compact, txs, missing, found)
                    if block is None:
                        self.report_peer(peer, "bad_data")  # answers that are not the ids asked for
            if block is not None and self.assembler.get_state(key) is not AssemblyState.COMPLETE:
                self.blocks_rebuilt += 1
                self.deliver_fetched(peer, block, len(block.encode()), proposal=proposal)
                return
        finally:
            self._fetching.discard(key)
        if block is None:
            await self._fetch_unless_assembled(peer, proposal, 0.0)

    def _deliver(self, assembled: Assembled | None) -> None:
        if assembled is not None and self.driver is not None:
            self.driver.deliver_proposal(assembled.peer, assembled.proposal, assembled.block, assembled.size)

    def is_assembling(self, proposal: Proposal) -> bool:
        """Whether parts of ``proposal``'s block are still awaited (not assembled, not given up)."""
        return self.assembler.get_state(_key(proposal)) is AssemblyState.PENDING

    def is_fetch_needed(self, proposal: Proposal) -> bool:
        """Whether ``proposal``'s block must be fetched: not assembled here (any other outcome) and still wanted."""
        return self.assembler.get_state(_key(proposal)) is not AssemblyState.COMPLETE and self.is_wanted(proposal)

    def is_wanted(self, proposal: Proposal) -> bool:
        """Whether ``proposal``'s block is still worth fetching (it authenticates here and now, and we lack it)."""
        return self.driver is not None and not self._holds_block(proposal) and self.driver.check_proposal(proposal).ok

    def _holds_block(self, proposal: Proposal) -> bool:
        """Whether the driver already holds ``proposal``'s block (it keeps the current height's blocks)."""
        return self.driver is not None and self.driver.get_block(proposal.block_hash) is not None

    def _deliver_held(self, peer: str, proposal: Proposal) -> bool:
        """If the driver holds ``proposal``'s block, hand it the proposal (unless it has it) and return True.

        The same block may come back in a later round's proposal (a locked or valid
        block proposed again): that proposal still goes to the driver, with the block held.
        """
        driver = self.driver
        block = None if driver is None else driver.get_block(proposal.block_hash)
        if driver is None or block is None:
            return False
        if not driver.has_proposal(proposal):
            self.deliver_fetched(peer, block, len(block.encode()), proposal=proposal)
        return True

    async def _fetch_unless_assembled(self, peer: str, proposal: Proposal, delay: float) -> None:
        """Parts may be lost, late, evicted or bad: fall back to fetching the whole block by hash."""
        if delay:
            await asyncio.sleep(delay)
        key = _key(proposal)
        if key in self._fetching or self.assembler.get_state(key) is AssemblyState.COMPLETE:
            return  # assembled meanwhile, or already being fetched
        if not self.is_wanted(proposal):
            self.assembler.drop(key)
            return
        log.debug("proposal %d/%d: fetching its block", proposal.height, proposal.round)
        self._fetching.add(key)
        try:
            fetched = await self._fetch_block(peer, proposal.block_hash)
        finally:
            self._fetching.discard(key)
        if fetched is not None and self.assembler.get_state(key) is not AssemblyState.COMPLETE:
            self.deliver_fetched(*fetched, proposal=proposal)

    def deliver_fetched(self, peer: str, block: Block, size: int, *, proposal: Proposal) -> None:
        """Hand the driver a proposal whose block (``size`` bytes) came from ``peer``, checked by ``accept_fetched``."""
        self.assembler.mark_complete(_key(proposal))
        if self.driver is not None:
            self.driver.deliver_proposal(peer, proposal, block, size)

    # -- fetching and serving proposal blocks ---------------------------------------------------

    async def _fetch_block(self, first_peer: str, block_hash: bytes) -> tuple[str, Block, int] | None:
        protocol = proposal_block_protocol(self.chain_id)
        peers = [first_peer] + [p for p in self.transport.peers() if p != first_peer]
        for attempt in range(3):
            for peer in peers:
                try:
                    frames = await self.transport.request(
                        peer, protocol, block_hash, timeout=FETCH_TIMEOUT_S, max_frames=1,
                        max_frame_bytes=self.max_block_bytes,
                    )
                except BadPeerData as exc:
                    log.info("peer %s served an oversize proposal block: %s", peer[-8:], exc)
                    self.report_peer(peer, "oversize")
                    continue
                except P2PError:
                    continue
                block = self.accept_fetched(peer, block_hash, frames)
                if block is not None:
                    return peer, block, len(frames[0])
            await asyncio.sleep(0.2 * (attempt + 1))
        self.fetch_failures += 1
        log.info("could not fetch proposal block %s", block_hash.hex()[:16])
        return None

    def accept_fetched(self, peer: str, block_hash: bytes, frames: list[bytes]) -> Block | None:
        """The block ``peer`` served for ``block_hash``, or None (penalising a peer that served a bad one)."""
        if not frames or not frames[0]:
            return None
        if len(frames[0]) > self.max_block_bytes:
            self.report_peer(peer, "oversize")
            return None
        try:
            block = Block.decode(frames[0], max_bytes=self.max_block_bytes)
        except ConsensusError:
            self.report_peer(peer, "bad_data")
            return None
        if block.hash() != block_hash:
            self.report_peer(peer, "bad_data")
            return None
        self.blocks_fetched += 1
        return block

    def serve_block(self, peer: str, request: bytes) -> list[bytes]:
        if self.driver is None or len(request) != 32:
            return [b""]
        block = self.driver.get_block(request)
        if block is not None:
            return [block.encode()]
        # A peer a little behind asks for a block this node already committed.
        stored = self.driver.executor.store.blocks.load_block_by_hash(request)
        return [stored if stored is not None else b""]

    def serve_block_txs(self, peer: str, request: bytes) -> list[bytes]:
        """Answer a ``block-txs`` request: transactions of a proposal block this node holds, by index."""
        if self.driver is None:
            return [b""]
        try:
            block_hash, indices = decode_txs_request(request)
        except ConsensusError:
            return [b""]
        block = self.driver.get_block(block_hash)
        return [b""] if block is None else serve_txs(block, indices)

    # -- votes and evidence ---------------------------------------------------------------------

    def validate_vote(self, peer: str, payload: bytes) -> GossipVerdict:
        """Vote topic: decode, then authenticate against the set of the vote's height."""
        if self.driver is None:
            return Verdict.IGNORE
        try:
            vote = Vote.decode(payload)
        except ConsensusError:
            return self._malformed()
        return self._verdict(self.driver.check_vote(vote))

    def receive_vote(self, peer: str, payload: bytes) -> None:
        if self.driver is not None:
            self.driver.deliver_vote(peer, Vote.decode(payload))

    def _decode_evidence(self, payload: bytes) -> Evidence:
        raw = unpack_raw(payload)
        if type(raw) is not list or len(raw) != 2 or type(raw[0]) is not int or type(raw[1]) is not bytes:
            raise ConsensusError("an evidence message is [kind, evidence]")
        return decode_evidence(raw[0], raw[1])

    def validate_evidence(self, peer: str, payload: bytes) -> GossipVerdict:
        """Evidence topic: decode, then authenticate (new, punishable, both signatures a member's)."""
        if self.driver is None:
            return Verdict.IGNORE
        try:
            evidence = self._decode_evidence(payload)
        except ConsensusError:
            return self._malformed()
        return self._verdict(self.driver.check_evidence(evidence))

    def receive_evidence(self, peer: str, payload: bytes) -> None:
        if self.driver is not None:
            self.driver.deliver_evidence(self._decode_evidence(payload), peer)


def _no_txs(tx_id: bytes) -> bytes | None:
    return None


def _key(proposal: Proposal) -> AssemblyKey:
    return (proposal.height, proposal.round, proposal.block_hash)
