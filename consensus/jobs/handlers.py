"""Transaction handlers of the marketplace (kinds 16-20): ``process_<kind>(state, ctx, sender, body)``.

Each either applies its whole body or raises a ``TxExecutionError`` leaf
(``JobError`` for marketplace rules); the caller then reverts its writes.
"""

from __future__ import annotations

import dataclasses

from consensus.errors import InsufficientFunds, JobError, NotNFTOwner, UnknownNFT
from consensus.hashing import HASH_LEN, tagged_hash
from consensus.jobs.descent import compute_descent_step, get_descent_start, get_level_sizes
from consensus.jobs.kinds import JobInput, JobKind, verify_opened_leaves
from consensus.jobs.market import (
    compute_job_status,
    empty_slot,
    get_dispute_mid,
    process_cancel,
    process_job_fault,
    replace_slot,
    with_status,
)
from consensus.jobs.registry import get_job_input, get_kind
from consensus.jobs.store import META, get_meta, price_key, put_job, require_job, tried_key
from consensus.jobs.types import (
    CancelJob,
    ChallengeAction,
    Dispute,
    Job,
    JobChallenge,
    JobMeta,
    JobResult,
    JobSlot,
    JobStatus,
    ProviderPrice,
    SetPrice,
    SlotStatus,
    SubmitJob,
)
from consensus.poc.merkle import hash_leaf, hash_node
from consensus.records import Account
from consensus.state import State, _Marker, be64
from consensus.tx_context import TxContext

JOB_ID_TAG = b"cstake/job/id/v1"


def compute_job_id(submitter: bytes, nonce: int) -> bytes:
    """Return the id of the job submitted by ``submitter``'s transaction with ``nonce``."""
    return tagged_hash(JOB_ID_TAG, submitter + be64(nonce))


def _kind(job: Job) -> JobKind:
    kind = get_kind(job.job_kind)
    if kind is None:
        raise JobError(f"job kind {job.job_kind} is unknown")
    return kind


def _slot_of(job: Job, nft_id: int) -> JobSlot:
    for slot in job.slots:
        if slot.nft_id == nft_id and slot.status != SlotStatus.EMPTY:
            return slot
    raise JobError(f"compute NFT {nft_id} holds no slot of job {job.id.hex()}")


def _require_open(job: Job) -> None:
    if job.status in JobStatus.FINAL:
        raise JobError(f"job {job.id.hex()} is {JobStatus.NAMES[job.status]}")


def _require_staked_challenger(state: State, sender: bytes, slot: JobSlot) -> None:
    v = state.get_validator(sender)
    if v is None or v.stake == 0 or v.tombstoned:
        raise JobError("only a staked validator may challenge a job result")
    if sender in (slot.provider, slot.validator):
        raise JobError("a provider may not challenge its own result")


def _save(state: State, job: Job) -> None:
    put_job(state, dataclasses.replace(job, status=compute_job_status(job)), was_open=True)


def process_submit_job(state: State, ctx: TxContext, sender: bytes, body: SubmitJob) -> None:
    """Lock the escrow and open the job; providers are assigned at the end of the block."""
    params = ctx.params
    kind = get_kind(body.job_kind)
    if kind is None:
        raise JobError(f"job kind {body.job_kind} is unknown")
    ji = JobInput(body.spec, body.inputs, body.input_seed)
    # Cheap checks first (the spec, the escrow, the open jobs, the balance): the
    # input hash may regenerate the whole input from its seed (consensus.costs).
    kind.validate_input(ji, params.job_max_input_bytes)
    work_units = kind.compute_work_units(ji)
    need = body.bid_per_unit * work_units * body.redundancy
    if body.escrow < need:
        raise JobError(
            f"escrow {body.escrow} is below bid x work units x redundancy = "
            f"{body.bid_per_unit} x {work_units} x {body.redundancy} = {need}"
        )
    meta = get_meta(state)
    if meta.open_jobs >= params.job_max_open:
        raise JobError(f"{meta.open_jobs} jobs are open, the most the chain keeps ({params.job_max_open})")
    acct = state.get_account(sender)
    if acct.balance < body.escrow:
        raise InsufficientFunds(f"the escrow needs {body.escrow} but the balance is {acct.balance}")
    if kind.compute_input_hash(ji) != body.input_hash:
        raise JobError("input_hash is not the SHA-256 of the job's inputs")
    # The nonce already advanced: this transaction's nonce is one less.
    job_id = compute_job_id(sender, acct.nonce - 1)
    state.set_account(sender, Account(acct.balance - body.escrow, acct.nonce))
    job = Job(
        id=job_id, seq=meta.next_seq, submitter=sender, job_kind=body.job_kind, spec=body.spec,
        inputs=body.inputs, input_seed=body.input_seed, input_hash=body.input_hash,
        work_units=work_units, min_units=body.min_units, bid_per_unit=body.bid_per_unit,
        escrow=body.escrow, redundancy=body.redundancy, deadline_blocks=body.deadline_blocks,
        status=JobStatus.SUBMITTED, submitted_height=ctx.height,
        expires_height=ctx.height + params.job_lifetime_blocks,
        slots=tuple(empty_slot(i) for i in range(body.redundancy)), excluded=(), result_root=b"",
        settled_height=0, locked=body.escrow, paid=0, verifier_paid=0, burned=0, refunded=0,
    )
    state.put_record(META, JobMeta(meta.next_seq + 1, meta.open_jobs))
    put_job(state, job, was_open=False)


def process_job_result(state: State, ctx: TxContext, sender: bytes, body: JobResult) -> None:
    """The assigned provider's commitment (no openings), then its sampled openings."""
    job = require_job(state, body.job_id)
    _require_open(job)
    slot = _slot_of(job, body.nft_id)
    if sender not in (slot.provider, slot.validator):
        raise JobError(f"only the owner or validator of NFT {body.nft_id} may post its result")
    kind = _kind(job)
    ji = get_job_input(job)
    if not body.openings:
        if slot.status != SlotStatus.ASSIGNED:
            raise JobError(f"the result of NFT {body.nft_id} is already committed")
        slot = dataclasses.replace(
            slot, status=SlotStatus.COMMITTED, result_root=body.result_root, committed_height=ctx.height,
            committer=sender,
        )
        _save(state, replace_slot(job, slot))
        return
    if slot.status != SlotStatus.COMMITTED:
        raise JobError("openings need a committed, not yet opened result")
    if not slot.sample_seed:
        raise JobError("the samples are fixed by the block after the commitment: open after it")
    if body.result_root != slot.result_root:
        raise JobError("the openings name another result root than the committed one")
    expected = kind.compute_sample_indices(ji, slot.sample_seed, ctx.params.job_sample_count)
    if tuple(o.index for o in body.openings) != expected:
        raise JobError(f"expected the {len(expected)} sampled leaves in ascending order")
    verify_opened_leaves(slot.result_root, kind.get_leaf_count(ji), body.openings)
    slot = dataclasses.replace(
        slot, status=SlotStatus.OPENED, openings=body.openings,
        window_end=ctx.height + ctx.params.job_challenge_window_blocks,
    )
    _save(state, replace_slot(job, slot))


def process_job_challenge_claim(state: State, ctx: TxContext, sender: bytes, body: JobChallenge) -> None:
    """The cheap checks of a fraud proof, then its leaves marked as tried (the mark stays if it fails).

    Only for ``FRAUD``: the job open, the slot, a staked challenger that is not
    the provider, the window, the leaves' Merkle paths to the committed root
    (so the mark names the committed leaves, never a bogus proof's), and no
    earlier proof of the same leaves. What is left for the handler is the
    kind's exact check, which may regenerate the job's inputs.
    """
    if body.action != ChallengeAction.FRAUD:
        return
    job = require_job(state, body.job_id)
    _require_open(job)
    slot = _slot_of(job, body.nft_id)
    _require_staked_challenger(state, sender, slot)
    in_window = slot.status == SlotStatus.COMMITTED or (
        slot.status in (SlotStatus.OPENED, SlotStatus.DISPUTED) and ctx.height <= slot.window_end
    )
    if slot.status == SlotStatus.ASSIGNED or not (in_window or slot.status == SlotStatus.DISPUTED):
        raise JobError("the result is not open to challenge (not committed, or the window closed)")
    verify_opened_leaves(slot.result_root, _kind(job).get_leaf_count(get_job_input(job)), body.openings)
    key = tried_key(job.id, slot.nft_id, slot.assigned_height, tuple(sorted(o.index for o in body.openings)))
    if state.get_record(key, _Marker) is not None:
        raise JobError("these leaves of the result were already tried by a fraud proof")
    state.put_record(key, _Marker())


def process_job_challenge(state: State, ctx: TxContext, sender: bytes, body: JobChallenge) -> None:
    """A fraud proof, or one move of a bisection (start, reveal, choose)."""
    job = require_job(state, body.job_id)
    _require_open(job)
    slot = _slot_of(job, body.nft_id)
    kind = _kind(job)
    ji = get_job_input(job)
    params = ctx.params
    in_window = slot.status == SlotStatus.COMMITTED or (
        slot.status in (SlotStatus.OPENED, SlotStatus.DISPUTED) and ctx.height <= slot.window_end
    )
    if body.action == ChallengeAction.FRAUD:
        _require_staked_challenger(state, sender, slot)
        if slot.status == SlotStatus.ASSIGNED or not (in_window or slot.status == SlotStatus.DISPUTED):
            raise JobError("the result is not open to challenge (not committed, or the window closed)")
        leaves = verify_opened_leaves(slot.result_root, kind.get_leaf_count(ji), body.openings)
        if not kind.is_fault(ji, leaves):
            raise JobError("the fraud proof proves nothing: the opened leaves are correct")
        _save(state, process_job_fault(state, job, slot, sender, ctx.height, params, []))
        return
    if body.action == ChallengeAction.START:
        _require_staked_challenger(state, sender, slot)
        if slot.status != SlotStatus.OPENED or ctx.height > slot.window_end:
            raise JobError("a dispute starts on an opened result inside its challenge window")
        if not kind.supports_bisection:
            level, index = get_descent_start(kind.get_leaf_count(ji))
            d = Dispute(
                challenger=sender, lo=level, hi=index, lo_leaf=b"", hi_leaf=slot.result_root, mid_leaf=b"",
                turn=0, turn_deadline=ctx.height + params.job_response_blocks, rounds=1,
            )
            _save(state, replace_slot(job, dataclasses.replace(slot, status=SlotStatus.DISPUTED, dispute=d)))
            return
        opened = {o.index: o.leaf for o in slot.openings}
        last = kind.get_leaf_count(ji) - 1
        if opened[0] != kind.get_initial_leaf(ji):
            _save(state, process_job_fault(state, job, slot, sender, ctx.height, params, []))
            return
        d = Dispute(
            challenger=sender, lo=0, hi=last, lo_leaf=opened[0], hi_leaf=opened[last], mid_leaf=b"",
            turn=0, turn_deadline=ctx.height + params.job_response_blocks, rounds=1,
        )
        _advance(state, ctx, job, slot, kind, ji, d)
        return
    current = slot.dispute
    if slot.status != SlotStatus.DISPUTED or current is None:
        raise JobError("there is no bisection on this result")
    d = current
    if body.action == ChallengeAction.REVEAL:
        if d.turn != 0 or sender not in (slot.provider, slot.validator):
            raise JobError("it is not the provider's turn to reveal")
        if not kind.supports_bisection:
            _descent_reveal(state, ctx, job, slot, kind, ji, d, body)
            return
        if len(body.openings) != 1 or body.openings[0].index != get_dispute_mid(d):
            raise JobError(f"reveal exactly the state at step {get_dispute_mid(d)}")
        verify_opened_leaves(slot.result_root, kind.get_leaf_count(ji), body.openings)
        d = dataclasses.replace(
            d, mid_leaf=body.openings[0].leaf, turn=1, turn_deadline=ctx.height + params.job_response_blocks
        )
        _save(state, replace_slot(job, dataclasses.replace(slot, dispute=d)))
        return
    # CHOOSE
    if d.turn != 1 or sender != d.challenger:
        raise JobError("it is not the challenger's turn to choose")
    if not kind.supports_bisection:
        # Merkle descent: agree 1 keeps the left child (the right one is wrong), 0 disputes the left.
        child = 2 * d.hi + (1 if body.agree else 0)
        child_hash = d.mid_leaf[HASH_LEN:] if body.agree else d.mid_leaf[:HASH_LEN]
        level, index = compute_descent_step(get_level_sizes(kind.get_leaf_count(ji)), d.lo - 1, child)
        d = dataclasses.replace(
            d, lo=level, hi=index, hi_leaf=child_hash, mid_leaf=b"", turn=0,
            turn_deadline=ctx.height + params.job_response_blocks, rounds=d.rounds + 1,
        )
        _save(state, replace_slot(job, dataclasses.replace(slot, dispute=d)))
        return
    mid = get_dispute_mid(d)
    if body.agree:
        d = dataclasses.replace(d, lo=mid, lo_leaf=d.mid_leaf)
    else:
        d = dataclasses.replace(d, hi=mid, hi_leaf=d.mid_leaf)
    d = dataclasses.replace(
        d, mid_leaf=b"", turn=0, turn_deadline=ctx.height + params.job_response_blocks, rounds=d.rounds + 1
    )
    _advance(state, ctx, job, slot, kind, ji, d)


def _descent_reveal(
    state: State, ctx: TxContext, job: Job, slot: JobSlot, kind: JobKind, ji: JobInput, d: Dispute,
    body: JobChallenge,
) -> None:
    """The provider opens the disputed node: its two children, or at the bottom the leaf itself."""
    if len(body.openings) != 1 or body.openings[0].index != d.hi:
        raise JobError(f"reveal exactly node {d.hi} of level {d.lo}")
    revealed = body.openings[0].leaf
    if d.lo > 0:
        if len(revealed) != 2 * HASH_LEN or hash_node(revealed[:HASH_LEN], revealed[HASH_LEN:]) != d.hi_leaf:
            raise JobError("the revealed children do not hash to the disputed node")
        d = dataclasses.replace(d, mid_leaf=revealed, turn=1, turn_deadline=ctx.height + ctx.params.job_response_blocks)
        _save(state, replace_slot(job, dataclasses.replace(slot, dispute=d)))
        return
    if hash_leaf(revealed) != d.hi_leaf:
        raise JobError("the revealed leaf is not the committed one")
    if kind.is_fault(ji, {d.hi: revealed}):
        _save(state, process_job_fault(state, job, slot, d.challenger, ctx.height, ctx.params, []))
        return
    # The leaf the challenger walked to is correct: the result stands.
    _save(state, replace_slot(job, dataclasses.replace(slot, status=SlotStatus.OPENED, dispute=None)))


def _advance(
    state: State, ctx: TxContext, job: Job, slot: JobSlot, kind: JobKind, ji: JobInput, d: Dispute
) -> None:
    """Store the dispute, or decide it by re-executing the one step left."""
    if d.hi - d.lo > 1:
        _save(state, replace_slot(job, dataclasses.replace(slot, status=SlotStatus.DISPUTED, dispute=d)))
        return
    if not kind.is_step_correct(ji, d.lo, d.lo_leaf, d.hi_leaf):
        _save(state, process_job_fault(state, job, slot, d.challenger, ctx.height, ctx.params, []))
        return
    # The disputed step is correct: the provider wins, its result stands.
    _save(state, with_status(replace_slot(job, dataclasses.replace(slot, status=SlotStatus.OPENED, dispute=None))))


def process_cancel_job(state: State, ctx: TxContext, sender: bytes, body: CancelJob) -> None:
    """Cancel a job no provider holds, refunding the whole escrow left."""
    job = require_job(state, body.job_id)
    if job.submitter != sender:
        raise JobError("only the submitter may cancel a job")
    _require_open(job)
    if any(s.status != SlotStatus.EMPTY for s in job.slots):
        raise JobError(f"job {job.id.hex()} is assigned: it can no longer be cancelled")
    _save(state, process_cancel(state, job, ctx.height, []))


def process_set_price(state: State, ctx: TxContext, sender: bytes, body: SetPrice) -> None:
    """Set the asking price of an NFT the sender owns."""
    nft = state.get_nft(body.nft_id)
    if nft is None:
        raise UnknownNFT(f"no compute NFT with id {body.nft_id}")
    if nft.owner != sender:
        raise NotNFTOwner(f"compute NFT {body.nft_id} is not owned by the sender")
    state.put_record(price_key(body.nft_id), ProviderPrice(body.nft_id, body.price_per_unit, body.offering))
