"""Assignment, deadlines, disputes timing out, faults and settlement: the end-of-block work.

``process_jobs_end_block`` runs once per block, after the transactions, over
the open jobs in submission order:

1. per slot: an assigned provider that has not committed and opened by its
   deadline *missed* it (reputation down, the NFT is excluded from this job,
   the slot is re-assigned); a committed slot gets its sample seed from the
   first block after the commitment; a bisection whose party did not move in
   time ends against that party;
2. a job with an empty slot past its lifetime fails and is refunded;
3. empty slots are assigned (``compute_candidates``): eligible NFTs ranked by
   verified units, then reputation, then asking price, then id;
4. a job whose slots are all opened and whose challenge windows are over
   settles: the results must agree (a strict majority of the slots), each
   agreeing provider is paid ``price x work units`` minus the verifier share
   (to this block's proposer) and the protocol fee (burned), the others lose
   reputation, and the rest of the escrow returns to the submitter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from consensus.blocks import Block
from consensus.errors import FaultAlreadySlashed
from consensus.hashing import tagged_hash
from consensus.incentives import process_reputation
from consensus.jobs.kinds import compute_sample_seed
from consensus.jobs.store import (
    count_busy,
    get_job,
    get_price,
    iter_open_job_ids,
    put_job,
    set_busy,
)
from consensus.jobs.types import Dispute, Job, JobSlot, JobStatus, SlotStatus
from consensus.params import BPS, Params
from consensus.records import NO_ADDRESS, ComputeNFT, Fault, NFTStatus
from consensus.staking import add_balance, process_burn, process_slash, process_slash_collateral
from consensus.state import Keys, State, be64

FAULT_TAG = b"cstake/job/fault/v1"
MISSED_TAG = b"cstake/job/missed/v1"


# --- events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobAssigned:
    """Event: a job slot was given to a compute NFT."""

    job_id: bytes
    slot: int
    nft_id: int
    height: int


@dataclass(frozen=True, slots=True)
class JobDeadlineMissed:
    """Event: an assigned provider did not commit and open its result in time."""

    job_id: bytes
    slot: int
    nft_id: int
    height: int


@dataclass(frozen=True, slots=True)
class JobFaultProven:
    """Event: a provider's result was proven wrong; it was slashed and the slot re-opened."""

    job_id: bytes
    slot: int
    nft_id: int
    challenger: bytes
    height: int


@dataclass(frozen=True, slots=True)
class JobDisputeDismissed:
    """Event: a bisection ended for the provider (or the challenger stopped answering)."""

    job_id: bytes
    slot: int
    height: int


@dataclass(frozen=True, slots=True)
class JobSettled:
    """Event: a job ended (settled or failed) and its escrow was paid out and refunded."""

    job_id: bytes
    status: int
    paid: int
    refunded: int
    height: int


# --- slots --------------------------------------------------------------------------------


def empty_slot(index: int) -> JobSlot:
    """Return a slot waiting for a provider."""
    return JobSlot(
        index=index, status=SlotStatus.EMPTY, nft_id=0, provider=NO_ADDRESS, validator=NO_ADDRESS,
        price=0, assigned_height=0, deadline_height=0, result_root=b"", committed_height=0,
        sample_seed=b"", openings=(), window_end=0, dispute=None, committer=NO_ADDRESS,
    )


def replace_slot(job: Job, slot: JobSlot) -> Job:
    """Return ``job`` with ``slot`` in its place."""
    slots = list(job.slots)
    slots[slot.index] = slot
    return dataclasses.replace(job, slots=tuple(slots))


def compute_job_status(job: Job) -> int:
    """Return the status the slots imply (final statuses are kept)."""
    if job.status in JobStatus.FINAL:
        return job.status
    states = [s.status for s in job.slots]
    if all(st == SlotStatus.EMPTY for st in states):
        return JobStatus.SUBMITTED
    if any(st == SlotStatus.DISPUTED for st in states):
        return JobStatus.CHALLENGED
    if all(st in (SlotStatus.COMMITTED, SlotStatus.OPENED) for st in states):
        return JobStatus.COMMITTED
    return JobStatus.ASSIGNED


def with_status(job: Job) -> Job:
    return dataclasses.replace(job, status=compute_job_status(job))


def _release(state: State, job: Job, slot: JobSlot, excluded: bool) -> Job:
    """Free the slot's NFT and empty the slot (excluding the NFT from this job if asked)."""
    set_busy(state, slot.nft_id, job.id, False)
    job = replace_slot(job, empty_slot(slot.index))
    if excluded and slot.nft_id not in job.excluded:
        job = dataclasses.replace(job, excluded=tuple(sorted((*job.excluded, slot.nft_id))))
    return job


def process_missed_job(state: State, job: Job, slot: JobSlot, height: int, params: Params) -> None:
    """A slot past its deadline: ``missed_job_slash_bps`` of the NFT's collateral, burned.

    Only the collateral, as for a missed proof-of-compute deadline: nobody
    signed anything wrong, the NFT's owner put the collateral at stake for
    the work it took on. The record names the slot's validator (or the owner
    when unbound).
    """
    evidence_hash = tagged_hash(MISSED_TAG, job.id + be64(slot.nft_id) + be64(slot.assigned_height))
    nft = state.get_nft(slot.nft_id)
    if nft is None or state.is_fault_slashed(evidence_hash):
        return
    _, cut = process_slash_collateral(state, nft, params.missed_job_slash_bps)
    offender = slot.validator if slot.validator != NO_ADDRESS else slot.provider
    process_slash(
        state, validator_address=offender, fault=Fault.MISSED_JOB, slash_bps=0,
        infraction_height=height, evidence_hash=evidence_hash, whistleblower=NO_ADDRESS,
        height=height, params=params, extra_amount=cut,
    )


def process_job_fault(
    state: State, job: Job, slot: JobSlot, challenger: bytes, height: int, params: Params,
    events: list[object],
) -> Job:
    """A proven wrong result: slash per the table, pay the challenger, re-open the slot.

    The NFT loses its whole collateral and is marked faulty with zero verified
    units; its validator (at assignment, so bound with its consent) loses
    ``faulty_compute_slash_bps`` of its stake and reputation only if its
    operator signed the result commitment; a result committed by the NFT's
    owner costs the collateral only (the owner is named in the record). The
    challenger is the whistleblower.
    """
    evidence_hash = tagged_hash(FAULT_TAG, job.id + be64(slot.nft_id) + be64(slot.assigned_height))
    if state.is_fault_slashed(evidence_hash):
        raise FaultAlreadySlashed("this job result was already punished")
    nft = state.get_nft(slot.nft_id)
    cut = 0
    if nft is not None:
        nft, cut = process_slash_collateral(state, nft, BPS)
        state.set_nft(dataclasses.replace(nft, verified_units=0, status=NFTStatus.FAULTY))
    bound = (
        slot.validator != NO_ADDRESS
        and slot.committer == slot.validator
        and state.get_validator(slot.validator) is not None
    )
    offender = slot.validator if bound else slot.provider
    process_slash(
        state, validator_address=offender, fault=Fault.JOB_FAULT,
        slash_bps=params.faulty_compute_slash_bps if bound else 0,
        infraction_height=max(slot.committed_height, slot.assigned_height),
        evidence_hash=evidence_hash, whistleblower=challenger, height=height, params=params,
        extra_amount=cut,
    )
    if bound:
        process_reputation(state, offender, False, params.reputation_job_bps)
    events.append(JobFaultProven(job.id, slot.index, slot.nft_id, challenger, height))
    return with_status(_release(state, job, slot, excluded=True))


def _process_slot_timers(
    state: State, job: Job, slot: JobSlot, block: Block, params: Params, events: list[object]
) -> Job:
    height = block.header.height
    if slot.status in (SlotStatus.ASSIGNED, SlotStatus.COMMITTED) and height > slot.deadline_height:
        if slot.validator != NO_ADDRESS:
            process_reputation(state, slot.validator, False, params.reputation_job_bps)
        process_missed_job(state, job, slot, height, params)
        events.append(JobDeadlineMissed(job.id, slot.index, slot.nft_id, height))
        return _release(state, job, slot, excluded=True)
    if slot.status == SlotStatus.COMMITTED and not slot.sample_seed and height >= slot.committed_height + 2:
        # The samples come from the parent's hash, a block built after the commitment's:
        # the same whichever signatures this block's last commit carries (a proposer could
        # grind those), and unknown to the proposer of the commitment's block.
        seed = compute_sample_seed(job.id, slot.result_root, block.header.parent_hash)
        return replace_slot(job, dataclasses.replace(slot, sample_seed=seed))
    d = slot.dispute
    if slot.status == SlotStatus.DISPUTED and d is not None and height > d.turn_deadline:
        if d.turn == 0:
            # The provider did not reveal the midpoint in time: it loses the dispute.
            return process_job_fault(state, job, slot, d.challenger, height, params, events)
        events.append(JobDisputeDismissed(job.id, slot.index, height))
        return replace_slot(job, dataclasses.replace(slot, status=SlotStatus.OPENED, dispute=None))
    return job


# --- assignment ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """An NFT that may take job slots, with what ranks it."""

    nft_id: int
    owner: bytes
    validator: bytes
    verified_units: int
    reputation: int
    price: int


def compute_candidates(state: State, params: Params) -> list[Candidate]:
    """Return the NFTs that may take jobs, best first.

    Eligible: ACTIVE, bound to a validator that is neither jailed nor
    tombstoned, offering. Ranked by verified units (more first), reputation
    (higher first), asking price (lower first), then id.
    """
    found: list[Candidate] = []
    for _, nft in state.iter_records(Keys.NFT, ComputeNFT):
        if nft.status != NFTStatus.ACTIVE or nft.verified_units <= 0 or nft.bound_validator == NO_ADDRESS:
            continue
        v = state.get_validator(nft.bound_validator)
        if v is None or v.jailed or v.tombstoned:
            continue
        offer = get_price(state, nft.id, params)
        if not offer.offering:
            continue
        found.append(Candidate(nft.id, nft.owner, v.address, nft.verified_units, v.reputation, offer.price_per_unit))
    found.sort(key=lambda c: (-c.verified_units, -c.reputation, c.price, c.nft_id))
    return found


def _assign(
    state: State, job: Job, candidates: list[Candidate], busy: dict[int, int], height: int,
    params: Params, events: list[object],
) -> Job:
    for slot in job.slots:
        if slot.status != SlotStatus.EMPTY:
            continue
        taken = [s for s in job.slots if s.status != SlotStatus.EMPTY]
        for c in candidates:
            if (
                c.verified_units < job.min_units
                or c.price > job.bid_per_unit
                or c.nft_id in job.excluded
                # Redundant results must come from independent providers.
                or any(c.nft_id == s.nft_id or c.owner == s.provider or c.validator == s.validator for s in taken)
            ):
                continue
            if c.nft_id not in busy:
                busy[c.nft_id] = count_busy(state, c.nft_id)
            if busy[c.nft_id] >= params.job_max_slots_per_nft:
                continue
            busy[c.nft_id] += 1
            set_busy(state, c.nft_id, job.id, True)
            assigned = dataclasses.replace(
                slot, status=SlotStatus.ASSIGNED, nft_id=c.nft_id, provider=c.owner, validator=c.validator,
                price=c.price, assigned_height=height, deadline_height=height + job.deadline_blocks,
            )
            job = replace_slot(job, assigned)
            events.append(JobAssigned(job.id, slot.index, c.nft_id, height))
            break
    return job


# --- settlement ---------------------------------------------------------------------------


def _finish(state: State, job: Job, status: int, height: int, events: list[object]) -> Job:
    """Refund what is left, free every NFT still holding a slot, and close the job."""
    for slot in job.slots:
        if slot.status != SlotStatus.EMPTY:
            set_busy(state, slot.nft_id, job.id, False)
    if job.locked:
        add_balance(state, job.submitter, job.locked)
    job = dataclasses.replace(
        job, status=status, settled_height=height, refunded=job.refunded + job.locked, locked=0,
    )
    events.append(JobSettled(job.id, status, job.paid, job.refunded, height))
    return job


def process_settlement(
    state: State, job: Job, proposer: bytes, height: int, params: Params, events: list[object]
) -> Job:
    """Pay the agreeing providers, penalise the others, refund the submitter (caller checked timing)."""
    counts: dict[bytes, int] = {}
    for slot in job.slots:
        counts[slot.result_root] = counts.get(slot.result_root, 0) + 1
    winner = b""
    for root in sorted(counts):
        if 2 * counts[root] > len(job.slots):
            winner = root
    slots = []
    for slot in job.slots:
        if slot.result_root == winner:
            payment = slot.price * job.work_units
            verifier = payment * params.job_verifier_share_bps // BPS
            fee = payment * params.job_fee_bps // BPS
            add_balance(state, slot.provider, payment - verifier - fee)
            add_balance(state, proposer, verifier)
            process_burn(state, fee)
            job = dataclasses.replace(
                job, locked=job.locked - payment, paid=job.paid + payment - verifier - fee,
                verifier_paid=job.verifier_paid + verifier, burned=job.burned + fee,
            )
            process_reputation(state, slot.validator, True, params.reputation_job_bps)
            slots.append(dataclasses.replace(slot, status=SlotStatus.DONE))
        else:
            process_reputation(state, slot.validator, False, params.reputation_job_bps)
            slots.append(dataclasses.replace(slot, status=SlotStatus.LOST))
    job = dataclasses.replace(job, slots=tuple(slots), result_root=winner)
    return _finish(state, job, JobStatus.SETTLED if winner else JobStatus.FAILED, height, events)


def is_settleable(job: Job, height: int) -> bool:
    """Return whether every slot is opened, undisputed, and past its challenge window."""
    return all(s.status == SlotStatus.OPENED and height >= s.window_end for s in job.slots)


def process_cancel(state: State, job: Job, height: int, events: list[object]) -> Job:
    """Cancel an unassigned job: the whole escrow returns to the submitter."""
    return _finish(state, job, JobStatus.CANCELLED, height, events)


# --- the end of a block -------------------------------------------------------------------


def process_jobs_end_block(state: State, block: Block, params: Params, events: list[object]) -> None:
    """Run the marketplace's per-block steps over the open jobs (see the module docstring)."""
    open_ids = iter_open_job_ids(state)
    if not open_ids:
        return
    height = block.header.height
    # Pass 1: timers of every job first, so faults found here are seen by the ranking below.
    for job_id in open_ids:
        before = get_job(state, job_id)
        if before is None:
            continue
        job = before
        for index in range(len(job.slots)):
            job = _process_slot_timers(state, job, job.slots[index], block, params, events)
        if any(s.status == SlotStatus.EMPTY for s in job.slots) and height >= job.expires_height:
            job = _finish(state, job, JobStatus.FAILED, height, events)
        _put_if_changed(state, before, with_status(job))
    # Pass 2: assignment and settlement, in submission order.
    candidates: list[Candidate] | None = None
    busy: dict[int, int] = {}
    for job_id in iter_open_job_ids(state):
        before = get_job(state, job_id)
        if before is None:
            continue
        job = before
        if any(s.status == SlotStatus.EMPTY for s in job.slots):
            if candidates is None:
                candidates = compute_candidates(state, params)
            job = _assign(state, job, candidates, busy, height, params, events)
        if is_settleable(job, height):
            job = process_settlement(state, job, block.header.proposer, height, params, events)
        _put_if_changed(state, before, with_status(job))


def _put_if_changed(state: State, before: Job, after: Job) -> None:
    # A job record carries its inputs and openings: write it only when something changed.
    if after != before:
        put_job(state, after, was_open=True)


def get_dispute_mid(d: Dispute) -> int:
    """Return the index the provider must reveal next."""
    return (d.lo + d.hi) // 2
