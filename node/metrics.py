"""The node's Prometheus metrics, in a per-node registry (never the process-global one).

Several nodes can run in one process (tests, simulations), so each owns a
``CollectorRegistry``; GET /metrics renders exactly that registry. The daemon
calls the ``on_*`` / ``set_*`` methods on events; counters kept elsewhere
(p2p stats, mempool stats) are read at scrape time by a collector, so the hot
paths of those layers pay nothing.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from consensus.crypto import encode_address
from node.version import get_package_version

#: Seconds between blocks: devnet targets ~1 s, mainnet a few seconds.
BLOCK_INTERVAL_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
#: Seconds to execute and persist one block.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROUND_BUCKETS = (1, 2, 3, 4, 5, 8, 13, 21)
#: Seconds a proof-of-compute answer (commitment or openings) takes the prover.
PROVER_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# ``_created`` series double the exposition and nothing here reads them (process-wide switch).
disable_created_metrics()  # type: ignore[no-untyped-call]


def _attribute_counters(prefix: str, source: object, fields: Iterable[tuple[str, str]]) -> Iterator[Any]:
    """One counter per (attribute, help) of ``source``, named ``prefix + attribute`` (0 where absent)."""
    for name, help_ in fields:
        fam = CounterMetricFamily(prefix + name, help_)
        fam.add_metric([], float(getattr(source, name, 0)))
        yield fam


class _StatsCollector(Collector):
    """Exports counters held by another layer, read when Prometheus scrapes."""

    def __init__(self) -> None:
        self.p2p: Callable[[], Mapping[str, Any]] | None = None
        self.mempool: Callable[[], Any] | None = None
        self.tx_gossip: Callable[[], Any] | None = None
        self.proposals: object | None = None

    def collect(self) -> Iterator[Any]:
        if self.p2p is not None:
            snap = self.p2p()
            for name, help_ in (
                ("bytes_in", "bytes received from peers"),
                ("bytes_out", "bytes sent to peers"),
                ("messages_in", "gossip messages received"),
                ("messages_out", "gossip messages sent"),
            ):
                fam = CounterMetricFamily(f"cstake_p2p_{name}", help_)
                fam.add_metric([], float(snap.get(name, 0)))
                yield fam
            drops = CounterMetricFamily(
                "cstake_p2p_dropped", "messages dropped, by reason", labels=["reason"]
            )
            for reason, n in sorted(dict(snap.get("dropped", {})).items()):
                drops.add_metric([reason], float(n))
            yield drops
            pen = CounterMetricFamily("cstake_p2p_peers_penalised", "peer penalties")
            pen.add_metric([], float(snap.get("peers_penalised", 0)))
            yield pen
        if self.tx_gossip is not None:
            yield from _attribute_counters("cstake_tx_gossip_", self.tx_gossip(), (
                ("txs_accepted", "gossiped transactions accepted into the mempool"),
                ("txs_ignored", "gossiped transactions ignored (not relayed, no penalty)"),
                ("txs_rejected", "gossiped transactions rejected (their forwarder penalised)"),
                ("batches_over_budget", "tx batches left unchecked: the forwarder's validation budget ran out"),
                ("txs_unchecked", "transactions of those batches left unchecked"),
                ("batches_oversize", "tx batches refused for their size"),
            ))
        if self.proposals is not None:
            yield from _attribute_counters("cstake_proposal_", self.proposals, (
                ("blocks_rebuilt", "compact proposal blocks rebuilt from the mempool"),
                ("txs_requested", "transactions of compact proposal blocks asked of the sender (not in our mempool)"),
                ("blocks_fetched", "proposal blocks fetched whole by hash"),
            ))
        if self.mempool is not None:
            stats = self.mempool()
            added = CounterMetricFamily("cstake_mempool_added", "transactions admitted")
            added.add_metric([], float(stats.added))
            yield added
            rej = CounterMetricFamily(
                "cstake_mempool_rejected", "transactions refused, by reason", labels=["reason"]
            )
            for reason, n in sorted(stats.rejected.items()):
                rej.add_metric([reason], float(n))
            yield rej
            ev = CounterMetricFamily(
                "cstake_mempool_evicted", "transactions evicted, by reason", labels=["reason"]
            )
            for reason, n in sorted(stats.evicted.items()):
                ev.add_metric([reason], float(n))
            yield ev


class NodeMetrics:
    """Every metric of one node, registered in ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.height = Gauge("cstake_height", "latest committed height", registry=r)
        self.block_interval = Histogram(
            "cstake_block_interval_seconds",
            "block time difference between consecutive committed blocks",
            buckets=BLOCK_INTERVAL_BUCKETS,
            registry=r,
        )
        self.rounds = Histogram(
            "cstake_rounds_per_height", "consensus rounds needed per height (1 = decided in round 0)",
            buckets=ROUND_BUCKETS, registry=r,
        )
        self.txs_committed = Counter("cstake_txs_committed", "transactions committed", registry=r)
        self.txs_failed = Counter(
            "cstake_txs_failed", "committed transactions with a non-zero result code", registry=r
        )
        self.commit_duration = Histogram(
            "cstake_commit_duration_seconds", "time to execute and persist a block",
            buckets=COMMIT_BUCKETS, registry=r,
        )
        self.mempool_size = Gauge("cstake_mempool_size", "transactions in the mempool", registry=r)
        self.mempool_bytes = Gauge("cstake_mempool_bytes", "bytes in the mempool", registry=r)
        self.peers = Gauge("cstake_peers", "connected peers", registry=r)
        self.missed_blocks = Counter(
            "cstake_missed_blocks", "commits a validator's precommit is missing from",
            ["validator"], registry=r,
        )
        self.byzantine_validators = Gauge(
            "cstake_byzantine_validators", "validators with committed double-sign evidence", registry=r
        )
        self.slashes = Counter("cstake_slashes", "slashes committed, by fault", ["fault"], registry=r)
        self.jailed_validators = Gauge("cstake_jailed_validators", "validators in jail", registry=r)
        self.validator_set_size = Gauge("cstake_validators", "validators in the active set", registry=r)
        self.total_power = Gauge("cstake_total_voting_power", "total voting power of the set", registry=r)
        self.rpc_requests = Counter(
            "cstake_rpc_requests", "JSON-RPC calls, by method", ["method"], registry=r
        )
        self.rpc_errors = Counter("cstake_rpc_errors", "JSON-RPC errors, by code", ["code"], registry=r)
        self.rpc_connections_refused = Counter(
            "cstake_rpc_connections_refused", "RPC connections closed at the connection limit",
            registry=r,
        )
        self.ws_dropped = Counter(
            "cstake_ws_slow_consumers_dropped", "WebSocket subscribers dropped for falling behind",
            registry=r,
        )
        self.build_info = Gauge(
            "cstake_build_info", "always 1: the node's version and Python", ["version", "python"], registry=r
        )
        self.build_info.labels(version=get_package_version(), python=platform.python_version()).set(1)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        # Consensus progress of this node.
        self.round = Gauge("cstake_consensus_round", "round of the height being decided", registry=r)
        self.syncing = Gauge("cstake_syncing", "1 while block sync is catching the node up", registry=r)
        # This node's own validator (absent from the set: active 0, power 0).
        self.own_active = Gauge("cstake_validator_active", "1 if this node's validator is in the set", registry=r)
        self.own_power = Gauge("cstake_validator_voting_power", "this node's validator's voting power", registry=r)
        self.own_jailed = Gauge("cstake_validator_jailed", "1 if this node's validator is jailed", registry=r)
        self.own_missed = Counter(
            "cstake_validator_missed_blocks", "commits without this node's validator's precommit", registry=r
        )
        self.own_last_signed = Gauge(
            "cstake_validator_last_signed_height", "latest commit holding this node's precommit", registry=r
        )
        # Proof of compute and jobs, for the NFTs this node's validator serves.
        self.poc_challenges = Counter(
            "cstake_poc_challenges", "challenges of this validator's NFTs resolved, by outcome",
            ["outcome"], registry=r,
        )
        self.poc_verified_units = Gauge(
            "cstake_poc_verified_units", "verified compute units of the NFTs bound to this validator", registry=r
        )
        self.prover_duration = Histogram(
            "cstake_prover_duration_seconds", "time the prover took per answer, by phase", ["phase"],
            buckets=PROVER_BUCKETS, registry=r,
        )
        self.jobs = Gauge("cstake_jobs", "marketplace jobs on chain, by status", ["status"], registry=r)
        self.overclaimed = Gauge(
            "cstake_compute_overclaimed_nfts",
            "served NFTs whose claim exceeds what this machine's prover measured at start", registry=r,
        )
        self._stats = _StatsCollector()
        r.register(self._stats)
        self._last_block_time_ms: int | None = None
        self._byzantine: set[bytes] = set()

    # -- events the daemon reports -------------------------------------------------------

    def on_block_committed(
        self,
        *,
        height: int,
        time_ms: int,
        n_txs: int,
        round: int = 0,
        commit_seconds: float | None = None,
        failed_txs: int = 0,
    ) -> None:
        """A block was committed: height, interval, rounds, transactions, commit time."""
        self.height.set(height)
        if self._last_block_time_ms is not None and time_ms >= self._last_block_time_ms:
            self.block_interval.observe((time_ms - self._last_block_time_ms) / 1000)
        self._last_block_time_ms = time_ms
        self.rounds.observe(round + 1)
        self.txs_committed.inc(n_txs)
        if failed_txs:
            self.txs_failed.inc(failed_txs)
        if commit_seconds is not None:
            self.commit_duration.observe(commit_seconds)

    def on_commit_signatures(
        self, validators: Iterable[bytes], signers: Iterable[bytes], *, height: int = 0, own: bytes | None = None
    ) -> None:
        """Count a missed block for every member of ``validators`` that did not sign (``own``: this node's)."""
        signed = set(signers)
        members = list(validators)
        for address in members:
            if address not in signed:
                self.missed_blocks.labels(validator=encode_address(address)).inc()
        if own is not None and own in members:
            if own in signed:
                self.own_last_signed.set(height)
            else:
                self.own_missed.inc()

    def set_own_validator(self, *, active: bool, power: int, jailed: bool) -> None:
        """This node's validator as the latest committed state has it."""
        self.own_active.set(1 if active else 0)
        self.own_power.set(power)
        self.own_jailed.set(1 if jailed else 0)

    def set_consensus(self, *, round: int, syncing: bool) -> None:
        self.round.set(round)
        self.syncing.set(1 if syncing else 0)

    def on_challenge_resolved(self, outcome: str) -> None:
        """A challenge of an NFT this validator serves ended: ``passed``, ``failed`` or ``missed``."""
        self.poc_challenges.labels(outcome=outcome).inc()

    def on_prover_answer(self, phase: str, seconds: float) -> None:
        """The prover answered (``phase``: commit or openings) in ``seconds``."""
        self.prover_duration.labels(phase=phase).observe(seconds)

    def set_overclaimed(self, n: int) -> None:
        self.overclaimed.set(n)

    def set_compute(self, *, verified_units: int, jobs_by_status: Mapping[str, int]) -> None:
        self.poc_verified_units.set(verified_units)
        for status, n in jobs_by_status.items():
            self.jobs.labels(status=status).set(n)

    def on_slashed(self, validator: bytes, fault: str) -> None:
        """A slash was committed (``fault`` as in slashing records: double_sign, downtime, ...)."""
        self.slashes.labels(fault=fault).inc()
        if fault == "double_sign":
            self._byzantine.add(validator)
            self.byzantine_validators.set(len(self._byzantine))

    def set_validator_set(self, size: int, total_power: int, jailed: int) -> None:
        self.validator_set_size.set(size)
        self.total_power.set(total_power)
        self.jailed_validators.set(jailed)

    def set_mempool(self, size: int, nbytes: int) -> None:
        self.mempool_size.set(size)
        self.mempool_bytes.set(nbytes)

    def set_peers(self, n: int) -> None:
        self.peers.set(n)

    # -- counters read at scrape time -----------------------------------------------------

    def watch_p2p(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        """Export p2p counters: ``snapshot`` is ``transport.stats.snapshot``."""
        self._stats.p2p = snapshot

    def watch_tx_gossip(self, stats: Callable[[], Any]) -> None:
        """Export tx-gossip counters: ``stats`` returns a ``p2p.txbatch.TxGossipStats``."""
        self._stats.tx_gossip = stats

    def watch_proposals(self, gossip: object) -> None:
        """Export how proposal blocks arrived: ``gossip`` is the node's ``GossipAdapter``."""
        self._stats.proposals = gossip

    def watch_mempool(self, stats: Callable[[], Any]) -> None:
        """Export mempool counters: ``stats`` returns a ``node.mempool.pool.MempoolStats``."""
        self._stats.mempool = stats

    def render(self) -> bytes:
        """Return the Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
