"""The driver's inputs: what the WAL records, how it is encoded, and the pure replay fold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consensus.bft.effects import Effect
from consensus.bft.machine import (
    MachineContext,
    on_block_built,
    on_proposal,
    on_start,
    on_timeout,
    on_vote,
)
from consensus.bft.state import RoundState, new_round_state
from consensus.votes import Proposal, Vote

from .chain import (
    WAL_BLOCK_BUILT,
    WAL_OWN_PROPOSAL,
    WAL_OWN_VOTE,
    WAL_PROPOSAL,
    WAL_START,
    WAL_TIMEOUT,
    WAL_VOTE,
    SimBlock,
    WalEntry,
)


@dataclass(frozen=True, slots=True)
class InStart:
    height: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class InProposal:
    proposal: Proposal
    block: SimBlock
    block_valid: bool
    now_ms: int
    own: bool = False


@dataclass(frozen=True, slots=True)
class InVote:
    vote: Vote
    now_ms: int
    own: bool = False


@dataclass(frozen=True, slots=True)
class InTimeout:
    height: int
    round: int
    step: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class InBuilt:
    height: int
    round: int
    block: SimBlock
    now_ms: int


Input = InStart | InProposal | InVote | InTimeout | InBuilt


def encode_input(inp: Input) -> bytes:
    """Return the WAL record of ``inp``."""
    if isinstance(inp, InStart):
        e = WalEntry(WAL_START, inp.now_ms, inp.height)
    elif isinstance(inp, InProposal):
        kind = WAL_OWN_PROPOSAL if inp.own else WAL_PROPOSAL
        p = inp.proposal
        e = WalEntry(
            kind,
            inp.now_ms,
            p.height,
            p.round,
            0,
            p.encode(),
            inp.block.encode(),
            int(inp.block_valid),
        )
    elif isinstance(inp, InVote):
        kind = WAL_OWN_VOTE if inp.own else WAL_VOTE
        e = WalEntry(kind, inp.now_ms, inp.vote.height, inp.vote.round, 0, inp.vote.encode())
    elif isinstance(inp, InTimeout):
        e = WalEntry(WAL_TIMEOUT, inp.now_ms, inp.height, inp.round, inp.step)
    else:
        e = WalEntry(WAL_BLOCK_BUILT, inp.now_ms, inp.height, inp.round, 0, inp.block.encode())
    return e.encode()


def decode_input(record: bytes) -> Input:
    """Return the input a WAL record holds."""
    e = WalEntry.decode(record)
    if e.kind == WAL_START:
        return InStart(e.height, e.now_ms)
    if e.kind in (WAL_PROPOSAL, WAL_OWN_PROPOSAL):
        return InProposal(
            Proposal.decode(e.data),
            SimBlock.decode(e.extra),
            e.flag == 1,
            e.now_ms,
            e.kind == WAL_OWN_PROPOSAL,
        )
    if e.kind in (WAL_VOTE, WAL_OWN_VOTE):
        return InVote(Vote.decode(e.data), e.now_ms, e.kind == WAL_OWN_VOTE)
    if e.kind == WAL_TIMEOUT:
        return InTimeout(e.height, e.round, e.step, e.now_ms)
    if e.kind == WAL_BLOCK_BUILT:
        return InBuilt(e.height, e.round, SimBlock.decode(e.data), e.now_ms)
    raise ValueError(f"unknown WAL record kind {e.kind}")


def apply_input(
    state: RoundState,
    ctx: MachineContext,
    inp: Input,
    valset_at: Callable[[int], object],
) -> tuple[RoundState, tuple[Effect, ...]]:
    """Hand one input to the pure machine."""
    if isinstance(inp, InStart):
        fresh = new_round_state(inp.height, valset_at(inp.height))  # type: ignore[arg-type]
        return on_start(fresh, ctx, inp.now_ms)
    if isinstance(inp, InProposal):
        return on_proposal(state, ctx, inp.proposal, inp.block_valid, inp.now_ms)
    if isinstance(inp, InVote):
        return on_vote(state, ctx, inp.vote, inp.now_ms)
    if isinstance(inp, InTimeout):
        return on_timeout(state, ctx, inp.height, inp.round, inp.step, inp.now_ms)
    return on_block_built(state, ctx, inp.height, inp.round, inp.block.hash(), inp.now_ms)


def replay_wal_pure(
    records: list[bytes], height: int, ctx: MachineContext, valset_at: Callable[[int], object]
) -> RoundState | None:
    """Fold the WAL inputs of ``height`` through the machine, ignoring effects (None: no start)."""
    inputs = [decode_input(r) for r in records]
    starts = [i for i, x in enumerate(inputs) if isinstance(x, InStart) and x.height == height]
    if not starts:
        return None
    state = new_round_state(height, valset_at(height))  # type: ignore[arg-type]
    for inp in inputs[starts[-1] :]:
        state, _ = apply_input(state, ctx, inp, valset_at)
    return state
