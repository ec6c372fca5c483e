"""Block parts: a large proposal block assembled from its proposer's signed parts, bounded and expiring.

A proposal block over the inline limit travels as parts of at most
``PART_BYTES``, each signed by the round's proposer (``part_sign_payload``);
the gossip adapter authenticates every part through the driver before it
reaches the ``PartAssembler`` here, which is pure: no I/O, no clock, no
signatures, so it is tested alone.

An assembly is keyed by (height, round, block hash) and ends in one explicit
state: ``COMPLETE`` (the parts formed the proposed block, handed on once),
``FAILED`` (they did not decode, were not the proposed block, or outgrew the
block size: the proposer signed them, so the proposer is at fault),
``EVICTED`` (dropped for room, or its height passed). Every state but
``COMPLETE`` means the block must be fetched whole if the proposal is still
wanted; a key the assembler no longer remembers reads the same way.

Memory is bounded three ways: at most ``MAX_ASSEMBLIES`` assemblies, at most
``max_bytes`` of part data in all, and at most ``peer_bytes`` of it charged
to any one forwarding peer (its share), and a (height, round) holds at most
``MAX_BLOCKS_PER_SLOT`` blocks (an honest proposer signs one; an equivocating
one cannot fill the table). When room is short, the assembly farthest from
the driver's (height, round) goes first, never one nearer than the newcomer's:
a flood of validly signed parts for rounds or heights ahead cannot evict the
block of the round in progress. ``advance`` moves to the driver's position and
drops everything below its height.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from consensus.blocks import Block
from consensus.codec import Raw, pack_raw
from consensus.crypto import Domain, PrivateKey
from consensus.errors import ConsensusError
from consensus.hashing import hash32
from consensus.votes import Proposal

#: Blocks larger than the inline limit are gossiped in parts of this size, signed by the proposer.
PART_BYTES = 32 * 1024
#: Most parts any message may announce (the chain's block size allows fewer).
MAX_PARTS = 2048
#: Assemblies in progress at once.
MAX_ASSEMBLIES = 16
#: Bytes of parts held in all assemblies, in multiples of the largest block.
MAX_ASSEMBLY_BLOCKS = 4
#: Bytes of parts one forwarding peer may have held, in multiples of the largest block
#: (the round in progress and the next one).
PEER_SHARE_BLOCKS = 2
#: Distinct blocks kept per (height, round): the proposer's one, and one conflicting twin.
MAX_BLOCKS_PER_SLOT = 2
#: Finished assemblies remembered (state only, no data) so the fetch fallback can tell them apart.
MAX_OUTCOMES = 256

AssemblyKey = tuple[int, int, bytes]
"""(height, round, block hash)."""


class AssemblyState(Enum):
    """Where one block's assembly stands."""

    PENDING = "pending"
    COMPLETE = "complete"
    FAILED = "failed"
    EVICTED = "evicted"


def part_sign_payload(height: int, round_: int, block_hash: bytes, index: int, total: int, data: bytes) -> bytes:
    """The bytes a block part's signature covers (the part's data by its hash)."""
    return pack_raw([height, round_, block_hash, index, total, hash32(data)])


@dataclass(frozen=True, slots=True)
class Part:
    """One signed part of a proposal block, as it travels on the proposal topic."""

    height: int
    round: int
    block_hash: bytes
    index: int
    total: int
    """Parts the whole block is split into."""
    data: bytes
    signature: bytes
    """The proposer's signature over ``part_sign_payload``."""

    @property
    def key(self) -> AssemblyKey:
        return (self.height, self.round, self.block_hash)

    def sign_payload(self) -> bytes:
        return part_sign_payload(self.height, self.round, self.block_hash, self.index, self.total, self.data)

    def to_fields(self) -> list[Raw]:
        """The part as it travels: ``[height, round, block_hash, index, total, data, signature]``."""
        return [self.height, self.round, self.block_hash, self.index, self.total, self.data, self.signature]

    @classmethod
    def from_fields(cls, fields: Sequence[Raw]) -> Part:
        """The part ``to_fields`` wrote; ConsensusError unless every field has its type and range."""
        if len(fields) != 7:
            raise ConsensusError("a block part has 7 fields")
        height, round_, block_hash, index, total, data, sig = fields
        if not (
            type(height) is int and type(round_) is int and type(index) is int and type(total) is int
            and type(block_hash) is bytes and len(block_hash) == 32
            and type(data) is bytes and 0 < len(data) <= PART_BYTES
            and type(sig) is bytes and len(sig) == 64
            and 0 <= index < total <= MAX_PARTS and height >= 1 and round_ >= 0
        ):
            raise ConsensusError("malformed block part")
        return cls(height, round_, block_hash, index, total, data, sig)


def compute_parts(chain_id: str, proposal: Proposal, block_bytes: bytes, key: PrivateKey) -> list[Part]:
    """``block_bytes`` cut into parts of ``PART_BYTES``, each signed by ``key`` (the proposer's) for ``proposal``."""
    chunks = [block_bytes[i : i + PART_BYTES] for i in range(0, len(block_bytes), PART_BYTES)]
    out = []
    for index, data in enumerate(chunks):
        payload = part_sign_payload(proposal.height, proposal.round, proposal.block_hash, index, len(chunks), data)
        signature = key.sign(Domain.PROPOSAL_PART, chain_id, payload)
        out.append(Part(proposal.height, proposal.round, proposal.block_hash, index, len(chunks), data, signature))
    return out


@dataclass(frozen=True, slots=True)
class Assembled:
    """A block formed from its parts, with the proposal that announced it."""

    proposal: Proposal
    peer: str
    """The peer that announced the proposal."""
    block: Block
    size: int
    """Encoded bytes of the block."""


@dataclass(frozen=True, slots=True)
class Abandoned:
    """An assembly given up (``FAILED`` or ``EVICTED``) whose proposal was announced: fetch its block."""

    proposal: Proposal
    peer: str
    state: AssemblyState


@dataclass(slots=True)
class _Assembly:
    total: int
    parts: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    """Index to (forwarding peer, data)."""
    proposal: Proposal | None = None
    peer: str = ""
    size: int = 0


def compute_rank(key: AssemblyKey, height: int, round_: int) -> tuple[int, int]:
    """How far ``key`` lies from the driver's (height, round): smaller is kept longer."""
    h, r, _ = key
    return (h - height, abs(r - round_) if h == height else r)


class PartAssembler:
    """Assemblies of proposal blocks from authenticated parts, bounded per peer and in all."""

    def __init__(
        self,
        max_block_bytes: int,
        *,
        max_assemblies: int = MAX_ASSEMBLIES,
        max_bytes: int | None = None,
        peer_bytes: int | None = None,
    ) -> None:
        self.max_block_bytes = max_block_bytes
        self.max_assemblies = max_assemblies
        self.max_bytes = MAX_ASSEMBLY_BLOCKS * max_block_bytes if max_bytes is None else max_bytes
        self.peer_bytes = PEER_SHARE_BLOCKS * max_block_bytes if peer_bytes is None else peer_bytes
        self.height = 0
        self.round = 0
        self._pending: dict[AssemblyKey, _Assembly] = {}
        self._outcomes: OrderedDict[AssemblyKey, AssemblyState] = OrderedDict()
        self._held = 0
        self._by_peer: dict[str, int] = {}
        self._abandoned: list[Abandoned] = []
        self.assembled = 0
        self.failed = 0
        self.evicted = 0

    # -- reads -------------------------------------------------------------------------------

    @property
    def held_bytes(self) -> int:
        """Bytes of part data held in all assemblies."""
        return self._held

    def get_peer_bytes(self, peer: str) -> int:
        """Bytes of part data held that ``peer`` forwarded."""
        return self._by_peer.get(peer, 0)

    def get_state(self, key: AssemblyKey) -> AssemblyState | None:
        """The state of ``key``'s assembly; None when never started here, or forgotten."""
        if key in self._pending:
            return AssemblyState.PENDING
        return self._outcomes.get(key)

    def __len__(self) -> int:
        return len(self._pending)

    def is_admissible(self, peer: str, part: Part) -> bool:
        """Whether ``part`` from ``peer`` would be kept now (cheap: no signature, nothing changed).

        A part that would not be kept is of no use here: the gossip adapter
        ignores it before spending a signature check on it.
        """
        return self._admit(peer, part.key, part.total, part.index, len(part.data), dry_run=True)

    def pop_abandoned(self) -> list[Abandoned]:
        """Announced proposals whose assemblies failed or were evicted since the last call."""
        out, self._abandoned = self._abandoned, []
        return out

    # -- changes -----------------------------------------------------------------------------

    def advance(self, height: int, round_: int) -> None:
        """Follow the driver to (height, round); assemblies of lower heights are dropped."""
        if height < self.height:
            return  # the driver never goes back; a stale reading changes nothing
        if height > self.height:
            self.prune(height)
        self.height, self.round = height, round_

    def prune(self, height: int) -> int:
        """Drop every assembly and remembered outcome of a height below ``height``; return how many."""
        self.height = max(self.height, height)
        stale = [k for k in self._pending if k[0] < height]
        for key in stale:
            self._finish(key, AssemblyState.EVICTED, notify=False)
        old = [k for k in self._outcomes if k[0] < height]
        for key in old:
            del self._outcomes[key]
        return len(stale) + len(old)

    def add_proposal(self, peer: str, proposal: Proposal, total: int) -> Assembled | None:
        """An authenticated proposal announcing ``total`` parts: attach it to its assembly (started if need be)."""
        key = (proposal.height, proposal.round, proposal.block_hash)
        if not self._admit(peer, key, total, None, 0, dry_run=False):
            return None
        asm = self._pending[key]
        asm.proposal, asm.peer = proposal, peer
        return self._try_complete(key)

    def add_part(self, peer: str, part: Part) -> Assembled | None:
        """An authenticated part forwarded by ``peer``: keep it if there is room; return the block once complete."""
        if not self._admit(peer, part.key, part.total, part.index, len(part.data), dry_run=False):
            return None
        asm = self._pending[part.key]
        if asm.size + len(part.data) > self.max_block_bytes:
            # Every part is signed by the proposer: it signed more than a block may hold.
            self._finish(part.key, AssemblyState.FAILED)
            return None
        asm.parts[part.index] = (peer, part.data)
        asm.size += len(part.data)
        self._held += len(part.data)
        self._by_peer[peer] = self._by_peer.get(peer, 0) + len(part.data)
        return self._try_complete(part.key)

    def mark_complete(self, key: AssemblyKey) -> None:
        """The block of ``key`` reached the driver another way (fetched whole): stop assembling it."""
        self._finish(key, AssemblyState.COMPLETE, notify=False)

    def drop(self, key: AssemblyKey) -> None:
        """Give up ``key``'s assembly (its proposal is no longer wanted); nobody is told to fetch it."""
        if key in self._pending:
            self._finish(key, AssemblyState.EVICTED, notify=False)

    # -- internals ---------------------------------------------------------------------------

    def _admit(self, peer: str, key: AssemblyKey, total: int, index: int | None, size: int, *, dry_run: bool) -> bool:
        """Whether a part (``index``, ``size`` bytes) or an announcement (``index`` None) for ``key`` is kept.

        Unless ``dry_run``, makes the room it needs (evicting assemblies
        farther from the driver's position) and starts the assembly.
        """
        if key[0] < self.height or not 0 < total <= MAX_PARTS:
            return False
        asm = self._pending.get(key)
        if asm is not None:
            if asm.total != total or (index is not None and index in asm.parts):
                return False
        elif key in self._outcomes or self._count_slot(key) >= MAX_BLOCKS_PER_SLOT:
            return False  # finished already, or the proposer signed too many blocks for this round
        rank = compute_rank(key, self.height, self.round)
        victims = self._victims(key, rank, peer, size, new=asm is None)
        if victims is None:
            return False
        if dry_run:
            return True
        for victim in victims:
            self._finish(victim, AssemblyState.EVICTED)
        if asm is None:
            self._pending[key] = _Assembly(total)
        return True

    def _victims(self, key: AssemblyKey, rank: tuple[int, int], peer: str, size: int,
                 *, new: bool) -> list[AssemblyKey] | None:
        """The assemblies to evict so ``size`` more bytes from ``peer`` (and a new assembly) fit; None if they cannot."""
        # Farthest first; only assemblies strictly farther than the newcomer may go.
        order = sorted(
            (k for k in self._pending if k != key and compute_rank(k, self.height, self.round) > rank),
            key=lambda k: compute_rank(k, self.height, self.round), reverse=True,
        )
        count, held, mine = len(self._pending) + new, self._held + size, self.get_peer_bytes(peer) + size
        chosen: list[AssemblyKey] = []
        for victim in order:
            if count <= self.max_assemblies and held <= self.max_bytes and mine <= self.peer_bytes:
                break
            parts = self._pending[victim].parts
            if mine > self.peer_bytes and held <= self.max_bytes and count <= self.max_assemblies and not any(
                p == peer for p, _ in parts.values()
            ):
                continue  # only the peer's own share is short: evicting others' parts frees nothing of it
            chosen.append(victim)
            count -= 1
            freed = sum(len(d) for _, d in parts.values())
            held -= freed
            mine -= sum(len(d) for p, d in parts.values() if p == peer)
        if count <= self.max_assemblies and held <= self.max_bytes and mine <= self.peer_bytes:
            return chosen
        return None

    def _count_slot(self, key: AssemblyKey) -> int:
        h, r, _ = key
        return sum(1 for k in self._pending if k[0] == h and k[1] == r) + sum(
            1 for k in self._outcomes if k[0] == h and k[1] == r
        )

    def _finish(self, key: AssemblyKey, state: AssemblyState, *, notify: bool = True) -> None:
        """End ``key``'s assembly in ``state``: free its parts and remember the outcome."""
        asm = self._pending.pop(key, None)
        if asm is not None:
            for peer, data in asm.parts.values():
                left = self._by_peer[peer] - len(data)
                if left:
                    self._by_peer[peer] = left
                else:
                    del self._by_peer[peer]
            self._held -= asm.size
            if state is AssemblyState.FAILED:
                self.failed += 1
            elif state is AssemblyState.EVICTED:
                self.evicted += 1
            if notify and asm.proposal is not None and state is not AssemblyState.COMPLETE:
                self._abandoned.append(Abandoned(asm.proposal, asm.peer, state))
        self._outcomes[key] = state
        self._outcomes.move_to_end(key)
        while len(self._outcomes) > MAX_OUTCOMES:
            self._outcomes.popitem(last=False)

    def _try_complete(self, key: AssemblyKey) -> Assembled | None:
        asm = self._pending.get(key)
        if asm is None or asm.proposal is None or len(asm.parts) < asm.total:
            return None
        proposal, peer = asm.proposal, asm.peer
        data = b"".join(asm.parts[i][1] for i in range(asm.total))
        try:
            block: Block | None = Block.decode(data, max_bytes=self.max_block_bytes)
        except ConsensusError:
            block = None
        if block is None or block.hash() != key[2] or block.header.height != key[0]:
            # Every part was signed by the proposer: the proposer is at fault, not the forwarders.
            self._finish(key, AssemblyState.FAILED)
            return None
        self._finish(key, AssemblyState.COMPLETE)
        self.assembled += 1
        return Assembled(proposal, peer, block, len(data))
