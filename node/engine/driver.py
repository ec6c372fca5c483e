"""The consensus driver: the one owner of the round state, which carries out the machine's effects.

Everything that changes the driver's state enters one queue: proposals, votes
and evidence from the network, expired timeouts, and blocks fetched by block
sync. Network messages are authenticated before they enter (``check_*`` for
the gossip adapter's validators, again on ``deliver_*``, both through the
node's signature cache, ``node.engine.auth``): the queue, the buffer of
messages for later heights, the WAL and the evidence pool hold only messages
signed by a member of their height's set, and a peer's proposal is executed
only while its round is near ours. The driver never blames a peer for an
input: faults a forwarder could see are the gossip layer's to penalise. Only the driver's own task takes them out (``process_inputs``; ``run``
is an asyncio loop around it), so no other task ever writes the round state or
the evidence pool, or starts a height. The queue and the messages waiting for
heights ahead of ours are bounded (``node.engine.inbox``).

Each consensus input (``node.engine.inputs``) is appended to the WAL (height
starts and our own signed messages with fsync), handed to the pure round
machine, and the effects it returns are run in order: signing goes through
the persistent signer (which fsyncs what it signed before the signature
exists outside it), broadcasts go to the network adapter, timeouts become
timers on the clock that feed the queue, a request for a block goes to the
block proposer, and a decided block is executed and written by the block
executor in one synced batch. After a restart the WAL of the current height
is replayed through the same path (``recover``), so the machine returns to the
round state it had, and the signer answers identical requests with the
signatures it stored instead of signing anew.

Blocks fetched by block sync are applied by the driver too, between inputs,
through the same executor; then the height after them starts.

Two guards against a stale signer state (a validator restarted on an old copy
of its data directory): every committed block's commits are shown to the
signer, which stores a floor on proof of our own signature above its state
(``PersistentSigner.observe_commit``); and the node holds signing back at start
(``hold_signing``) until block sync finds no peer ahead of it, or none answering
(``BlockSyncer.catch_up_at_start``). A held driver runs the round machine as a
non-validator would: everything proceeds but its own votes and proposals. The
machine has moved on as if it had cast them, so on release the votes and the
proposal it asked for in the current round are signed then (``release_signing``):
a validator whose held prevote was simply lost would never prevote in that
round, and with a third of the power held past its propose timeout (a whole
network starting together) no round could ever gather two thirds of anything.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
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
from consensus.bft.machine import MachineContext
from consensus.bft.state import RoundState, new_round_state
from consensus.bft.validation import validate_vote
from consensus.block_time import compute_vote_time
from consensus.blocks import Block
from consensus.crypto import verify_signature
from consensus.errors import ConsensusError
from consensus.evidence import (
    ConflictingProposalEvidence,
    DuplicateVoteEvidence,
    Evidence,
    decode_evidence,
)
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit, Proposal, SignatureVerifier, Vote, VoteType
from node.clock import Clock, TimerHandle
from node.engine.auth import Authenticator, AuthResult
from node.engine.executor import BlockCommitted, BlockExecutor
from node.engine.inbox import MAX_FUTURE_HEIGHTS, Inbox
from node.engine.inputs import (
    InBuilt,
    InProposal,
    Input,
    InStart,
    InTimeout,
    InVote,
    apply_input,
    decode_input,
    encode_input,
    get_height_inputs,
    is_durable,
)
from node.engine.proposer import BlockProposer, Mempool
from node.engine.sigcache import SignatureCache
from node.engine.signer import PersistentSigner
from node.errors import DoubleSignRefused, WalError

log = logging.getLogger(__name__)

#: Bytes a proposal block may exceed ``params.max_block_bytes`` by when it comes from the network
#: (a commit signed a little late); far below every frame and WAL record limit.
COMMIT_ALLOWANCE_BYTES = 64 * 1024

class Network(Protocol):
    """Where the driver's broadcasts go (the p2p adapter, or nothing for a solo node).

    The driver never blames a peer (it never calls ``report_peer``): what
    reaches it was authenticated by the network adapter (and again, through
    the signature cache, on delivery), so a later refusal is a matter of
    state, not a fault of the forwarder.
    """

    def broadcast_proposal(self, proposal: Proposal, block: Block) -> None: ...

    def broadcast_vote(self, vote: Vote) -> None: ...

    def broadcast_evidence(self, evidence: Evidence) -> None: ...

    def report_peer(self, peer: str, reason: str) -> None:
        """Penalise a peer for a fault of its own (the adapter's request path); the driver never calls it."""
        ...


class ConsensusLog(Protocol):
    """The consensus WAL as the driver uses it (``node.engine.wal.WriteAheadLog``)."""

    def records(self) -> list[bytes]: ...

    def append(self, payload: bytes, *, sync: bool = False) -> None: ...

    def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SyncedBlocks:
    """Blocks with their commits fetched by block sync, for the driver to apply in order.

    Not a consensus input: it is never logged (the store makes an applied block
    durable). ``done`` is told how many were applied and the error that
    stopped the rest, if any.
    """

    blocks: tuple[tuple[Block, Commit], ...]
    done: Callable[[int, ConsensusError | None], None] | None = None


@dataclass(frozen=True, slots=True)
class DriverStats:
    height: int
    round: int
    step: int
    queue: int
    dropped_inputs: int
    rejected_inputs: int
    refused_signatures: int
    unauthenticated_inputs: int


class ConsensusDriver:
    """Owns the round state of the current height; the only caller of the round machine."""

    def __init__(
        self,
        *,
        executor: BlockExecutor,
        wal: ConsensusLog,
        clock: Clock,
        mempool: Mempool,
        network: Network,
        timeouts: TimeoutConfig,
        signer: PersistentSigner | None = None,
        address: bytes | None = None,
        verify: SignatureVerifier = verify_signature,
        proposer: BlockProposer | None = None,
    ) -> None:
        self.executor = executor
        self.wal = wal
        self.clock = clock
        self.network = network
        self.signer = signer
        self.address = address if signer is not None else None
        #: Every consensus signature this node checks, checked once (``node.engine.sigcache``).
        self.sigcache = verify if isinstance(verify, SignatureCache) else SignatureCache(verify)
        self.ctx = MachineContext(executor.chain_id, self.address, timeouts, self.sigcache)
        self.proposer = proposer if proposer is not None else BlockProposer(executor, mempool, self.address)
        params = executor.head_state().get_params()
        #: Largest proposal block taken from the network: the chain's block limit, plus room for the commit.
        self.max_block_bytes = params.max_block_bytes + COMMIT_ALLOWANCE_BYTES
        self.state: RoundState = new_round_state(executor.height + 1, executor.validator_set())
        self.pool = EvidencePool(max_age_blocks=params.unbonding_blocks, is_authentic=self._is_signed)
        self.auth = Authenticator(
            executor.chain_id, self.sigcache, executor, self, past_heights=self.pool.watch_window,
            future_heights=MAX_FUTURE_HEIGHTS,
        )
        #: The sets that decided the last few heights, to check late votes of them.
        self._recent_sets: dict[int, ValidatorSet] = {self.state.height: self.state.validator_set}
        self.blocks: dict[bytes, Block] = {}
        self.committed_listeners: list[Callable[[BlockCommitted], None]] = []
        self.last_commit_ms = clock.now_ms()
        self.dropped_inputs = 0
        self.rejected_inputs = 0
        self.refused_signatures = 0
        #: Network inputs refused on delivery because they did not authenticate.
        self.unauthenticated_inputs = 0
        self.replay_refusals = 0
        self._inbox: Inbox[Input | SyncedBlocks | Evidence, Input] = Inbox()
        self._pending: deque[Input] = deque()
        self._timers: set[TimerHandle] = set()
        self._replaying = False
        self._deferred_request: tuple[int, int] | None = None
        self._stopped = False
        self._signing_held = False
        #: Signatures not asked for while signing was held at start.
        self.held_signatures = 0
        #: What the machine asked to sign while held, of the latest round asked (signed on release).
        self._held: list[Vote | Proposal] = []

    # -- public ----------------------------------------------------------------------

    @property
    def is_replaying(self) -> bool:
        """True while ``recover`` replays the WAL (inputs are not logged again)."""
        return self._replaying

    def stats(self) -> DriverStats:
        return DriverStats(
            self.state.height,
            self.state.round,
            self.state.step,
            len(self._inbox),
            self.dropped_inputs + self._inbox.dropped,
            self.rejected_inputs,
            self.refused_signatures,
            self.unauthenticated_inputs,
        )

    def describe_round(self) -> str:
        """Where the height being decided stands, in one line (the node logs it while no block commits)."""
        st = self.state
        vset = st.validator_set
        total = max(1, vset.total_power)
        steps = {Step.PROPOSE: "propose", Step.PREVOTE: "prevote", Step.PRECOMMIT: "precommit", Step.COMMIT: "commit"}
        tallies = [
            f"round {r} {'prevotes' if t == VoteType.PREVOTE else 'precommits'} {len(vs.votes)}/{len(vset)} "
            f"({100 * vs.power // total}% of the power{', ours in' if self.address in vs.votes else ''})"
            for (r, t), vs in sorted(st.votes.items())
            if r >= st.round - 1
        ]
        return (
            f"height {st.height} round {st.round} step {steps.get(st.step, str(st.step))}, "
            f"{'a' if st.round in st.proposals else 'no'} proposal, {'; '.join(tallies) or 'no votes'}"
            f"{', signing held' if self._signing_held else ''}, {len(self._inbox)} inputs queued"
        )

    @property
    def is_signing_held(self) -> bool:
        """True while ``hold_signing`` keeps the node from signing (at start)."""
        return self._signing_held

    def hold_signing(self) -> None:
        """Sign nothing (votes, proposals) until ``release_signing``; all else proceeds."""
        self._signing_held = True

    def release_signing(self, reason: str) -> None:
        """Sign again (we know we are not behind: ``reason``), first what the current round asked for.

        The round machine moved past the steps whose signatures were held (a
        propose timeout left it prevoting, without a prevote out). Those of
        the current height and round are signed now, in the order asked, and
        queued as our own inputs; the WAL and the machine then take them as
        any vote or proposal of ours (votes the WAL replay already brought,
        and a proposal of a round past its propose step, are left out).
        """
        if not self._signing_held:
            return
        self._signing_held = False
        st = self.state
        held, self._held = self._held, []
        signed = 0
        for msg in held:
            if msg.height != st.height or msg.round != st.round or not st.started or st.is_decided():
                continue
            if isinstance(msg, Vote):
                votes = st.votes.get((msg.round, msg.vote_type))
                if self.address is None or (votes is not None and self.address in votes.votes):
                    continue
                signed += self._sign_vote(msg, self.clock.now_ms(), queue=True)
            elif st.step == Step.PROPOSE and msg.round not in st.proposals and msg.block_hash in self.blocks:
                signed += self._sign_proposal(msg, self.clock.now_ms(), queue=True)
        log.info("signing enabled at height %d: %s%s", st.height, reason,
                 f" (signed {signed} held back in round {st.round})" if signed else "")
        # The step may wait for votes we held back (a lone validator would wait forever):
        # its timeout moves it on, with our vote.
        self._rearm_current_timeout()

    def recover(self) -> None:
        """Start the current height, replaying its WAL records if there are any."""
        head = self.executor.store.blocks.load_commit(self.executor.height) if self.executor.height else None
        if head is not None and self.signer is not None:
            self.signer.observe_commit(Commit.decode(head, max_bytes=len(head)), "the stored head's commit")
        height = self.executor.height + 1
        inputs = get_height_inputs([decode_input(r) for r in self.wal.records()], height)
        if not inputs:
            self._submit(InStart(height, self.clock.now_ms()))
            return
        log.info("replaying %d WAL records of height %d", len(inputs), height)
        self._replaying = True
        try:
            for inp in inputs:
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
            # The block was asked for but never built before the crash: build it now.
            self._execute([RequestBlock(*request)], self.clock.now_ms())
            self._drain()
        # Timers of the replayed round are gone with the old process: arm the current one.
        self._rearm_current_timeout()

    def process_inputs(self) -> int:
        """Handle every queued input and what it leads to; return how many were queued.

        Only the driver's task calls this (``run``, or a simulation driving the
        node by hand); an exception from a collaborator (store, WAL, signer)
        propagates and leaves the driver unusable, as a crash would.
        """
        taken = 0
        while (item := self._inbox.take()) is not None:
            taken += 1
            if isinstance(item, SyncedBlocks):
                self._apply_synced(item)
            elif isinstance(item, DuplicateVoteEvidence | ConflictingProposalEvidence):
                self.pool.add(item)
            elif isinstance(item, InVote) and item.vote.height < self.state.height:
                self._watch_late_vote(item.vote)
            else:
                self._submit(item)
        return taken

    async def run(self) -> None:
        """Handle inputs as they arrive, until cancelled (between inputs, never inside one)."""
        while True:
            await self._inbox.wait()
            self.process_inputs()

    def stop(self) -> None:
        """Cancel timers (the run task is cancelled by its owner)."""
        self._stopped = True
        self._cancel_timers()

    # Authentication: the network adapter asks before it accepts or relays a message;
    # delivery asks again (a signature-cache hit), so only authenticated messages are ever
    # queued, kept for a later height, logged or shown to the evidence pool.

    def check_vote(self, vote: Vote) -> AuthResult:
        """Authenticate a vote from the network (``node.engine.auth``)."""
        return self.auth.check_vote(vote)

    def check_proposal(self, proposal: Proposal) -> AuthResult:
        """Authenticate a proposal from the network, before its block is looked at."""
        return self.auth.check_proposal(proposal)

    def check_part(self, height: int, round_: int, payload: bytes, signature: bytes) -> AuthResult:
        """Authenticate a block part: ``signature`` over ``payload`` by the proposer of (height, round)."""
        return self.auth.check_part(height, round_, payload, signature)

    def check_evidence(self, evidence: Evidence) -> AuthResult:
        """Authenticate evidence from the network: new, punishable, signed by a member."""
        return self.auth.check_evidence(evidence)

    def get_recent_set(self, height: int) -> ValidatorSet | None:
        """The set that decided ``height``, a height this driver left (None if too old to know)."""
        if self.state.height - height > self.pool.watch_window:
            return None
        vset = self._recent_sets.get(height)
        return vset if vset is not None else self.executor.head_state().get_validator_set_at(height)

    def is_known_evidence(self, digest: bytes) -> bool:
        return self.pool.is_known(digest)

    def _is_signed(self, message: Vote | Proposal | Evidence) -> bool:
        return self.auth.is_signed(message)

    def _refuse(self, what: str, result: AuthResult) -> None:
        self.unauthenticated_inputs += 1
        log.debug("%s refused on delivery: %s", what, result.detail)

    def deliver_proposal(self, peer: str, proposal: Proposal, block: Block, size: int = 0) -> None:
        """An authenticated proposal and its block (``size`` bytes encoded, when known) from the network."""
        if block.hash() != proposal.block_hash or block.header.height != proposal.height:
            self._refuse("proposal", AuthResult(False, "", "its block is not the proposed one"))
            return
        if size > self.max_block_bytes:
            self._refuse("proposal", AuthResult(False, "", f"block of {size} bytes"))
            return
        result = self.auth.check_proposal(proposal)
        if not result.ok:
            self._refuse("proposal", result)
            return
        self._offer(proposal.height, InProposal(proposal, block, False, 0, peer=peer), peer, size)

    def deliver_vote(self, peer: str, vote: Vote) -> None:
        """An authenticated vote from the network (one of a height we left may still prove an equivocation)."""
        result = self.auth.check_vote(vote)
        if not result.ok:
            self._refuse("vote", result)
            return
        if vote.height < self.state.height:
            self._enqueue(InVote(vote, 0, peer=peer), peer=peer)
            return
        self._offer(vote.height, InVote(vote, 0, peer=peer), peer)

    def deliver_evidence(self, evidence: Evidence, peer: str = "") -> None:
        """Authenticated evidence from the network: it joins the pool."""
        result = self.auth.check_evidence(evidence)
        if not result.ok:
            self._refuse("evidence", result)
            return
        self._enqueue(evidence, peer=peer)

    def deliver_synced_blocks(
        self,
        blocks: Sequence[tuple[Block, Commit]],
        done: Callable[[int, ConsensusError | None], None] | None = None,
    ) -> None:
        """Blocks with commits from block sync: the driver applies them in order, then starts the next height."""
        # Never dropped: block sync waits for the answer.
        self._enqueue(SyncedBlocks(tuple(blocks), done), bounded=False)

    def has_proposal(self, proposal: Proposal) -> bool:
        """Whether the round machine already holds exactly ``proposal`` (same height, round, signature)."""
        if proposal.height != self.state.height:
            return False
        record = self.state.proposals.get(proposal.round)
        return record is not None and record.proposal == proposal

    def get_block(self, block_hash: bytes) -> Block | None:
        """A block of the current height we know (to serve peers fetching a proposal)."""
        return self.blocks.get(block_hash)

    def rebroadcast_own(self) -> None:
        """Re-send our own proposal and votes of the current height (after losses or partitions).

        Votes of this round and the last, and of the rounds a lock or a proof
        of lock points at: a peer that missed those could otherwise never see
        the polka that unlocks it.
        """
        st = self.state
        if self.address is None or not st.started or st.is_decided():
            return
        record = st.proposals.get(st.round)
        if record is not None and record.proposal.proposer == self.address:
            block = self.blocks.get(record.proposal.block_hash)
            if block is not None:
                self.network.broadcast_proposal(record.proposal, block)
        pointed = {st.locked_round, st.valid_round}
        pointed.update(rec.proposal.pol_round for rec in st.get_round_proposals(st.round))
        for (r, _t), vs in st.votes.items():
            if r >= st.round - 1 or r in pointed:
                own = vs.votes.get(self.address)
                if own is not None:
                    self.network.broadcast_vote(own)

    # -- the queue -------------------------------------------------------------------

    def _enqueue(self, item: Input | SyncedBlocks | Evidence, *, bounded: bool = True, peer: str = "") -> None:
        self._inbox.put(item, bounded=bounded, peer=peer)

    def _offer(self, height: int, inp: Input, peer: str, size: int = 0) -> None:
        st = self.state
        if height < st.height:
            return
        if height > st.height or not st.started:
            self._inbox.keep_for(height, st.height, inp, peer=peer, size=size)
            return
        self._inbox.put(inp, peer=peer)

    def _watch_late_vote(self, vote: Vote) -> None:
        """A vote of a height we left: no use to the machine, but it may prove an equivocation."""
        if self.state.height - vote.height > self.pool.watch_window:
            return
        vset = self._recent_sets.get(vote.height) or self.executor.head_state().get_validator_set_at(vote.height)
        if vset is None:
            return
        try:
            validate_vote(self.ctx.chain_id, vote, vset, vote.height, verify=self.ctx.verify)
        except ConsensusError:
            return
        ev = self.pool.check_vote(vote)
        if ev is not None:
            self._note_evidence(ev)

    def _release_future(self) -> None:
        self._pending.extend(self._inbox.release(self.state.height))

    # -- input processing ------------------------------------------------------------

    def _submit(self, inp: Input) -> None:
        self._pending.append(inp)
        self._drain()

    def _drain(self) -> None:
        while self._pending:
            self._handle(self._pending.popleft())

    def _is_stale_start(self, inp: Input) -> bool:
        """A start of the height we are in, or of one the head has moved past (through sync)."""
        if not isinstance(inp, InStart):
            return False
        if inp.height == self.state.height:
            return self.state.started
        return inp.height != self.executor.height + 1

    def _is_worth_handling(self, inp: Input) -> bool:
        """A peer's proposal is executed only while it authenticates here and now: its round near ours."""
        if not isinstance(inp, InProposal) or inp.own:
            return True
        result = self.auth.check_proposal(inp.proposal)  # a signature-cache hit
        if not result.ok:
            self.dropped_inputs += 1
            log.debug("proposal %d/%d not handled: %s", inp.proposal.height, inp.proposal.round, result.detail)
        return result.ok

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
            if self._is_stale_start(inp) or not self._is_worth_handling(inp):
                return
            inp = self._stamp(inp)
            if not self._log(inp):
                return
        if isinstance(inp, InProposal | InBuilt):
            self.blocks[inp.block.hash()] = inp.block
        if isinstance(inp, InProposal) and not inp.own:
            ev = self.pool.check_proposal(inp.proposal)
            if ev is not None:
                self._note_evidence(ev)
        if isinstance(inp, InBuilt) and self._deferred_request == (inp.height, inp.round):
            self._deferred_request = None
        if isinstance(inp, InVote) and self.state.is_decided():
            self.proposer.note_late_precommit(self.state, self.ctx, inp.vote)
        prev_round = self.state.round
        vset = self.state.validator_set
        if isinstance(inp, InStart) and inp.height != self.state.height:
            # The next height starts from the committed head.
            vset = self.executor.validator_set()
            self.blocks = {h: b for h, b in self.blocks.items() if b.header.height >= inp.height}
            low = inp.height - self.pool.watch_window
            self._recent_sets = {h: v for h, v in self._recent_sets.items() if h >= low}
            self._recent_sets[inp.height] = vset
        self.state, effects = apply_input(self.state, self.ctx, inp, vset)
        if self.state.round != prev_round and self.state.height == getattr(inp, "height", self.state.height):
            log.info(
                "height %d: entering round %d (%s)",
                self.state.height, self.state.round, type(inp).__name__,
            )
        if isinstance(inp, InVote) and not inp.own and not any(isinstance(e, InputRejected) for e in effects):
            ev = self.pool.check_vote(inp.vote)
            if ev is not None:
                self._note_evidence(ev)
        self._execute(effects, inp.now_ms)
        if isinstance(inp, InStart) and log_input:
            self._release_future()

    def _log(self, inp: Input) -> bool:
        """Append ``inp`` to the WAL; False when a peer's input cannot be logged (it is then dropped).

        A record the log refuses (``WalError``: empty or over its size limit)
        is refused before anything is written, so dropping a peer's proposal or
        vote leaves the log and the round state as they were. Every other
        input (ours, starts, timeouts) must be logged: its failure propagates,
        as does anything else the log raises (a full disk, a crash point).
        """
        try:
            self.wal.append(encode_input(inp), sync=is_durable(inp))
        except WalError as exc:
            if not isinstance(inp, InProposal | InVote) or inp.own:
                raise
            self.dropped_inputs += 1
            log.warning("a %s from %s was not logged, so not handled: %s", type(inp).__name__,
                        getattr(inp, "peer", "") or "a peer", exc)
            return False
        return True

    # -- effects -------------------------------------------------------------------------

    def _execute(self, effects: tuple[Effect, ...] | list[Effect], now: int) -> None:
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
                    block = self.proposer.build_block(eff.height, eff.round, now, self.state.validator_set, self.pool)
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
                # Not the forwarder's fault: it authenticated, so only state makes it useless.
                self.rejected_inputs += 1
                log.debug("input rejected by the round machine: %s", eff.reason)

    def _is_held(self, msg: Vote | Proposal) -> bool:
        """While held, keep what the machine asked to sign (of the latest round asked) for the release."""
        if not self._signing_held:
            return False
        self.held_signatures += 1
        if self._held and (self._held[-1].height, self._held[-1].round) != (msg.height, msg.round):
            self._held.clear()
        if len(self._held) < 4:  # a round asks for a proposal, a prevote and a precommit at most
            self._held.append(msg)
        return True

    def _sign_vote(self, vote: Vote, now: int, *, queue: bool = False) -> bool:
        """Sign our vote and hand it on as our input (``queue``: through the inbox, from outside the task)."""
        if self.signer is None or self._is_held(vote):
            return False
        block = None if vote.is_nil() else self.blocks.get(vote.block_hash)
        if block is not None:
            # BFT time: a vote for a block is dated after it, so the next block's time
            # (the median of its commit) is too. A nil vote keeps the clock's time.
            vote = vote.with_timestamp(compute_vote_time(vote.timestamp_ms, block.header.time_ms))
        try:
            signed = self.signer.sign_vote(vote)
        except DoubleSignRefused as exc:
            self._note_refusal("vote", exc)
            return False
        self._own(InVote(signed, now, own=True), queue)
        return True

    def _sign_proposal(self, proposal: Proposal, now: int, *, queue: bool = False) -> bool:
        if self.signer is None or self._is_held(proposal):
            return False
        try:
            signed = self.signer.sign_proposal(proposal)
        except DoubleSignRefused as exc:
            self._note_refusal("proposal", exc)
            return False
        block = self.blocks[signed.block_hash]
        self._own(InProposal(signed, block, True, now, own=True), queue)
        return True

    def _own(self, inp: Input, queue: bool) -> None:
        # Inside the driver's task our signed messages come next; from outside it
        # (the release, by block sync's task) they wait in the inbox, never dropped.
        if queue:
            self._enqueue(inp, bounded=False)
        else:
            self._pending.append(inp)

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

    def _schedule(self, eff: ScheduleTimeout) -> None:
        if self._stopped:
            return

        def fire() -> None:
            # The node's own timer inputs bypass the queue's bounds (at most one armed timer per
            # step, so they cannot grow it): peers filling the queue must never cost us a timeout,
            # or the round would never move again.
            self._timers.discard(handle)
            if eff.step == Step.COMMIT:
                if self.executor.height == eff.height and self.state.height == eff.height:
                    self._enqueue(InStart(eff.height + 1, self.clock.now_ms()), bounded=False)
                return
            self._enqueue(InTimeout(eff.height, eff.round, eff.step, self.clock.now_ms()), bounded=False)

        handle = self.clock.call_at(eff.at_ms, fire)
        self._timers.add(handle)

    def _cancel_timers(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()

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

    # -- commits ---------------------------------------------------------------------------

    def _commit(self, eff: CommitBlock) -> None:
        block = self.blocks.get(eff.block_hash)
        if block is None:
            raise ConsensusError(f"decided block {eff.block_hash.hex()} of height {eff.height} is unknown")
        committed = self.executor.commit_block(block, eff.commit)
        self._note_committed(committed)

    def _apply_synced(self, request: SyncedBlocks) -> None:
        """Apply blocks fetched by block sync that follow the head, then start the height after them."""
        applied = 0
        error: ConsensusError | None = None
        for block, commit in request.blocks:
            if block.header.height != self.executor.height + 1:
                continue  # consensus committed it meanwhile
            try:
                committed = self.executor.apply_synced_block(block, commit)
            except ConsensusError as exc:
                log.warning("synced block %d rejected: %s", block.header.height, exc)
                error = exc
                break
            applied += 1
            self._note_committed(committed)
        if applied:
            log.info("block sync applied %d blocks; head is %d", applied, self.executor.height)
            self._start_after_head()
        if request.done is not None:
            request.done(applied, error)

    def _start_after_head(self) -> None:
        """Leave the height we were deciding for the one after the head (moved on by sync)."""
        height = self.executor.height + 1
        if height <= self.state.height and self.state.started:
            return
        self._cancel_timers()
        self.blocks.clear()
        self._submit(InStart(height, self.clock.now_ms()))

    def _note_committed(self, committed: BlockCommitted) -> None:
        """Bookkeeping after a block was written (by consensus or by block sync)."""
        self.last_commit_ms = self.clock.now_ms()
        if self.signer is not None:
            # Our precommit above the signer's state proves that state stale (highest first).
            self.signer.observe_commit(committed.commit, f"the commit of block {committed.height}")
            if committed.block.last_commit is not None:
                self.signer.observe_commit(committed.block.last_commit, f"block {committed.height}")
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
