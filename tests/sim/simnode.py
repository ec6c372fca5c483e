"""A simulated validator: the real round machine, signer, WAL and evidence pool behind a small driver.

The driver does what a node's consensus driver does: it logs each input to
the WAL before handing it to the pure machine, carries out the effects (sign
through the persistent signer, broadcast, arm timers, commit), keeps an
evidence pool, answers lagging peers with committed blocks and their commits,
and re-broadcasts its own messages on a gossip tick. Byzantine behaviours are
switched on per node. A node can crash at chosen points and restart from its
block store, signer state and WAL.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
)
from consensus.bft.state import RoundState, new_round_state
from consensus.bft.validation import validate_proposal, validate_vote
from consensus.crypto import Domain, PrivateKey
from consensus.errors import ConsensusError
from consensus.evidence import (
    Evidence,
    decode_evidence,
    encode_evidence,
    verify_evidence,
)
from consensus.hashing import ZERO_HASH, hash32
from consensus.votes import NIL_HASH, Proposal, Vote, VoteError, verify_commit
from node.engine.signer import (
    DoubleSignRefused,
    FileSignerStore,
    MemorySignerStore,
    PersistentSigner,
    SignerStore,
)
from node.engine.wal import WriteAheadLog

from .chain import (
    GENESIS_STATE,
    INVALID_PAYLOAD,
    ChainEntry,
    ProposalMsg,
    SimBlock,
    SimEvidence,
    StatusMsg,
    VoteMsg,
    compute_state_hash,
)
from .inputs import (
    InBuilt,
    InProposal,
    Input,
    InStart,
    InTimeout,
    InVote,
    apply_input,
    decode_input,
    encode_input,
    replay_wal_pure,
)

if TYPE_CHECKING:
    from .harness import Simulation

HONEST = "honest"
SILENT = "silent"
EQUIVOCATE = "equivocate"
INVALID_PROPOSER = "invalid-proposer"
BEHAVIOURS = (HONEST, SILENT, EQUIVOCATE, INVALID_PROPOSER)

CRASH_POINTS = ("wal-appended", "handled", "signed", "committed")


class SimCrash(Exception):
    """Raised inside a node to kill it at a crash point."""

    def __init__(self, point: str, pending: Input | None = None) -> None:
        super().__init__(point)
        self.point = point
        self.pending = pending


@dataclass
class CrashRecord:
    """What a node was doing when it was killed (for the replay check)."""

    point: str
    height: int
    state: RoundState
    pending: Input | None


class SimNode:
    """One validator of the simulation."""

    def __init__(
        self,
        sim: Simulation,
        index: int,
        key: PrivateKey,
        behaviour: str,
        *,
        data_dir: Path | None = None,
    ) -> None:
        self.sim = sim
        self.index = index
        self.key = key
        self.address = key.address()
        self.behaviour = behaviour
        self.data_dir = data_dir
        self.ctx = MachineContext(sim.chain_id, self.address, sim.timeouts, sim.verify)
        self.chain: list[ChainEntry] = []  # the block store: survives crashes
        self.alive = True
        self.generation = 0
        self.crash_countdown: int | None = None
        self.crashes: list[CrashRecord] = []
        self.replay_checks = 0
        self.refused_signatures = 0
        self.replay_refusals = 0
        self.torn_tails_repaired = 0
        self.detected: dict[bytes, Evidence] = {}
        self._wal: WriteAheadLog | None = None
        self._signer_store: SignerStore | None = None
        self._open_volatile()
        self.state = new_round_state(1, sim.valset_at(1))

    @property
    def mode(self) -> str:
        """The behaviour in force now (byzantine nodes may turn honest late in a run)."""
        if self.behaviour != HONEST and not self.sim.is_byzantine_active(self):
            return HONEST
        return self.behaviour

    # --- lifetime ------------------------------------------------------------

    def _open_volatile(self) -> None:
        """(Re)create everything a crash loses, and reopen the durable files."""
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            store: SignerStore = FileSignerStore(self.data_dir / "signer.state")
            self._wal = WriteAheadLog(self.data_dir / "consensus.wal")
        else:
            store = self._signer_store if self._signer_store is not None else MemorySignerStore()
        self._signer_store = store
        self.signer = PersistentSigner(self.key, self.sim.chain_id, store)
        self.blocks: dict[bytes, SimBlock] = {e.block.hash(): e.block for e in self.chain}
        self.pool = EvidencePool(self.sim.evidence_max_age)
        self.committed_evidence: dict[bytes, int] = {}
        for entry in self.chain:
            self._note_committed_evidence(entry.block)
        self.seen: dict[object, int] = {}
        self._pending: deque[Input] = deque()
        self._busy = False
        self._replaying = False
        self._deferred_request: tuple[int, int] | None = None
        self._split_sent: set[object] = set()
        self._future: dict[VoteMsg | ProposalMsg, int] = {}

    def start(self) -> None:
        """Start height 1 (or the height after the stored chain)."""
        self._submit(InStart(len(self.chain) + 1, self.sim.now))

    def crash(self, point: str, pending: Input | None) -> None:
        """Kill the node: volatile state is lost; block store, signer file and WAL stay."""
        self.crashes.append(CrashRecord(point, self.state.height, self.state, pending))
        self.alive = False
        self.generation += 1
        if self._wal is not None:
            self._wal.close()
        if isinstance(self._signer_store, FileSignerStore):
            self._signer_store.close()

    def restart(self) -> None:
        """Come back from the block store, the signer state and the WAL."""
        self._open_volatile()
        self.alive = True
        height = len(self.chain) + 1
        self.state = new_round_state(height, self.sim.valset_at(height))
        records = self._wal.records() if self._wal is not None else []
        if self._wal is not None and self._wal.truncated_bytes:
            self.torn_tails_repaired += 1
        self._check_replay(records, height)
        inputs = [decode_input(r) for r in records]
        starts = [i for i, x in enumerate(inputs) if isinstance(x, InStart) and x.height == height]
        if not starts:
            self.start()
            return
        self._replaying = True
        self._busy = True
        try:
            for inp in inputs[starts[-1] :]:
                self._handle(inp, log=False)
                while self._pending:
                    self._handle(self._pending.popleft())
        finally:
            self._replaying = False
            self._busy = False
        request = self._deferred_request
        self._deferred_request = None
        if (
            request is not None
            and request == (self.state.height, self.state.round)
            and request[1] not in self.state.proposals
            and self.state.step == Step.PROPOSE
        ):
            # The block was asked for but never built before the crash: build it now.
            self._execute([RequestBlock(*request)], self.sim.now)
            self._drain()

    def _check_replay(self, records: list[bytes], height: int) -> None:
        """The WAL must fold into exactly the round state the node had when it died."""
        if not self.crashes:
            return
        last = self.crashes[-1]
        folded = replay_wal_pure(records, height, self.ctx, self.sim.valset_at)
        if last.height != height:
            return  # died after committing: the next height starts fresh
        expected = last.state
        if last.pending is not None:
            expected, _ = apply_input(expected, self.ctx, last.pending, self.sim.valset_at)
        if folded is None:
            if expected.started:
                raise AssertionError(f"node {self.index}: WAL lost the start of height {height}")
            return
        if folded != expected:
            raise AssertionError(
                f"node {self.index}: WAL replay after a crash at {last.point} gives "
                f"round {folded.round} step {folded.step}, expected round {expected.round} "
                f"step {expected.step}"
            )
        self.replay_checks += 1

    def _crash_point(self, point: str, pending: Input | None = None) -> None:
        if self._replaying or self.crash_countdown is None:
            return
        self.crash_countdown -= 1
        if self.crash_countdown <= 0:
            self.crash_countdown = None
            raise SimCrash(point, pending)

    # --- input processing ----------------------------------------------------

    def _submit(self, inp: Input) -> None:
        self._pending.append(inp)
        self._drain()

    def _drain(self) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            while self._pending:
                self._handle(self._pending.popleft())
        finally:
            self._busy = False

    def _handle(self, inp: Input, *, log: bool = True) -> None:
        """Log ``inp`` (unless it is being replayed from the WAL), hand it over, run the effects."""
        if isinstance(inp, InProposal | InBuilt):
            self.blocks[inp.block.hash()] = inp.block
        if self._wal is not None and log:
            durable = isinstance(inp, InStart) or getattr(inp, "own", False)
            self._wal.append(encode_input(inp), sync=durable)
            self._crash_point("wal-appended", inp)
        if isinstance(inp, InBuilt) and self._deferred_request == (inp.height, inp.round):
            self._deferred_request = None
        self.state, effects = apply_input(self.state, self.ctx, inp, self.sim.valset_at)
        self._crash_point("handled")
        self._execute(effects, inp.now_ms)
        if isinstance(inp, InStart) and log:
            self._release_future()

    def _execute(self, effects: tuple[Effect, ...] | list[Effect], now: int) -> None:
        sim = self.sim
        for eff in effects:
            if isinstance(eff, SignVote):
                self._sign_vote(eff.vote, now)
            elif isinstance(eff, BroadcastVote):
                if self.mode != SILENT and eff.vote not in self._split_sent:
                    sim.record_vote_sent(self, eff.vote)
                    self._broadcast(VoteMsg(eff.vote))
            elif isinstance(eff, ScheduleTimeout):
                gen = self.generation
                sim.queue.schedule(
                    eff.at_ms,
                    lambda e=eff, g=gen: sim.guard(
                        self, lambda: self.on_timer(g, e.height, e.round, e.step)
                    ),
                )
            elif isinstance(eff, RequestBlock):
                if self._replaying:
                    self._deferred_request = (eff.height, eff.round)
                else:
                    block = self.build_block(eff.height, eff.round)
                    self.blocks[block.hash()] = block
                    self._pending.append(InBuilt(eff.height, eff.round, block, now))
            elif isinstance(eff, SignProposal):
                self._sign_proposal(eff.proposal, now)
            elif isinstance(eff, BroadcastProposal):
                if self.mode != SILENT and eff.proposal not in self._split_sent:
                    block = self.blocks[eff.proposal.block_hash]
                    self._broadcast(ProposalMsg(eff.proposal, block))
            elif isinstance(eff, CommitBlock):
                self._commit(eff)
            elif isinstance(eff, EquivocationDetected):
                self._note_evidence(eff.evidence)
            elif isinstance(eff, InputRejected):
                sim.rejected_inputs += 1

    def _sign_vote(self, vote: Vote, now: int) -> None:
        if self.mode == EQUIVOCATE:
            self._equivocate_vote(vote, now)
            return
        try:
            signed = self.signer.sign_vote(vote)
        except DoubleSignRefused:
            self._note_refusal()
            return
        self._crash_point("signed")
        self._pending.append(InVote(signed, now, own=True))

    def _sign_proposal(self, proposal: Proposal, now: int) -> None:
        if self.mode == EQUIVOCATE and proposal.pol_round == -1:
            self._equivocate_proposal(proposal, now)
            return
        try:
            signed = self.signer.sign_proposal(proposal)
        except DoubleSignRefused:
            self._note_refusal()
            return
        self._crash_point("signed")
        block = self.blocks[signed.block_hash]
        self._pending.append(InProposal(signed, block, True, now, own=True))

    def _note_refusal(self) -> None:
        # Replaying re-requests the signatures of earlier rounds, which the signer
        # refuses as regressions (their votes are in the WAL already). Outside
        # replay, a refusal would mean the WAL failed to bring the node back
        # to where it was.
        if self._replaying:
            self.replay_refusals += 1
        else:
            self.refused_signatures += 1

    # --- byzantine behaviour -------------------------------------------------

    def _halves(self) -> tuple[list[int], list[int]]:
        peers = [i for i in range(self.sim.n) if i != self.index]
        self.sim.rng.shuffle(peers)
        cut = len(peers) // 2
        return peers[:cut], peers[cut:]

    def _equivocate_vote(self, vote: Vote, now: int) -> None:
        sig_a = self.key.sign(Domain.VOTE, self.sim.chain_id, vote.sign_payload())
        vote_a = vote.with_signature(sig_a)
        if self.sim.rng.random() < self.sim.equivocation_prob:
            other = (
                NIL_HASH if vote.block_hash != NIL_HASH else hash32(b"fork" + vote.sign_payload())
            )
            unsigned_b = dataclasses.replace(vote, block_hash=other)
            sig_b = self.key.sign(Domain.VOTE, self.sim.chain_id, unsigned_b.sign_payload())
            vote_b = unsigned_b.with_signature(sig_b)
            first, second = self._halves()
            for dst in first:
                self.sim.network.send(self.index, dst, VoteMsg(vote_a))
            for dst in second:
                self.sim.network.send(self.index, dst, VoteMsg(vote_b))
            self._split_sent.add(vote_a)
            self.sim.record_equivocation(vote_a, vote_b)
        self._pending.append(InVote(vote_a, now, own=True))

    def _equivocate_proposal(self, proposal: Proposal, now: int) -> None:
        sig_a = self.key.sign(Domain.PROPOSAL, self.sim.chain_id, proposal.sign_payload())
        prop_a = proposal.with_signature(sig_a)
        block_a = self.blocks[proposal.block_hash]
        if self.sim.rng.random() < self.sim.equivocation_prob:
            block_b = dataclasses.replace(block_a, payload=hash32(b"other" + block_a.payload)[:16])
            self.blocks[block_b.hash()] = block_b
            unsigned_b = dataclasses.replace(proposal, block_hash=block_b.hash())
            sig_b = self.key.sign(Domain.PROPOSAL, self.sim.chain_id, unsigned_b.sign_payload())
            prop_b = unsigned_b.with_signature(sig_b)
            first, second = self._halves()
            for dst in first:
                self.sim.network.send(self.index, dst, ProposalMsg(prop_a, block_a))
            for dst in second:
                self.sim.network.send(self.index, dst, ProposalMsg(prop_b, block_b))
            self._split_sent.add(prop_a)
            self.sim.record_proposal_equivocation(prop_a, prop_b)
        self._pending.append(InProposal(prop_a, block_a, True, now, own=True))

    # --- blocks --------------------------------------------------------------

    def tip_hash(self) -> bytes:
        return self.chain[-1].block.hash() if self.chain else ZERO_HASH

    def build_block(self, height: int, round_: int) -> SimBlock:
        """Build this node's block for (height, round), carrying pending evidence."""
        evidence = tuple(
            SimEvidence(*encode_evidence(e))
            for e in self.pool.get_pending(height, self.sim.max_block_evidence)
            if e.evidence_hash() not in self.committed_evidence
        )
        payload = hash32(b"%d/%d/%d/%d" % (self.sim.seed, height, round_, self.index))[:16]
        parent = self.tip_hash()
        if self.mode == INVALID_PROPOSER:
            payload = INVALID_PAYLOAD
            parent = hash32(b"no such parent" + parent)
        return SimBlock(height, round_, parent, self.address, payload, evidence)

    def validate_block(self, block: SimBlock) -> bool:
        """The driver's verdict on a proposed block (the machine only sees this bit)."""
        if block.height != self.state.height or block.parent_hash != self.tip_hash():
            return False
        if block.payload == INVALID_PAYLOAD:
            return False
        valset = self.sim.valset_at(block.height)
        if valset.compute_proposer(block.round).address != block.proposer:
            return False
        if len(block.evidence) > self.sim.max_block_evidence:
            return False
        seen: set[bytes] = set()
        for item in block.evidence:
            try:
                ev = decode_evidence(item.kind, item.data)
                verify_evidence(
                    self.sim.chain_id,
                    ev,
                    self.sim.valset_at(ev.height),
                    block.height,
                    self.sim.evidence_max_age,
                    verify=self.sim.verify,
                )
            except ConsensusError:
                return False
            digest = ev.evidence_hash()
            if digest in seen or digest in self.committed_evidence:
                return False
            seen.add(digest)
        return True

    def _note_committed_evidence(self, block: SimBlock) -> list[Evidence]:
        evs = [decode_evidence(i.kind, i.data) for i in block.evidence]
        for ev in evs:
            self.committed_evidence[ev.evidence_hash()] = block.height
        return evs

    def _commit(self, eff: CommitBlock) -> None:
        if eff.height != len(self.chain) + 1:
            raise AssertionError(f"node {self.index}: commit of height {eff.height} out of order")
        valset = self.sim.valset_at(eff.height)
        verify_commit(self.sim.chain_id, valset, eff.commit, verify=self.sim.verify)
        block = self.blocks[eff.block_hash]
        record = self.state.get_proposal_for(eff.round, eff.block_hash)
        if record is None:
            raise AssertionError("committed a block without its proposal")
        proposal = record.proposal
        previous = self.chain[-1].state_hash if self.chain else GENESIS_STATE
        entry = ChainEntry(block, eff.commit, proposal, compute_state_hash(previous, block))
        self.chain.append(entry)
        evs = self._note_committed_evidence(block)
        self.pool.mark_committed(eff.height, tuple(evs))
        self.seen = {m: h for m, h in self.seen.items() if h >= eff.height - 2}
        self.sim.on_commit(self, entry)
        self._crash_point("committed")

    def _note_evidence(self, evidence: Evidence) -> None:
        digest = evidence.evidence_hash()
        if digest not in self.detected:
            self.detected[digest] = evidence
        self.pool.add(evidence)

    # --- network -------------------------------------------------------------

    def _broadcast(self, msg: object) -> None:
        self.sim.network.broadcast(self.index, msg)

    def on_timer(self, generation: int, height: int, round_: int, step: int) -> None:
        if not self.alive or generation != self.generation:
            return
        if step == Step.COMMIT:
            if len(self.chain) == height and self.state.height == height:
                self._submit(InStart(height + 1, self.sim.now))
            return
        self._submit(InTimeout(height, round_, step, self.sim.now))

    def on_gossip_tick(self) -> None:
        """Re-send our own messages of this height and tell peers where we are."""
        if not self.alive or self.mode == SILENT:
            return
        st = self.state
        self._broadcast(StatusMsg(st.height, st.round))
        record = st.proposals.get(st.round)
        if record is not None and record.proposal.proposer == self.address:
            block = self.blocks.get(record.proposal.block_hash)
            if block is not None:
                self._broadcast(ProposalMsg(record.proposal, block))
        # Our votes of this round and the last, and of the rounds a proof of lock may
        # point at: a peer that missed them could otherwise never see that polka.
        rounds = {st.round, st.round - 1, st.locked_round, st.valid_round}
        rounds.update(rec.proposal.pol_round for rec in st.get_round_proposals(st.round))
        for (r, _t), vs in st.votes.items():
            if r in rounds:
                own = vs.votes.get(self.address)
                if own is not None:
                    self._broadcast(VoteMsg(own))

    def deliver(self, src: int, msg: object) -> None:
        """Handle a message from peer ``src``."""
        if not self.alive or msg in self.seen:
            return
        sim = self.sim
        if isinstance(msg, StatusMsg):
            if self.mode != SILENT and 1 <= msg.height <= len(self.chain):
                entry = self.chain[msg.height - 1]
                sim.network.send(self.index, src, ProposalMsg(entry.proposal, entry.block))
                for vote in entry.commit.votes():
                    sim.network.send(self.index, src, VoteMsg(vote))
            return
        height = self.state.height
        if isinstance(msg, VoteMsg):
            vote = msg.vote
            if abs(vote.height - height) > self.pool.watch_window:
                return  # not remembered as seen: a catch-up may resend it when it matters
            self.seen[msg] = vote.height
            try:
                validate_vote(
                    sim.chain_id, vote, sim.valset_at(vote.height), vote.height, verify=sim.verify
                )
            except VoteError:
                sim.rejected_inputs += 1
                return
            ev = self.pool.check_vote(vote)
            if ev is not None:
                self._note_evidence(ev)
            if sim.relay:
                sim.network.broadcast(self.index, msg, exclude=src)
            self._accept(msg, vote.height)
        elif isinstance(msg, ProposalMsg):
            p = msg.proposal
            if abs(p.height - height) > self.pool.watch_window:
                return
            self.seen[msg] = p.height
            try:
                validate_proposal(
                    sim.chain_id, p, sim.valset_at(p.height), p.height, verify=sim.verify
                )
            except VoteError:
                sim.rejected_inputs += 1
                return
            if msg.block.hash() != p.block_hash:
                sim.rejected_inputs += 1
                return
            ev = self.pool.check_proposal(p)
            if ev is not None:
                self._note_evidence(ev)
            if sim.relay:
                sim.network.broadcast(self.index, msg, exclude=src)
            self._accept(msg, p.height)

    def _accept(self, msg: VoteMsg | ProposalMsg, msg_height: int) -> None:
        """Hand a verified message to the machine now, or keep it for the height it is for."""
        if msg_height > self.state.height or (
            msg_height == self.state.height and not self.state.started
        ):
            self._future[msg] = msg_height
        elif msg_height == self.state.height:
            self._submit(self._as_input(msg))

    def _as_input(self, msg: VoteMsg | ProposalMsg) -> Input:
        if isinstance(msg, VoteMsg):
            return InVote(msg.vote, self.sim.now)
        return InProposal(msg.proposal, msg.block, self.validate_block(msg.block), self.sim.now)

    def _release_future(self) -> None:
        """After entering a height, hand over the messages that arrived early for it."""
        height = self.state.height
        ready = [m for m, h in self._future.items() if h == height]
        self._future = {m: h for m, h in self._future.items() if h > height}
        for msg in ready:
            self._pending.append(self._as_input(msg))
