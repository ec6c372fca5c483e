"""Test-only ``forge`` mode: forged consensus messages in the name of other validators.

The node runs normally; next to its honest traffic, ``ForgeService`` gossips
a steady stream of messages that ``Forger`` makes up for the height and
round the node is in: votes of every other validator, proposals and block
parts of the round's proposer (inline, in parts, announced for fetching with
a block near ``Block.MAX_BYTES`` that this node serves, for the next height,
and for round ``MAX_ROUND``), votes of a height just decided, and
duplicate-vote evidence against the other validators. Every signature is
noise: none of it verifies. Honest peers must refuse each message before
using it (penalising this node, the only forwarder), relay none of it, store
none of it, and keep their pace.

``cstake start --byzantine forge`` (refused unless the genesis sets
``params.allow_test_faults``). The stream goes out at the gossip rate limits
of ``p2p.config`` (the limits this node's peers apply to it), capped at
``MAX_RATE`` messages per second per kind, and only while the node has
peers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from consensus.blocks import Block
from consensus.codec import pack_raw
from consensus.evidence import compute_duplicate_vote_evidence
from consensus.hashing import hash32
from consensus.validator_set import MAX_ROUND, ValidatorInfo, ValidatorSet
from consensus.votes import Proposal, Vote, VoteType
from node.engine.driver import ConsensusDriver
from node.engine.gossip import (
    MSG_PART,
    MSG_PROPOSAL,
    PART_BYTES,
    GossipAdapter,
    encode_evidence_message,
    proposal_block_protocol,
)
from p2p.errors import P2PError
from p2p.interface import Transport

log = logging.getLogger(__name__)

#: Most forged messages per second per gossip kind (the p2p rate limit is used when lower).
MAX_RATE = 200.0
#: Size of the block served for forged fetch announcements: just under ``Block.MAX_BYTES``.
HUGE_BLOCK_BYTES = Block.MAX_BYTES - 128
#: Parts announced by a forged proposal that travels in parts.
FORGED_PARTS = 4


class Forger:
    """Makes up consensus gossip payloads signed with noise, deterministically from a seed."""

    def __init__(self, chain_id: str, address: bytes | None, seed: bytes = b"forge") -> None:
        self.chain_id = chain_id
        self.address = address
        self.seed = seed
        self._counter = 0
        #: Blocks this node serves by hash for its forged fetch announcements.
        self.served: dict[bytes, bytes] = {}
        #: Hashes of the blocks made since the last ``batch`` began.
        self.made: list[bytes] = []
        self._huge: tuple[Block, bytes] | None = None

    def _noise(self, n: int = 32) -> bytes:
        out = b""
        while len(out) < n:
            self._counter += 1
            out += hash32(self.seed + self._counter.to_bytes(8, "big"))
        return out[:n]

    def _signature(self) -> bytes:
        """Noise shaped like a signature (its scalar below the group order), so checking it costs a full verification."""
        noise = self._noise(64)
        return noise[:63] + bytes([noise[63] & 0x0F])

    def victims(self, vset: ValidatorSet) -> list[ValidatorInfo]:
        """The members of ``vset`` in whose name messages are forged (every one but this node)."""
        return [v for v in vset.validators if v.address != self.address]

    def vote(self, height: int, round_: int, vote_type: int, validator: bytes, block_hash: bytes | None = None) -> Vote:
        """A vote of ``validator`` for ``block_hash`` (noise when None), with a noise signature."""
        target = block_hash if block_hash is not None else self._noise()
        return Vote(height, round_, vote_type, target, validator, 1_700_000_000_000 + self._counter,
                    self._signature())

    def votes(self, height: int, round_: int, vset: ValidatorSet) -> list[bytes]:
        """A prevote and a precommit of every other validator at (height, round), as payloads."""
        return [
            self.vote(height, round_, t, v.address).encode()
            for v in self.victims(vset)
            for t in (VoteType.PREVOTE, VoteType.PRECOMMIT)
        ]

    def evidence(self, height: int, round_: int, vset: ValidatorSet) -> list[bytes]:
        """Duplicate-vote evidence against every other validator, both votes forged, as payloads."""
        out = []
        for v in self.victims(vset):
            a = self.vote(height, round_, VoteType.PREVOTE, v.address)
            b = self.vote(height, round_, VoteType.PREVOTE, v.address)
            out.append(encode_evidence_message(compute_duplicate_vote_evidence(a, b)))
        return out

    def _proposer(self, vset: ValidatorSet, round_: int) -> bytes:
        """The proposer of ``round_`` (another member when that is this node)."""
        proposer = vset.compute_proposer(round_).address
        if proposer == self.address:
            others = self.victims(vset)
            return others[0].address if others else proposer
        return proposer

    def block(self, template: Block, height: int, round_: int, proposer: bytes) -> Block:
        """A block for (height, round) made from ``template`` (a header no honest node signed)."""
        header = dataclasses.replace(
            template.header, height=height, round=round_, proposer=proposer,
            time_ms=template.header.time_ms + self._counter + 1, state_root=self._noise(),
        )
        block = dataclasses.replace(template, header=header)
        self.made.append(block.hash())
        return block

    def proposal(self, block: Block, proposer: bytes) -> Proposal:
        """A proposal of ``block`` in ``proposer``'s name, signed with noise."""
        h = block.header
        return Proposal(h.height, h.round, -1, block.hash(), proposer, h.time_ms, self._signature())

    def inline_proposal(self, height: int, round_: int, vset: ValidatorSet, template: Block) -> bytes:
        """A proposal of the round's proposer carrying a made-up block inline."""
        block = self.block(template, height, round_, self._proposer(vset, round_ if round_ <= MAX_ROUND else 0))
        return pack_raw([MSG_PROPOSAL, self.proposal(block, block.header.proposer).encode(), block.encode(), 0])

    def far_round_proposal(self, height: int, vset: ValidatorSet, template: Block) -> bytes:
        """A proposal for round ``MAX_ROUND`` whose block header says that round too."""
        proposer = self._proposer(vset, 0)
        block = self.block(template, height, MAX_ROUND, proposer)
        return pack_raw([MSG_PROPOSAL, self.proposal(block, proposer).encode(), block.encode(), 0])

    def parts(self, height: int, round_: int, vset: ValidatorSet, template: Block) -> list[bytes]:
        """A proposal announced in ``FORGED_PARTS`` parts, then those parts, all signed with noise."""
        proposer = self._proposer(vset, round_)
        block = self.block(template, height, round_, proposer)
        block_hash = block.hash()
        out = [pack_raw([MSG_PROPOSAL, self.proposal(block, proposer).encode(), b"", FORGED_PARTS])]
        for index in range(FORGED_PARTS):
            out.append(pack_raw([MSG_PART, height, round_, block_hash, index, FORGED_PARTS,
                                 self._noise(PART_BYTES), self._signature()]))
        return out

    def huge_block(
        self, template: Block, height: int, round_: int, proposer: bytes, size: int, *, same_header: bool = False
    ) -> Block:
        """A block for (height, round) with one transaction padding it to ``size`` bytes.

        With ``same_header`` the header (and so the hash) stays the
        template's, so a proposal signed for the template points at it: a
        block no honest node would accept, which only a size cap stops before
        it is stored. Otherwise the header is the template's, made unique.
        """
        header = dataclasses.replace(template.header, height=height, round=round_, proposer=proposer)
        if not same_header:
            header = dataclasses.replace(header, time_ms=header.time_ms + self._counter + 1, state_root=self._noise())
        base = dataclasses.replace(template, header=header, txs=(b"",))
        pad = size - len(base.encode())
        # A longer byte string needs a longer length prefix: settle in two steps.
        for _ in range(2):
            block = dataclasses.replace(base, txs=(bytes(max(0, pad)),))
            pad += size - len(block.encode())
        return dataclasses.replace(base, txs=(bytes(max(0, pad)),))

    def huge_fetch_proposal(
        self, height: int, round_: int, vset: ValidatorSet, template: Block, size: int = HUGE_BLOCK_BYTES
    ) -> bytes:
        """A proposal for (height, round) announced without its block, which this node serves by hash.

        The block, ``size`` bytes, is made once and served for every such
        announcement (building 64 MiB per round would cost this node more
        than it costs the peers that refuse the announcement).
        """
        proposer = self._proposer(vset, round_)
        if self._huge is None or len(self._huge[1]) != size:
            block = self.huge_block(template, height, round_, proposer, size)
            self._huge = (block, block.encode())
            self.served = {block.hash(): self._huge[1]}
        block = self._huge[0]
        proposal = Proposal(height, round_, -1, block.hash(), proposer, block.header.time_ms, self._signature())
        return pack_raw([MSG_PROPOSAL, proposal.encode(), b"", 0])

    def serve(self, request: bytes) -> bytes | None:
        """The forged block this node serves for ``request`` (a block hash), if it made one."""
        return self.served.get(request)

    def batch(self, height: int, round_: int, vset: ValidatorSet, template: Block) -> dict[str, list[bytes]]:
        """One of each forged message for (height, round), by gossip kind."""
        self.made = []
        proposals = [self.inline_proposal(height, round_, vset, template),
                     self.inline_proposal(height + 1, 0, vset, template),
                     self.far_round_proposal(height, vset, template)]
        proposals += self.parts(height, round_, vset, template)
        return {
            "vote": self.votes(height, round_, vset) + self.votes(height + 1, 0, vset),
            "proposal": proposals,
            "evidence": self.evidence(height, round_, vset),
        }


class ForgeService:
    """The daemon side of the ``forge`` mode: publishes the forger's stream at the gossip rate limits."""

    def __init__(
        self, transport: Transport, driver: ConsensusDriver, gossip: GossipAdapter, forger: Forger,
        *, max_rate: float = MAX_RATE,
    ) -> None:
        self.transport = transport
        self.driver = driver
        self.gossip = gossip
        self.forger = forger
        limits = transport.config.rate_limits
        # Within each topic's budget: messages per second, or (proposal parts) bytes per second in parts.
        self.rates = {
            kind: min(max_rate, limits[kind].rate if limits[kind].unit == "messages" else limits[kind].rate / PART_BYTES)
            for kind in ("vote", "proposal", "evidence")
        }
        self.sent = dict.fromkeys(self.rates, 0)
        self._huge_for: tuple[int, int] | None = None
        self._serve_next: Callable[[str, bytes], list[bytes]] = gossip.serve_block

    def attach(self) -> None:
        """Serve the forged blocks by hash before the honest ones (call after the adapter attached)."""
        self.transport.set_request_handler(proposal_block_protocol(self.driver.ctx.chain_id), self._serve)

    def _serve(self, peer: str, request: bytes) -> list[bytes]:
        forged = self.forger.serve(request)
        return [forged] if forged is not None else self._serve_next(peer, request)

    def _template(self) -> Block | None:
        blocks = self.driver.executor.store.blocks
        raw = blocks.load_block(self.driver.executor.height)
        return None if raw is None else Block.decode(raw, max_bytes=Block.MAX_BYTES)

    async def run(self) -> None:
        """Publish forged messages while the node has peers, until cancelled."""
        log.warning("test fault: forging consensus messages at up to %s msg/s per kind", self.rates)
        tick = 0.1
        budget = dict.fromkeys(self.rates, 0.0)
        queues: dict[str, list[bytes]] = {k: [] for k in self.rates}
        while True:
            await asyncio.sleep(tick)
            template = self._template()
            if template is None or not self.transport.peers():
                continue
            st = self.driver.state
            if any(not q for q in queues.values()):
                fresh = self.forger.batch(st.height, st.round, st.validator_set, template)
                if self._huge_for != (st.height, st.round):
                    self._huge_for = (st.height, st.round)
                    fresh["proposal"].append(
                        self.forger.huge_fetch_proposal(st.height, st.round, st.validator_set, template)
                    )
                for kind, payloads in fresh.items():
                    queues[kind] = queues[kind] + payloads if len(queues[kind]) < 10_000 else queues[kind]
            for kind, rate in self.rates.items():
                budget[kind] = min(budget[kind] + rate * tick, rate)
                while budget[kind] >= 1.0 and queues[kind]:
                    budget[kind] -= 1.0
                    payload = queues[kind].pop(0)
                    try:
                        await self.transport.publish(kind, payload)
                    except (P2PError, OSError) as exc:
                        log.debug("forged %s not published: %s", kind, exc)
                        continue
                    self.sent[kind] += 1
