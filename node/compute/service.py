"""The node's compute service: answers proof-of-compute challenges and gossips attestations.

After every committed block the service looks at the challenges of the NFTs
this node serves: those bound to its validator (a binding takes the
operator's consent, ``accept_nft``; an owner must bind its NFT, and a
stranger's pending request or an NFT transferred to this account is not
served):

- a pending challenge: ``Prover.prove`` computes C = A·B with BLAS in a worker
  process (one prover, hence one worker, per NFT; the event loop never blocks),
  then a ``PocCommitment`` transaction is signed with the account key and
  submitted through the host's ``submit_tx``;
- a committed challenge whose sample block is committed: the sampled rows are
  recomputed (``Prover.open_rows``) and a ``PocOpenings`` transaction submitted.

Openings are about 7 MB at n = 2048 (1.4 MB at the devnet's n = 256), over
what one gossip message should carry: they are sent as consecutive chunks of
about ``OPENINGS_CHUNK_BYTES`` (``split_openings``; the chain accepts at most
``MAX_OPENING_CHUNKS`` per challenge), one transaction each with consecutive
nonces, so every mempool has them and any proposer includes them. A
non-validator owner must bind its NFT to a validator that runs the service
for it.

Attestations: every ``attestation_min_interval_blocks`` the service signs one
per NFT bound to this validator (consensus key, ``consensus.attestation``)
with the units measured on its last proof, gossips it on the ``attestation``
topic and keeps it in the pool; the pool keeps the freshest valid one per NFT
from gossip (REJECT for bad signatures or shape, IGNORE for stale) and the
proposer includes at most ``MAX_ATTESTATIONS_PER_BLOCK`` of them, freshest
first, in each block.

Provers: one worker per served NFT, with the service's ``KernelConfig`` (by
default one BLAS thread on the CPU: what ``cstake bench`` and
``register-compute --from-bench`` measure unless told otherwise). A worker is
started as soon as its NFT is bound to this validator (at start: every served
NFT), so a spawn never counts against a challenge, and then measures its NFT's
claim for about a second (``node.compute.calibrate``): a claim above what this
machine's prover delivers is logged as a warning and listed in
``overclaimed_nfts``.

Test-only modes: ``poc-cheat`` proves with ``POC_CHEAT_FRACTION`` of the rows
corrupted (consistently in commitment and openings); ``poc-overclaim``
benchmarks the machine once (in a prover worker, with the same kernel, at
the chain's challenge size) and registers a new NFT claiming ``OVERCLAIM_FACTOR`` times the measured
units, bound to this validator, so its verified units show what the chain
measures of a 2x claim.

The service sees the node only through ``node.compute.ports.ComputeHost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from consensus.attestation import (
    MAX_ATTESTATIONS_PER_BLOCK,
    Attestation,
    AttestationError,
    decode_attestation,
    make_attestation,
    validate_attestation,
)
from consensus.codec import Encodable
from consensus.costs import get_min_fee
from consensus.poc import (
    PocCommitment,
    PocOpenings,
    derive_sample_indices,
    get_min_chunk_rows,
    get_openings_deadline,
)
from consensus.poc_state import (
    ChallengeRecord,
    ChallengeStatus,
    get_challenge,
    get_latest_challenge,
    get_poc_params,
    iter_challenges_at,
)
from consensus.records import NO_ADDRESS, ComputeNFT, DeviceKind, HardwareSpec, NFTStatus
from consensus.state import Keys, State
from consensus.txs import BindNFT, RegisterCompute, build_tx
from node.compute.calibrate import ClaimCheck, calibrate, check_claims
from node.compute.hwbench import OVERCLAIM_FACTOR, read_cpu_model, read_memory_bytes
from node.compute.kernel import DEFAULT_THREADS, KernelConfig, format_kernel_info
from node.compute.ports import ComputeHost
from node.compute.prover import POC_CHEAT_FRACTION, Prover
from node.errors import ProverError
from p2p.interface import Verdict

if TYPE_CHECKING:
    from node.engine.executor import BlockCommitted

log = logging.getLogger("node.compute.service")

ATTESTATION_TOPIC = "attestation"
#: BLAS threads per prover worker by default: devnet nodes share a small machine.
PROVER_BLAS_THREADS = DEFAULT_THREADS
#: Seconds of the start check of the served NFTs' claims (in the first prover's worker).
SELF_CHECK_SECONDS = 1.0
#: Seconds of benchmark for the poc-overclaim registration.
OVERCLAIM_BENCH_SECONDS = 1.5
#: Collateral of the poc-overclaim NFT, in multiples of the minimum.
OVERCLAIM_COLLATERAL_FACTOR = 10
#: Blocks to wait for our commitment or openings to be included before gossiping it again.
REGOSSIP_BLOCKS = 2
#: Target size of one openings transaction, under every preset's gossip message cap (1 MiB and up).
OPENINGS_CHUNK_BYTES = 768 << 10


def split_openings(openings: PocOpenings, max_bytes: int = OPENINGS_CHUNK_BYTES) -> list[PocOpenings]:
    """Split a challenge's openings (all its sampled rows) into consecutive chunks of about ``max_bytes``.

    Each chunk but the last carries at least the chain's minimum
    (``get_min_chunk_rows``), so there are never more than
    ``MAX_OPENING_CHUNKS``; a chunk may then exceed ``max_bytes`` (about 900 KB
    at n = 2048).
    """
    rows = openings.openings
    per_row = max(len(o.encode()) for o in rows)
    per = max(get_min_chunk_rows(len(rows)), max_bytes // per_row, 1)
    return [PocOpenings(openings.challenge_id, rows[i:i + per]) for i in range(0, len(rows), per)]


#: CPU priority of prover workers below the node's (``os.nice`` increment): consensus first.
PROVER_NICE = 10


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: exit when the node process is gone, and yield the CPU to consensus.

    A ProcessPoolExecutor worker whose parent is killed (SIGKILL, `devnet down` after
    its grace period) would otherwise wait on its task queue forever. The worker runs
    at a lower priority (``PROVER_NICE``): where the prover shares cores with the node
    (a devnet, a CPU prover), a challenge's second of BLAS at every epoch boundary
    otherwise starved the node's votes and proposals, and the height after the
    boundary went to round 1 under load. The chain measures the prover by the time
    its answer takes, so compute that is not spare is not counted as if it were.
    """
    with contextlib.suppress(OSError):
        os.nice(PROVER_NICE)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class NodeProver(Prover):
    """The prover, with workers that never outlive the node."""

    @staticmethod
    def _new_executor() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with_parent, initargs=(os.getpid(),),
        )


class AttestationPool:
    """The freshest attestation per NFT seen on gossip or made here."""

    def __init__(self) -> None:
        self._by_nft: dict[int, Attestation] = {}

    def __len__(self) -> int:
        return len(self._by_nft)

    def add(self, att: Attestation) -> bool:
        """Keep ``att`` if it is fresher than the one held; return whether it was kept."""
        held = self._by_nft.get(att.nft_id)
        if held is not None and held.height >= att.height:
            return False
        self._by_nft[att.nft_id] = att
        return True

    def items(self) -> list[Attestation]:
        return [self._by_nft[k] for k in sorted(self._by_nft)]

    def select(self, state: State, chain_id: str, height: int) -> tuple[bytes, ...]:
        """Return the encoded attestations a block at ``height`` may carry; drop stale ones.

        At most ``MAX_ATTESTATIONS_PER_BLOCK`` (a block with more is invalid): the
        freshest first (higher height), ties by NFT id, so every proposer with the
        same pool and state picks the same ones; the rest wait for a later block.
        """
        params = state.get_params()
        valid: list[Attestation] = []
        for nft_id in sorted(self._by_nft):
            att = self._by_nft[nft_id]
            try:
                validate_attestation(state, att, chain_id, height, params)
            except AttestationError as exc:
                if exc.stale or att.height + params.attestation_max_age_blocks < height:
                    self._by_nft.pop(nft_id, None)
                continue
            valid.append(att)
        valid.sort(key=lambda a: (-a.height, a.nft_id))
        return tuple(att.encode() for att in valid[:MAX_ATTESTATIONS_PER_BLOCK])


class ComputeService:
    """Answers this node's proof-of-compute challenges and gossips its attestations."""

    def __init__(self, host: ComputeHost, *, byzantine: str | None = None,
                 kernel: KernelConfig | None = None) -> None:
        """``kernel``: the provers' device and BLAS threads (default: one thread on the CPU);
        ``cstake bench`` and ``register-compute --from-bench`` must measure the same one."""
        self.host = host
        self.kernel = kernel or KernelConfig()
        #: Called with (phase, seconds) after each answer the prover computed ("commit", "openings").
        self.on_prover_answer: Callable[[str, float], None] | None = None
        #: The start check: each served NFT's claim against this machine's prover, by NFT id.
        self.claim_checks: dict[int, ClaimCheck] = {}
        self.cheat_fraction = POC_CHEAT_FRACTION if byzantine == "poc-cheat" else 0.0
        self.overclaim = byzantine == "poc-overclaim"
        self.pool = AttestationPool()
        self._provers: dict[int, Prover] = {}
        self._tracked: dict[bytes, int] = {}
        self._started: set[tuple[bytes, str]] = set()
        self._sent: dict[tuple[bytes, str], tuple[bytes, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._measured: dict[int, int] = {}
        self._last_attested: int = -(1 << 62)
        self._scanned_boundary = -1
        self._resumed = False
        self._wake = asyncio.Event()

    # -- wiring ------------------------------------------------------------------------------

    def attach(self) -> None:
        """Subscribe the attestation topic (call before the transport starts delivering)."""
        self.host.subscribe(ATTESTATION_TOPIC, self._validate_gossip, self._on_gossip)

    def on_committed(self, committed: BlockCommitted) -> None:
        """Driver listener: look at challenges again after each commit."""
        self._wake.set()

    def select_attestations(self, height: int) -> tuple[bytes, ...]:
        """The driver's source of attestations for the block it builds at ``height``."""
        return self.pool.select(self.host.head_state(), self.host.chain_id, height)

    async def run(self) -> None:
        """Serve challenges until cancelled."""
        try:
            if self.overclaim:
                self._spawn(self._register_overclaim())
            self._wake.set()
            while True:
                await self._wake.wait()
                self._wake.clear()
                self._scan()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for prover in self._provers.values():
                await prover.aclose()

    @property
    def overclaimed_nfts(self) -> tuple[int, ...]:
        """Served NFTs whose claim exceeds what this machine's prover measured."""
        return tuple(i for i, check in sorted(self.claim_checks.items()) if check.exceeds)

    def _warm_new_provers(self, state: State) -> None:
        """Start the worker of each NFT newly bound to us (at start: every one we serve).

        A spawned worker takes a second or two to import numpy (more on a loaded
        machine), which would otherwise count against the NFT's first challenge;
        then the worker measures the NFT's claim (``_check_claim``), unless a
        challenge is open right now and needs the worker first.
        """
        for nft_id in state.iter_validator_nft_ids(self.host.address):
            nft = state.get_nft(nft_id)
            if (nft_id in self._provers or not self._serves(nft) or nft is None
                    or nft.status not in (NFTStatus.ACTIVE, NFTStatus.UNVERIFIED)):
                continue
            latest = get_latest_challenge(state, nft_id)
            busy = latest is not None and latest.status in ChallengeStatus.OPEN
            self._spawn(self._warm(self._prover(nft_id), nft, check=not busy))

    async def _warm(self, prover: Prover, nft: ComputeNFT, *, check: bool) -> None:
        await prover.run_in_worker(os.getpid)
        if check:
            await self._check_claim(prover, nft)

    async def _check_claim(self, prover: Prover, nft: ComputeNFT) -> None:
        """Measure ``prover`` (about ``SELF_CHECK_SECONDS``) at the challenge size of ``nft``'s
        claim and warn if the claim is more than it delivers here.

        Such an NFT's challenges are sized for a faster device: the node would finish them
        late, be verified below the claim, or miss the deadline and lose collateral.
        """
        poc = get_poc_params(self.host.head_state().get_params())
        try:
            cal = await calibrate(prover, poc, SELF_CHECK_SECONDS, claim=nft.claimed_units)
        except ProverError as exc:
            log.error("cannot measure this machine's prover for NFT %d: %s", nft.id, exc)
            return
        (check,) = check_claims({nft.id: nft.claimed_units}, cal)
        self.claim_checks[nft.id] = check
        if check.exceeds:
            log.warning(
                "compute claim too high: NFT %d claims %d units but this machine's prover "
                "measured %d (%.1f GFLOP/s at n=%d; kernel %s): its challenges will be "
                "verified below the claim or miss their deadline; register what "
                "`cstake tx register-compute --from-bench` measures", nft.id,
                check.claimed_units, check.measured_units, cal.gflops, cal.n,
                format_kernel_info(cal.kernel))
        else:
            log.info("compute claim checked: NFT %d claims %d units, this machine's prover "
                     "measured %d (n=%d; kernel %s)", nft.id, check.claimed_units,
                     check.measured_units, cal.n, format_kernel_info(cal.kernel))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("compute task failed: %s", task.exception())

    # -- what this node serves ----------------------------------------------------------------

    def _serves(self, nft: ComputeNFT | None) -> bool:
        """Whether this node answers ``nft``'s challenges: only NFTs bound to its validator.

        A binding exists only with the operator's consent (``accept_nft``, or its
        own ``bind_nft``), and each served NFT costs a prover process and
        commitment fees from this account: so neither a stranger's pending
        request nor an NFT a stranger transferred to this account is served.
        """
        return nft is not None and nft.bound_validator == self.host.address

    def _served_nfts(self, state: State) -> list[ComputeNFT]:
        return [nft for _, nft in state.iter_records(Keys.NFT, ComputeNFT) if self._serves(nft)]

    def _prover(self, nft_id: int) -> Prover:
        prover = self._provers.get(nft_id)
        if prover is None:
            prover = NodeProver(cheat_fraction=self.cheat_fraction, kernel=self.kernel)
            self._provers[nft_id] = prover
        return prover

    def _scan(self) -> None:
        host = self.host
        state = host.head_state()
        height = host.height
        params = state.get_params()
        boundary = height - height % params.epoch_blocks
        # Open challenges of the NFTs bound to us that we do not track yet: issued
        # before a restart, or before the binding was accepted (the index of our
        # bindings, so a stranger's NFTs are never even looked at).
        self._resumed = True
        self._warm_new_provers(state)
        for nft_id in state.iter_validator_nft_ids(host.address):
            latest = get_latest_challenge(state, nft_id)
            if (latest is not None and latest.status in ChallengeStatus.OPEN
                    and latest.challenge.id not in self._tracked):
                self._tracked[latest.challenge.id] = nft_id
                log.info("challenge %s for NFT %d at height %d: open, taken up",
                         latest.challenge.id.hex()[:12], nft_id, latest.challenge.height)
        if boundary > 0 and boundary != self._scanned_boundary:
            self._scanned_boundary = boundary
            for issued in iter_challenges_at(state, boundary):
                if self._serves(state.get_nft(issued.nft_id)):
                    self._tracked[issued.challenge.id] = issued.nft_id
                    log.info("challenge %s for NFT %d at height %d: n=%d rows=%d",
                             issued.challenge.id.hex()[:12], issued.nft_id, boundary,
                             issued.challenge.n, issued.challenge.rows)
        poc = get_poc_params(params)
        for cid, nft_id in list(self._tracked.items()):
            rec = get_challenge(state, cid)
            if rec is None or rec.status not in ChallengeStatus.OPEN:
                self._tracked.pop(cid, None)
                if nft_id in self._provers:
                    self._provers[nft_id].forget(cid)
                for key in [k for k in self._sent if k[0] == cid]:
                    del self._sent[key]
                if rec is not None:
                    log.info("challenge %s for NFT %d: %s", cid.hex()[:12], nft_id,
                             ChallengeStatus.NAMES[rec.status])
                continue
            if rec.status == ChallengeStatus.PENDING and height < rec.challenge.deadline_height:
                if (cid, "commit") not in self._started:
                    self._started.add((cid, "commit"))
                    self._spawn(self._commit(rec))
                else:
                    self._regossip(cid, "commit", height)
            elif (rec.status == ChallengeStatus.COMMITTED and rec.sample_hash
                  and height < get_openings_deadline(rec.commit_height, poc)):
                if (cid, "open") not in self._started:
                    self._started.add((cid, "open"))
                    self._spawn(self._open(rec))
                else:
                    # Each chunk not yet applied (they are keyed by their first sample).
                    for stage in [k[1] for k in self._sent if k[0] == cid and k[1].startswith("open/")]:
                        if int(stage[5:]) >= rec.opened_rows:
                            self._regossip(cid, stage, height)
        if height - self._last_attested >= params.attestation_min_interval_blocks:
            self._last_attested = height
            self._attest(state, height)

    # -- challenges -------------------------------------------------------------------------------

    async def _commit(self, rec: ChallengeRecord) -> None:
        ch = rec.challenge
        try:
            proved = await self._prover(rec.nft_id).prove(ch)
        except ProverError as exc:
            log.error("cannot prove challenge %s: %s", ch.id.hex()[:12], exc)
            return
        self._measured[rec.nft_id] = int(ch.work_flops / max(proved.seconds, 1e-3) / 1e9)
        if self.on_prover_answer is not None:
            self.on_prover_answer("commit", proved.seconds)
        log.info("proved challenge %s for NFT %d in %.2f s (%d units measured locally); "
                 "committing", ch.id.hex()[:12], rec.nft_id, proved.seconds,
                 self._measured[rec.nft_id])
        self._submit(PocCommitment(ch.id, proved.root), "commitment", (ch.id, "commit"))
        self._wake.set()

    async def _open(self, rec: ChallengeRecord) -> None:
        ch = rec.challenge
        indices = derive_sample_indices(ch, rec.root, rec.sample_hash)
        prover = self._prover(rec.nft_id)
        try:
            if not prover.has_proved(ch.id):
                # Committed before this process started (a restart): the product is a
                # function of the seed, so recompute the tree; it must give the same root.
                log.info("challenge %s was committed before a restart: recomputing it to open it",
                         ch.id.hex()[:12])
                proved = await prover.prove(ch)
                if proved.root != rec.root:
                    log.error("cannot open challenge %s: the recomputed root differs from the "
                              "committed one", ch.id.hex()[:12])
                    return
            started = time.perf_counter()
            openings = await prover.open_rows(ch.id, indices)
            if self.on_prover_answer is not None:
                self.on_prover_answer("openings", time.perf_counter() - started)
        except ProverError as exc:
            log.error("cannot open challenge %s: %s", ch.id.hex()[:12], exc)
            return
        chunks = split_openings(openings)
        first = 0
        for i, chunk in enumerate(chunks):
            # After a restart the chain may have some chunks already (the split is deterministic).
            if first >= rec.opened_rows:
                self._submit(chunk, f"openings {i + 1}/{len(chunks)}", (ch.id, f"open/{first}"))
            first += len(chunk.openings)

    def _regossip(self, cid: bytes, stage: str, height: int) -> None:
        """Gossip our answer again every few blocks while the chain has not seen it.

        A gossip message can be lost (a peer was busy or not yet connected); the
        transaction still sits in our mempool, so it is published again, not rebuilt.
        """
        sent = self._sent.get((cid, stage))
        if sent is None or height - sent[1] < REGOSSIP_BLOCKS:
            return
        raw = sent[0]
        self._sent[(cid, stage)] = (raw, height)
        try:
            self.host.regossip_tx(raw)
        except Exception as exc:  # too large for gossip, or the transport is closing
            log.debug("re-gossip of the %s transaction failed: %s", stage, exc)

    def _submit(self, body: Encodable, what: str, key: tuple[bytes, str] | None = None) -> None:
        host = self.host
        state = host.head_state()
        me = host.address
        # Our own queued transactions may have gone stale (e.g. sent while catching up,
        # or overtaken by transactions this key signed elsewhere): drop those first, so a
        # refused old nonce never blocks every later submission.
        host.drop_stale_txs(me, state)
        nonce = host.next_nonce(me, state.get_account(me).nonce)
        tx = build_tx(host.account_key, host.chain_id, nonce, get_min_fee(body, state.get_params()), body)
        try:
            code, text, _ = host.submit_tx(tx.raw)
        except Exception as exc:  # gossip refuses messages above its cap; the mempool kept it
            if host.has_tx(tx.tx_hash):
                log.info("%s transaction (%d bytes) kept in the local mempool for our own "
                         "proposals: %s", what, len(tx.raw), exc)
                return
            log.error("submitting the %s transaction failed: %s", what, exc)
            return
        if code != 0:
            log.error("%s transaction refused (code %d): %s", what, code, text)
            return
        log.info("%s transaction submitted (%d bytes, nonce %d)", what, len(tx.raw), nonce)
        if key is not None:
            self._sent[key] = (tx.raw, host.height)

    # -- attestations ----------------------------------------------------------------------------

    def _attest(self, state: State, height: int) -> None:
        me = self.host.address
        if state.get_validator(me) is None:
            return
        for nft_id in state.iter_validator_nft_ids(me):
            nft = state.get_nft(nft_id)
            if nft is None:
                continue
            units = self._measured.get(nft_id, nft.verified_units)
            att = make_attestation(
                self.host.consensus_key, self.host.chain_id, nft_id=nft_id, validator=me,
                spec=nft.spec, measured_units=units, height=height,
            )
            self.pool.add(att)
            self._spawn(self._publish(att))

    async def _publish(self, att: Attestation) -> None:
        try:
            await self.host.publish(ATTESTATION_TOPIC, att.encode())
        except Exception as exc:  # a lost attestation is retried next interval
            log.warning("publishing an attestation failed: %s", exc)

    def _validate_gossip(self, peer: str, payload: bytes) -> Verdict:
        try:
            att = decode_attestation(payload)
        except AttestationError:
            return Verdict.REJECT
        host = self.host
        state = host.head_state()
        try:
            validate_attestation(state, att, host.chain_id, host.height + 1, state.get_params())
        except AttestationError as exc:
            # Most checks use our own head state, which may lag or lead the sender's:
            # only a signature that fails under the key our state names is penalised.
            return Verdict.REJECT if exc.forged else Verdict.IGNORE
        return Verdict.ACCEPT

    def _on_gossip(self, peer: str, payload: bytes) -> None:
        with contextlib.suppress(AttestationError):
            self.pool.add(decode_attestation(payload))

    # -- poc-overclaim -----------------------------------------------------------------------------

    async def _register_overclaim(self) -> None:
        host = self.host
        me = host.address
        while host.height < 1 or host.head_state().get_validator(me) is None:
            await asyncio.sleep(0.5)
        state = host.head_state()
        if any(n.owner == me and n.registered_height > 0
               for _, n in state.iter_records(Keys.NFT, ComputeNFT)):
            log.info("poc-overclaim: this node already registered its NFT")
            return
        bench = self._prover(-1)
        # Measured as --from-bench measures: this prover's kernel at the chain's challenge size.
        try:
            cal = await calibrate(bench, get_poc_params(state.get_params()), OVERCLAIM_BENCH_SECONDS)
        finally:
            await bench.aclose()
            self._provers.pop(-1, None)
        units = max(1, cal.units)
        claimed = units * OVERCLAIM_FACTOR
        log.warning("poc-overclaim: measured %d units, registering an NFT claiming %d", units, claimed)
        spec = HardwareSpec(DeviceKind.CPU, read_cpu_model()[:128], os.cpu_count() or 1,
                            read_memory_bytes() >> 20)
        collateral = state.get_params().min_nft_collateral * OVERCLAIM_COLLATERAL_FACTOR
        first = host.head_state().get_meta().next_nft_id
        self._submit(RegisterCompute(spec, claimed, collateral), "register_compute")
        for _ in range(240):
            await asyncio.sleep(0.5)
            state = host.head_state()
            mine = [n for _, n in state.iter_records(Keys.NFT, ComputeNFT)
                    if n.id >= first and n.owner == me and n.bound_validator == NO_ADDRESS]
            if mine:
                self._submit(BindNFT(mine[0].id, me), "bind_nft")
                return
        log.error("poc-overclaim: the registration was not committed within 2 minutes")
