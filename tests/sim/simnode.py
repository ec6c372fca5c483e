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
from consensus.codec import pack_raw
from consensus.evidence import Evidence
from consensus.hashing import hash32
from consensus.votes import NIL_HASH, Commit, Proposal, Vote
from node.clock import TimerHandle
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockCommitted, BlockExecutor
from node.engine.faults import sign_conflicting_proposal, sign_conflicting_vote
from node.engine.forge import HUGE_BLOCK_BYTES, Forger
from node.engine.gossip import (
    MSG_PART,
    MSG_PROPOSAL,
    PART_BYTES,
    PART_WAIT_S,
    GossipAdapter,
    encode_evidence_message,
    encode_proposal_messages,
    encode_vote_message,
)
from node.engine.inputs import apply_input, decode_input, fold_wal
from node.engine.proposer import BlockProposer
from node.engine.signer import FileSignerStore, MemorySignerStore, PersistentSigner, SignerStore
from node.engine.wal import MAX_RECORD_BYTES, WriteAheadLog
from node.errors import WalError
from p2p.interface import GossipVerdict, Reject, Verdict
from storage import MemoryKV, NodeStore

from .faults import (
    EQUIVOCATE,
    FORGE,
    FORGE_HUGE,
    HONEST,
    INVALID_PROPOSER,
    OVERSIZE_FETCH,
    OVERSIZE_PARTS,
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
class GossipMsg:
    """One gossip message: its topic kind and its payload, the bytes the p2p adapter publishes."""

    kind: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """Ask a peer for a proposal block by hash (the adapter's ``proposal-block`` request)."""

    request_id: int
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class FetchReply:
    """The frames a peer's adapter served for a ``FetchRequest``."""

    request_id: int
    frames: tuple[bytes, ...]


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
    """The WAL's in-memory twin, for nodes that never crash (same record limit as the real one)."""

    def __init__(self) -> None:
        self._records: list[bytes] = []

    def records(self) -> list[bytes]:
        return list(self._records)

    def append(self, payload: bytes, *, sync: bool = False) -> None:
        if not payload or len(payload) > MAX_RECORD_BYTES:
            raise WalError(f"record of {len(payload)} bytes is empty or exceeds {MAX_RECORD_BYTES}")
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
        #: Hashes of every block this node's executor was asked to execute.
        self.attempted_blocks: set[bytes] = set()
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
            executor = SimExecutor(store, sim.genesis, sim.executions, self.attempted_blocks)
        else:
            executor = CrashingExecutor(store, sim.genesis, sim.executions, self, self.attempted_blocks)
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
        self.peer.bind(self.driver)
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
        if self.behaviour in (FORGE, FORGE_HUGE) and self.is_byzantine_active():
            # Peers are deciding this height too: votes of it may reach them after their decision.
            self.peer.forge_decided(committed)

    def gossip_tick(self) -> None:
        """Re-send our messages of this height; ask peers for blocks when stalled."""
        if self.driver is None:
            return
        stalled = self.sim.clock.now_ms() - self.driver.last_commit_ms >= self.sim.config.sync_stall_ms
        if stalled:
            self.peer.send_status(self.driver.state.height)
        self.driver.rebroadcast_own()
        if self.behaviour in (FORGE, FORGE_HUGE) and self.is_byzantine_active():
            self.peer.forge_tick()


class SimTransport:
    """What the real gossip adapter asks of its transport in the simulation: peers and penalties."""

    def __init__(self, peer: SimPeer) -> None:
        self.peer = peer

    def peers(self) -> list[str]:
        me = self.peer.node.index
        return [str(i) for i in range(self.peer.sim.n) if i != me]

    def report_peer(self, peer_id: str, reason: str, *, disconnect: bool = False) -> None:
        self.peer.sim.record_penalty(self.peer.node.index, int(peer_id), reason)


@dataclass
class _Fetch:
    proposal: Proposal
    peers: list[int]


class SimPeer:
    """The node's gossip layer: the real p2p adapter's encoding, validators and handlers over the simulated network.

    Outgoing messages are the payloads ``node.engine.gossip`` publishes; each
    received payload goes through the adapter's topic validator first, and
    only an ACCEPT is relayed (once) and handed to the adapter's handler, as
    the p2p transports do. A REJECT penalises the forwarding peer (recorded by
    the simulation). Proposal blocks that do not ride inline are fetched by
    hash from the announcing peer (then the others), through the adapter's
    serving and checking code.
    """

    def __init__(self, node: SimNode) -> None:
        self.node = node
        self.sim = node.sim
        self.gossip = GossipAdapter(SimTransport(self), node.sim.chain_id, part_key=node.key)  # type: ignore[arg-type]
        self._seen: dict[object, int] = {}
        self._split: set[tuple[int, int, int]] = set()
        self._fetches: dict[int, _Fetch] = {}
        self._next_request = 0
        self.forger = Forger(node.sim.chain_id, node.address, seed=b"sim-forge-%d" % node.index)
        self._huge_sent: set[tuple[int, int]] = set()

    def reset(self) -> None:
        """Forget what a crash forgets."""
        self._seen = {}
        self._fetches = {}
        self.gossip = GossipAdapter(SimTransport(self), self.sim.chain_id, part_key=self.node.key)  # type: ignore[arg-type]

    def bind(self, driver: ConsensusDriver) -> None:
        self.gossip.bind(driver)

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

    def _send_split(self, first: list[GossipMsg], second: list[GossipMsg]) -> None:
        a, b = self._halves()
        for dst in a:
            for m in first:
                self.sim.network.send(self.node.index, dst, m)
        for dst in b:
            for m in second:
                self.sim.network.send(self.node.index, dst, m)

    def _proposal_msgs(self, proposal: Proposal, block: Block) -> list[GossipMsg]:
        payloads = encode_proposal_messages(self.sim.chain_id, proposal, block, self.node.key)
        return [GossipMsg("proposal", p) for p in payloads]

    def publish(self, msg: GossipMsg) -> None:
        """Gossip ``msg`` to every peer (what the transport's ``publish`` does)."""
        self._seen[msg] = self.node.height + 1  # our own: never validated or relayed back
        self.sim.network.broadcast(self.node.index, msg)

    # --- outgoing: the driver's Network ------------------------------------------------

    def broadcast_proposal(self, proposal: Proposal, block: Block) -> None:
        if not self._sends():
            return
        if self.node.behaviour in (OVERSIZE_FETCH, OVERSIZE_PARTS) and self.node.is_byzantine_active():
            self._propose_huge(proposal, block)
            return
        msgs = self._proposal_msgs(proposal, block)
        if proposal.pol_round == -1 and self._equivocates((proposal.height, proposal.round, 0)):
            twin = make_twin_block(block)
            other = sign_conflicting_proposal(proposal, twin.hash(), self.node.key, self.sim.chain_id)
            self.sim.record_proposal_equivocation(proposal, other)
            self._send_split(msgs, self._proposal_msgs(other, twin))
            return
        for m in msgs:
            self.publish(m)

    def broadcast_vote(self, vote: Vote) -> None:
        if not self._sends():
            return
        self.sim.record_vote_sent(self.node, vote)
        if self._equivocates((vote.height, vote.round, vote.vote_type)):
            other_hash = NIL_HASH if vote.block_hash != NIL_HASH else hash32(b"fork" + vote.sign_payload())
            other = sign_conflicting_vote(vote, other_hash, self.node.key, self.sim.chain_id)
            self.sim.record_equivocation(vote, other)
            self._send_split(
                [GossipMsg("vote", encode_vote_message(vote))], [GossipMsg("vote", encode_vote_message(other))]
            )
            return
        self.publish(GossipMsg("vote", encode_vote_message(vote)))

    def broadcast_evidence(self, evidence: Evidence) -> None:
        if self._sends():
            self.publish(GossipMsg("evidence", encode_evidence_message(evidence)))

    def report_peer(self, peer: str, reason: str) -> None:
        self.sim.record_penalty(self.node.index, int(peer), reason)

    # --- byzantine: oversize blocks and forged messages -----------------------------------

    def _propose_huge(self, proposal: Proposal, block: Block) -> None:
        """Our signed proposal, pointing at our block padded to just under ``Block.MAX_BYTES``."""
        if (proposal.height, proposal.round) in self._huge_sent:
            return  # a rebroadcast: once is enough
        self._huge_sent.add((proposal.height, proposal.round))
        huge = self.forger.huge_block(block, block.header.height, block.header.round,
                                      block.header.proposer, HUGE_BLOCK_BYTES, same_header=True)
        self.sim.forged_blocks.add(huge.hash())
        if self.node.behaviour == OVERSIZE_FETCH:
            self.forger.served = {huge.hash(): huge.encode()}
            self.publish(GossipMsg("proposal", pack_raw([MSG_PROPOSAL, proposal.encode(), b"", 0])))
            return
        for m in self._proposal_msgs(proposal, huge):
            self.publish(m)

    def _forge(self, kind: str, payload: bytes) -> None:
        self.sim.forged.add(payload)
        self.publish(GossipMsg(kind, payload))

    def _template(self) -> Block | None:
        head = self.node.executor.height
        if head < 1:
            return None
        raw = self.node.executor.store.blocks.load_block(head)
        return None if raw is None else Block.decode(raw, max_bytes=Block.MAX_BYTES)

    def forge_tick(self) -> None:
        """Gossip one of each forged message for the height and round we are in."""
        driver, template = self.node.driver, self._template()
        if driver is None or template is None or not self._sends():
            return
        st = driver.state
        for kind, payloads in self.forger.batch(st.height, st.round, st.validator_set, template).items():
            for payload in payloads:
                self._forge(kind, payload)
        self.sim.forged_blocks.update(self.forger.made)
        if self.node.behaviour == FORGE_HUGE and (st.height, st.round) not in self._huge_sent:
            self._huge_sent.add((st.height, st.round))
            announce = self.forger.huge_fetch_proposal(st.height, st.round, st.validator_set, template)
            self.sim.forged_blocks.update(self.forger.served)
            self._forge("proposal", announce)
            # The next height's proposal in unsigned parts of the same size.
            huge = self.forger.huge_block(template, st.height + 1, 0, self.forger.victims(st.validator_set)[0].address,
                                          HUGE_BLOCK_BYTES)
            self.sim.forged_blocks.add(huge.hash())
            proposal = self.forger.proposal(huge, huge.header.proposer)
            data = huge.encode()
            chunks = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
            self._forge("proposal", pack_raw([MSG_PROPOSAL, proposal.encode(), b"", len(chunks)]))
            for index, chunk in enumerate(chunks):
                self._forge("proposal", pack_raw([MSG_PART, huge.header.height, 0, huge.hash(), index,
                                                  len(chunks), chunk, bytes(64)]))

    def forge_decided(self, committed: BlockCommitted) -> None:
        """Votes of the height we just committed, in the other validators' names, conflicting with theirs."""
        driver = self.node.driver
        if driver is None or not self._sends():
            return
        vset = self.node.executor.head_state().get_last_validator_set()
        if vset is None:
            return
        for payload in self.forger.votes(committed.height, committed.commit.round, vset):
            self._forge("vote", payload)

    def send_status(self, height: int) -> None:
        if self._sends():
            self.sim.network.broadcast(self.node.index, StatusMsg(height))

    # --- incoming ------------------------------------------------------------------------

    def _validate(self, peer: str, msg: GossipMsg) -> GossipVerdict:
        g = self.gossip
        validator = {"proposal": g.validate_proposal, "vote": g.validate_vote, "evidence": g.validate_evidence}
        return validator[msg.kind](peer, msg.payload)

    def receive(self, src: int, msg: object) -> None:
        """Handle a message from peer ``src`` (the node's task drains the driver afterwards)."""
        driver = self.node.driver
        if driver is None:
            return
        peer = str(src)
        if isinstance(msg, GossipMsg):
            if msg in self._seen:
                return
            verdict = self._validate(peer, msg)
            if verdict is Verdict.REJECT:
                verdict = Reject()
            self.sim.record_verdict(self.node.index, src, msg,
                                    Verdict.REJECT if isinstance(verdict, Reject) else verdict)
            if isinstance(verdict, Reject):
                self.sim.record_penalty(self.node.index, src, verdict.reason)
                return
            if verdict is not Verdict.ACCEPT:
                return  # not remembered: a resend may matter once we get there
            self._seen[msg] = driver.state.height
            if self.sim.config.relay and self._sends():
                self.sim.network.broadcast(self.node.index, msg, exclude=src)
            if msg.kind == "vote":
                self.gossip.receive_vote(peer, msg.payload)
            elif msg.kind == "evidence":
                self.gossip.receive_evidence(peer, msg.payload)
            else:
                wanted = self.gossip.receive_proposal(peer, msg.payload)
                if wanted is not None:
                    self._fetch_later(src, *wanted)
        elif isinstance(msg, FetchRequest):
            forged = self.forger.serve(msg.block_hash)
            frames = (forged,) if forged is not None else tuple(self.gossip.serve_block(peer, msg.block_hash))
            if self._sends():
                self.sim.network.send(self.node.index, src, FetchReply(msg.request_id, frames))
        elif isinstance(msg, FetchReply):
            self._on_fetched(src, msg)
        elif isinstance(msg, StatusMsg):
            head = self.node.executor.height
            if msg.height <= head and self._sends():
                last = min(head, msg.height + SYNC_BLOCKS - 1)
                blocks = tuple(self.sim.load_committed(self.node, h) for h in range(msg.height, last + 1))
                self.sim.network.send(self.node.index, src, SyncMsg(blocks))
        elif isinstance(msg, SyncMsg):
            driver.deliver_synced_blocks(msg.blocks)

    # --- fetching proposal blocks by hash ---------------------------------------------------

    def _fetch_later(self, src: int, proposal: Proposal, total: int) -> None:
        """Fetch the block now (no parts announced) or after the part wait if the parts do not complete it."""
        if not total:
            self._fetch(src, proposal)
            return
        at = self.sim.now + int(PART_WAIT_S * 1000)

        def check() -> None:
            if self.gossip.is_fetch_needed(proposal):
                self._fetch(src, proposal)

        self.sim.clock.call_at(at, lambda: self.node.run(check))

    def _fetch(self, src: int, proposal: Proposal) -> None:
        others = [i for i in range(self.sim.n) if i not in (src, self.node.index)]
        self._next_request += 1
        self._fetches[self._next_request] = _Fetch(proposal, others)
        self.sim.network.send(self.node.index, src, FetchRequest(self._next_request, proposal.block_hash))

    def _on_fetched(self, src: int, reply: FetchReply) -> None:
        pending = self._fetches.pop(reply.request_id, None)
        if pending is None:
            return
        block = self.gossip.accept_fetched(str(src), pending.proposal.block_hash, list(reply.frames))
        if block is not None:
            self.gossip.deliver_fetched(str(src), block, len(reply.frames[0]), proposal=pending.proposal)
            return
        if pending.peers:
            nxt = pending.peers.pop(0)
            self._next_request += 1
            self._fetches[self._next_request] = pending
            self.sim.network.send(
                self.node.index, nxt, FetchRequest(self._next_request, pending.proposal.block_hash)
            )
