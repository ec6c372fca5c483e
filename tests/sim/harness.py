"""The simulation harness: N validators, one process, a manual clock and a seeded random source.

``Simulation(SimConfig(seed=..., powers=...)).run()`` builds the validators
(real Ed25519 keys, a real validator set with proposer priorities), connects
them over the in-memory network with the configured fault rules, runs until
every honest validator has committed ``target_height`` blocks (or the
simulated time limit passes) and returns a ``SimResult``. Safety is checked
while it runs: two honest validators committing different blocks at a height,
or an honest validator sending two conflicting votes, is recorded at once.
Every run prints its seed so a failure can be replayed; failing seeds are
pinned in the tests.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from consensus.bft.config import TimeoutConfig
from consensus.crypto import PrivateKey, verify_signature
from consensus.errors import InvalidSignature
from consensus.evidence import (
    compute_conflicting_proposal_evidence,
    compute_duplicate_vote_evidence,
    decode_evidence,
)
from consensus.hashing import hash32
from consensus.validator_set import (
    ValidatorSet,
    compute_genesis_validator_set,
    compute_next_validator_set,
)
from consensus.votes import Proposal, Vote

from .chain import ChainEntry
from .network import EventQueue, Network, NetworkRules
from .simnode import HONEST, SILENT, SimCrash, SimNode

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
    behaviours: dict[int, str] = field(default_factory=dict)
    rules: NetworkRules = field(default_factory=NetworkRules)
    target_height: int = 10
    max_time_ms: int = 300_000
    timeouts: TimeoutConfig = FAST_TIMEOUTS
    gossip_ms: int = 150
    relay: bool = True
    equivocation_prob: float = 0.5
    byzantine_until_height: int = 1 << 30
    """Byzantine nodes behave honestly from this height on (lets evidence settle)."""
    data_dir: Path | None = None
    persistent_nodes: tuple[int, ...] = ()
    """Nodes that keep a real signer file and WAL under ``data_dir``."""
    crash_nodes: tuple[int, ...] = ()
    """Nodes killed at random crash points and restarted from disk."""
    crash_every: tuple[int, int] = (20, 120)
    """A crash after a random number of crash points in this range."""
    downtime_ms: tuple[int, int] = (20, 400)
    tear_wal_on_crash: bool = False
    """Half of the crashes also leave a torn, half-written record at the end of the WAL."""
    evidence_max_age: int = 100
    power_changes: tuple[tuple[int, int, int], ...] = ()
    """Epoch changes ``(first height, node, new power)``; power 0 removes, a node with
    genesis power 0 joins when given power."""
    max_block_evidence: int = 16
    quiet: bool = False


@dataclass
class SimResult:
    seed: int
    chains: dict[int, list[ChainEntry]]
    honest: tuple[int, ...]
    safety_violations: list[str]
    equivocations: dict[bytes, str]
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

    def block_hashes(self, node: int) -> list[bytes]:
        return [e.block.hash() for e in self.chains[node]]

    def state_hashes(self, node: int) -> list[bytes]:
        return [e.state_hash for e in self.chains[node]]


def validator_key(index: int) -> PrivateKey:
    """The deterministic key of validator ``index`` (the same in every run)."""
    return PrivateKey.from_seed(hash32(b"cstake-sim-validator/%d" % index))


class Simulation:
    """A network of simulated validators."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.seed = config.seed
        self.n = len(config.powers)
        self.chain_id = "cstake-sim"
        self.timeouts = config.timeouts
        self.relay = config.relay
        self.equivocation_prob = config.equivocation_prob
        self.evidence_max_age = config.evidence_max_age
        self.max_block_evidence = config.max_block_evidence
        self.rng = random.Random(config.seed)
        self.queue = EventQueue()
        self.network = Network(self.queue, self.rng, config.rules, self._deliver, self.n)
        keys = [validator_key(i) for i in range(self.n)]
        self._valsets: list[ValidatorSet] = [
            compute_genesis_validator_set(
                [
                    (k.address(), k.public_key.raw, p)
                    for k, p in zip(keys, config.powers, strict=True)
                    if p > 0  # power 0: not a validator until an epoch brings it in
                ]
            )
        ]
        self._keys = keys
        self._sig_cache: dict[tuple[bytes, bytes, bytes], bool] = {}
        self.nodes: list[SimNode] = []
        for i, key in enumerate(keys):
            data_dir = None
            if i in config.persistent_nodes:
                if config.data_dir is None:
                    raise ValueError("persistent nodes need a data_dir")
                data_dir = config.data_dir / f"node{i}"
            self.nodes.append(
                SimNode(self, i, key, config.behaviours.get(i, HONEST), data_dir=data_dir)
            )
        self.honest = tuple(i for i in range(self.n) if config.behaviours.get(i, HONEST) == HONEST)
        self.safety_violations: list[str] = []
        self.equivocations: dict[bytes, str] = {}
        self.sent_votes: dict[tuple[bytes, int, int, int], bytes] = {}
        self._decided: dict[int, bytes] = {}
        self.rejected_inputs = 0
        self._heal_watch: list[tuple[int, int, int]] = []
        self.heal_checks: list[tuple[int, int, int, int]] = []

    # --- services the nodes use ------------------------------------------------

    @property
    def now(self) -> int:
        return self.queue.now_ms

    def valset_at(self, height: int) -> ValidatorSet:
        """The validator set of ``height``: priorities advance each height, powers change
        only at the epoch boundaries listed in ``power_changes``."""
        while len(self._valsets) < height:
            nxt = len(self._valsets) + 1
            updates = [
                (self._keys[i].address(), self._keys[i].public_key.raw, p)
                for h, i, p in self.config.power_changes
                if h == nxt
            ]
            self._valsets.append(compute_next_validator_set(self._valsets[-1], updates))
        return self._valsets[height - 1]

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

    def guard(self, node: SimNode, action: Callable[[], None]) -> None:
        """Run ``action`` for ``node``; a crash point kills it and schedules its restart."""
        try:
            action()
        except SimCrash as crash:
            node.crash(crash.point, crash.pending)
            if self.config.tear_wal_on_crash and node.data_dir and self.rng.random() < 0.5:
                # The record being written when power failed: a header and part of its body.
                torn = struct.pack(">II", 200, 0) + self.rng.randbytes(self.rng.randint(0, 150))
                with open(node.data_dir / "consensus.wal", "ab") as f:
                    f.write(torn[: self.rng.randint(1, len(torn))])
            lo, hi = self.config.downtime_ms
            self.queue.schedule(self.now + self.rng.randint(lo, hi), lambda: self._restart(node))

    def _restart(self, node: SimNode) -> None:
        lo, hi = self.config.crash_every
        node.crash_countdown = self.rng.randint(lo, hi)
        self.guard(node, node.restart)

    def _deliver(self, src: int, dst: int, msg: object) -> None:
        node = self.nodes[dst]
        self.guard(node, lambda: node.deliver(src, msg))

    def is_byzantine_active(self, node: SimNode) -> bool:
        return node.state.height < self.config.byzantine_until_height

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

    def record_proposal_equivocation(self, prop_a: Proposal, prop_b: Proposal) -> None:
        ev = compute_conflicting_proposal_evidence(prop_a, prop_b)
        self.equivocations[ev.evidence_hash()] = (
            f"conflicting proposal h={prop_a.height} r={prop_a.round}"
        )

    def on_commit(self, node: SimNode, entry: ChainEntry) -> None:
        """Agreement: no two honest validators commit different blocks at one height."""
        if node.index not in self.honest:
            return
        h = entry.block.height
        block_hash = entry.block.hash()
        first = self._decided.setdefault(h, block_hash)
        if first != block_hash:
            self.safety_violations.append(
                f"honest node {node.index} committed {block_hash.hex()[:16]} at height {h}, "
                f"another honest node committed {first.hex()[:16]}"
            )
        if first == block_hash and len(self._decided) == h:
            # The first commit of a new height: does it close a heal watch?
            still: list[tuple[int, int, int]] = []
            for heal_ms, height, round_reached in self._heal_watch:
                if h == height:
                    self.heal_checks.append((heal_ms, round_reached, entry.commit.round, self.now))
                else:
                    still.append((heal_ms, height, round_reached))
            self._heal_watch = still

    def _on_heal(self, heal_ms: int) -> None:
        frontier = max(len(self.nodes[i].chain) for i in self.honest) + 1
        rounds = [
            self.nodes[i].state.round
            for i in self.honest
            if self.nodes[i].state.height == frontier and self.nodes[i].alive
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
            if node.index in cfg.crash_nodes:
                lo, hi = cfg.crash_every
                node.crash_countdown = self.rng.randint(lo, hi)
            self.queue.schedule(0, lambda nd=node: self.guard(nd, nd.start))
            self._schedule_gossip(node, self.rng.randint(1, cfg.gossip_ms))
        for part in cfg.rules.partitions:
            self.queue.schedule(part.end_ms, lambda t=part.end_ms: self._on_heal(t))
        reached = False
        while self.queue.run_next():
            if self.safety_violations or self.now > cfg.max_time_ms:
                break
            if all(len(self.nodes[i].chain) >= cfg.target_height for i in self.honest):
                reached = True
                break
        return SimResult(
            seed=cfg.seed,
            chains={n.index: list(n.chain) for n in self.nodes},
            honest=self.honest,
            safety_violations=list(self.safety_violations),
            equivocations=dict(self.equivocations),
            detected={n.index: set(n.detected) for n in self.nodes},
            heal_checks=list(self.heal_checks),
            end_ms=self.now,
            reached_target=reached,
            rejected_inputs=self.rejected_inputs,
            messages_sent=self.network.sent,
            crashes=sum(len(n.crashes) for n in self.nodes),
            replay_checks=sum(n.replay_checks for n in self.nodes),
            refused_signatures=sum(n.refused_signatures for n in self.nodes),
            torn_tails_repaired=sum(n.torn_tails_repaired for n in self.nodes),
        )

    def _schedule_gossip(self, node: SimNode, at: int) -> None:
        def tick() -> None:
            self.guard(node, node.on_gossip_tick)
            self._schedule_gossip(node, self.now + self.config.gossip_ms)

        self.queue.schedule(at, tick)


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
    "SimConfig",
    "SimResult",
    "Simulation",
    "check_agreement",
    "committed_evidence",
    "validator_key",
]
