"""The consensus driver: one asyncio task owns the round state and carries out the machine's effects.

Every input (a proposal with its block, a vote, a timeout, a block we built,
the start of a height) goes through one queue. The driver appends it to the
consensus WAL (our own signed messages and height starts with fsync), hands
it to the pure round machine, then runs the effects the machine returns:
signing goes through the persistent signer (which fsyncs the last signed
height/round/step before the signature exists outside it), broadcasts go to
the network adapter, timeouts become loop timers that feed the queue, and a
decided block is executed and written by the block executor in one synced
batch. After a restart the WAL of the current height is replayed through the
same path, so the machine returns to the round state it had, and the signer
returns stored signatures for identical messages instead of signing anew.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from consensus.bft.config import TimeoutConfig
from consensus.bft.effects import (
    BroadcastProposal,
    BroadcastVote,
    CommitBlock,
    Effect,
    EquivocationDetected,
    InputRejected,
    RequestBlock,
    ScheduleTimeout,
    SignProposal,
    SignVote,
    Step,
)
from consensus.bft.evidence_pool import EvidencePool
from consensus.bft.machine import (
    MachineContext,
    on_block_built,
    on_proposal,
    on_start,
    on_timeout,
    on_vote,
)
from consensus.bft.state import RoundState, new_round_state
from consensus.bft.validation import validate_vote
from consensus.blocks import Block, EvidenceItem, make_block
from consensus.codec import Encodable
from consensus.crypto import Domain, PrivateKey
from consensus.errors import ConsensusError
from consensus.evidence import Evidence, decode_evidence, encode_evidence
from consensus.hashing import hash32
from consensus.state import State
from consensus.tx_handlers import TxContext
from consensus.txs import SignedTx
from consensus.votes import Commit, Proposal, Vote, VoteType, compute_commit
from node.engine.executor import BlockCommitted, BlockExecutor
from node.engine.signer import DoubleSignRefused, PersistentSigner
from node.engine.wal import WriteAheadLog

log = logging.getLogger(__name__)

#: Inputs waiting for the driver; a full queue drops network votes (they are re-gossiped).
MAX_QUEUE = 20_000
#: Messages kept for heights ahead of ours (a lagging node catches up through them or sync).
MAX_FUTURE = 2_000
#: Most evidence a proposer puts in one block.
MAX_BLOCK_EVIDENCE = 16

WAL_START = 1
WAL_PROPOSAL = 2
WAL_VOTE = 3
WAL_TIMEOUT = 4
WAL_BLOCK_BUILT = 5
WAL_OWN_PROPOSAL = 6
WAL_OWN_VOTE = 7


@dataclass(frozen=True, slots=True)
class WalEntry(Encodable):
    """One consensus WAL record: an input and the time it was handled."""

    MAX_BYTES = 64 << 20

    kind: int
    now_ms: int
    height: int
    round: int
    step: int
    data: bytes
    extra: bytes
    flag: int


@dataclass(frozen=True, slots=True)
class InStart:
    height: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class InProposal:
    proposal: Proposal
    block: Block
    block_valid: bool
    now_ms: int
    own: bool = False
    peer: str = ""


@dataclass(frozen=True, slots=True)
class InVote:
    vote: Vote
    now_ms: int
    own: bool = False
    peer: str = ""


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
    block: Block
    now_ms: int


Input = InStart | InProposal | InVote | InTimeout | InBuilt


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
    """Return the input a WAL record holds (raises ConsensusError if malformed)."""
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
    raise ConsensusError(f"unknown WAL record kind {e.kind}")


class Mempool(Protocol):
    def reap(
        self, max_txs: int, max_bytes: int, *, state: State | None = None, ctx: TxContext | None = None
    ) -> list[SignedTx]: ...


class Network(Protocol):
    """Where the driver's broadcasts go (the p2p adapter, or nothing for a solo node)."""

    def broadcast_proposal(self, proposal: Proposal, block: Block) -> None: ...

    def broadcast_vote(self, vote: Vote) -> None: ...

    def broadcast_evidence(self, evidence: Evidence) -> None: ...

    def report_peer(self, peer: str, reason: str) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DriverStats:
    height: int
    round: int
    step: int
    queue: int
    dropped_inputs: int
    rejected_inputs: int
    refused_signatures: int


class ConsensusDriver:
    """Owns the round state of the current height; the only caller of the round machine."""

    def __init__(
        self,
        *,
        executor: BlockExecutor,
        wal: WriteAheadLog,
        clock: Clock,
        mempool: Mempool,
        network: Network,
        timeouts: TimeoutConfig,
        signer: PersistentSigner | None = None,
        address: bytes | None = None,
        byzantine: str | None = None,
        byzantine_key: PrivateKey | None = None,
    ) -> None:
        self.executor = executor
        self.wal = wal
        self.clock = clock
        self.mempool = mempool
        self.network = network
        self.signer = signer
        self.address = address if signer is not None else None
        self.ctx = MachineContext(chain_id=executor.chain_id, address=self.address, timeouts=timeouts)
        params = executor.head_state().get_params()
        self.max_block_txs = params.max_block_txs
        self.max_block_bytes = params.max_block_bytes
        self.pool = EvidencePool(max_age_blocks=params.unbonding_blocks)
        self.byzantine = byzantine
        self._byzantine_key = byzantine_key
        self.state: RoundState = new_round_state(executor.height + 1, executor.validator_set())
        self.blocks: dict[bytes, Block] = {}
        self._queue: asyncio.Queue[Input] = asyncio.Queue(MAX_QUEUE)
        self._pending: deque[Input] = deque()
        self._future: dict[int, list[Input]] = {}
        self._future_count = 0
        self._timers: set[asyncio.TimerHandle] = set()
        self._replaying = False
        self._deferred_request: tuple[int, int] | None = None
        self._late_height = 0
        self._late_precommits: dict[bytes, Vote] = {}
        self.committed_listeners: list[Callable[[BlockCommitted], None]] = []
        #: Encoded compute attestations for the block built at a height (node.compute).
        self.attestation_source: Callable[[int], tuple[bytes, ...]] | None = None
        self.last_commit_ms = clock.now_ms()
        self.dropped_inputs = 0
        self.rejected_inputs = 0
        self.refused_signatures = 0
        self.replay_refusals = 0
        self._stopped = False

    # -- public ----------------------------------------------------------------------

    def stats(self) -> DriverStats:
        return DriverStats(
            self.state.height,
            self.state.round,
            self.state.step,
            self._queue.qsize(),
            self.dropped_inputs,
            self.rejected_inputs,
            self.refused_signatures,
        )

    def recover(self) -> None:
        """Start the current height, replaying its WAL records if there are any."""
        height = self.executor.height + 1
        records = self.wal.records()
        inputs: list[Input] = []
        for r in records:
            try:
                inputs.append(decode_input(r))
            except ConsensusError as exc:
                raise ConsensusError(f"consensus WAL record cannot be decoded: {exc}") from exc
        starts = [i for i, x in enumerate(inputs) if isinstance(x, InStart) and x.height == height]
        if not starts:
            self._submit(InStart(height, self.clock.now_ms()))
            return
        log.info("replaying %d WAL records of height %d", len(inputs) - starts[-1], height)
        self._replaying = True
        try:
            for inp in inputs[starts[-1] :]:
                self._handle(inp, log_input=False)
                while self._pending:
                    self._handle(self._pending.popleft())
        finally:
            self._replaying = False
        request = self._deferred_request
        self._deferred_request = None
        if (
            request is not None
            and request == (self.state.height, self.state.round)
            and request[1] not in self.state.proposals
            and self.state.step == Step.PROPOSE
        ):
            self._execute([RequestBlock(*request)], self.clock.now_ms())
            self._drain()
        # Timers of the replayed round are gone with the old process: arm the current one.
        self._rearm_current_timeout()

    async def run(self) -> None:
        """Handle inputs until cancelled."""
        while True:
            inp = await self._queue.get()
            self._pending.append(inp)
            self._drain()

    def stop(self) -> None:
        """Cancel timers (the run task is cancelled by its owner)."""
        self._stopped = True
        for t in self._timers:
            t.cancel()
        self._timers.clear()

    def deliver_proposal(self, peer: str, proposal: Proposal, block: Block) -> None:
        """A proposal and its block from the network (signature checked by the machine)."""
        if block.hash() != proposal.block_hash or block.header.height != proposal.height:
            self.rejected_inputs += 1
            self.network.report_peer(peer, "proposal block does not match the proposal")
            return
        self._offer(proposal.height, InProposal(proposal, block, False, 0, peer=peer))

    def deliver_vote(self, peer: str, vote: Vote) -> None:
        """A vote from the network."""
        self._offer(vote.height, InVote(vote, 0, peer=peer))

    def deliver_evidence(self, evidence: Evidence) -> bool:
        """Verified evidence from the network; return True if it was new."""
        return self.pool.add(evidence)

    def get_block(self, block_hash: bytes) -> Block | None:
        """A block of the current height we know (to serve peers fetching a proposal)."""
        return self.blocks.get(block_hash)

    def rebroadcast_own(self) -> None:
        """Re-send our own proposal and votes of the current round (after losses or partitions)."""
        st = self.state
        if self.address is None or not st.started or st.is_decided():
            return
        record = st.proposals.get(st.round)
        if record is not None and record.proposal.proposer == self.address:
            block = self.blocks.get(record.proposal.block_hash)
            if block is not None:
                self.network.broadcast_proposal(record.proposal, block)
        for (r, _t), vs in st.votes.items():
            if r >= st.round - 1:
                own = vs.votes.get(self.address)
                if own is not None:
                    self.network.broadcast_vote(own)

    def reset_to_head(self) -> None:
        """After block sync moved the head: start the height after it."""
        height = self.executor.height + 1
        if height <= self.state.height and self.state.started:
            return
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        self.blocks.clear()
        self._future = {h: v for h, v in self._future.items() if h >= height}
        self._future_count = sum(len(v) for v in self._future.values())
        self._pending.append(InStart(height, self.clock.now_ms()))
        self._drain()

    # -- input processing ------------------------------------------------------------

    def _offer(self, height: int, inp: Input) -> None:
        st = self.state
        if height < st.height:
            return
        if height > st.height or not st.started:
            if height > st.height + 4 or self._future_count >= MAX_FUTURE:
                self.dropped_inputs += 1
                return
            self._future.setdefault(height, []).append(inp)
            self._future_count += 1
            return
        try:
            self._queue.put_nowait(inp)
        except asyncio.QueueFull:
            self.dropped_inputs += 1

    def _submit(self, inp: Input) -> None:
        self._pending.append(inp)
        self._drain()

    def _drain(self) -> None:
        while self._pending:
            self._handle(self._pending.popleft())

    def _stamp(self, inp: Input) -> Input:
        """Give a network input its handling time and the block verdict (recorded in the WAL)."""
        now = self.clock.now_ms()
        if isinstance(inp, InVote) and inp.now_ms == 0:
            return InVote(inp.vote, now, inp.own, inp.peer)
        if isinstance(inp, InProposal) and inp.now_ms == 0:
            t0 = time.perf_counter()
            valid = (
                inp.proposal.height == self.state.height
                and not self.state.is_decided()
                and self.executor.is_valid_block(inp.block)
            )
            log.debug("proposal %d/%d from %s (ours at %d/%d): valid %s, checked in %.0f ms",
                      inp.proposal.height, inp.proposal.round, inp.proposal.proposer.hex()[:8],
                      self.state.height, self.state.round, valid, (time.perf_counter() - t0) * 1000)
            return InProposal(inp.proposal, inp.block, valid, now, inp.own, inp.peer)
        return inp

    def _handle(self, inp: Input, *, log_input: bool = True) -> None:
        if log_input:
            inp = self._stamp(inp)
        if isinstance(inp, InProposal | InBuilt):
            self.blocks[inp.block.hash()] = inp.block
        if isinstance(inp, InProposal) and not inp.own:
            ev = self.pool.check_proposal(inp.proposal)
            if ev is not None:
                self._note_evidence(ev)
        if log_input:
            durable = isinstance(inp, InStart) or getattr(inp, "own", False)
            self.wal.append(encode_input(inp), sync=durable)
        if isinstance(inp, InBuilt) and self._deferred_request == (inp.height, inp.round):
            self._deferred_request = None
        if isinstance(inp, InVote) and self.state.is_decided():
            self._note_late_precommit(inp.vote)
        prev_round = self.state.round
        self.state, effects = self._apply(inp)
        if self.state.round != prev_round and self.state.height == getattr(inp, "height", self.state.height):
            log.info(
                "height %d: entering round %d (%s)",
                self.state.height, self.state.round, type(inp).__name__,
            )
        if isinstance(inp, InVote) and not inp.own and not any(isinstance(e, InputRejected) for e in effects):
            ev = self.pool.check_vote(inp.vote)
            if ev is not None:
                self._note_evidence(ev)
        self._execute(effects, inp.now_ms, getattr(inp, "peer", ""))
        if isinstance(inp, InStart) and log_input:
            self._release_future()

    def _apply(self, inp: Input) -> tuple[RoundState, tuple[Effect, ...]]:
        st, ctx = self.state, self.ctx
        if isinstance(inp, InStart):
            if inp.height != st.height:
                if inp.height != self.executor.height + 1:
                    return st, ()  # a stale start (the head moved on through sync)
                # The next height starts from the committed head.
                st = new_round_state(inp.height, self.executor.validator_set())
                self.blocks = {h: b for h, b in self.blocks.items() if b.header.height >= inp.height}
            return on_start(st, ctx, inp.now_ms)
        if isinstance(inp, InProposal):
            return on_proposal(st, ctx, inp.proposal, inp.block_valid, inp.now_ms)
        if isinstance(inp, InVote):
            return on_vote(st, ctx, inp.vote, inp.now_ms)
        if isinstance(inp, InTimeout):
            return on_timeout(st, ctx, inp.height, inp.round, inp.step, inp.now_ms)
        return on_block_built(st, ctx, inp.height, inp.round, inp.block.hash(), inp.now_ms)

    def _note_late_precommit(self, vote: Vote) -> None:
        """Keep precommits for the decided block that arrive after the decision.

        The machine decides on the first +2/3; the next block's last commit
        carries every precommit that arrived during the commit wait, so a
        validator that signed a little late is not counted as absent.
        """
        st = self.state
        if (
            vote.vote_type != VoteType.PRECOMMIT
            or vote.round != st.decided_round
            or vote.block_hash != st.decided_value
        ):
            return
        try:
            validate_vote(self.ctx.chain_id, vote, st.validator_set, st.height)
        except ConsensusError:
            return
        if self._late_height != st.height:
            self._late_height, self._late_precommits = st.height, {}
        self._late_precommits[vote.validator] = vote

    def _last_commit_for(self, height: int) -> Commit | None:
        """The commit of ``height`` from the store, with any late precommits added."""
        if height < 1:
            return None
        raw = self.executor.store.blocks.load_commit(height)
        if raw is None:
            raise ConsensusError(f"the commit of height {height} is missing from the store")
        commit = Commit.decode(raw, max_bytes=len(raw))
        if self._late_height != height or not self._late_precommits:
            return commit
        have = {s.validator for s in commit.signatures}
        extra = [v for a, v in self._late_precommits.items() if a not in have]
        if not extra:
            return commit
        votes = list(commit.votes()) + extra
        return compute_commit(commit.height, commit.round, commit.block_hash, votes)

    def _release_future(self) -> None:
        ready = self._future.pop(self.state.height, [])
        self._future_count -= len(ready)
        for inp in ready:
            self._pending.append(inp)

    # -- effects -------------------------------------------------------------------------

    def _execute(self, effects: tuple[Effect, ...] | list[Effect], now: int, peer: str = "") -> None:
        for eff in effects:
            if isinstance(eff, SignVote):
                self._sign_vote(eff.vote, now)
            elif isinstance(eff, BroadcastVote):
                self.network.broadcast_vote(eff.vote)
            elif isinstance(eff, ScheduleTimeout):
                self._schedule(eff)
            elif isinstance(eff, RequestBlock):
                if self._replaying:
                    self._deferred_request = (eff.height, eff.round)
                else:
                    t0 = time.perf_counter()
                    block = self._build_block(eff.height, eff.round, now)
                    log.debug("built block %d/%d: %d txs in %.0f ms", eff.height, eff.round,
                              len(block.txs), (time.perf_counter() - t0) * 1000)
                    self.blocks[block.hash()] = block
                    self._pending.append(InBuilt(eff.height, eff.round, block, now))
            elif isinstance(eff, SignProposal):
                self._sign_proposal(eff.proposal, now)
            elif isinstance(eff, BroadcastProposal):
                known = self.blocks.get(eff.proposal.block_hash)
                if known is not None:
                    self.network.broadcast_proposal(eff.proposal, known)
            elif isinstance(eff, CommitBlock):
                self._commit(eff)
            elif isinstance(eff, EquivocationDetected):
                self._note_evidence(eff.evidence)
            elif isinstance(eff, InputRejected):
                self.rejected_inputs += 1
                if peer:
                    self.network.report_peer(peer, eff.reason)

    def _sign_vote(self, vote: Vote, now: int) -> None:
        if self.signer is None:
            return
        try:
            signed = self.signer.sign_vote(vote)
        except DoubleSignRefused as exc:
            self._note_refusal("vote", exc)
            return
        if self.byzantine == "double-sign" and vote.vote_type == VoteType.PREVOTE and not self._replaying:
            self._equivocate(signed)
        self._pending.append(InVote(signed, now, own=True))

    def _note_refusal(self, what: str, exc: DoubleSignRefused) -> None:
        if self._replaying:
            # Replaying our round after a restart re-requests signatures of steps we
            # had already passed; the signer refuses to go back, and the WAL's later
            # records carry what we signed then. Nothing is lost.
            self.replay_refusals += 1
            log.info("replay: %s already signed before the restart (%s)", what, exc)
        else:
            # Outside replay a refusal means the WAL failed to bring us back to where we were.
            self.refused_signatures += 1
            log.error("signer refused a %s: %s", what, exc)

    def _equivocate(self, vote: Vote) -> None:
        """Test-only: sign a second, conflicting prevote without the signer's protection."""
        if self._byzantine_key is None:
            return
        other = hash32(b"double-sign" + vote.block_hash + vote.height.to_bytes(8, "big"))
        conflicting = Vote(vote.height, vote.round, vote.vote_type, other, vote.validator, vote.timestamp_ms, b"")
        sig = self._byzantine_key.sign(Domain.VOTE, self.ctx.chain_id, conflicting.sign_payload())
        log.warning("test fault: signed a conflicting prevote at height %d round %d", vote.height, vote.round)
        self.network.broadcast_vote(conflicting.with_signature(sig))

    def _sign_proposal(self, proposal: Proposal, now: int) -> None:
        if self.signer is None:
            return
        try:
            signed = self.signer.sign_proposal(proposal)
        except DoubleSignRefused as exc:
            self._note_refusal("proposal", exc)
            return
        block = self.blocks[signed.block_hash]
        self._pending.append(InProposal(signed, block, True, now, own=True))

    def _schedule(self, eff: ScheduleTimeout) -> None:
        if self._stopped:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, (eff.at_ms - self.clock.now_ms()) / 1000)

        def fire() -> None:
            self._timers.discard(handle)
            if eff.step == Step.COMMIT:
                if self.executor.height == eff.height and self.state.height == eff.height:
                    self._offer_now(InStart(eff.height + 1, self.clock.now_ms()))
                return
            self._offer_now(InTimeout(eff.height, eff.round, eff.step, self.clock.now_ms()))

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _offer_now(self, inp: Input) -> None:
        try:
            self._queue.put_nowait(inp)
        except asyncio.QueueFull:
            self.dropped_inputs += 1

    def _rearm_current_timeout(self) -> None:
        st = self.state
        if not st.started or st.is_decided():
            return
        t = self.ctx.timeouts
        now = self.clock.now_ms()
        if st.step == Step.PROPOSE:
            at = now + t.get_propose_timeout(st.round)
        elif st.step == Step.PREVOTE:
            at = now + t.get_prevote_timeout(st.round)
        else:
            at = now + t.get_precommit_timeout(st.round)
        self._schedule(ScheduleTimeout(st.height, st.round, st.step, at))

    # -- blocks ----------------------------------------------------------------------------

    def _build_block(self, height: int, round_: int, now: int) -> Block:
        ex = self.executor
        head_state = ex.head_state()
        head = head_state.get_head()
        last_commit = self._last_commit_for(height - 1)
        evidence = tuple(
            EvidenceItem(*encode_evidence(e))
            for e in self.pool.get_pending(height, MAX_BLOCK_EVIDENCE)
            if not head_state.is_fault_slashed(e.evidence_hash())
        )
        budget = self.max_block_bytes - 64 * 1024
        # Dry-run each candidate on the head state so the block never carries a
        # transaction that fails authentication (that would make the block invalid).
        ctx = TxContext(
            chain_id=ex.chain_id,
            height=height,
            time_ms=max(now, head.time_ms + 1),
            proposer=self.address or bytes(20),
            params=head_state.get_params(),
        )
        txs = self.mempool.reap(self.max_block_txs, budget, state=head_state, ctx=ctx)
        vset = self.state.validator_set

        def assemble(
            txs: list[SignedTx], evidence: tuple[EvidenceItem, ...], attestations: tuple[bytes, ...]
        ) -> Block:
            return make_block(
                chain_id=ex.chain_id,
                height=height,
                round=round_,
                time_ms=max(now, head.time_ms + 1),
                proposer=self.address or b"",
                parent_hash=ex.last_block_hash(),
                last_commit=last_commit,
                txs=tuple(t.raw for t in txs),
                attestations=attestations,
                evidence=evidence,
                state_root=ex.store.state_root,
                validators_hash=vset.hash(),
            )

        attestations = self.attestation_source(height) if self.attestation_source else ()
        block = assemble(txs, evidence, tuple(attestations))
        # Our own block must be valid; if it is not (a mempool tx turned stale), propose an empty one.
        try:
            ex.validate_block(block, txs)
        except ConsensusError as exc:
            log.warning("built block %d is invalid (%s); proposing it without transactions", height, exc)
            block = assemble([], (), ())
        return block

    def _commit(self, eff: CommitBlock) -> None:
        block = self.blocks.get(eff.block_hash)
        if block is None:
            raise ConsensusError(f"decided block {eff.block_hash.hex()} of height {eff.height} is unknown")
        committed = self.executor.commit_block(block, eff.commit)
        self.note_committed(committed)

    def note_committed(self, committed: BlockCommitted) -> None:
        """Bookkeeping after a block was written (by consensus or by block sync)."""
        self.last_commit_ms = self.clock.now_ms()
        evs = []
        for item in committed.block.evidence:
            try:
                evs.append(decode_evidence(item.kind, item.data))
            except ConsensusError:
                continue
        self.pool.mark_committed(committed.height, tuple(evs))
        # The WAL only ever needs the current height: the committed one is durable in the store.
        self.wal.reset()
        for listener in self.committed_listeners:
            try:
                listener(committed)
            except Exception:
                log.exception("a commit listener failed")

    def _note_evidence(self, evidence: Evidence) -> None:
        if self.pool.add(evidence):
            log.warning(
                "equivocation by %s at height %d detected", evidence.validator.hex(), evidence.height
            )
            self.network.broadcast_evidence(evidence)
