"""The provider side of the job marketplace, run as a node service.

After every committed block it reads the open jobs from the head state and:

- **provides**: for a slot assigned to one of this node's NFTs (owned by, or
  bound to, its account) it executes the job in a worker process, posts the
  result commitment, then, once the next block fixed the samples, the
  openings; in a bisection it reveals the midpoints it is asked for;
- **watches** (validators only): it checks every other provider's opened
  samples (Freivalds for matrices, the step function for iterations) and
  posts a fraud proof for a wrong one; for small jobs it also re-executes
  the job and disputes a result whose root differs from its own (a
  bisection over the states, or a Merkle descent to the wrong matrix row),
  answering each move from its own result.

Test-only ``--byzantine job-cheat`` makes its own results wrong in one
matrix entry or one step (later steps computed honestly from the wrong one).

The provider sees the node only through ``node.compute.ports.ProviderHost``;
the daemon calls ``on_committed`` after each commit.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING

from consensus.codec import Encodable
from consensus.costs import get_min_fee
from consensus.jobs.kinds import (
    Commitment,
    JobInput,
    build_fraud_proof,
    compute_commitment,
    open_leaves,
)
from consensus.jobs.market import get_dispute_mid
from consensus.jobs.registry import get_job_input, get_kind
from consensus.jobs.store import get_job, iter_open_job_ids
from consensus.jobs.types import (
    ChallengeAction,
    Job,
    JobChallenge,
    JobResult,
    JobSlot,
    LeafOpening,
    SlotStatus,
)
from consensus.poc.merkle import ROW_DTYPE
from consensus.state import State
from consensus.txs import build_tx
from node.compute.ports import ProviderHost

if TYPE_CHECKING:
    from node.engine.executor import BlockCommitted

log = logging.getLogger("node.jobs")

#: Blocks after which an action whose transaction did not take effect is sent again.
RETRY_BLOCKS = 3
#: Largest job (work units) a watcher re-executes to dispute it (in the event loop: keep small).
WATCH_MAX_UNITS = 16


def execute_job(kind_code: int, spec: bytes, inputs: bytes, seed: bytes, cheat: bool) -> Commitment:
    """Run a job and commit to its leaves (in the worker process)."""
    import numpy as np

    kind = get_kind(kind_code)
    if kind is None:
        raise ValueError(f"unknown job kind {kind_code}")
    job = JobInput(spec, inputs, seed)
    leaves = kind.execute(job)
    if cheat:
        if kind.supports_bisection:
            from consensus.jobs.iterate import compute_step

            # One wrong step in the middle; every later step honest from the wrong state.
            bad = len(leaves) // 2
            state = bytearray(leaves[bad])
            state[0] ^= 1
            leaves[bad] = bytes(state)
            for t in range(bad, len(leaves) - 1):
                leaves[t + 1] = compute_step(leaves[t], t)
        else:
            row = np.frombuffer(leaves[0], dtype=ROW_DTYPE).copy()
            row[0] += 1
            leaves[0] = row.astype(ROW_DTYPE).tobytes()
    return compute_commitment(leaves)


@dataclass
class _Work:
    """A slot this node provides for."""

    task: asyncio.Task[None] | None = None
    commitment: Commitment | None = None


class JobProvider:
    """Provides for this node's NFTs and watches everyone else's results."""

    def __init__(self, host: ProviderHost, *, cheat: bool = False) -> None:
        self._host = host
        self._cheat = cheat
        self._executor: ProcessPoolExecutor | None = None
        self._work: dict[tuple[bytes, int, int], _Work] = {}
        self._sent: dict[tuple[object, ...], int] = {}
        self._checked: set[tuple[bytes, int, int]] = set()
        self._traces: dict[tuple[bytes, int], Commitment] = {}
        self._wake = asyncio.Event()

    # -- the loop ------------------------------------------------------------------------------

    def on_committed(self, committed: BlockCommitted) -> None:
        """Driver listener: look at the open jobs again after each commit."""
        self._wake.set()

    async def run(self) -> None:
        """Act after every committed block until cancelled."""
        self._wake.set()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                self.on_height()
        finally:
            for work in self._work.values():
                if work.task is not None:
                    work.task.cancel()
            tasks = [w.task for w in self._work.values() if w.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Stop the worker process."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def on_height(self) -> None:
        """Look at every open job once (called after each commit)."""
        state = self._host.head_state()
        height = self._host.height
        me = self._host.address
        v = state.get_validator(me)
        can_watch = v is not None and v.stake > 0 and not v.tombstoned
        live: set[tuple[bytes, int, int]] = set()
        open_ids = iter_open_job_ids(state)
        for job_id in open_ids:
            job = get_job(state, job_id)
            if job is None:
                continue
            for slot in job.slots:
                if slot.status == SlotStatus.EMPTY:
                    continue
                if me in (slot.provider, slot.validator):
                    key = (job.id, slot.nft_id, slot.assigned_height)
                    live.add(key)
                    self._provide(state, job, slot, key, height)
                elif can_watch:
                    self._watch(state, job, slot, height)
        for key in [k for k in self._work if k not in live]:
            work = self._work.pop(key)
            if work.task is not None:
                work.task.cancel()
        self._forget_finished(set(open_ids))

    # -- providing -----------------------------------------------------------------------------

    def _provide(self, state: State, job: Job, slot: JobSlot, key: tuple[bytes, int, int], height: int) -> None:
        work = self._work.setdefault(key, _Work())
        if work.commitment is None:
            if work.task is None:
                work.task = asyncio.get_running_loop().create_task(self._execute(job, key), name="job-execute")
            return
        c = work.commitment
        if slot.status == SlotStatus.ASSIGNED:
            self._send(("commit", key), height, JobResult(job.id, slot.nft_id, c.root, ()))
        elif slot.status == SlotStatus.COMMITTED and slot.sample_seed:
            kind = get_kind(job.job_kind)
            if kind is None:
                return
            count = state.get_params().job_sample_count
            indices = kind.compute_sample_indices(get_job_input(job), slot.sample_seed, count)
            self._send(("open", key), height, JobResult(job.id, slot.nft_id, c.root, open_leaves(c, indices)))
        elif slot.status == SlotStatus.DISPUTED and slot.dispute is not None and slot.dispute.turn == 0:
            d = slot.dispute
            kind = get_kind(job.job_kind)
            if kind is not None and kind.supports_bisection:
                opened = open_leaves(c, [get_dispute_mid(d)])
            elif d.lo > 0:
                # Merkle descent: the disputed node's two children.
                below = c.levels[d.lo - 1]
                opened = (LeafOpening(d.hi, below[2 * d.hi] + below[2 * d.hi + 1], ()),)
            else:
                opened = (LeafOpening(d.hi, c.leaves[d.hi], ()),)
            body = JobChallenge(job.id, slot.nft_id, ChallengeAction.REVEAL, 0, opened)
            self._send(("reveal", key, d.lo, d.hi), height, body)

    async def _execute(self, job: Job, key: tuple[bytes, int, int]) -> None:
        try:
            commitment = await self._run_worker(job, self._cheat)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("job %s: execution failed: %s", job.id.hex()[:16], exc)
            self._work.pop(key, None)
            return
        work = self._work.get(key)
        if work is not None:
            work.commitment = commitment
            log.info("job %s executed for NFT %d: root %s%s", job.id.hex()[:16], key[1],
                     commitment.root.hex()[:16], " (job-cheat: wrong on purpose)" if self._cheat else "")
            self._wake.set()

    async def _run_worker(self, job: Job, cheat: bool) -> Commitment:
        if self._executor is None:
            # spawn: a fresh interpreter, never a fork of a process with running threads.
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor, execute_job, job.job_kind, job.spec, job.inputs, job.input_seed, cheat
            )
        except BrokenProcessPool:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            raise

    # -- watching ------------------------------------------------------------------------------

    def _watch(self, state: State, job: Job, slot: JobSlot, height: int) -> None:
        kind = get_kind(job.job_kind)
        if kind is None:
            return
        ji = get_job_input(job)
        key = (job.id, slot.nft_id, slot.assigned_height)
        if slot.status == SlotStatus.OPENED and height <= slot.window_end and key not in self._checked:
            count = state.get_params().job_sample_count
            proof = build_fraud_proof(kind, ji, slot.sample_seed, slot.openings, count)
            if proof is not None:
                log.warning("job %s: NFT %d opened a wrong result; sending a fraud proof",
                            job.id.hex()[:16], slot.nft_id)
                self._send(("fraud", key), height, JobChallenge(job.id, slot.nft_id, ChallengeAction.FRAUD, 0, proof))
                return
            if kind.compute_work_units(ji) <= WATCH_MAX_UNITS:
                mine = self._trace(job, ji)
                if mine.root != slot.result_root:
                    how = "a bisection" if kind.supports_bisection else "a Merkle descent"
                    log.warning("job %s: NFT %d committed another result; starting %s",
                                job.id.hex()[:16], slot.nft_id, how)
                    self._send(("start", key), height, JobChallenge(job.id, slot.nft_id, ChallengeAction.START, 0, ()))
                    return
            self._checked.add(key)
        d = slot.dispute
        if slot.status == SlotStatus.DISPUTED and d is not None and d.turn == 1 and d.challenger == self._host.address:
            mine = self._trace(job, ji)
            if kind.supports_bisection:
                agree = 1 if mine.leaves[get_dispute_mid(d)] == d.mid_leaf else 0
            else:
                # Keep the left child if it matches this node's own tree: the right one differs.
                agree = 1 if mine.levels[d.lo - 1][2 * d.hi] == d.mid_leaf[:32] else 0
            body = JobChallenge(job.id, slot.nft_id, ChallengeAction.CHOOSE, agree, ())
            self._send(("choose", key, d.lo, d.hi), height, body)

    def _trace(self, job: Job, ji: JobInput) -> Commitment:
        key = (job.id, 0)
        if key not in self._traces:
            kind = get_kind(job.job_kind)
            if kind is None:
                raise ValueError(f"unknown job kind {job.job_kind}")
            self._traces[key] = compute_commitment(kind.execute(ji))
        return self._traces[key]

    # -- transactions --------------------------------------------------------------------------

    def _send(self, action: tuple[object, ...], height: int, body: Encodable) -> None:
        """Sign and submit ``body`` unless the same action was sent in the last few blocks."""
        last = self._sent.get(action)
        if last is not None and height < last + RETRY_BLOCKS:
            return
        host = self._host
        state = host.head_state()
        params = state.get_params()
        account = state.get_account(host.address)
        nonce = host.next_nonce(host.address, account.nonce)
        tx = build_tx(host.account_key, host.chain_id, nonce, get_min_fee(body, params), body)
        code, text, _ = host.submit_tx(tx.raw)
        self._sent[action] = height
        if code != 0:
            log.warning("job transaction %s refused by the mempool (code %d): %s", action[0], code, text)
        else:
            log.info("job transaction %s sent (nonce %d)", action[0], nonce)

    def _forget_finished(self, open_ids: set[bytes]) -> None:
        """Drop per-job memory of jobs that are no longer open."""
        self._traces = {k: v for k, v in self._traces.items() if k[0] in open_ids}
        self._checked = {k for k in self._checked if k[0] in open_ids}
        self._sent = {k: h for k, h in self._sent.items() if _action_job(k) in open_ids}


def _action_job(action: tuple[object, ...]) -> object:
    key = action[1]
    return key[0] if isinstance(key, tuple) else None
