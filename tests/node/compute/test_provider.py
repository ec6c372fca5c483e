"""The job provider: its worker function (honest results match the kind, job-cheat is wrong in
exactly one place), and a slot served end to end on ``tests.kit.compute_host.MemoryComputeHost``,
the in-memory twin of the ``ProviderHost`` protocol the daemon's ``DaemonHost`` implements."""

from __future__ import annotations

import asyncio

import numpy as np

from consensus.jobs.iterate import IterateSpec, compute_step
from consensus.jobs.kinds import JobInput, compute_commitment
from consensus.jobs.matmul import MatmulKind, MatmulSpec
from consensus.jobs.store import iter_open_job_ids
from consensus.jobs.types import SlotStatus
from consensus.poc.merkle import ROW_DTYPE
from consensus.txs import SignedTx
from node.compute.provider import JobProvider, execute_job
from tests.kit.chain import TestChain
from tests.kit.compute_host import MemoryComputeHost
from tests.kit.jobs import SEED, honest_leaves, job_of, key_of_nft, matmul_body


def test_execute_job_honest_and_cheating_matrix() -> None:
    spec = MatmulSpec(6, 32, 32).encode()
    honest = execute_job(1, spec, b"", SEED, False)
    assert honest.root == compute_commitment(MatmulKind().execute(JobInput(spec, b"", SEED))).root
    cheat = execute_job(1, spec, b"", SEED, True)
    diff = [i for i in range(6) if cheat.leaves[i] != honest.leaves[i]]
    assert diff == [0]
    delta = np.frombuffer(cheat.leaves[0], dtype=ROW_DTYPE).astype(np.int64) - np.frombuffer(
        honest.leaves[0], dtype=ROW_DTYPE
    )
    assert delta.tolist() == [1] + [0] * 31


def test_execute_job_cheating_iteration_has_one_wrong_step() -> None:
    spec = IterateSpec(50, 4).encode()
    honest = execute_job(2, spec, b"", SEED, False)
    cheat = execute_job(2, spec, b"", SEED, True)
    assert cheat.leaves[0] == honest.leaves[0] and cheat.root != honest.root
    wrong = [t for t in range(50) if compute_step(cheat.leaves[t], t) != cheat.leaves[t + 1]]
    assert wrong == [24]


async def test_provider_commits_then_opens_its_slot_through_its_host() -> None:
    chain = TestChain(params={"job_challenge_window_blocks": 3})
    chain.next_block()
    user = chain.account_keys[0]
    assert chain.next_block([chain.tx(user, matmul_body(m=16, n=256, bid=5))]).tx_results[0].code == 0
    [job_id] = iter_open_job_ids(chain.view())
    job = job_of(chain, job_id)
    owner = key_of_nft(chain, job.slots[0].nft_id)
    host = MemoryComputeHost(chain, chain.operator_keys.index(owner))
    provider = JobProvider(host)
    try:
        provider.on_height()  # executes the job in a worker; wakes the provider when done
        await asyncio.wait_for(provider._wake.wait(), timeout=60)
        provider._wake.clear()
        provider.on_height()
        host.commit_mempool()
        honest = compute_commitment(honest_leaves(job))
        slot = job_of(chain, job_id).slots[0]
        assert slot.status == SlotStatus.COMMITTED and slot.result_root == honest.root
        chain.next_block()
        chain.next_block()  # fixes the samples (from the parent of the block two after the commitment)
        provider.on_committed(None)  # type: ignore[arg-type]
        assert provider._wake.is_set()
        provider.on_height()
        host.commit_mempool()
        slot = job_of(chain, job_id).slots[0]
        assert slot.status == SlotStatus.OPENED and slot.openings
        assert all(tx.payload.sender == host.address for tx in map(SignedTx.decode, host.gossiped_txs))
    finally:
        provider.close()
