"""Where the marketplace keeps its records in state, and typed access to them.

| key | value |
| --- | --- |
| ``j/`` + job id | ``Job`` |
| ``jo/`` + be64(seq) + job id | marker: job open (not settled, failed or cancelled) |
| ``jp/`` + be64(nft id) | ``ProviderPrice`` |
| ``jb/`` + be64(nft id) + job id | marker: the NFT holds an unsettled slot of the job |
| ``jm/meta`` | ``JobMeta`` |

Every scan is a prefix scan in key order, so end-of-block processing visits
open jobs in submission order on every node.
"""

from __future__ import annotations

from collections.abc import Iterator

from consensus.errors import JobError
from consensus.hashing import tagged_hash
from consensus.jobs.types import Job, JobMeta, JobStatus, ProviderPrice
from consensus.params import Params
from consensus.state import State, _Marker, be64

JOB = b"j/"
OPEN = b"jo/"
PRICE = b"jp/"
BUSY = b"jb/"
META = b"jm/meta"
#: Leaves of a slot's result a fraud proof already tried (each set is checked once).
TRIED = b"jt/"


def job_key(job_id: bytes) -> bytes:
    return JOB + job_id


def open_key(seq: int, job_id: bytes) -> bytes:
    return OPEN + be64(seq) + job_id


def tried_key(job_id: bytes, nft_id: int, assigned_height: int, indices: tuple[int, ...]) -> bytes:
    """The leaves ``indices`` of one assignment's result, once a fraud proof tried them."""
    digest = tagged_hash(b"cstake/job/tried/v1", b"".join(be64(i) for i in indices))
    return TRIED + job_id + be64(nft_id) + be64(assigned_height) + digest


def price_key(nft_id: int) -> bytes:
    return PRICE + be64(nft_id)


def busy_key(nft_id: int, job_id: bytes = b"") -> bytes:
    return BUSY + be64(nft_id) + job_id


def get_job(state: State, job_id: bytes) -> Job | None:
    """Return the job with ``job_id``, or None."""
    return state.get_record(job_key(job_id), Job)


def require_job(state: State, job_id: bytes) -> Job:
    """Return the job with ``job_id``; raise JobError if there is none."""
    job = get_job(state, job_id)
    if job is None:
        raise JobError(f"no job with id {job_id.hex()}")
    return job


def get_meta(state: State) -> JobMeta:
    """Return the marketplace counters (zero before the first job)."""
    meta = state.get_record(META, JobMeta)
    return JobMeta(0, 0) if meta is None else meta


def put_job(state: State, job: Job, *, was_open: bool) -> None:
    """Write ``job`` and keep the open index and the open count in step with its status."""
    state.put_record(job_key(job.id), job)
    is_open = job.status not in JobStatus.FINAL
    if is_open != was_open:
        meta = get_meta(state)
        delta = 1 if is_open else -1
        state.put_record(META, JobMeta(meta.next_seq, meta.open_jobs + delta))
        state.put_record(open_key(job.seq, job.id), _Marker() if is_open else None)


def iter_open_job_ids(state: State) -> list[bytes]:
    """Return the ids of the open jobs in submission order."""
    return [key[len(OPEN) + 8 :] for key, _ in state.iter_records(OPEN, _Marker)]


def iter_jobs(state: State) -> Iterator[Job]:
    """Yield every job (any status) in id order."""
    for _, job in state.iter_records(JOB, Job):
        yield job


def get_total_escrow(state: State) -> int:
    """Return the tokens locked in every job's escrow (part of the total supply)."""
    return sum(job.locked for job in iter_jobs(state))


def get_price(state: State, nft_id: int, params: Params) -> ProviderPrice:
    """Return the NFT's offer (the default price, offering, if it never set one)."""
    rec = state.get_record(price_key(nft_id), ProviderPrice)
    return ProviderPrice(nft_id, params.job_default_price, 1) if rec is None else rec


def count_busy(state: State, nft_id: int) -> int:
    """Return how many unsettled job slots the NFT holds."""
    return sum(1 for _ in state.iter_records(busy_key(nft_id), _Marker))


def set_busy(state: State, nft_id: int, job_id: bytes, busy: bool) -> None:
    state.put_record(busy_key(nft_id, job_id), _Marker() if busy else None)
