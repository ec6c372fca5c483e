"""The simulation harness: N real consensus drivers, one process, a manual clock and a seeded random source.

``Simulation(SimConfig(seed=..., powers=...)).run()`` writes a real genesis
(``tests.kit.chain.TestChain``: Ed25519 keys, each validator bonding its
power in stake with as many verified compute units, so its voting power
``isqrt(stake x compute)`` is exactly the configured power), starts one
``SimNode`` per validator (the shipped ``ConsensusDriver`` with its real
executor, store, WAL and signer), connects them over the in-memory network
with the configured fault rules, and runs until every honest validator has
committed ``target_height`` blocks (or the simulated time limit passes).
Power changes are real state changes: bond and unbond transactions that the
validators' blocks carry, taking effect at the next epoch boundary.

Safety is checked while it runs: two honest validators committing different
blocks at a height, or an honest validator sending two conflicting votes, is
recorded at once. Every run prints its seed so a failure can be replayed;
failing seeds are pinned in the tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from consensus.bft.config import TimeoutConfig
from consensus.blocks import Block
from consensus.crypto import verify_signature
from consensus.errors import InvalidSignature
from consensus.evidence import (
    compute_conflicting_proposal_evidence,
    compute_duplicate_vote_evidence,
    decode_evidence,
)
from consensus.state import State
from consensus.transition import TransitionResult
from consensus.txs import Bond, SignedTx, Unbond
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit, Proposal, Vote
from node.engine.executor import BlockCommitted
from p2p.interface import Verdict
from tests.kit.chain import TestChain

from .faults import HONEST, SILENT, SimCrash
from .network import ManualClock, Network, NetworkRules
from .simnode import GossipMsg, SimNode

#: Simulation timeouts: the devnet shape, scaled down so runs stay short.
FAST_TIMEOUTS = TimeoutConfig(
    propose_ms=300,
    propose_delta_ms=150,
    prevote_ms=150,
    prevote_delta_ms=75,
    precommit_ms=150,
    precommit_delta_ms=75,
    commit_ms=100,
)


@dataclass
class SimConfig:
    """One simulation run."""

    seed: int
    powers: tuple[int, ...]
    """Voting power of each validator at genesis (0: an account that is not in the set)."""
    behaviours: dict[int, str] = field(default_factory=dict)
    rules: NetworkRules = field(default_factory=NetworkRules)
    target_height: int = 10
    max_time_ms: int = 300_000
    timeouts: TimeoutConfig = FAST_TIMEOUTS
    gossip_ms: int = 150
    """Period of each node's gossip tick: re-send its messages, ask for blocks when stalled."""
    sync_stall_ms: int = 300
    """A node asks its peers for blocks after this long without a commit."""
    relay: bool = True
    equivocation_prob: float = 0.5
    byzantine_until_height: int = 1 << 30
    """Byzantine nodes behave honestly from this height on (lets evidence settle)."""
    data_dir: Path | None = None
    persistent_nodes: tuple[int, ...] = ()
    """Nodes that keep a real signer file and WAL under ``data_dir``."""
    crash_nodes: tuple[int, ...] = ()
    """Nodes killed at random crash points and restarted from disk (they must be persistent)."""
    crash_every: tuple[int, int] = (20, 120)
    """A crash after a random number of crash points in this range."""
    downtime_ms: tuple[int, int] = (20, 400)
    tear_wal_on_crash: bool = False
    """Half of the crashes also leave a torn, half-written record at the end of the WAL."""
    epoch_blocks: int = 1_000
    """Blocks per epoch (genesis parameter): the validator set changes only after such a block."""
    power_changes: tuple[tuple[int, int], ...] = ()
    """``(node, new power)``: the node's operator bonds or unbonds stake to reach that power,
    with a transaction submitted at the start; power 0 leaves the set, and a node with
    genesis power 0 joins it."""
    quiet: bool = False


@dataclass(frozen=True)
class ChainEntry:
    """A committed block, its commit and the state root after it, as a node's store holds them."""

    block: Block
    commit: Commit
    state_root: bytes

    @property
    def height(self) -> int:
        return self.block.header.height


@dataclass
class SimResult:
    seed: int
    chains: dict[int, list[ChainEntry]]
    honest: tuple[int, ...]
    safety_violations: list[str]
    equivocations: dict[bytes, str]
    """Evidence hash of every equivocation a byzantine node sent, with what it was."""
    equivocators: dict[bytes, bytes]
    """The validator that committed each equivocation, by evidence hash."""
    detected: dict[int, set[bytes]]
    heal_checks: list[tuple[int, int, int, int]]
    """(heal time, round reached at the frontier when healing, decision round, commit time)."""
    end_ms: int
    reached_target: bool
    rejected_inputs: int
    messages_sent: int
    crashes: int
    replay_checks: int
    refused_signatures: int
    torn_tails_repaired: int
    penalties: list[tuple[int, int, str]]
    """(penalising node, penalised peer, reason) of every penalty."""
    forged_verdicts: list[tuple[int, int, str, Verdict]]
    """(validating node, forwarding peer, kind, verdict) for every forged payload a node validated."""

    def block_hashes(self, node: int) -> list[bytes]:
        return [e.block.hash() for e in self.chains[node]]

    def state_hashes(self, node: int) -> list[bytes]:
        return [e.state_root for e in self.chains[node]]


def compute_stake_for_power(power: int, compute: int) -> int:
    """Return the least stake whose voting power ``isqrt(stake * compute)`` reaches ``power``."""
    return -(-power * power // compute)


class Simulation:
    """A network of simulated validators running the real driver."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.seed = config.seed
        self.n = len(config.powers)
        for i in config.crash_nodes:
            if i not in config.persistent_nodes:
                raise ValueError(f"crash node {i} must be persistent")
        if config.persistent_nodes and config.data_dir is None:
            raise ValueError("persistent nodes need a data_dir")
        joins = {i: p for i, p in config.power_changes if config.powers[i] == 0 and p > 0}
        self.computes = [p if p > 0 else joins.get(i, 1) for i, p in enumerate(config.powers)]
        self.chain = TestChain(
            n_validators=self.n,
            n_accounts=0,
            seed=b"cstake-sim",
            chain_id="cstake-sim",
            genesis_time_ms=0,
            params={
                "min_self_bond": 1,
                "epoch_blocks": config.epoch_blocks,
                # No compute service runs here: challenges must not expire and reshape the set.
                "poc_commit_deadline_blocks": 1 << 30,
            },
            stakes=list(config.powers),
            computes=self.computes,
        )
        self.genesis = self.chain.genesis
        self.chain_id = self.chain.chain_id
        self.txs = [self._stake_tx(i, p) for i, p in config.power_changes]
        self.rng = random.Random(config.seed)
        self.clock = ManualClock()
        self.network = Network(self.clock, self.rng, config.rules, self._deliver, self.n)
        self._sig_cache: dict[tuple[bytes, bytes, bytes], bool] = {}
        #: Block executions by (state root before, block hash), shared by the nodes' executors.
        self.executions: dict[tuple[bytes, bytes], TransitionResult] = {}
        #: Payloads a forging node made up, and the verdict of every node that validated one.
        self.forged: set[bytes] = set()
        #: Hashes of the blocks byzantine nodes made up (forged, or padded past every limit).
        self.forged_blocks: set[bytes] = set()
        self._committed_since_check = True
        self.nodes: list[SimNode] = []
        for i in range(self.n):
            data_dir = None
            if i in config.persistent_nodes and config.data_dir is not None:
                data_dir = config.data_dir / f"node{i}"
            self.nodes.append(SimNode(self, i, config.behaviours.get(i, HONEST), data_dir))
        self.honest = tuple(i for i in range(self.n) if config.behaviours.get(i, HONEST) == HONEST)
        self.safety_violations: list[str] = []
        self.equivocations: dict[bytes, str] = {}
        self.equivocators: dict[bytes, bytes] = {}
        self.sent_votes: dict[tuple[bytes, int, int, int], bytes] = {}
        #: (penalising node, penalised peer, reason) for every penalty a node gave a peer.
        self.penalties: list[tuple[int, int, str]] = []
        self.forged_verdicts: list[tuple[int, int, str, Verdict]] = []
        self._decided: dict[int, bytes] = {}
        self._valsets: dict[int, ValidatorSet] = {}
        self._heal_watch: list[tuple[int, int, int]] = []
        self.heal_checks: list[tuple[int, int, int, int]] = []

    # --- services the nodes use ------------------------------------------------

    @property
    def now(self) -> int:
        return self.clock.now_ms()

    def _stake_tx(self, node: int, power: int) -> SignedTx:
        """The transaction that moves ``node``'s self-bond to what ``power`` needs."""
        key = self.chain.operator_keys[node]
        current = self.config.powers[node]
        target = compute_stake_for_power(power, self.computes[node]) if power > 0 else 0
        body = Bond(target - current) if target > current else Unbond(current - target)
        return self.chain.tx(key, body)

    def pending_txs(self, head: State) -> list[SignedTx]:
        """The submitted transactions the head state has not applied yet."""
        return [t for t in self.txs if t.payload.nonce >= head.get_account(t.payload.sender).nonce]

    def valset_at(self, height: int) -> ValidatorSet:
        """The validator set that decided ``height`` (as the committing nodes' state recorded it)."""
        return self._valsets[height]

    def verify(self, pubkey: bytes, message: bytes, signature: bytes) -> None:
        """Real Ed25519 verification, memoised: every node checks the same messages."""
        key = (pubkey, message, signature)
        ok = self._sig_cache.get(key)
        if ok is None:
            try:
                verify_signature(pubkey, message, signature)
                ok = True
            except InvalidSignature:
                ok = False
            self._sig_cache[key] = ok
        if not ok:
            raise InvalidSignature("signature does not verify")

    def load_committed(self, node: SimNode, height: int) -> tuple[Block, Commit]:
        """Block ``height`` and its commit from ``node``'s store."""
        blocks = node.executor.store.blocks
        raw_block, raw_commit = blocks.load_block(height), blocks.load_commit(height)
        if raw_block is None or raw_commit is None:
            raise AssertionError(f"node {node.index} lost block {height}")
        return Block.decode(raw_block, max_bytes=Block.MAX_BYTES), Commit.decode(raw_commit)

    def guard(self, node: SimNode, action: Callable[[], None]) -> None:
        """Run ``action`` for ``node``; a crash point kills it and schedules its restart."""
        try:
            action()
        except SimCrash as crash:
            node.crash(crash)
            if self.config.tear_wal_on_crash and self.rng.random() < 0.5:
                node.tear_wal()
            lo, hi = self.config.downtime_ms
            self.clock.call_at(self.now + self.rng.randint(lo, hi), lambda: self._restart(node))

    def _start(self, node: SimNode) -> None:
        if node.index in self.config.crash_nodes:
            lo, hi = self.config.crash_every
            node.crash_countdown = self.rng.randint(lo, hi)
        self.guard(node, node.start)

    def _restart(self, node: SimNode) -> None:
        self._start(node)

    def _deliver(self, src: int, dst: int, msg: object) -> None:
        node = self.nodes[dst]
        node.run(lambda: node.peer.receive(src, msg))

    def record_penalty(self, by: int, peer: int, reason: str) -> None:
        """Node ``by`` penalised ``peer`` (a REJECT verdict, or a fault the adapter or driver reported)."""
        self.penalties.append((by, peer, reason))

    def record_verdict(self, by: int, peer: int, msg: GossipMsg, verdict: Verdict) -> None:
        """Node ``by`` validated ``msg`` from ``peer``: remembered when the payload was forged."""
        if msg.payload in self.forged:
            self.forged_verdicts.append((by, peer, msg.kind, verdict))

    def record_vote_sent(self, node: SimNode, vote: Vote) -> None:
        """Safety: an honest validator never lets two conflicting votes out."""
        if node.index not in self.honest:
            return
        key = (vote.validator, vote.height, vote.round, vote.vote_type)
        first = self.sent_votes.setdefault(key, vote.block_hash)
        if first != vote.block_hash:
            self.safety_violations.append(
                f"honest node {node.index} sent conflicting votes at height {vote.height} "
                f"round {vote.round} type {vote.vote_type}"
            )

    def record_equivocation(self, vote_a: Vote, vote_b: Vote) -> None:
        ev = compute_duplicate_vote_evidence(vote_a, vote_b)
        self.equivocations[ev.evidence_hash()] = (
            f"duplicate vote h={vote_a.height} r={vote_a.round} t={vote_a.vote_type}"
        )
        self.equivocators[ev.evidence_hash()] = ev.validator

    def record_proposal_equivocation(self, prop_a: Proposal, prop_b: Proposal) -> None:
        ev = compute_conflicting_proposal_evidence(prop_a, prop_b)
        self.equivocations[ev.evidence_hash()] = f"conflicting proposal h={prop_a.height} r={prop_a.round}"
        self.equivocators[ev.evidence_hash()] = ev.validator

    def on_commit(self, node: SimNode, committed: BlockCommitted) -> None:
        """Agreement: no two honest validators commit different blocks at one height."""
        h = committed.height
        self._committed_since_check = True
        if h not in self._valsets:
            last = node.executor.head_state().get_last_validator_set()
            if last is not None:
                self._valsets[h] = last
        if node.index not in self.honest:
            return
        first = self._decided.setdefault(h, committed.block_hash)
        if first != committed.block_hash:
            self.safety_violations.append(
                f"honest node {node.index} committed {committed.block_hash.hex()[:16]} at height {h}, "
                f"another honest node committed {first.hex()[:16]}"
            )
        if first == committed.block_hash and len(self._decided) == h:
            # The first commit of a new height: does it close a heal watch?
            still: list[tuple[int, int, int]] = []
            for heal_ms, height, round_reached in self._heal_watch:
                if h == height:
                    self.heal_checks.append((heal_ms, round_reached, committed.commit.round, self.now))
                else:
                    still.append((heal_ms, height, round_reached))
            self._heal_watch = still

    def _on_heal(self, heal_ms: int) -> None:
        frontier = max(self.nodes[i].height for i in self.honest) + 1
        rounds = [
            node.driver.state.round
            for node in (self.nodes[i] for i in self.honest)
            if node.alive and node.driver is not None and node.driver.state.height == frontier
        ]
        self._heal_watch.append((heal_ms, frontier, max(rounds) if rounds else 0))

    # --- running -----------------------------------------------------------------

    def run(self) -> SimResult:
        cfg = self.config
        if not cfg.quiet:
            print(
                f"sim seed={cfg.seed} powers={list(cfg.powers)} "
                f"behaviours={ {k: v for k, v in sorted(cfg.behaviours.items())} }"
            )
        for node in self.nodes:
            self.clock.call_at(0, lambda nd=node: self._start(nd))  # type: ignore[misc]
            self._schedule_gossip(node, self.rng.randint(1, cfg.gossip_ms))
        for part in cfg.rules.partitions:
            self.clock.call_at(part.end_ms, lambda t=part.end_ms: self._on_heal(t))  # type: ignore[misc]
        try:
            while self.clock.run_next():
                if self.safety_violations or self.now > cfg.max_time_ms:
                    break
                # A heal is measured up to the next commit: the run waits for it.
                if self._committed_since_check and not self._heal_watch:
                    self._committed_since_check = False
                    if self._at_target():
                        break
        finally:
            for node in self.nodes:
                node.shutdown()
        return SimResult(
            seed=cfg.seed,
            chains={node.index: self._chain_of(node) for node in self.nodes},
            honest=self.honest,
            safety_violations=list(self.safety_violations),
            equivocations=dict(self.equivocations),
            equivocators=dict(self.equivocators),
            detected={node.index: self._detected_by(node) for node in self.nodes},
            heal_checks=list(self.heal_checks),
            end_ms=self.now,
            reached_target=self._at_target(),
            rejected_inputs=len(self.penalties) + sum(n.rejected_inputs for n in self.nodes),
            penalties=list(self.penalties),
            forged_verdicts=list(self.forged_verdicts),
            messages_sent=self.network.sent,
            crashes=sum(len(n.crashes) for n in self.nodes),
            replay_checks=sum(n.replay_checks for n in self.nodes),
            refused_signatures=sum(n.refused_signatures for n in self.nodes),
            torn_tails_repaired=sum(n.torn_tails_repaired for n in self.nodes),
        )

    def _at_target(self) -> bool:
        return all(self.nodes[i].height >= self.config.target_height for i in self.honest)

    def _chain_of(self, node: SimNode) -> list[ChainEntry]:
        store = node.executor.store
        out = []
        for h in range(1, node.height + 1):
            block, commit = self.load_committed(node, h)
            out.append(ChainEntry(block, commit, store.state_root_at(h) or b""))
        return out

    def _detected_by(self, node: SimNode) -> set[bytes]:
        """The equivocations ``node`` knows of: in its evidence pool or in its chain."""
        known = {d for d in self.equivocations if node.driver is not None and node.driver.pool.is_known(d)}
        for h in range(1, node.height + 1):
            block, _ = self.load_committed(node, h)
            known.update(decode_evidence(i.kind, i.data).evidence_hash() for i in block.evidence)
        return known

    def _schedule_gossip(self, node: SimNode, at: int) -> None:
        def tick() -> None:
            node.run(node.gossip_tick)
            self._schedule_gossip(node, self.now + self.config.gossip_ms)

        self.clock.call_at(at, tick)


def check_agreement(result: SimResult) -> None:
    """Raise AssertionError unless honest validators agree on every height."""
    assert not result.safety_violations, result.safety_violations
    longest = max(len(result.chains[i]) for i in result.honest)
    for h in range(longest):
        hashes = {
            result.chains[i][h].block.hash() for i in result.honest if len(result.chains[i]) > h
        }
        assert len(hashes) == 1, f"seed {result.seed}: honest validators disagree at height {h + 1}"


def committed_evidence(result: SimResult, node: int) -> list[bytes]:
    """Hashes of every piece of evidence in ``node``'s chain, in order (with repeats)."""
    out: list[bytes] = []
    for entry in result.chains[node]:
        for item in entry.block.evidence:
            out.append(decode_evidence(item.kind, item.data).evidence_hash())
    return out


__all__ = [
    "FAST_TIMEOUTS",
    "HONEST",
    "SILENT",
    "ChainEntry",
    "SimConfig",
    "SimResult",
    "Simulation",
    "check_agreement",
    "committed_evidence",
]
