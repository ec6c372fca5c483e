"""Playing the marketplace on an in-memory TestChain: submit jobs, act as providers and challengers."""

from __future__ import annotations

import hashlib

from consensus.crypto import PrivateKey
from consensus.jobs.kinds import Commitment, JobInput, compute_commitment, open_leaves
from consensus.jobs.matmul import MatmulSpec
from consensus.jobs.iterate import IterateSpec
from consensus.jobs.registry import get_job_input, get_kind
from consensus.jobs.store import get_job, get_total_escrow
from consensus.jobs.types import Job, JobResult, SlotStatus, SubmitJob
from consensus.records import Account
from consensus.state import Keys
from consensus.testing import TestChain
from consensus.transition import TransitionResult

SEED = hashlib.sha256(b"job-inputs").digest()


def matmul_body(m: int = 8, n: int = 16, *, bid: int = 5, escrow: int | None = None, redundancy: int = 1,
                deadline: int = 6, min_units: int = 0, seed: bytes = SEED) -> SubmitJob:
    spec = MatmulSpec(m, n, n).encode()
    ji = JobInput(spec, b"", seed)
    kind = get_kind(1)
    assert kind is not None
    units = kind.compute_work_units(ji)
    return SubmitJob(1, spec, b"", seed, kind.compute_input_hash(ji), min_units, bid,
                     escrow if escrow is not None else bid * units * redundancy + 7, redundancy, deadline)


def iterate_body(steps: int = 100, width: int = 4, *, bid: int = 5, escrow: int | None = None,
                 redundancy: int = 1, deadline: int = 6, seed: bytes = SEED) -> SubmitJob:
    spec = IterateSpec(steps, width).encode()
    ji = JobInput(spec, b"", seed)
    kind = get_kind(2)
    assert kind is not None
    units = kind.compute_work_units(ji)
    return SubmitJob(2, spec, b"", seed, kind.compute_input_hash(ji), 0, bid,
                     escrow if escrow is not None else bid * units * redundancy + 3, redundancy, deadline)


def job_of(chain: TestChain, job_id: bytes) -> Job:
    job = get_job(chain.view(), job_id)
    assert job is not None
    return job


def only_job_id(chain: TestChain) -> bytes:
    ids = [k[2:] for k in chain.state.data if k.startswith(b"j/")]
    assert len(ids) == 1
    return ids[0]


def key_of_nft(chain: TestChain, nft_id: int) -> PrivateKey:
    nft = chain.view().get_nft(nft_id)
    assert nft is not None
    return chain.key_by_address(nft.owner)


def honest_leaves(job: Job) -> list[bytes]:
    kind = get_kind(job.job_kind)
    assert kind is not None
    return kind.execute(get_job_input(job))


def commit(chain: TestChain, job_id: bytes, nft_id: int, leaves: list[bytes]) -> tuple[Commitment, TransitionResult]:
    c = compute_commitment(leaves)
    tx = chain.tx(key_of_nft(chain, nft_id), JobResult(job_id, nft_id, c.root, ()))
    return c, chain.next_block([tx])


def open_samples(chain: TestChain, job_id: bytes, nft_id: int, c: Commitment) -> TransitionResult:
    job = job_of(chain, job_id)
    slot = next(s for s in job.slots if s.nft_id == nft_id and s.status == SlotStatus.COMMITTED)
    kind = get_kind(job.job_kind)
    assert kind is not None
    count = chain.view().get_params().job_sample_count
    idx = kind.compute_sample_indices(get_job_input(job), slot.sample_seed, count)
    tx = chain.tx(key_of_nft(chain, nft_id), JobResult(job_id, nft_id, c.root, open_leaves(c, idx)))
    return chain.next_block([tx])


def supply_parts(chain: TestChain) -> tuple[int, int]:
    """Return (tokens found in balances, stake, unbonding, collateral and escrow; total supply)."""
    from consensus.records import ComputeNFT, Delegation, UnbondingEntry

    data = chain.state.data
    total = 0
    for k, v in data.items():
        if k.startswith(Keys.ACCOUNT):
            total += Account.decode(v).balance
        elif k.startswith(Keys.DELEGATION):
            total += Delegation.decode(v).amount
        elif k.startswith(Keys.UNBONDING):
            total += UnbondingEntry.decode(v).amount
        elif k.startswith(Keys.NFT):
            total += ComputeNFT.decode(v, max_bytes=len(v)).collateral
    view = chain.view()
    total += get_total_escrow(view)
    return total, view.get_meta().total_supply


def assert_job_accounting(job: Job) -> None:
    assert job.escrow == job.paid + job.verifier_paid + job.burned + job.refunded + job.locked
    assert min(job.paid, job.verifier_paid, job.burned, job.refunded, job.locked) >= 0
