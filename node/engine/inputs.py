"""The consensus driver's inputs: what enters the round machine, how the WAL records it, how a WAL replays.

Every input of a height (its start, a proposal with its block and the
driver's verdict on the block, a vote, a timeout, a block we built) is one
frozen value with the time it was handled. ``encode_input`` turns it into the
WAL record written before the input is handled, ``decode_input`` back.
``apply_input`` hands one input to the pure round machine, and ``fold_wal``
folds the records of a height through it: replaying a WAL after a crash must
give exactly the round state the node had when it died, and both the driver
(``ConsensusDriver.recover``) and the simulation's replay check rely on these
two functions. No I/O happens here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from consensus.bft.machine import (
    MachineContext,
    Transition,
    on_block_built,
    on_proposal,
    on_start,
    on_timeout,
    on_vote,
)
from consensus.bft.state import RoundState, new_round_state
from consensus.blocks import Block
from consensus.codec import Encodable
from consensus.errors import ConsensusError
from consensus.validator_set import ValidatorSet
from consensus.votes import Proposal, Vote
from node.errors import WalCorrupt

WAL_START: Final = 1
WAL_PROPOSAL: Final = 2
WAL_VOTE: Final = 3
WAL_TIMEOUT: Final = 4
WAL_BLOCK_BUILT: Final = 5
WAL_OWN_PROPOSAL: Final = 6
WAL_OWN_VOTE: Final = 7


@dataclass(frozen=True, slots=True)
class WalEntry(Encodable):
    """One consensus WAL record: an input and the time it was handled."""

    MAX_BYTES = 64 << 20

    kind: int
    """``WAL_*``: which input this is (own messages apart from peers')."""
    now_ms: int
    """When the driver handled the input."""
    height: int
    round: int
    step: int
    data: bytes
    """The encoded proposal, vote or built block, by kind."""
    extra: bytes
    """The block of a proposal."""
    flag: int
    """The driver's verdict on a proposal's block (1 valid)."""


@dataclass(frozen=True, slots=True)
class InStart:
    """Start ``height`` (after the previous one is committed)."""

    height: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class InProposal:
    """A signed proposal with its block; ``block_valid`` is the executor's verdict on the block."""

    proposal: Proposal
    block: Block
    block_valid: bool
    now_ms: int
    own: bool = False
    peer: str = ""


@dataclass(frozen=True, slots=True)
class InVote:
    """A signed vote, ours (``own``) or a peer's."""

    vote: Vote
    now_ms: int
    own: bool = False
    peer: str = ""


@dataclass(frozen=True, slots=True)
class InTimeout:
    """A timeout the machine asked for has expired."""

    height: int
    round: int
    step: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class InBuilt:
    """The block this validator built to propose at (height, round)."""

    height: int
    round: int
    block: Block
    now_ms: int


Input = InStart | InProposal | InVote | InTimeout | InBuilt


def is_durable(inp: Input) -> bool:
    """Return True for inputs the WAL must hold on disk before they are handled.

    Height starts and our own signed messages are fsynced; a peer's message
    lost in a crash is sent again by the peer.
    """
    if isinstance(inp, InStart):
        return True
    return isinstance(inp, InProposal | InVote) and inp.own


def encode_input(inp: Input) -> bytes:
    """Return the WAL record of ``inp``."""
    if isinstance(inp, InStart):
        e = WalEntry(WAL_START, inp.now_ms, inp.height, 0, 0, b"", b"", 0)
    elif isinstance(inp, InProposal):
        kind = WAL_OWN_PROPOSAL if inp.own else WAL_PROPOSAL
        p = inp.proposal
        e = WalEntry(kind, inp.now_ms, p.height, p.round, 0, p.encode(), inp.block.encode(), int(inp.block_valid))
    elif isinstance(inp, InVote):
        kind = WAL_OWN_VOTE if inp.own else WAL_VOTE
        v = inp.vote
        e = WalEntry(kind, inp.now_ms, v.height, v.round, 0, v.encode(), b"", 0)
    elif isinstance(inp, InTimeout):
        e = WalEntry(WAL_TIMEOUT, inp.now_ms, inp.height, inp.round, inp.step, b"", b"", 0)
    else:
        e = WalEntry(WAL_BLOCK_BUILT, inp.now_ms, inp.height, inp.round, 0, inp.block.encode(), b"", 0)
    return e.encode()


def decode_input(record: bytes) -> Input:
    """Return the input a WAL record holds; raise WalCorrupt if it holds none."""
    try:
        e = WalEntry.decode(record)
        if e.kind == WAL_START:
            return InStart(e.height, e.now_ms)
        if e.kind in (WAL_PROPOSAL, WAL_OWN_PROPOSAL):
            return InProposal(
                Proposal.decode(e.data), Block.decode(e.extra), e.flag == 1, e.now_ms, e.kind == WAL_OWN_PROPOSAL
            )
        if e.kind in (WAL_VOTE, WAL_OWN_VOTE):
            return InVote(Vote.decode(e.data), e.now_ms, e.kind == WAL_OWN_VOTE)
        if e.kind == WAL_TIMEOUT:
            return InTimeout(e.height, e.round, e.step, e.now_ms)
        if e.kind == WAL_BLOCK_BUILT:
            return InBuilt(e.height, e.round, Block.decode(e.data), e.now_ms)
    except ConsensusError as exc:
        raise WalCorrupt(f"consensus WAL record cannot be decoded: {exc}") from exc
    raise WalCorrupt(f"consensus WAL record of unknown kind {e.kind}")


def apply_input(state: RoundState, ctx: MachineContext, inp: Input, validator_set: ValidatorSet) -> Transition:
    """Hand one input to the pure machine; a start of another height begins from a fresh state.

    ``validator_set`` is the set deciding the height an ``InStart`` begins
    (the committed head's); other inputs do not use it.
    """
    if isinstance(inp, InStart):
        if inp.height != state.height:
            state = new_round_state(inp.height, validator_set)
        return on_start(state, ctx, inp.now_ms)
    if isinstance(inp, InProposal):
        return on_proposal(state, ctx, inp.proposal, inp.block_valid, inp.now_ms)
    if isinstance(inp, InVote):
        return on_vote(state, ctx, inp.vote, inp.now_ms)
    if isinstance(inp, InTimeout):
        return on_timeout(state, ctx, inp.height, inp.round, inp.step, inp.now_ms)
    return on_block_built(state, ctx, inp.height, inp.round, inp.block.hash(), inp.now_ms)


def get_height_inputs(inputs: Sequence[Input], height: int) -> list[Input]:
    """Return the inputs from the last start of ``height`` on (empty if it never started)."""
    starts = [i for i, x in enumerate(inputs) if isinstance(x, InStart) and x.height == height]
    return list(inputs[starts[-1] :]) if starts else []


def fold_wal(
    records: Sequence[bytes], height: int, ctx: MachineContext, validator_set: ValidatorSet
) -> RoundState | None:
    """Fold the WAL records of ``height`` through the machine, ignoring effects (None: never started)."""
    inputs = get_height_inputs([decode_input(r) for r in records], height)
    if not inputs:
        return None
    state = new_round_state(height, validator_set)
    for inp in inputs:
        state, _ = apply_input(state, ctx, inp, validator_set)
    return state
