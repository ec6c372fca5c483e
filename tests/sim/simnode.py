"""A simulated validator: the real consensus driver and its real collaborators, on the simulation's clock and network.

Each ``SimNode`` runs a ``ConsensusDriver`` over a real ``BlockExecutor`` on
an in-memory ``NodeStore`` (its key-value store survives crashes, as a disk
would), a real WAL and a real ``PersistentSigner`` (files under a temporary
directory for persistent nodes, memory twins otherwise), and real Ed25519
keys. Its timers run on the simulation's ``ManualClock``; its broadcasts go
to ``SimPeer``, the driver's ``Network`` over the simulated network.

Nothing runs in the background: a delivered message, a fired timer or a
gossip tick is handed to the driver, then ``driver.process_inputs()`` drains
the driver's queue on the spot, so a whole run is one deterministic thread.

``SimPeer`` is the node's gossip layer: it relays each new proposal and vote
once (as gossipsub does), hands messages to the driver through the same entry
points as the p2p adapter, answers a stalled peer's status with the committed
blocks and commits it lacks (block sync, fed to the driver's queue), and
carries the byzantine behaviours that concern what leaves the node.

A crash (``faults.SimCrash`` from a crash point) loses everything volatile;
on restart the node reopens its store, signer state and WAL, checks that
folding the WAL gives exactly the round state it died in, and recovers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from consensus.bft.state import RoundState
from consensus.blocks import Block
from consensus.evidence import Evidence
from consensus.hashing import hash32
from consensus.votes import NIL_HASH, Commit, Proposal, Vote
from node.clock import TimerHandle
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockCommitted, BlockExecutor
from node.engine.faults import sign_conflicting_proposal, sign_conflicting_vote
from node.engine.gossip import HEIGHT_WINDOW
from node.engine.inputs import apply_input, decode_input, fold_wal
from node.engine.proposer import BlockProposer
from node.engine.signer import FileSignerStore, MemorySignerStore, PersistentSigner, SignerStore
from node.engine.wal import WriteAheadLog
from storage import MemoryKV, NodeStore

from .faults import (
    EQUIVOCATE,
    HONEST,
    INVALID_PROPOSER,
    SILENT,
    CrashingExecutor,
    CrashingSigner,
    CrashingWal,
    InvalidBlockProposer,
    SimCrash,
    SimExecutor,
    make_twin_block,
)
from .mempool import SimMempool

if TYPE_CHECKING:
    from .harness import Simulation

#: Most committed blocks sent in answer to one status.
SYNC_BLOCKS = 8


# --- what the nodes send each other ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposalMsg:
    proposal: Proposal
    block: Block


@dataclass(frozen=True, slots=True)
class VoteMsg:
    vote: Vote


@dataclass(frozen=True, slots=True)
class EvidenceMsg:
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class StatusMsg:
    """A stalled node's height: peers ahead answer with ``SyncMsg``."""

    height: int


@dataclass(frozen=True, slots=True)
class SyncMsg:
    """Committed blocks with their commits, from the height a status asked for."""

    blocks: tuple[tuple[Block, Commit], ...]


@dataclass
class CrashRecord:
    """Where a node died and the round state its WAL must fold back into."""

    point: str
    height: int
    state: RoundState


class MemoryWal:
    """The WAL's in-memory twin, for nodes that never crash."""

    def __init__(self) -> None:
        self._records: list[bytes] = []

    def records(self) -> list[bytes]:
        return list(self._records)

    def append(self, payload: bytes, *, sync: bool = False) -> None:
        self._records.append(payload)

    def reset(self) -> None:
        self._records = []


class NodeClock:
    """The manual clock as one node sees it: its timers fire as that node's task."""

    def __init__(self, node: SimNode) -> None:
        self.node = node

    def now_ms(self) -> int:
        return self.node.sim.clock.now_ms()

    def call_at(self, at_ms: int, callback: Callable[[], None]) -> TimerHandle:
        return self.node.sim.clock.call_at(at_ms, lambda: self.node.run(callback))


class SimNode:
    """One validator of the simulation."""

    def __init__(self, sim: Simulation, index: int, behaviour: str, data_dir: Path | None) -> None:
        self.sim = sim
        self.index = index
        self.key = sim.chain.consensus_keys[index]
        self.address = sim.chain.operator_keys[index].address()
        self.behaviour = behaviour
        self.data_dir = data_dir
        self.kv = MemoryKV()  # the disk: survives crashes
        self.peer = SimPeer(self)
        self.alive = False
        self.crash_countdown: int | None = None
        self.crashes: list[CrashRecord] = []
        self.replay_checks = 0
        self.torn_tails_repaired = 0
        self.refused_signatures = 0
        self.rejected_inputs = 0
        self._memory_wal = MemoryWal()
        self._memory_signer = MemorySignerStore()
        self._signer_store: SignerStore = self._memory_signer
        self._wal: WriteAheadLog | None = None
        self.driver: ConsensusDriver | None = None
        self.executor: BlockExecutor = self._open_executor()
        self.mempool = SimMempool()

    @property
    def height(self) -> int:
        """Height of the last block in this node's store."""
        return self.executor.height

    def is_byzantine_active(self) -> bool:
        """Whether the node misbehaves now (byzantine nodes turn honest late in some runs)."""
        return self.behaviour != HONEST and self.executor.height + 1 < self.sim.config.byzantine_until_height

    # --- lifetime -------------------------------------------------------------

    def _open_executor(self) -> BlockExecutor:
        store = NodeStore.open_memory(self.kv)
        sim = self.sim
        executor: BlockExecutor
        if self.data_dir is None:
            executor = SimExecutor(store, sim.genesis, sim.executions)
        else:
            executor = CrashingExecutor(store, sim.genesis, sim.executions, self)
        executor.init_genesis()
        return executor

    def start(self) -> None:
        """(Re)start from the store, the signer state and the WAL."""
        sim = self.sim
        self.executor = self._open_executor()
        self.mempool = SimMempool(sim.pending_txs(self.executor.head_state()))
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._wal = CrashingWal(self.data_dir / "consensus.wal", self)
            if self._wal.truncated_bytes:
                self.torn_tails_repaired += 1
            self._signer_store = FileSignerStore(self.data_dir / "signer.state")
            signer: PersistentSigner = CrashingSigner(
                self.key, sim.chain_id, self._signer_store, self.address, self
            )
        else:
            signer = PersistentSigner(self.key, sim.chain_id, self._signer_store, self.address)
        proposer: BlockProposer | None = None
        if self.behaviour == INVALID_PROPOSER:
            proposer = InvalidBlockProposer(self.executor, self.mempool, self.address, self.is_byzantine_active)
        self.peer.reset()
        self.driver = ConsensusDriver(
            executor=self.executor,
            wal=self._wal if self._wal is not None else self._memory_wal,
            clock=NodeClock(self),
            mempool=self.mempool,
            network=self.peer,
            timeouts=sim.config.timeouts,
            signer=signer,
            address=self.address,
            verify=sim.verify,
            proposer=proposer,
        )
        self.driver.committed_listeners.append(self._on_committed)
        self.alive = True
        self._check_replay()
        self.driver.recover()
        self.driver.process_inputs()

    def crash(self, crash: SimCrash) -> None:
        """Kill the node: volatile state is lost; store, signer file and WAL stay."""
        driver = self.driver
        if driver is None:
            return
        expected = driver.state
        if crash.pending is not None:
            expected, _ = apply_input(
                expected, driver.ctx, decode_input(crash.pending), self.executor.validator_set()
            )
        self.crashes.append(CrashRecord(crash.point, expected.height, expected))
        self.shutdown()

    def shutdown(self) -> None:
        """Stop the driver's timers and release the files (as a dying process does)."""
        if self.alive and self.driver is not None:
            self.driver.stop()
            self.refused_signatures += self.driver.refused_signatures
            self.rejected_inputs += self.driver.rejected_inputs
        self.alive = False
        if self._wal is not None:
            self._wal.close()
        if isinstance(self._signer_store, FileSignerStore):
            self._signer_store.close()

    def tear_wal(self) -> None:
        """Leave a half-written record at the end of the WAL: a header and part of its body."""
        if self.data_dir is None:
            return
        rng = self.sim.rng
        torn = struct.pack(">II", 200, 0) + rng.randbytes(rng.randint(0, 150))
        with open(self.data_dir / "consensus.wal", "ab") as f:
            f.write(torn[: rng.randint(1, len(torn))])

    def _check_replay(self) -> None:
        """The WAL must fold into exactly the round state the node had when it died."""
        if not self.crashes or self._wal is None or self.driver is None:
            return
        last = self.crashes[-1]
        height = self.executor.height + 1
        if last.height != height:
            return  # died after committing: the next height starts afresh
        folded = fold_wal(self._wal.records(), height, self.driver.ctx, self.executor.validator_set())
        if folded is None:
            if last.state.started:
                raise AssertionError(f"node {self.index}: WAL lost the start of height {height}")
            return
        if folded != last.state:
            raise AssertionError(
                f"node {self.index}: WAL replay after a crash at {last.point} gives round "
                f"{folded.round} step {folded.step}, expected round {last.state.round} step {last.state.step}"
            )
        self.replay_checks += 1

    def hit(self, point: str, pending: bytes | None = None) -> None:
        """The crash switch: raise SimCrash when the countdown to this node's next crash runs out."""
        if self.crash_countdown is None or self.driver is None or self.driver.is_replaying:
            return
        self.crash_countdown -= 1
        if self.crash_countdown <= 0:
            self.crash_countdown = None
            raise SimCrash(point, pending)

    # --- the node's task ------------------------------------------------------------

    def run(self, action: Callable[[], None]) -> None:
        """Run ``action`` as this node's task, then let the driver handle what it queued."""
        if not self.alive or self.driver is None:
            return
        self.sim.guard(self, lambda: self._run(action))

    def _run(self, action: Callable[[], None]) -> None:
        action()
        if self.alive and self.driver is not None:
            self.driver.process_inputs()

    def _on_committed(self, committed: BlockCommitted) -> None:
        self.mempool.remove(committed.tx_hashes)
        self.peer.forget_below(committed.height - 1)
        self.sim.on_commit(self, committed)

    def gossip_tick(self) -> None:
        """Re-send our messages of this height; ask peers for blocks when stalled."""
        if self.driver is None:
            return
        stalled = self.sim.clock.now_ms() - self.driver.last_commit_ms >= self.sim.config.sync_stall_ms
        if stalled:
            self.peer.send_status(self.driver.state.height)
        self.driver.rebroadcast_own()


class SimPeer:
    """The node's gossip layer: the driver's ``Network`` over the simulated network."""

    def __init__(self, node: SimNode) -> None:
        self.node = node
        self.sim = node.sim
        self._seen: dict[object, int] = {}
        self._split: set[tuple[int, int, int]] = set()

    def reset(self) -> None:
        """Forget what a crash forgets."""
        self._seen = {}

    def forget_below(self, height: int) -> None:
        self._seen = {m: h for m, h in self._seen.items() if h >= height}

    def _sends(self) -> bool:
        return not (self.node.behaviour == SILENT and self.node.is_byzantine_active())

    def _equivocates(self, key: tuple[int, int, int]) -> bool:
        """Whether to split this message of ours into a conflicting pair (decided once per message)."""
        if self.node.behaviour != EQUIVOCATE or not self.node.is_byzantine_active() or key in self._split:
            return False
        self._split.add(key)
        return self.sim.rng.random() < self.sim.config.equivocation_prob

    def _halves(self) -> tuple[list[int], list[int]]:
        peers = [i for i in range(self.sim.n) if i != self.node.index]
        self.sim.rng.shuffle(peers)
        cut = len(peers) // 2
        return peers[:cut], peers[cut:]

    def _send_split(self, first: object, second: object) -> None:
        a, b = self._halves()
        for dst in a:
            self.sim.network.send(self.node.index, dst, first)
        for dst in b:
            self.sim.network.send(self.node.index, dst, second)

    # --- outgoing: the driver's Network ------------------------------------------------

    def broadcast_proposal(self, proposal: Proposal, block: Block) -> None:
        if not self._sends():
            return
        msg = ProposalMsg(proposal, block)
        if proposal.pol_round == -1 and self._equivocates((proposal.height, proposal.round, 0)):
            twin = make_twin_block(block)
            other = sign_conflicting_proposal(proposal, twin.hash(), self.node.key, self.sim.chain_id)
            self.sim.record_proposal_equivocation(proposal, other)
            self._send_split(msg, ProposalMsg(other, twin))
            return
        self.sim.network.broadcast(self.node.index, msg)

    def broadcast_vote(self, vote: Vote) -> None:
        if not self._sends():
            return
        self.sim.record_vote_sent(self.node, vote)
        if self._equivocates((vote.height, vote.round, vote.vote_type)):
            other_hash = NIL_HASH if vote.block_hash != NIL_HASH else hash32(b"fork" + vote.sign_payload())
            other = sign_conflicting_vote(vote, other_hash, self.node.key, self.sim.chain_id)
            self.sim.record_equivocation(vote, other)
            self._send_split(VoteMsg(vote), VoteMsg(other))
            return
        self.sim.network.broadcast(self.node.index, VoteMsg(vote))

    def broadcast_evidence(self, evidence: Evidence) -> None:
        if self._sends():
            self.sim.network.broadcast(self.node.index, EvidenceMsg(evidence))

    def report_peer(self, peer: str, reason: str) -> None:
        self.sim.reported_peers += 1

    def send_status(self, height: int) -> None:
        if self._sends():
            self.sim.network.broadcast(self.node.index, StatusMsg(height))

    # --- incoming ------------------------------------------------------------------------

    def receive(self, src: int, msg: object) -> None:
        """Handle a message from peer ``src`` (the node's task drains the driver afterwards)."""
        driver = self.node.driver
        if driver is None or msg in self._seen:
            return
        peer = str(src)
        if isinstance(msg, VoteMsg | ProposalMsg):
            height = msg.vote.height if isinstance(msg, VoteMsg) else msg.proposal.height
            if abs(height - driver.state.height) > HEIGHT_WINDOW:
                return  # not remembered: a resend may matter once we get there
            self._seen[msg] = height
            if self.sim.config.relay and self._sends():
                self.sim.network.broadcast(self.node.index, msg, exclude=src)
            if isinstance(msg, VoteMsg):
                driver.deliver_vote(peer, msg.vote)
            else:
                driver.deliver_proposal(peer, msg.proposal, msg.block)
        elif isinstance(msg, EvidenceMsg):
            digest = msg.evidence.evidence_hash()
            if digest not in self._seen and driver.is_admissible_evidence(msg.evidence):
                self._seen[digest] = msg.evidence.height
                driver.deliver_evidence(msg.evidence)
                if self.sim.config.relay and self._sends():
                    self.sim.network.broadcast(self.node.index, msg, exclude=src)
        elif isinstance(msg, StatusMsg):
            head = self.node.executor.height
            if msg.height <= head and self._sends():
                last = min(head, msg.height + SYNC_BLOCKS - 1)
                blocks = tuple(self.sim.load_committed(self.node, h) for h in range(msg.height, last + 1))
                self.sim.network.send(self.node.index, src, SyncMsg(blocks))
        elif isinstance(msg, SyncMsg):
            driver.deliver_synced_blocks(msg.blocks)
