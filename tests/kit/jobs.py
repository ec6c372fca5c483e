"""Playing the marketplace on an in-memory TestChain: submit jobs, act as providers and challengers."""

from __future__ import annotations

import hashlib

from consensus.crypto import PrivateKey
from consensus.jobs.iterate import IterateSpec
from consensus.jobs.kinds import Commitment, JobInput, compute_commitment, open_leaves
from consensus.jobs.matmul import MatmulSpec
from consensus.jobs.registry import get_job_input, get_kind
from consensus.jobs.store import get_job, get_total_escrow
from consensus.jobs.types import Job, JobResult, SlotStatus, SubmitJob
from consensus.records import Account
from consensus.state import Keys
from consensus.transition import TransitionResult
from tests.kit.chain import TestChain

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


def cheat_leaves(job: Job) -> list[bytes]:
    """The honest leaves with one wrong matrix entry, or one wrong step (later steps honest)."""
    import numpy as np

    from consensus.jobs.iterate import compute_step
    from consensus.poc.merkle import ROW_DTYPE

    leaves = honest_leaves(job)
    if job.job_kind == 1:
        row = np.frombuffer(leaves[-1], dtype=ROW_DTYPE).copy()
        row[-1] += 1
        leaves[-1] = row.tobytes()
        return leaves
    bad = len(leaves) // 2
    leaves[bad] = bytes([leaves[bad][0] ^ 1]) + leaves[bad][1:]
    for t in range(bad, len(leaves) - 1):
        leaves[t + 1] = compute_step(leaves[t], t)
    return leaves


class MarketPlayer:
    """Acts for every provider NFT by a behaviour ("honest", "cheat", "silent"), and as a watcher.

    ``step()`` builds the next block from what the open jobs need: commitments,
    openings, and fraud proofs from ``watcher`` (a validator index) against
    wrong opened samples.
    """

    def __init__(self, chain: TestChain, behaviour: dict[int, str], watcher: int | None = None) -> None:
        self.chain = chain
        self.behaviour = behaviour
        self.watcher = watcher
        self.commitments: dict[tuple[bytes, int, int], Commitment] = {}

    def txs(self) -> list:
        from consensus.jobs.kinds import build_fraud_proof
        from consensus.jobs.store import iter_open_job_ids
        from consensus.jobs.types import ChallengeAction, JobChallenge

        chain = self.chain
        view = chain.view()
        count = view.get_params().job_sample_count
        out = []
        watcher_key = chain.operator_keys[self.watcher] if self.watcher is not None else None
        for job_id in iter_open_job_ids(view):
            job = get_job(view, job_id)
            assert job is not None
            kind = get_kind(job.job_kind)
            assert kind is not None
            for slot in job.slots:
                key = (job.id, slot.nft_id, slot.assigned_height)
                how = self.behaviour.get(slot.nft_id, "honest")
                provider_key = key_of_nft(chain, slot.nft_id) if slot.status != SlotStatus.EMPTY else None
                if slot.status == SlotStatus.ASSIGNED and how != "silent":
                    c = compute_commitment(cheat_leaves(job) if how == "cheat" else honest_leaves(job))
                    self.commitments[key] = c
                    out.append(chain.tx(provider_key, JobResult(job.id, slot.nft_id, c.root, ())))
                elif slot.status == SlotStatus.COMMITTED and slot.sample_seed and key in self.commitments:
                    c = self.commitments[key]
                    idx = kind.compute_sample_indices(get_job_input(job), slot.sample_seed, count)
                    out.append(chain.tx(provider_key, JobResult(job.id, slot.nft_id, c.root, open_leaves(c, idx))))
                elif slot.status == SlotStatus.OPENED and watcher_key is not None:
                    if watcher_key.address() in (slot.provider, slot.validator):
                        continue
                    proof = build_fraud_proof(kind, get_job_input(job), slot.sample_seed, slot.openings, count)
                    if proof is not None:
                        body = JobChallenge(job.id, slot.nft_id, ChallengeAction.FRAUD, 0, proof)
                        out.append(chain.tx(watcher_key, body))
        return out

    def step(self) -> TransitionResult:
        return self.chain.next_block(self.txs())
