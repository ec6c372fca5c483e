"""The node: composes storage, consensus, p2p, mempool, RPC and metrics, and owns their lifetimes.

Services run as supervised asyncio tasks: if any of them ends with an error,
the node logs it and stops with a non-zero status rather than limping on.
Stopping (SIGTERM/SIGINT through ``cstake start``) cancels the driver between
inputs, so a commit in progress always finishes, then closes the network,
the RPC server, the WAL, the signer and the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from consensus.bft.config import TimeoutConfig
from consensus.blocks import Block
from consensus.crypto import Domain, PrivateKey, encode_address, is_valid_signature, sign_bytes
from consensus.errors import ConsensusError
from consensus.genesis import Genesis, load_genesis
from consensus.jobs.store import iter_jobs
from consensus.jobs.types import JobStatus
from consensus.params import Params
from consensus.poc_state import ChallengeRecord, ChallengeStatus
from consensus.records import Fault, SlashingRecord
from consensus.staking import get_validator_compute
from consensus.state import Keys, State
from consensus.txs import SignedTx
from consensus.validator_set import ValidatorSet
from node.clock import Clock, SystemClock
from node.compute.host import DaemonHost
from node.compute.kernel import KernelConfig
from node.compute.provider import JobProvider
from node.compute.service import ComputeService
from node.config import NodeConfig, parse_multiaddr_tcp
from node.engine.driver import ConsensusDriver, Network
from node.engine.executor import BlockCommitted, BlockExecutor
from node.engine.faults import DoubleSigningNetwork, TimeWarpProposer, TimeWarpSigner
from node.engine.forge import Forger, ForgeService
from node.engine.gossip import GossipAdapter
from node.engine.signer import FileSignerStore, PersistentSigner
from node.engine.sync import BlockSyncer, compute_sync_frame_bytes, compute_sync_response_bytes
from node.engine.wal import WriteAheadLog
from node.errors import HomeError, InvalidConfig, ServiceFailed
from node.home import NodeHome
from node.keyfiles import load_keystore
from node.mempool.pool import Mempool
from node.metrics import NodeMetrics
from node.rpc.chain_events import get_chain_events, get_resolved_challenges
from node.rpc.events import EventBus
from node.rpc.indexer import TxIndexer
from node.rpc.nodeview import StoreNodeView
from node.rpc.server import RPCServer
from node.version import get_version
from p2p.config import P2PConfig, compute_rate_limits
from p2p.host import Libp2pTransport
from p2p.interface import Transport, Verdict
from p2p.txbatch import TxGossip
from storage import NodeStore, StorageError
from storage.tx_index import AddressTxIndex

log = logging.getLogger("node")

#: Heights between refreshes of the jobs-by-status gauge (a scan of every job).
JOB_GAUGE_EVERY = 10

BYZANTINE_MODES = ("double-sign", "poc-cheat", "poc-overclaim", "job-cheat", "time-warp", "forge")


def validate_gossip_tx(raw: bytes, state: State, mempool: Mempool, chain_id: str) -> Verdict:
    """Tx topic, per transaction: stateless checks, then the signature, then the head state.

    Cheapest first. What an honest relay also checked (encoding, chain id,
    signature) is REJECT; what depends on the state (nonce, balance, a full
    pool) or on params that may change between heights (the fee floor) is
    IGNORE. The signature comes before the state so a forged transaction is
    penalised even when its sender is unfunded. TxGossip meters these checks
    per forwarding peer (its validation budget).
    """
    params = state.get_params()
    try:
        tx = SignedTx.decode(raw, max_bytes=params.max_tx_bytes)
        tx.payload.validate_basic()
    except ConsensusError:
        return Verdict.REJECT
    p = tx.payload
    if p.chain_id != chain_id:
        return Verdict.REJECT
    if p.fee < params.min_fee:
        return Verdict.IGNORE
    if tx.tx_hash in mempool:
        return Verdict.IGNORE  # a duplicate: its signature was verified when it came in
    if tx.tx_hash not in mempool.sig_cache:
        if not is_valid_signature(p.pubkey, sign_bytes(Domain.TX, chain_id, tx.payload_bytes), tx.signature):
            return Verdict.REJECT
        # Verified: the mempool's own check (and block execution) will not verify it again.
        mempool.sig_cache.add(tx.tx_hash)
    result = mempool.add(tx, state)
    if result.accepted:
        return Verdict.ACCEPT
    return Verdict.REJECT if result.code in (6, 7) else Verdict.IGNORE


@dataclass(frozen=True, slots=True)
class NodeKeys:
    account: PrivateKey
    consensus: PrivateKey


def load_node_keys(home: NodeHome, passphrase: str | None) -> NodeKeys:
    """Read the account and consensus keystores of a home."""
    return NodeKeys(
        account=load_keystore(home.account_key_file, passphrase),
        consensus=load_keystore(home.consensus_key_file, passphrase),
    )


def compute_timeouts(params: Params, cfg: NodeConfig) -> TimeoutConfig:
    """Consensus timeouts: the chain's parameters, with test-only overrides from config."""
    c = cfg.consensus
    vote = c.timeout_vote_ms if c.timeout_vote_ms is not None else params.timeout_vote_ms
    return TimeoutConfig(
        propose_ms=c.timeout_propose_ms if c.timeout_propose_ms is not None else params.timeout_propose_ms,
        propose_delta_ms=params.timeout_propose_delta_ms,
        prevote_ms=vote,
        prevote_delta_ms=params.timeout_vote_delta_ms,
        precommit_ms=vote,
        precommit_delta_ms=params.timeout_vote_delta_ms,
        commit_ms=c.timeout_commit_ms if c.timeout_commit_ms is not None else params.timeout_commit_ms,
    )


class Node:
    """One running node."""

    def __init__(
        self,
        home: NodeHome,
        config: NodeConfig,
        *,
        genesis: Genesis | None = None,
        passphrase: str | None = None,
        byzantine: str | None = None,
        clock: Clock | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.home = home
        self.config = config
        self.genesis = genesis if genesis is not None else self._read_genesis()
        self.keys = load_node_keys(home, passphrase)
        self.byzantine = byzantine
        if byzantine is not None:
            if byzantine not in BYZANTINE_MODES:
                raise InvalidConfig(f"unknown byzantine mode '{byzantine}' (one of {', '.join(BYZANTINE_MODES)})")
            if not self.genesis.params.allow_test_faults:
                raise InvalidConfig(
                    f"--byzantine {byzantine} is refused: this chain's genesis does not set "
                    "params.allow_test_faults (test-only misbehaviour)"
                )
        self.clock: Clock = clock or SystemClock()
        self._transport_override = transport
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self.store: NodeStore | None = None
        self.exit_error: str | None = None

    def _read_genesis(self) -> Genesis:
        try:
            text = self.home.genesis_file.read_text()
        except OSError as exc:
            raise HomeError(f"cannot read genesis {self.home.genesis_file}: {exc.strerror}") from exc
        return load_genesis(text)

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @property
    def address(self) -> bytes:
        return self.keys.account.address()

    def is_validator(self) -> bool:
        return self.executor.head_state().get_validator(self.address) is not None

    # -- start ----------------------------------------------------------------------------

    def _p2p_config(self) -> P2PConfig:
        host, port = parse_multiaddr_tcp(self.config.p2p.listen, "p2p.listen")
        return P2PConfig(
            chain_id=self.chain_id,
            key_path=str(self.home.node_key_file),
            listen_host=host,
            listen_port=port,
            bootstrap=tuple(self.config.p2p.bootstrap),
            max_peers=self.config.p2p.max_peers,
            outbound_slots=self.config.p2p.outbound_slots,
            # Gossip must carry the chain's largest transaction (proof-of-compute openings),
            # within the transport's 4 MiB ceiling.
            max_message_bytes=min(4 << 20, max(1 << 20, self.genesis.params.max_tx_bytes + (64 << 10))),
            # Block sync must carry the chain's largest block with its commit, and a
            # response is capped as a whole (a few of those frames).
            max_frame_bytes=compute_sync_frame_bytes(self.genesis.params),
            max_request_bytes=compute_sync_response_bytes(self.genesis.params),
            # py-libp2p drops silently past 32 queued messages per peer: fewer, fuller
            # transaction batches leave room for consensus messages under load.
            tx_batch_delay=0.15,
            # The proposal topic's budget is in bytes, sized from this chain's largest block.
            rate_limits=compute_rate_limits(self.genesis.params.max_block_bytes),
        )

    async def start(self) -> None:
        """Open everything and start the services; raise NodeError with the reason on failure."""
        self.home.make_dirs()
        self.store = NodeStore.open(self.home.db_dir)
        self.mempool = Mempool.from_config(self.config.mempool)
        self.executor = BlockExecutor(
            self.store, self.genesis, sig_cache=self.mempool.sig_cache, tx_source=self.mempool.get
        )
        self.executor.init_genesis()
        self.wal = WriteAheadLog(self.home.wal_file)
        self.signer_store = FileSignerStore(self.home.signer_state_file)
        signer_cls = TimeWarpSigner if self.byzantine == "time-warp" else PersistentSigner
        self.signer = signer_cls(self.keys.consensus, self.chain_id, self.signer_store, self.address)
        self.transport: Transport = self._transport_override or Libp2pTransport(self._p2p_config())
        self.gossip = GossipAdapter(
            self.transport, self.chain_id, part_key=self.keys.consensus, tx_lookup=self.mempool.get_raw
        )
        params = self.executor.head_state().get_params()
        network: Network = self.gossip
        if self.byzantine == "double-sign":
            network = DoubleSigningNetwork(self.gossip, self.keys.consensus, self.chain_id)
        proposer = None
        if self.byzantine == "time-warp":
            proposer = TimeWarpProposer(self.executor, self.mempool, self.address)
        self.driver = ConsensusDriver(
            executor=self.executor,
            wal=self.wal,
            clock=self.clock,
            mempool=self.mempool,
            network=network,
            timeouts=compute_timeouts(params, self.config),
            signer=self.signer,
            address=self.address,
            proposer=proposer,
        )
        self.driver.committed_listeners.append(self._on_committed)
        self.gossip.attach(self.driver)
        if self.byzantine == "forge":
            self.forge = ForgeService(self.transport, self.driver, self.gossip, Forger(self.chain_id, self.address))
            self.forge.attach()
        self.tx_gossip = TxGossip(self.transport, self._validate_gossip_tx)
        self.gossip.before_proposal = self.tx_gossip.send_pending
        # Proof of compute, attestations and jobs see the node through node/compute/ports.py.
        host = DaemonHost(
            chain_id=self.chain_id, account_key=self.keys.account, consensus_key=self.keys.consensus,
            head=self.executor, mempool=self.mempool, submit_tx=self.submit_tx,
            tx_gossip=self.tx_gossip, transport=self.transport,
        )
        self.compute = ComputeService(
            host, byzantine=self.byzantine,
            kernel=KernelConfig(device=self.config.compute.prover_device, threads=self.config.compute.prover_threads),
        )
        self.compute.attach()
        self.driver.committed_listeners.append(self.compute.on_committed)
        self.driver.proposer.attestation_source = self.compute.select_attestations
        self.syncer = BlockSyncer(
            self.transport, self.executor, self.driver,
            startup_timeout_ms=self.config.consensus.startup_sync_timeout_ms,
        )
        # No signature before block sync knows we are not behind (a restart on an old data copy).
        self.driver.hold_signing()
        self.events = EventBus()
        self.metrics = NodeMetrics()
        self.metrics.watch_p2p(self.transport.stats.snapshot)
        self.metrics.watch_mempool(lambda: self.mempool.stats)
        self.metrics.watch_tx_gossip(lambda: self.tx_gossip.stats)
        self.metrics.watch_proposals(self.gossip)
        self.compute.on_prover_answer = self.metrics.on_prover_answer
        self._last_commit_mono: float | None = None
        self._slash_seq = self.executor.head_state().get_meta().next_slash_seq
        # The address index (tx_search) lives beside the block store and catches up from it.
        self.tx_index = AddressTxIndex.open(self.home.data_dir / "txindex")
        self.indexer = TxIndexer(self.tx_index, self._load_block, lambda: self.executor.store.blocks.earliest_height() or 1)
        indexed = self.indexer.catch_up(self.executor.height)
        if indexed:
            log.info("address index: indexed %d stored heights", indexed)
        self.view = StoreNodeView(
            self.executor.store, self.events, chain_id=self.chain_id, moniker=self.config.node.moniker,
            address=self.address, mempool=self.mempool, network=self.transport, sync=self.syncer,
            submit_tx=self.submit_client_tx, attestation_pool=self.compute.pool, tx_index=self.tx_index,
        )
        self.rpc = RPCServer(
            self.view,
            self.config.rpc,
            metrics=self.metrics,
            last_commit_monotonic=lambda: self._last_commit_mono,
            max_tx_bytes=params.max_tx_bytes,
        )
        await self.transport.start()
        await self.rpc.start()
        self.driver.recover()
        self._spawn("consensus", self.driver.run())
        self._spawn("block-sync", self.syncer.run())
        self._spawn("rebroadcast", self._rebroadcast_loop())
        self._spawn("gauges", self._gauge_loop())
        self._spawn("compute", self.compute.run())
        # Job marketplace: provide for this node's NFTs, watch other providers (node/compute/provider.py).
        self.jobs = JobProvider(host, cheat=self.byzantine == "job-cheat")
        self.driver.committed_listeners.append(self.jobs.on_committed)
        self._spawn("jobs", self.jobs.run())
        if self.byzantine == "forge":
            self._spawn("forge", self.forge.run())
        log.info(
            "node %s started: chain %s, height %d, validator %s, p2p %s",
            self.config.node.moniker, self.chain_id, self.executor.height,
            self.is_validator(), ", ".join(self.transport.listen_addrs()),
            extra={"chain_id": self.chain_id, "height": self.executor.height, "version": get_version()},
        )
        log.info("RPC at %s (JSON-RPC POST /, GET /health, GET /metrics, WebSocket /ws)", self.config.rpc_url,
                 extra={"rpc": self.config.rpc_url})
        for addr in self.transport.listen_addrs():
            log.info("p2p listening on %s/p2p/%s", addr, self.transport.peer_id, extra={"p2p": addr})
        log.info("account %s (%s)", encode_address(self.address),
                 "in the validator set" if self.is_validator() else "not a validator",
                 extra={"address": encode_address(self.address)})

    def _load_block(self, height: int) -> Block | None:
        raw = self.executor.store.blocks.load_block(height)
        return None if raw is None else Block.decode(raw, max_bytes=len(raw))

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[name] = task

    async def _rebroadcast_loop(self) -> None:
        """Re-send our current-round messages while a height is not decided (gossip loses some)."""
        while True:
            await asyncio.sleep(1.0)
            if self.clock.now_ms() - self.driver.last_commit_ms > 1_000:
                self.driver.rebroadcast_own()

    async def _gauge_loop(self) -> None:
        """Refresh gauges that change without a commit (peers, mempool, round, sync)."""
        while True:
            self.metrics.set_peers(len(self.transport.peers()))
            self.metrics.set_mempool(self.mempool.size, self.mempool.total_bytes)
            self.metrics.set_consensus(round=self.driver.state.round, syncing=self.syncer.catching_up)
            self.metrics.set_overclaimed(len(self.compute.overclaimed_nfts))
            await asyncio.sleep(1.0)

    # -- transactions -----------------------------------------------------------------------

    def submit_client_tx(self, raw: bytes | SignedTx) -> tuple[int, str, bytes | None]:
        """``submit_tx`` for a client's transaction (the RPC): refused once the mempool is nearly full."""
        return self.submit_tx(raw, from_client=True)

    def submit_tx(self, raw: bytes | SignedTx, *, from_client: bool = False) -> tuple[int, str, bytes | None]:
        """Check a transaction into the mempool and gossip it; return (code, log, tx hash).

        ``raw`` may come already decoded (the RPC decodes it to answer with its hash);
        it is not decoded a second time (``check_tx`` holds it to the size limit).
        ``from_client`` (the RPC) leaves the mempool's last tenth to peers' gossip
        (``Mempool.add``); the node's own duty transactions (proof of compute) do not.
        """
        state = self.executor.head_state()
        if isinstance(raw, SignedTx):
            tx = raw
        else:
            try:
                tx = SignedTx.decode(raw, max_bytes=state.get_params().max_tx_bytes)
            except Exception as exc:
                return 7, f"malformed transaction: {exc}", None
        result = self.mempool.add(tx, state, from_client=from_client)
        if result.accepted:
            self.tx_gossip.submit(tx.raw)
        return result.code, result.log, tx.tx_hash

    def _validate_gossip_tx(self, peer: str, raw: bytes) -> Verdict:
        """Tx topic, per transaction (``validate_gossip_tx`` on the head state)."""
        return validate_gossip_tx(raw, self.executor.head_state(), self.mempool, self.chain_id)

    def _on_committed(self, committed: BlockCommitted) -> None:
        self._last_commit_mono = time.monotonic()
        block = committed.block
        state = self.executor.head_state()
        meta = state.get_meta()
        slashes = [
            r for seq in range(self._slash_seq, meta.next_slash_seq)
            if (r := state.get_record(Keys.slashing(seq), SlashingRecord)) is not None
        ]
        self._slash_seq = meta.next_slash_seq
        read = self.executor.store.state.get
        resolved = get_resolved_challenges(committed.height, committed.changed_keys, read)
        self.events.publish_block(
            block, committed.block_hash, committed.txs, committed.tx_results,
            get_chain_events(block, committed.events, slashes, resolved),
        )
        self._index_committed(committed)
        m = self.metrics
        m.on_block_committed(
            height=committed.height,
            time_ms=block.header.time_ms,
            n_txs=len(committed.tx_hashes),
            round=block.header.round,
            commit_seconds=committed.execute_seconds + committed.write_seconds,
            failed_txs=sum(1 for r in committed.tx_results if r.code != 0),
        )
        last_set = state.get_last_validator_set()
        if block.last_commit is not None and last_set is not None:
            m.on_commit_signatures(
                [v.address for v in last_set.validators], [s.validator for s in block.last_commit.signatures],
                height=block.last_commit.height, own=self.address,
            )
        vset = state.get_validator_set()
        jailed = sum(1 for v in state.iter_validators() if v.jailed)
        m.set_validator_set(len(vset), vset.total_power, jailed)
        self._update_own_metrics(state, vset, resolved, committed.height)
        for record in slashes:
            m.on_slashed(record.validator, Fault.NAMES.get(record.fault, str(record.fault)))
            log.warning(
                "validator %s slashed %d for %s at height %d",
                encode_address(record.validator), record.amount,
                Fault.NAMES.get(record.fault, "?"), record.height,
                extra={"validator": encode_address(record.validator), "height": record.height,
                       "reason": Fault.NAMES.get(record.fault, "?")},
            )
        failed = sum(1 for r in committed.tx_results if r.code != 0)
        log.info(
            "committed height %d: %d txs (%d failed), hash %s, execute %.0f ms, write %.0f ms",
            committed.height, len(committed.tx_hashes), failed, committed.block_hash.hex()[:16],
            committed.execute_seconds * 1000, committed.write_seconds * 1000,
            extra={"height": committed.height, "round": block.header.round, "hash": committed.block_hash.hex(),
                   "duration_ms": round((committed.execute_seconds + committed.write_seconds) * 1000, 1)},
        )
        if self.store is not None:
            changed = [k[len(Keys.ACCOUNT) :] for k in committed.changed_keys if k.startswith(Keys.ACCOUNT)]
            # The head overlay: the accounts read here stay decoded for the next admissions.
            self.mempool.update(committed.tx_hashes, self.executor.head_state(), changed_accounts=changed)

    def _index_committed(self, committed: BlockCommitted) -> None:
        """File the block's txs in the address index; a failure costs only tx_search, never the node."""
        try:
            self.indexer.on_committed(committed.height, committed.txs)
        except StorageError as exc:
            log.error("address index: height %d not indexed: %s", committed.height, exc)

    def _update_own_metrics(self, state: State, vset: ValidatorSet, resolved: list[ChallengeRecord],
                            height: int) -> None:
        """This node's validator: membership, power, jail; outcomes of its NFTs' challenges; jobs."""
        m = self.metrics
        member = vset.get_by_address(self.address)
        record = state.get_validator(self.address)
        m.set_own_validator(active=member is not None, power=0 if member is None else member.power,
                            jailed=bool(record is not None and record.jailed))
        own_nfts = set(state.iter_validator_nft_ids(self.address)) if record is not None else set()
        for rec in resolved:
            if rec.nft_id in own_nfts:
                m.on_challenge_resolved(ChallengeStatus.NAMES.get(rec.status, str(rec.status)))
        if height % JOB_GAUGE_EVERY == 0 or height == 1:
            by_status: dict[str, int] = {}
            for job in iter_jobs(state):
                name = JobStatus.NAMES.get(job.status, str(job.status))
                by_status[name] = by_status.get(name, 0) + 1
            m.set_compute(verified_units=get_validator_compute(state, self.address), jobs_by_status=by_status)

    # -- run and stop ---------------------------------------------------------------------------

    async def wait(self) -> None:
        """Return when a service task ends; raise ServiceFailed if one failed."""
        done, _ = await asyncio.wait(self._tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                self.exit_error = f"service '{task.get_name()}' failed: {type(exc).__name__}: {exc}"
                log.error("%s; stopping the node", self.exit_error, exc_info=exc)
                raise ServiceFailed(self.exit_error)
            self.exit_error = f"service '{task.get_name()}' stopped unexpectedly"
            raise ServiceFailed(self.exit_error)

    async def stop(self) -> None:
        """Stop every service and close files; safe to call more than once."""
        if self._stopping:
            return
        self._stopping = True
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if hasattr(self, "driver"):
            self.driver.stop()
        if hasattr(self, "jobs"):
            self.jobs.close()
        if hasattr(self, "rpc"):
            await self.rpc.stop()
        if hasattr(self, "tx_gossip"):
            await self.tx_gossip.close()
        if hasattr(self, "gossip"):
            await self.gossip.close()
        if hasattr(self, "transport"):
            await self.transport.stop()
        if hasattr(self, "wal"):
            self.wal.close()
        if hasattr(self, "signer_store"):
            self.signer_store.close()
        if hasattr(self, "tx_index"):
            self.tx_index.close()
        if self.store is not None:
            self.store.close()
            log.info("node stopped")
