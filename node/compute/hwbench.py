"""``cstake bench``: detect this machine's hardware and measure what its prover delivers.

Detection: CPU model (/proc/cpuinfo), logical cores, memory (/proc/meminfo),
and NVIDIA GPUs through ``nvidia-smi`` when the binary exists, or through an
installed CUDA array library (torch or cupy). None of these is required; a
missing or failing probe just reports nothing.

Measurement, in a prover worker (``node.compute.prover.Prover``) of the
configured kernel (``node.compute.kernel.KernelConfig``: device and BLAS
threads, by default the node's prover default, one thread on the CPU), so the
figure is the prover's own:

- kernel GFLOP/s: the raw GEMM of challenge matrices at n = 512, 1024, 2048
  (a description of the hardware; it earns nothing);
- prover GFLOP/s: whole challenges at the chain's challenge size, as the
  prover computes them (``node.compute.calibrate``: generate A and B, multiply,
  convert to int32, hash every row into the Merkle tree), 2·rows·n² over the
  median run's time;
- memory bandwidth GB/s: copies of a 256 MiB array, bytes read plus written.

Compute units (1 unit = 1 GFLOP/s, the unit the chain verifies in):
``units = floor(prover GFLOP/s)``. ``cstake tx register-compute --from-bench``
claims a margin of that (80% by default). The kernel the worker ran, with the
thread count BLAS itself reports there, is recorded in the report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from consensus.params import MAINNET
from consensus.poc import PocParams
from consensus.poc.matrices import generate_a_rows, generate_b
from consensus.poc_state import get_poc_params
from node.compute.calibrate import DEFAULT_MARGIN_PERCENT, Calibration, measure_calibration
from node.compute.kernel import (
    GpuBackend,
    KernelConfig,
    KernelInfo,
    describe_kernel,
    format_kernel_info,
    get_block_multiplier,
    get_gpu_backend,
    is_block_exact,
    multiply_block,
)
from node.compute.prover import BLOCK_ROWS, Prover

KERNEL_SIZES = (512, 1024, 2048)
#: Share of the measurement time spent on the raw kernel sizes (the rest on the prover figure).
KERNEL_SHARE = 0.2
#: The test-only poc-overclaim mode registers this many times the benchmarked units.
OVERCLAIM_FACTOR = 2
BANDWIDTH_BYTES = 256 << 20
BENCH_SEED = bytes(range(32))


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """A GPU found on this machine."""

    name: str
    memory_mib: int
    source: str


# --- detection -------------------------------------------------------------------


def read_cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """Return the CPU model name, or the platform's processor string if unknown."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def read_memory_bytes(meminfo: str = "/proc/meminfo") -> int:
    """Return total memory in bytes from /proc/meminfo (0 if unreadable)."""
    try:
        with open(meminfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    parts = line.split()
                    return int(parts[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def parse_nvidia_smi(output: str) -> tuple[GpuInfo, ...]:
    """Parse ``nvidia-smi --query-gpu=name,memory.total --format=csv,noheader`` output."""
    gpus = []
    for line in output.splitlines():
        name, sep, memory = line.rpartition(",")
        if not sep or not name.strip():
            continue
        digits = "".join(ch for ch in memory if ch.isdigit())
        gpus.append(GpuInfo(name=name.strip(), memory_mib=int(digits or 0), source="nvidia-smi"))
    return tuple(gpus)


def detect_gpus() -> tuple[GpuInfo, ...]:
    """Return the NVIDIA GPUs found by nvidia-smi, else by torch or cupy; empty if none."""
    exe = shutil.which("nvidia-smi")
    if exe is not None:
        try:
            done = subprocess.run(  # fixed argument list, binary from PATH
                [exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=False,
            )
            if done.returncode == 0:
                found = parse_nvidia_smi(done.stdout)
                if found:
                    return found
        except (OSError, subprocess.SubprocessError):
            pass
    backend = _gpu_backend()
    if backend is None:
        return ()
    try:
        return tuple(GpuInfo(name, mib, backend.name) for name, mib in backend.describe())
    except Exception:  # a broken GPU library must not stop the benchmark
        return ()


# --- measurement -----------------------------------------------------------------


def _gpu_backend() -> GpuBackend | None:
    return get_gpu_backend()


def measure_memory_bandwidth(seconds: float, nbytes: int = BANDWIDTH_BYTES) -> float:
    """Return the best copy bandwidth in GB/s (bytes read plus bytes written per second)."""
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = 0.0
    deadline = time.perf_counter() + seconds
    for attempt in range(50):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        dt = time.perf_counter() - t0
        best = max(best, 2 * src.nbytes / dt / 1e9)
        if attempt >= 2 and time.perf_counter() > deadline:
            break
    return best


def measure_kernel(n: int, seconds: float, config: KernelConfig,
                   rows: int | None = None) -> tuple[float, bool]:
    """Return the best GEMM rate (GFLOP/s) of ``config``'s kernel at inner dimension n, and
    whether it was exact (run it in a prover worker, so the thread count is the prover's)."""
    rows = rows or min(n, BLOCK_ROWS)
    b_int = generate_b(BENCH_SEED, n)
    a = generate_a_rows(BENCH_SEED, n, 0, rows)
    if config.is_gpu:
        run = get_block_multiplier(config, b_int)
    else:
        b = b_int.astype(config.dtype)

        def run(block: np.ndarray) -> np.ndarray:
            return multiply_block(block, b, config.dtype)
    best = 0.0
    exact = True
    deadline = time.perf_counter() + seconds
    for attempt in range(1000):
        t0 = time.perf_counter()
        c = run(a)
        dt = time.perf_counter() - t0
        best = max(best, 2 * rows * n * n / dt / 1e9)
        if attempt == 0:
            exact = is_block_exact(a, b_int, c)
        if attempt >= 2 and time.perf_counter() > deadline:
            break
    return best, exact


@dataclass(frozen=True, slots=True)
class DeviceMeasurement:
    """What one prover worker measured of its kernel."""

    kernel: KernelInfo
    kernel_gflops: tuple[tuple[int, float], ...]
    """Best raw GEMM rate at each of ``KERNEL_SIZES`` (for the hardware description)."""
    exact: bool
    prover: Calibration | None
    """The prover's rate at the chain's challenge size (None when the kernel is not exact)."""


def measure_device(poc: PocParams, seconds: float, config: KernelConfig,
                   margin_percent: int = DEFAULT_MARGIN_PERCENT) -> DeviceMeasurement:
    """Measure ``config``'s kernel for about ``seconds`` (run it in a prover worker)."""
    share = seconds * KERNEL_SHARE / len(KERNEL_SIZES)
    measured = [(n, measure_kernel(n, share, config)) for n in KERNEL_SIZES]
    exact = all(ok for _, (_, ok) in measured)
    prover = (measure_calibration(poc, seconds * (1 - KERNEL_SHARE), config, margin_percent)
              if exact else None)
    return DeviceMeasurement(kernel=describe_kernel(config),
                             kernel_gflops=tuple((n, rate) for n, (rate, _) in measured),
                             exact=exact, prover=prover)


@dataclass(frozen=True, slots=True)
class HardwareReport:
    """What ``cstake bench`` found and measured."""

    cpu_model: str
    logical_cores: int
    memory_bytes: int
    gpus: tuple[GpuInfo, ...]
    memory_bandwidth_gbs: float
    device: DeviceMeasurement
    """The prover's kernel (device and threads from the configuration), as a prover worker ran it."""
    units: int
    """Measured compute units: ``floor`` of the prover's GFLOP/s at the chain's challenge size."""
    notes: tuple[str, ...]

    @property
    def kernel(self) -> KernelInfo:
        return self.device.kernel


def run_benchmark(seconds: float = 10.0, *, kernel: KernelConfig | None = None,
                  poc: PocParams | None = None,
                  margin_percent: int = DEFAULT_MARGIN_PERCENT) -> HardwareReport:
    """Detect the hardware and measure the prover's kernel for about ``seconds`` (at least ~1 s).

    ``kernel`` (default: the node's prover default) picks device and threads; ``poc``
    (default: mainnet's) the challenge sizes. The measurement runs in a prover worker.
    """
    kernel = kernel or KernelConfig()
    poc = poc or get_poc_params(MAINNET)
    seconds = max(seconds, 0.5)
    notes: list[str] = []
    gpus = detect_gpus()
    bandwidth = measure_memory_bandwidth(seconds * 0.1)

    async def measure() -> DeviceMeasurement:
        prover = Prover(kernel=kernel)
        try:
            return await prover.run_in_worker(measure_device, poc, seconds * 0.9, kernel, margin_percent)
        finally:
            await prover.aclose()

    device = asyncio.run(measure())
    if gpus and not kernel.is_gpu:
        notes.append("GPU found, but the prover is configured for the CPU: measure and prove "
                     "on it with --device gpu")
    if not device.exact:
        notes.append(f"{kernel.device}: {kernel.dtype} product not exact, no units counted")
    units = device.prover.units if device.prover is not None else 0
    return HardwareReport(
        cpu_model=read_cpu_model(), logical_cores=os.cpu_count() or 1,
        memory_bytes=read_memory_bytes(), gpus=gpus, memory_bandwidth_gbs=bandwidth,
        device=device, units=units, notes=tuple(notes),
    )


def get_claimed_units(report: HardwareReport, *, overclaim: bool = False) -> int:
    """Return the units to register for ``report`` (doubled in the test-only poc-overclaim mode)."""
    return report.units * OVERCLAIM_FACTOR if overclaim else report.units


# --- output ----------------------------------------------------------------------


def report_to_json(report: HardwareReport) -> dict[str, Any]:
    """Return the report as a JSON-ready dict."""
    dev = report.device
    prover: dict[str, Any] | None = None
    if dev.prover is not None:
        cal = dev.prover
        prover = {"n": cal.n, "rows": cal.rows, "challenge_rows": cal.challenge_rows,
                  "challenge_ms": cal.challenge_ms, "runs": len(cal.run_seconds),
                  "run_seconds": [round(x, 4) for x in cal.run_seconds],
                  "fixed_seconds": round(cal.fixed_seconds, 4),
                  "challenge_seconds": round(cal.challenge_seconds, 4), "gflops": round(cal.gflops, 2), "units": cal.units}
    return {
        "cpu_model": report.cpu_model,
        "logical_cores": report.logical_cores,
        "memory_bytes": report.memory_bytes,
        "gpus": [asdict(g) for g in report.gpus],
        "memory_bandwidth_gbs": round(report.memory_bandwidth_gbs, 2),
        "kernel": asdict(report.kernel),
        "kernel_gflops": {str(n): round(v, 2) for n, v in dev.kernel_gflops},
        "exact": dev.exact,
        "prover": prover,
        "units": report.units,
        "notes": list(report.notes),
        "unit": "1 compute unit = 1 GFLOP/s of the proof-of-compute prover at the chain's challenge "
                "size (float32 exact-integer kernel, the prover's device and BLAS threads)",
    }


def format_report(report: HardwareReport) -> str:
    """Return a human-readable table of the report."""
    dev = report.device
    lines = [
        f"{'CPU':<26}{report.cpu_model}",
        f"{'logical cores':<26}{report.logical_cores}",
        f"{'memory':<26}{report.memory_bytes / (1 << 30):.1f} GiB",
        f"{'memory bandwidth (copy)':<26}{report.memory_bandwidth_gbs:.1f} GB/s",
    ]
    if report.gpus:
        for i, g in enumerate(report.gpus):
            lines.append(f"{f'GPU {i}':<26}{g.name}, {g.memory_mib} MiB ({g.source})")
    else:
        lines.append(f"{'GPUs':<26}none found")
    lines.append(f"{'prover kernel':<26}{format_kernel_info(report.kernel)}")
    kern = "  ".join(f"{v:.1f} (n={n})" for n, v in dev.kernel_gflops)
    lines.append(f"{'kernel GFLOP/s':<26}{kern}")
    if dev.prover is not None:
        cal = dev.prover
        lines.append(f"{'prover GFLOP/s':<26}{cal.gflops:.1f} on the chain's challenge at n = {cal.n} "
                     f"({cal.challenge_rows} rows for {cal.challenge_ms} ms: {cal.challenge_seconds:.2f} s; "
                     f"median of {len(cal.run_seconds)} runs of {cal.rows} rows)")
    lines.append(f"{'measured compute units':<26}{report.units}")
    lines.append("(1 unit = 1 GFLOP/s of the proof-of-compute prover at the chain's challenge size: "
                 "generate, multiply, hash rows, with the prover's device and threads)")
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m node.compute.hwbench`` (``cstake bench`` is node/cli/bench.py)."""
    parser = argparse.ArgumentParser(prog="cstake bench", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measurement time in seconds (default 10)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    report = run_benchmark(args.seconds)
    if args.json:
        print(json.dumps(report_to_json(report), indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
