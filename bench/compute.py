"""Proof-of-compute benchmark: prover vs verifier time per challenge, and ``cstake bench``.

Prover time: generate A and B from the seed, float32 BLAS product, conversion
to int32 rows, Merkle tree over the rows (node.prover.compute_commitment, run
in-process here). Verifier time: consensus.poc.verify_openings on the sampled
rows (generate B and the opened rows of A, B·r in int64, one int64 dot product
per opened row, each row's Merkle path). Both are medians of a few runs.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from consensus.hashing import hash32
from consensus.params import DEVNET, MAINNET
from consensus.poc import (
    DEVNET_POC_PARAMS,
    MAINNET_POC_PARAMS,
    Challenge,
    PocOpenings,
    RowOpening,
    derive_challenge,
    derive_sample_indices,
    verify_openings,
)
from consensus.poc_state import get_poc_params
from node.compute.calibrate import compute_claim
from node.compute.hwbench import format_report, run_benchmark
from node.compute.kernel import KernelConfig
from node.compute.prover import CommitmentWork, compute_commitment, compute_path, compute_rows
from node.compute.service import NodeProver

REPEATS = 3
#: Seconds of ``cstake bench`` measurement per round.
CALIBRATION_SECONDS = 4.0
TARGET_RATIO = 0.01


def _challenge(n: int, rows: int) -> Challenge:
    base = derive_challenge(hash32(b"bench epoch"), b"bench-nft", 1, 10, DEVNET_POC_PARAMS)
    return Challenge(id=base.id, nft_id=base.nft_id, height=base.height, seed=base.seed, n=n,
                     rows=rows, claimed_units=1, deadline_height=base.deadline_height)


def _measure(ch: Challenge, repeats: int) -> tuple[float, float, CommitmentWork, int]:
    prover_s = []
    work = compute_commitment(ch.seed, ch.n, ch.rows)
    prover_s.append(work.total_s)
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        compute_commitment(ch.seed, ch.n, ch.rows)
        prover_s.append(time.perf_counter() - t0)
    block_hash = hash32(b"bench sample block")
    indices = derive_sample_indices(ch, work.root, block_hash)
    rows = compute_rows(ch.seed, ch.n, ch.rows, list(indices))
    openings = PocOpenings(challenge_id=ch.id, openings=tuple(
        RowOpening(index=i, row=r, path=compute_path(work.levels, i))
        for i, r in zip(indices, rows, strict=True)))
    verifier_s = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        verdict = verify_openings(ch, work.root, block_hash, openings)
        verifier_s.append(time.perf_counter() - t0)
        if not verdict.passed:
            raise RuntimeError("honest openings failed verification")
    return statistics.median(prover_s), statistics.median(verifier_s), work, len(openings.encode())


def _row(label: str, ch: Challenge, prover: float, verifier: float, work: CommitmentWork,
         size: int) -> str:
    gflops = ch.work_flops / prover / 1e9
    ratio = verifier / prover
    return (f"{label:<22}{ch.rows:>8}{ch.n:>6}{prover * 1000:>11.1f}{verifier * 1000:>11.1f}"
            f"{ratio:>9.2%}{'  yes' if ratio <= TARGET_RATIO else '   no':>6}"
            f"{gflops:>9.1f}   gen {work.generate_s * 1000:.0f} / mul {work.multiply_s * 1000:.0f}"
            f" / commit {work.commit_s * 1000:.0f} ms; openings {size / 1e6:.1f} MB")


def run() -> None:
    print("proof of compute, per challenge (median of 3; prover single process, all cores to BLAS)")
    print(f"{'challenge':<22}{'rows':>8}{'n':>6}{'prover ms':>11}{'verify ms':>11}"
          f"{'ratio':>9}{'<=1%':>6}{'GFLOP/s':>9}   prover phases (first run)")
    for n in (512, 1024, 2048):
        ch = _challenge(n, n)
        prover, verifier, work, size = _measure(ch, REPEATS)
        print(_row(f"square n={n}", ch, prover, verifier, work, size))
    units = _calibration_table()
    for name, params in (("devnet", DEVNET_POC_PARAMS), ("mainnet", MAINNET_POC_PARAMS)):
        ch = derive_challenge(hash32(b"bench epoch"), b"bench-nft", units, 10, params)
        prover, verifier, work, size = _measure(ch, 1)
        print(_row(f"{name}, {units} units", ch, prover, verifier, work, size))
    print(f"(devnet and mainnet challenges sized from this machine's {units} units for "
          f"{DEVNET_POC_PARAMS.challenge_ms} and {MAINNET_POC_PARAMS.challenge_ms} ms; run once)")


def _prove(kernel: KernelConfig, ch: Challenge) -> float:
    """Seconds of the node's prover (worker, kernel, threads) on ``ch``."""
    async def run() -> float:
        prover = NodeProver(kernel=kernel)
        try:
            await prover.run_in_worker(int)  # the worker's start is not the prover's time
            return (await prover.prove(ch)).seconds
        finally:
            await prover.aclose()

    return asyncio.run(run())


def _calibration_table() -> int:
    """Print cstake bench's figure and the node's prover on the challenge of the claim, side by
    side, for the devnet's and mainnet's genesis parameters; return the devnet's measured units.

    Bench and prover alternate, ``REPEATS`` rounds, and the medians are compared: on a shared
    machine the load drifts over seconds, and alternating exposes both to the same drift.
    """
    kernel = KernelConfig()
    print(f"\ncstake bench vs the node's prover at the chain's challenge size (kernel "
          f"{kernel.describe()}; {REPEATS} rounds of bench {CALIBRATION_SECONDS:g} s then one proof, "
          "medians)")
    print(f"{'params':<9}{'n':>6}{'bench GFLOP/s':>15}{'claim':>7}{'challenge rows':>16}"
          f"{'prover GFLOP/s':>16}{'prover/bench':>14}{'within 5%':>11}")
    devnet_units = 1
    last = None
    for name, params in (("devnet", DEVNET), ("mainnet", MAINNET)):
        poc = get_poc_params(params)
        bench: list[float] = []
        proved: list[float] = []
        claims: list[int] = []
        rows: list[int] = []
        for i in range(REPEATS):
            report = run_benchmark(CALIBRATION_SECONDS, kernel=kernel, poc=poc)
            cal = report.device.prover
            if cal is None:
                break
            claim = max(1, compute_claim(report.units))
            ch = derive_challenge(hash32(b"bench epoch %d" % i), b"bench-nft", claim, 10, poc)
            bench.append(cal.gflops)
            proved.append(ch.work_flops / _prove(kernel, ch) / 1e9)
            claims.append(claim)
            rows.append(ch.rows)
            last = report
        if not bench:
            print(f"{name:<9}the kernel is not exact on this machine: nothing measured")
            continue
        b, p = statistics.median(bench), statistics.median(proved)
        ratio = p / b
        print(f"{name:<9}{poc.max_n:>6}{b:>15.1f}{statistics.median(claims):>7g}"
              f"{statistics.median(rows):>16g}{p:>16.1f}{ratio:>14.3f}"
              f"{'yes' if abs(ratio - 1) <= 0.05 else 'no':>11}")
        print(f"{'':<9}rounds: bench {[round(x, 1) for x in bench]}, prover {[round(x, 1) for x in proved]}")
        devnet_units = int(b) if name == "devnet" else devnet_units
    print("(claim = 80% of the bench's units, what register-compute --from-bench registers; the "
          "prover runs the challenge the chain derives for that claim)")
    if last is not None:
        print("\ncstake bench on this machine (mainnet sizes):")
        print(format_report(last))
    return max(1, devnet_units)
