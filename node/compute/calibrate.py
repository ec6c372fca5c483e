"""Calibration: what this machine's prover delivers at the chain's challenge sizes, and what to claim.

The chain sizes an NFT's challenge from its claim (``consensus.poc.compute_challenge_size``):
n is the chain's ``poc_max_n`` for any realistic claim, and the rows grow with
the claim so an honest device needs ``challenge_ms``. A claim is honest only if
the prover, as the node runs it, finishes that challenge in time: the same
kernel, BLAS thread count and device, at that n. So the measurement here runs
in a prover worker (``Prover.run_in_worker``: spawned with the kernel's thread
cap) and calls the prover's own ``compute_commitment``:

1. a probe of ``PROBE_ROWS`` rows at the chain's widest n (after a warm-up)
   gives a first rate;
2. the challenge that rate's claim would get is sized with the chain's rule;
3. three runs of that size are timed, or of fewer rows when a third of the
   time budget is shorter; then the median run is scaled to the challenge's
   rows: its per-row part grows with the rows, the fixed part (generating B,
   timed on a ``SMALL_ROWS`` challenge) is paid once.

``compute_claim`` turns the measured units into the claim to register:
``measured · margin_percent // 100`` (80% by default), so an honest device
finishes its challenge in about 80% of ``challenge_ms`` and has room for load
and for the chain's inclusion latency, which the verified units also pay for.

``check_claims`` is the node's start check: a served NFT claiming more than
the prover measured here is reported (``ComputeService`` logs a warning).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from consensus.errors import ConsensusError
from consensus.genesis import load_genesis
from consensus.params import MAINNET, Params
from consensus.poc import PocParams, compute_challenge_size
from consensus.poc_state import get_poc_params
from node.client import RPCClient
from node.compute.kernel import KernelConfig, KernelInfo, describe_kernel
from node.compute.prover import Prover, compute_commitment
from node.errors import ProverError, RPCClientError

#: Any seed: a challenge's cost does not depend on its entries' values.
CALIBRATION_SEED = bytes(range(32))
#: Rows of the probe (one block): enough to time, short enough for a one-second self-check.
PROBE_ROWS = 1024
#: Most whole challenges timed in one calibration (the median is the figure).
MAX_RUNS = 3
#: Rows of the smallest challenge, timed for the cost that does not grow with the rows.
SMALL_ROWS = 64
#: What ``--from-bench`` registers, in percent of the measured units.
DEFAULT_MARGIN_PERCENT = 80


@dataclass(frozen=True, slots=True)
class Calibration:
    """The prover's rate at the chain's challenge size, as a prover worker measured it."""

    kernel: KernelInfo
    """The kernel the worker ran (device, configured and actual BLAS threads)."""
    n: int
    """Inner dimension measured: the chain's for the claim."""
    rows: int
    """Rows of each timed run."""
    challenge_rows: int
    """Rows of the challenge the chain would issue for the claim (``rows`` may be fewer)."""
    challenge_ms: int
    """The chain's ``challenge_ms`` the size was derived from."""
    run_seconds: tuple[float, ...]
    """Time of each timed run of ``rows`` rows (generate, multiply, commit), in seconds."""
    fixed_seconds: float
    """Time of the smallest challenge (``SMALL_ROWS`` rows, the best of two): the cost that does
    not grow with the rows (generating B), for runs shorter than the challenge."""

    @property
    def seconds(self) -> float:
        """The median timed run."""
        return float(statistics.median(self.run_seconds))

    @property
    def challenge_seconds(self) -> float:
        """The time the chain's challenge takes: the median run, scaled from ``rows`` to
        ``challenge_rows`` by its per-row part (the fixed part is paid once)."""
        if self.rows >= self.challenge_rows or not 0 < self.fixed_seconds < self.seconds:
            return self.seconds * self.challenge_rows / self.rows
        per_row = (self.seconds - self.fixed_seconds) / (self.rows - SMALL_ROWS)
        return self.fixed_seconds + per_row * (self.challenge_rows - SMALL_ROWS)

    @property
    def gflops(self) -> float:
        """The prover's rate on the chain's challenge in GFLOP/s (2·rows·n² operations)."""
        return 2 * self.challenge_rows * self.n * self.n / max(self.challenge_seconds, 1e-9) / 1e9

    @property
    def units(self) -> int:
        """Measured compute units: whole GFLOP/s of the prover at the chain's challenge size."""
        return int(self.gflops)


def compute_claim(measured_units: int, margin_percent: int = DEFAULT_MARGIN_PERCENT) -> int:
    """Return the units to claim for ``measured_units``: ``measured · margin_percent // 100``."""
    if type(measured_units) is not int or measured_units < 0:
        raise ProverError(f"measured units must be a non-negative integer, got {measured_units!r}")
    if type(margin_percent) is not int or not 1 <= margin_percent <= 100:
        raise ProverError(f"the margin must be a whole percent in [1, 100], got {margin_percent!r}")
    return measured_units * margin_percent // 100


def measure_calibration(poc: PocParams, seconds: float, config: KernelConfig,
                        margin_percent: int = DEFAULT_MARGIN_PERCENT,
                        claim: int | None = None) -> Calibration:
    """Measure the prover at the challenge size of ``claim`` (default: the claim the probe
    suggests) for about ``seconds``; run it in a prover worker of ``config``'s kernel."""
    if seconds <= 0:
        raise ProverError("the calibration time must be positive")
    started = time.perf_counter()
    dtype, device = config.dtype, config.device
    # Twice: the first call pays one-time costs (BLAS buffers, the GPU context).
    compute_commitment(CALIBRATION_SEED, poc.max_n, PROBE_ROWS // 4, dtype, 0.0, device)
    probe = compute_commitment(CALIBRATION_SEED, poc.max_n, PROBE_ROWS, dtype, 0.0, device)
    rate = 2 * PROBE_ROWS * poc.max_n * poc.max_n / max(probe.total_s, 1e-9)
    if claim is None:
        claim = compute_claim(int(rate / 1e9), margin_percent)
    n, challenge_rows = compute_challenge_size(max(claim, 1), poc)
    # The best of two: a burst of load can only lengthen it, and a short fixed part makes the
    # scaled challenge time longer (the figure lower), never shorter.
    fixed = min(compute_commitment(CALIBRATION_SEED, n, SMALL_ROWS, dtype, 0.0, device).total_s
                for _ in range(2))
    row_s = 2 * n * n / rate
    # Three runs for a median that a burst of load elsewhere does not move: each of the
    # challenge's size, or fewer rows when a third of the budget is shorter (then scaled).
    per_run = max(seconds - (time.perf_counter() - started), 0.0) / MAX_RUNS
    rows = challenge_rows
    if challenge_rows * row_s > per_run:
        rows = min(challenge_rows, max(PROBE_ROWS // 4, int(per_run / row_s) // 64 * 64))
    runs = MAX_RUNS
    times: list[float] = []
    for _ in range(runs):
        times.append(compute_commitment(CALIBRATION_SEED, n, rows, dtype, 0.0, device).total_s)
        # The probe's estimate may be off when the machine's load changes: keep to the budget.
        if time.perf_counter() - started > seconds:
            break
    return Calibration(kernel=describe_kernel(config), n=n, rows=rows, challenge_rows=challenge_rows,
                       challenge_ms=poc.challenge_ms, run_seconds=tuple(times), fixed_seconds=fixed)


async def calibrate(prover: Prover, poc: PocParams, seconds: float,
                    margin_percent: int = DEFAULT_MARGIN_PERCENT, claim: int | None = None) -> Calibration:
    """Measure ``prover``'s kernel in its own worker (see ``measure_calibration``)."""
    return await prover.run_in_worker(measure_calibration, poc, seconds, prover.kernel,
                                      margin_percent, claim)


def run_calibration(config: KernelConfig, poc: PocParams, seconds: float,
                    margin_percent: int = DEFAULT_MARGIN_PERCENT, claim: int | None = None) -> Calibration:
    """Start a prover worker of ``config``, calibrate in it, stop it (for commands, not the node)."""
    async def run() -> Calibration:
        prover = Prover(kernel=config)
        try:
            return await calibrate(prover, poc, seconds, margin_percent, claim)
        finally:
            await prover.aclose()

    return asyncio.run(run())


# --- the chain's parameters ----------------------------------------------------------------


def load_poc_params(genesis_path: str | Path) -> PocParams:
    """Return the proof-of-compute parameters of a genesis file; ProverError if unreadable."""
    try:
        text = Path(genesis_path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProverError(f"cannot read genesis {genesis_path}: {exc.strerror}") from exc
    try:
        return get_poc_params(load_genesis(text).params)
    except ConsensusError as exc:
        raise ProverError(f"genesis {genesis_path}: {exc}") from exc


async def fetch_poc_params(url: str, timeout: float = 10.0) -> PocParams:
    """Return the proof-of-compute parameters in force at the node's head (RPC ``params``)."""
    try:
        async with RPCClient(url, timeout=timeout) as client:
            doc = await client.call("params", None, timeout=timeout)
    except RPCClientError as exc:
        raise ProverError(f"cannot read the chain's parameters from {url}: {exc}") from exc
    try:
        return get_poc_params(Params.from_json(doc))
    except ConsensusError as exc:
        raise ProverError(f"the node at {url} answered unusable params: {exc}") from exc


def resolve_poc_params(genesis: str | None, rpc_url: str | None,
                       timeout: float = 10.0) -> tuple[PocParams, str]:
    """Return (the chain's PocParams, where they came from): the ``genesis`` file, else the
    node at ``rpc_url``, else mainnet's (both None); ProverError if they cannot be read."""
    if genesis:
        return load_poc_params(genesis), f"genesis {genesis}"
    if rpc_url is not None:
        return asyncio.run(fetch_poc_params(rpc_url, timeout)), f"the node at {rpc_url}"
    return get_poc_params(MAINNET), "mainnet defaults (pass --rpc or --genesis for your chain's)"


# --- the node's start check ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    """One served NFT's claim against what this machine's prover measured."""

    nft_id: int
    claimed_units: int
    measured_units: int
    calibration: Calibration

    @property
    def exceeds(self) -> bool:
        """Whether the claim is more than the prover delivers here."""
        return self.claimed_units > self.measured_units


def check_claims(claims: dict[int, int], calibration: Calibration) -> tuple[ClaimCheck, ...]:
    """Return each NFT's (id -> claimed units) check against ``calibration``, by NFT id."""
    return tuple(ClaimCheck(nft_id, claims[nft_id], calibration.units, calibration)
                 for nft_id in sorted(claims))
