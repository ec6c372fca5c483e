"""Job marketplace: the verifier's cost against the provider's for each kind, and devnet throughput.

1. Per kind, in this process: the provider's work (execute and commit to the
   leaves) against what checking costs: the sampled openings (Merkle paths
   plus Freivalds on the opened rows, or the sampled steps), a fraud proof
   (one row exactly, or one step), and the chain's side of a whole dispute
   (a Merkle descent to one row, or a bisection: ceil(log2 N) path checks and
   one re-executed step).
2. A real 4-validator devnet (`cstake devnet up`): a user submits matrix jobs
   over RPC; we time from the first submission to the last settlement and
   report jobs settled per minute.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from consensus.jobs.iterate import IterateKind, IterateSpec
from consensus.jobs.kinds import JobInput, compute_commitment, open_leaves, verify_opened_leaves
from consensus.jobs.matmul import MatmulKind, MatmulSpec
from consensus.poc.merkle import hash_node
from tests.kit.devnet import TRANSIENT_ERRORS, Devnet, E2EError, rpc

SAMPLES = 32
SAMPLE_SEED = bytes(range(32))


def _timed(fn: Any, repeats: int = 3) -> tuple[float, Any]:
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return median(times), out


def _matmul_costs(size: int) -> tuple[str, float, float, float, float]:
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, size=(size, size), dtype=np.int8)
    b = rng.integers(-128, 128, size=(size, size), dtype=np.int8)
    job = JobInput(MatmulSpec(size, size, size).encode(), a.tobytes() + b.tobytes(), b"")
    kind = MatmulKind()
    provider, c = _timed(lambda: compute_commitment(kind.execute(job)))
    idx = kind.compute_sample_indices(job, SAMPLE_SEED, SAMPLES)
    openings = open_leaves(c, idx)

    def check() -> None:
        leaves = verify_opened_leaves(c.root, size, openings)
        if kind.check_samples(job, SAMPLE_SEED, leaves, SAMPLES) is not None:
            raise RuntimeError("an honest result failed its samples")

    verify, _ = _timed(check)
    fraud, _ = _timed(lambda: kind.is_fault(job, {idx[0]: c.leaves[idx[0]]}))

    def descent_chain_side() -> None:
        # Every level: the revealed children must hash to the node; then one row, exactly.
        index = size - 1
        for level in range(len(c.levels) - 1, 0, -1):
            node, below = index >> level, c.levels[level - 1]
            left = 2 * node
            if left + 1 < len(below):
                hash_node(below[left], below[left + 1])
        kind.is_fault(job, {index: c.leaves[index]})

    descent, _ = _timed(descent_chain_side)
    return f"matmul {size}x{size}x{size}", provider, verify, fraud, descent


def _iterate_costs(steps: int, width: int) -> tuple[str, float, float, float, float]:
    job = JobInput(IterateSpec(steps, width).encode(), b"", SAMPLE_SEED)
    kind = IterateKind()
    provider, c = _timed(lambda: compute_commitment(kind.execute(job)), repeats=1)
    idx = kind.compute_sample_indices(job, SAMPLE_SEED, SAMPLES)
    openings = open_leaves(c, idx)

    def check() -> None:
        leaves = verify_opened_leaves(c.root, steps + 1, openings)
        if kind.check_samples(job, SAMPLE_SEED, leaves, SAMPLES) is not None:
            raise RuntimeError("an honest result failed its samples")

    verify, _ = _timed(check)
    fraud, _ = _timed(lambda: kind.is_fault(job, {7: c.leaves[7], 8: c.leaves[8]}))
    rounds = math.ceil(math.log2(steps))
    mids = [steps // (2 ** (k + 1)) for k in range(rounds)]
    reveal = [open_leaves(c, [max(1, m)]) for m in mids]

    def bisection_chain_side() -> None:
        for o in reveal:
            verify_opened_leaves(c.root, steps + 1, o)
        kind.is_step_correct(job, 7, c.leaves[7], c.leaves[8])

    bisect, _ = _timed(bisection_chain_side)
    return f"iterate {steps} steps x {width} words", provider, verify, fraud, bisect


def _print_costs() -> None:
    print(f"verifier cost against the provider's, per kind (median of 3; {SAMPLES} samples)")
    print(f"{'job':<32}{'provider ms':>12}{'samples ms':>12}{'ratio':>9}{'fraud ms':>10}{'ratio':>9}")
    for size in (256, 1024):
        name, p, v, f, descent = _matmul_costs(size)
        print(f"{name:<32}{p * 1e3:>12.1f}{v * 1e3:>12.2f}{v / p:>9.2%}{f * 1e3:>10.2f}{f / p:>9.2%}")
        print(f"{'':<32}  chain side of a whole Merkle descent ({math.ceil(math.log2(size))} rounds + 1 row): "
              f"{descent * 1e3:.2f} ms = {descent / p:.2%} of the provider")
    for steps, width in ((1 << 12, 8), (1 << 16, 8)):
        name, p, v, f, bisect = _iterate_costs(steps, width)
        print(f"{name:<32}{p * 1e3:>12.1f}{v * 1e3:>12.2f}{v / p:>9.2%}{f * 1e3:>10.3f}{f / p:>9.3%}")
        print(f"{'':<32}  chain side of a whole bisection ({math.ceil(math.log2(steps))} rounds + 1 step): "
              f"{bisect * 1e3:.2f} ms = {bisect / p:.3%} of the provider")


# --- devnet throughput ----------------------------------------------------------------------


def _devnet_throughput(n_jobs: int, budget_s: float) -> None:
    from consensus.crypto import encode_address
    from consensus.jobs.handlers import compute_job_id
    from consensus.jobs.kinds import JobInput as _JI
    from consensus.jobs.registry import get_kind
    from consensus.jobs.types import SubmitJob
    from consensus.txs import build_tx
    from node.home import NodeHome
    from node.keyfiles import load_keystore

    d = Path(tempfile.mkdtemp(prefix="cstake-bench-jobs-"))
    params = {"job_challenge_window_blocks": 3, "job_max_slots_per_nft": 4}
    devnet = Devnet(d / "dn", 4, params=params)
    try:
        devnet.up()
        url = devnet.node(0).url
        key = load_keystore(NodeHome.at(devnet.node(3).home).account_key_file, None)
        devnet.wait_height(0, 2, timeout=60)
        account = rpc(url, "account", {"address": encode_address(key.address())})
        nonce = int(account.get("next_nonce", account["nonce"]))
        kind = get_kind(1)
        assert kind is not None
        ids = []
        t0 = time.monotonic()
        for k in range(n_jobs):
            seed = bytes([k + 1]) * 32
            spec = MatmulSpec(64, 128, 128).encode()
            ji = _JI(spec, b"", seed)
            units = kind.compute_work_units(ji)
            body = SubmitJob(1, spec, b"", seed, kind.compute_input_hash(ji), 0, 2, 2 * units, 1, 15)
            tx = build_tx(key, devnet.chain_id, nonce, 1, body)
            rpc(url, "broadcast_tx", {"tx": "0x" + tx.raw.hex(), "mode": "sync"})
            ids.append("0x" + compute_job_id(key.address(), nonce).hex())
            nonce += 1
        settled: set[str] = set()
        end = time.monotonic() + budget_s
        while len(settled) < n_jobs and time.monotonic() < end:
            for j in ids:
                if j not in settled:
                    with contextlib.suppress(*TRANSIENT_ERRORS):
                        if rpc(url, "job", {"id": j})["status"] == "settled":
                            settled.add(j)
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        h1 = devnet.height(0)
        print(f"devnet (4 validators, {os.cpu_count()} cores): {len(settled)} of {n_jobs} matrix jobs (64x128x128, "
              f"window 3 blocks) settled in {elapsed:.1f} s = {len(settled) / elapsed * 60:.1f} jobs settled "
              f"per minute (height {h1})")
    except E2EError as exc:
        print(f"devnet throughput: {str(exc)[-300:]}")
    finally:
        try:
            devnet.destroy()  # every node, by pid
        finally:
            shutil.rmtree(d, ignore_errors=True)


def run() -> None:
    _print_costs()
    print()
    _devnet_throughput(n_jobs=16, budget_s=75)
