"""The prover service: products in a worker process, openings that verify, poc-cheat caught."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from consensus.hashing import hash32
from consensus.poc import derive_sample_indices, verify_fraud_proof, verify_openings
from node.compute.prover import Prover, compute_commitment
from node.errors import ProverError
from tests.kit.poc import make_challenge

pytestmark = pytest.mark.multiprocess


@pytest.fixture
async def prover() -> AsyncIterator[Prover]:
    p = Prover()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
async def cheating_prover() -> AsyncIterator[Prover]:
    p = Prover(cheat_fraction=0.02)
    try:
        yield p
    finally:
        p.close()


async def test_prove_and_open_rows_verify(prover: Prover) -> None:
    ch = make_challenge(256, 1500)
    proved = await prover.prove(ch)
    assert proved.root == compute_commitment(ch.seed, 256, 1500).root
    block_hash = hash32(b"sample")
    indices = derive_sample_indices(ch, proved.root, block_hash)
    openings = await prover.open_rows(ch.id, indices)
    verdict = verify_openings(ch, proved.root, block_hash, openings)
    assert verdict.passed and len(openings.openings) == 800


async def test_poc_cheat_mode_is_caught(cheating_prover: Prover) -> None:
    ch = make_challenge(128, 700)  # 700 rows <= 800 samples: every corrupted row is opened
    proved = await cheating_prover.prove(ch)
    block_hash = hash32(b"sample")
    openings = await cheating_prover.open_rows(ch.id, derive_sample_indices(ch, proved.root, block_hash))
    verdict = verify_openings(ch, proved.root, block_hash, openings)
    assert not verdict.passed and len(verdict.bad_indices) == 14
    assert verdict.fraud_proof is not None
    verify_fraud_proof(ch, proved.root, verdict.fraud_proof)


async def test_prove_never_blocks_the_event_loop(prover: Prover) -> None:
    await prover.prove(make_challenge(64, 64))  # start the worker process first
    ch = make_challenge(2048, 8192)  # 69 GFLOP: about a second on two cores
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    try:
        await prover.prove(ch)
    finally:
        done.set()
        await task
    took = time.perf_counter() - t0
    print(f"prove took {took:.2f} s; {len(gaps)} ticks, longest gap {max(gaps) * 1000:.0f} ms")
    # Had the product run on the loop, one gap would be as long as the whole product.
    assert took > 0.3
    assert len(gaps) > took / 0.1
    assert max(gaps) < max(0.25, took / 4)


async def test_invalid_open_rows_requests(prover: Prover) -> None:
    with pytest.raises(ProverError, match="not proved"):
        await prover.open_rows(hash32(b"unknown"), (1, 2))
    ch = make_challenge(64, 64)
    await prover.prove(ch)
    with pytest.raises(ProverError, match="out of range"):
        await prover.open_rows(ch.id, (0, 64))
    prover.forget(ch.id)
    with pytest.raises(ProverError, match="not proved"):
        await prover.open_rows(ch.id, (0,))


def test_invalid_prover_options() -> None:
    with pytest.raises(ProverError):
        Prover(dtype="float16")
    with pytest.raises(ProverError):
        Prover(cheat_fraction=1.5)


async def test_killed_worker_is_reported_and_replaced(prover: Prover) -> None:
    import os
    import signal

    await prover.prove(make_challenge(64, 64))
    [pid] = prover.worker_pids()
    task = asyncio.create_task(prover.prove(make_challenge(2048, 16384)))
    await asyncio.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ProverError, match="died"):
        await task
    ch = make_challenge(64, 100)
    proved = await prover.prove(ch)
    assert proved.root == compute_commitment(ch.seed, 64, 100).root
    assert prover.worker_pids() and prover.worker_pids() != [pid]


async def test_aclose_stops_the_worker() -> None:
    p = Prover()
    await p.prove(make_challenge(64, 64))
    [pid] = p.worker_pids()
    await p.aclose()
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_blas_threads_reach_only_the_worker() -> None:
    import os

    before = os.environ.get("OPENBLAS_NUM_THREADS")
    p = Prover(blas_threads=1)
    try:
        assert await p._run(os.getenv, "OPENBLAS_NUM_THREADS") == "1"
        ch = make_challenge(256, 300)
        assert (await p.prove(ch)).root == compute_commitment(ch.seed, 256, 300).root
    finally:
        await p.aclose()
    assert os.environ.get("OPENBLAS_NUM_THREADS") == before
    with pytest.raises(ProverError):
        Prover(blas_threads=0)
