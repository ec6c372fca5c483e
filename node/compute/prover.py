"""The proof-of-compute prover: computes C = A·B with the configured kernel in a worker process.

The product runs in a separate process (spawn context) so the node's event
loop never blocks on it: ``Prover.prove`` awaits the worker and returns the
Merkle root to commit; ``Prover.open_rows`` later returns the sampled rows with
their paths. The worker processes A in blocks of rows, so its memory stays at a
few blocks however tall A is; it returns only the Merkle tree (32 bytes a row
and level), and opened rows are recomputed on demand (k·2n² operations, a small
share of the challenge, spent after the commitment so it does not count
against the measured time).

The kernel (``node.compute.kernel``: device, BLAS threads, float type) is
float32 (or float64) GEMM on small integers: exact, since every partial sum
stays below 2^24 (see consensus.poc.matrices), and converted to int32 rows for
the commitment. The worker is spawned with the kernel's thread cap, and the
benchmark measures in such a worker too (``node.compute.calibrate``).

Test-only mode ``cheat_fraction`` (the node's poc-cheat mode) corrupts that
fraction of rows after computing them, choosing the rows deterministically from
the seed so that the openings match the (wrong) commitment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from consensus.hashing import HASH_LEN
from consensus.poc.matrices import MATRIX_A, generate_a_rows, generate_b, generate_rows
from consensus.poc.merkle import LEAF_PREFIX, ROW_DTYPE, hash_node
from consensus.poc.types import Challenge, PocOpenings, RowOpening
from node.compute.kernel import (
    BLAS_THREAD_VARS,
    KERNEL_DTYPES,
    KernelConfig,
    get_block_multiplier,
    is_block_exact,
    multiply_block,
)
from node.errors import ProverError

__all__ = [
    "BLAS_THREAD_VARS", "BLOCK_ROWS", "KERNEL_DTYPES", "POC_CHEAT_FRACTION", "CommitmentWork",
    "ProvedChallenge", "Prover", "compute_cheat_rows", "compute_commitment", "compute_leaf_hashes",
    "compute_path", "compute_rows", "is_block_exact", "multiply_block",
]

R = TypeVar("R")

#: Rows of A generated and multiplied at a time (bounds the worker's memory).
BLOCK_ROWS = 1024
#: Fraction of rows the test-only poc-cheat mode corrupts: 800 samples miss all of
#: them with probability below 0.98^800 = 1e-7, so the cheater is caught every time.
POC_CHEAT_FRACTION = 0.02


# --- the kernel (runs in the worker process, and in benchmarks in-process) ------------


def compute_cheat_rows(seed: bytes, rows: int, cheat_fraction: float) -> npt.NDArray[np.int64]:
    """Return the sorted rows the test-only poc-cheat mode corrupts (ceil(fraction · rows))."""
    if not 0.0 <= cheat_fraction <= 1.0:
        raise ProverError("cheat_fraction must be in [0, 1]")
    count = math.ceil(cheat_fraction * rows)
    if count == 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(b"poc-cheat" + seed).digest()[:8], "big"))
    return np.sort(rng.choice(rows, size=count, replace=False)).astype(np.int64)


def _corrupt(block: npt.NDArray[np.int32], block_indices: npt.NDArray[np.int64], bad: npt.NDArray[np.int64]) -> None:
    """Add 1 to the first entry of each row of ``block`` whose index is in ``bad``."""
    if len(bad) == 0:
        return
    hit = np.isin(block_indices, bad)
    block[hit, 0] += 1


def compute_leaf_hashes(block: npt.NDArray[np.int32]) -> bytes:
    """Return the leaf hashes of a block of rows of C, concatenated (32 bytes a row)."""
    data = memoryview(np.ascontiguousarray(block, dtype=ROW_DTYPE).tobytes())
    width = block.shape[1] * 4
    out = []
    for j in range(block.shape[0]):
        h = hashlib.sha256(LEAF_PREFIX)
        h.update(data[j * width:(j + 1) * width])
        out.append(h.digest())
    return b"".join(out)


def build_level_blobs(leaves: bytes) -> list[bytes]:
    """Return each Merkle level as one blob of 32-byte hashes (leaves first, root last)."""
    levels = [leaves]
    while len(levels[-1]) > HASH_LEN:
        level = levels[-1]
        count = len(level) // HASH_LEN
        nxt = [
            hash_node(level[i * HASH_LEN:(i + 1) * HASH_LEN], level[(i + 1) * HASH_LEN:(i + 2) * HASH_LEN])
            for i in range(0, count - 1, 2)
        ]
        if count % 2:
            nxt.append(level[(count - 1) * HASH_LEN:])
        levels.append(b"".join(nxt))
    return levels


@dataclass(frozen=True, slots=True)
class CommitmentWork:
    """What the worker returns: the Merkle levels and how long each phase took."""

    levels: list[bytes]
    generate_s: float
    multiply_s: float
    commit_s: float

    @property
    def root(self) -> bytes:
        return self.levels[-1]

    @property
    def total_s(self) -> float:
        return self.generate_s + self.multiply_s + self.commit_s


def compute_commitment(seed: bytes, n: int, rows: int, dtype: str = "float32",
                       cheat_fraction: float = 0.0, device: str = "cpu") -> CommitmentWork:
    """Generate A and B, compute C = A·B block by block, and build the Merkle tree over C's rows.

    ``device`` picks the kernel (``node.compute.kernel``): the CPU's BLAS (with the
    thread count of the calling process) or a GPU.
    """
    config = KernelConfig(device=device, threads=None, dtype=dtype)  # threads: this process's
    bad = compute_cheat_rows(seed, rows, cheat_fraction)
    t0 = time.perf_counter()
    b_int = generate_b(seed, n)
    b = b_int.astype(dtype)
    if config.is_gpu:
        gpu = get_block_multiplier(config, b_int)
        multiply: Callable[[npt.NDArray[np.int8]], npt.NDArray[np.int32]] = gpu
    else:
        def multiply(a: npt.NDArray[np.int8]) -> npt.NDArray[np.int32]:
            return multiply_block(a, b, dtype)
    gen_s = time.perf_counter() - t0
    mul_s = com_s = 0.0
    leaves = []
    for start in range(0, rows, BLOCK_ROWS):
        stop = min(rows, start + BLOCK_ROWS)
        t0 = time.perf_counter()
        a = generate_a_rows(seed, n, start, stop)
        t1 = time.perf_counter()
        c = multiply(a)
        if start == 0 and not is_block_exact(a, b_int, c):
            raise ProverError(f"the {config.device} {dtype} kernel is not exact on this machine: "
                              "refusing to commit")
        t2 = time.perf_counter()
        _corrupt(c, np.arange(start, stop, dtype=np.int64), bad)
        leaves.append(compute_leaf_hashes(c))
        t3 = time.perf_counter()
        gen_s += t1 - t0
        mul_s += t2 - t1
        com_s += t3 - t2
    t0 = time.perf_counter()
    levels = build_level_blobs(b"".join(leaves))
    com_s += time.perf_counter() - t0
    return CommitmentWork(levels=levels, generate_s=gen_s, multiply_s=mul_s, commit_s=com_s)


def compute_rows(seed: bytes, n: int, rows: int, indices: list[int], dtype: str = "float32",
                 cheat_fraction: float = 0.0) -> list[bytes]:
    """Recompute rows ``indices`` of C (with the same corruption as the commitment) as leaf bytes.

    Always on the CPU: the product is exact on any device, so the rows are the same,
    and opening happens after the commitment, outside the time the chain measures.
    """
    bad = compute_cheat_rows(seed, rows, cheat_fraction)
    b = generate_b(seed, n).astype(dtype)
    out: list[bytes] = []
    for start in range(0, len(indices), BLOCK_ROWS):
        chunk = indices[start:start + BLOCK_ROWS]
        c = multiply_block(generate_rows(seed, MATRIX_A, n, chunk), b, dtype)
        _corrupt(c, np.asarray(chunk, dtype=np.int64), bad)
        data = np.ascontiguousarray(c, dtype=ROW_DTYPE)
        out.extend(row.tobytes() for row in data)
    return out


def compute_path(levels: list[bytes], index: int) -> tuple[bytes, ...]:
    """Return the Merkle path of leaf ``index`` from level blobs (same as consensus.poc.merkle)."""
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling * HASH_LEN < len(level):
            path.append(level[sibling * HASH_LEN:(sibling + 1) * HASH_LEN])
        index //= 2
    return tuple(path)


# --- the asyncio-facing service ----------------------------------------------------


@dataclass(slots=True)
class ProvedChallenge:
    """A challenge the prover has computed and committed to."""

    challenge: Challenge
    root: bytes
    levels: list[bytes] = field(repr=False)
    seconds: float


class Prover:
    """Computes challenges in a worker process and serves openings; one instance per node."""

    def __init__(self, *, dtype: str = "float32", cheat_fraction: float = 0.0,
                 blas_threads: int | None = None, device: str = "cpu",
                 kernel: KernelConfig | None = None) -> None:
        """``kernel`` picks the device, BLAS threads and float type (``node.compute.kernel``);
        without it, ``device``, ``blas_threads`` (None: the library's default) and ``dtype`` do.

        Several nodes sharing a machine (a local devnet) are challenged at the same
        epoch boundary; capping each worker's threads avoids oversubscribing the
        cores, under which multi-threaded BLAS slows down far more than in proportion.
        """
        if kernel is None:
            if blas_threads is not None and (type(blas_threads) is not int or blas_threads < 1):
                raise ProverError("blas_threads must be at least 1")
            kernel = KernelConfig(device=device, threads=blas_threads, dtype=dtype)
        if not 0.0 <= cheat_fraction <= 1.0:
            raise ProverError("cheat_fraction must be in [0, 1]")
        self.kernel = kernel
        self._dtype = kernel.dtype
        self._device = kernel.device
        self._cheat_fraction = cheat_fraction
        self._blas_threads = kernel.threads
        self._executor = self._new_executor()
        self._proved: dict[bytes, ProvedChallenge] = {}

    @staticmethod
    def _new_executor() -> ProcessPoolExecutor:
        # spawn: a fresh interpreter, never a fork of a process with running threads.
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    async def run_in_worker(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` in this prover's worker (its BLAS threads): measurements, warm-up."""
        return await self._run(fn, *args)

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` in the worker; a crashed worker is replaced and reported."""
        loop = asyncio.get_running_loop()
        # The worker process starts inside submit (synchronously, no await in between),
        # so the thread caps set here reach exactly its environment.
        with self._worker_environment():
            future = loop.run_in_executor(self._executor, fn, *args)
        try:
            return await future
        except BrokenProcessPool as exc:
            # The worker died (killed, out of memory): start a fresh one for the next call.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
            raise ProverError(f"the prover worker process died: {exc}") from exc

    @contextlib.contextmanager
    def _worker_environment(self) -> Iterator[None]:
        if self._blas_threads is None:
            yield
            return
        saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARS}
        os.environ.update({name: str(self._blas_threads) for name in BLAS_THREAD_VARS})
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    async def prove(self, challenge: Challenge) -> ProvedChallenge:
        """Compute C for ``challenge`` in the worker and return the commitment to post."""
        work = await self._run(
            compute_commitment, challenge.seed, challenge.n, challenge.rows, self._dtype,
            self._cheat_fraction, self._device,
        )
        proved = ProvedChallenge(challenge=challenge, root=work.root, levels=work.levels,
                                 seconds=work.total_s)
        self._proved[challenge.id] = proved
        return proved

    async def open_rows(self, challenge_id: bytes, indices: tuple[int, ...]) -> PocOpenings:
        """Return the openings of rows ``indices`` (as derived from the sample block)."""
        proved = self._proved.get(challenge_id)
        if proved is None:
            raise ProverError(f"challenge {challenge_id.hex()} was not proved by this prover")
        ch = proved.challenge
        if any(not 0 <= i < ch.rows for i in indices):
            raise ProverError("an opened row index is out of range")
        rows = await self._run(
            compute_rows, ch.seed, ch.n, ch.rows, list(indices), self._dtype, self._cheat_fraction,
        )
        openings = tuple(
            RowOpening(index=i, row=row, path=compute_path(proved.levels, i))
            for i, row in zip(indices, rows, strict=True)
        )
        return PocOpenings(challenge_id=challenge_id, openings=openings)

    def worker_pids(self) -> list[int]:
        """Return the worker process ids (for diagnostics and tests)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return sorted(processes)

    def has_proved(self, challenge_id: bytes) -> bool:
        """Whether this prover still holds the Merkle tree of ``challenge_id`` (lost on restart)."""
        return challenge_id in self._proved

    def forget(self, challenge_id: bytes) -> None:
        """Drop what is kept for a finished challenge."""
        self._proved.pop(challenge_id, None)

    def close(self) -> None:
        """Stop the worker process (waits for a running product to finish)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        """Stop the worker process without blocking the event loop."""
        await asyncio.to_thread(self.close)
