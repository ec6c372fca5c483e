"""``cstake bench``: detect this machine's hardware and measure its compute units.

Detection: CPU model (/proc/cpuinfo), logical cores, memory (/proc/meminfo),
and NVIDIA GPUs through ``nvidia-smi`` when the binary exists, or through an
installed CUDA array library (torch or cupy). None of these is required; a
missing or failing probe just reports nothing.

Measurement, with the very kernel and pipeline the proof-of-compute challenges use:

- kernel GFLOP/s: float32 GEMM of small-integer matrices (exact, see
  consensus.poc.matrices) at the challenge inner dimensions n = 512, 1024, 2048,
  counting 2·rows·n² operations per product;
- pipeline GFLOP/s: a whole challenge at n = 2048 as the prover runs it
  (``node.compute.prover.compute_commitment``: generate A and B from SHAKE-256, multiply,
  convert to int32, hash every row into the Merkle tree), 2·rows·n² over its time;
- memory bandwidth GB/s: copies of a 256 MiB array, counting bytes read plus written.

Compute units (1 unit = 1 GFLOP/s, the unit the chain verifies in):
``units = floor(pipeline GFLOP/s)`` for each device, and the machine's total is
the sum over devices. The pipeline figure is used, not the raw kernel, because
the chain measures a device by the time its whole challenge takes; memory
bandwidth is reported (and worth recording in the hardware specification) but
does not enter the formula, since the pipeline run already pays for the
memory-bound steps at the real sizes. A GPU runs the same pipeline with the
GEMM on the GPU (TF32 disabled: its 10-bit mantissa would not be exact).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from consensus.poc.matrices import MAX_N, generate_a_rows, generate_b
from node.compute.prover import (
    BLOCK_ROWS,
    compute_commitment,
    compute_leaf_hashes,
    is_block_exact,
    multiply_block,
)

KERNEL_SIZES = (512, 1024, 2048)
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


@dataclass(frozen=True, slots=True)
class DeviceMeasurement:
    """Measured throughput of one device, and the units it earns."""

    device: str
    name: str
    kernel_gflops: tuple[tuple[int, float], ...]
    pipeline_gflops: float
    pipeline_rows: int
    units: int
    exact: bool


@dataclass(frozen=True, slots=True)
class HardwareReport:
    """What ``cstake bench`` found and measured."""

    cpu_model: str
    logical_cores: int
    memory_bytes: int
    gpus: tuple[GpuInfo, ...]
    memory_bandwidth_gbs: float
    devices: tuple[DeviceMeasurement, ...]
    units: int
    notes: tuple[str, ...]


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
        return backend.describe()
    except Exception:  # a broken GPU library must not stop the benchmark
        return ()


# --- GPU backends (optional: torch or cupy, whichever is installed) ---------------------


class _GpuBackend:
    """The few operations the GPU measurement needs, from torch or cupy."""

    def __init__(self, name: str, module: Any) -> None:
        self.name = name
        self.module = module

    def count(self) -> int:
        if self.name == "torch":
            return int(self.module.cuda.device_count()) if self.module.cuda.is_available() else 0
        return int(self.module.cuda.runtime.getDeviceCount())

    def describe(self) -> tuple[GpuInfo, ...]:
        out = []
        for i in range(self.count()):
            if self.name == "torch":
                props = self.module.cuda.get_device_properties(i)
                out.append(GpuInfo(props.name, props.total_memory >> 20, "torch"))
            else:
                props = self.module.cuda.runtime.getDeviceProperties(i)
                name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
                out.append(GpuInfo(name, int(props["totalGlobalMem"]) >> 20, "cupy"))
        return tuple(out)

    def matmul_fn(self, index: int, b: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Return f(A int8 block) -> C int32 block, multiplying on GPU ``index`` in float32."""
        if self.name == "torch":
            torch = self.module
            torch.backends.cuda.matmul.allow_tf32 = False  # TF32 is not exact
            dev = torch.device(f"cuda:{index}")
            b_dev = torch.from_numpy(b.astype(np.float32)).to(dev)

            def run_torch(a: np.ndarray) -> np.ndarray:
                a_dev = torch.from_numpy(a.astype(np.float32)).to(dev)
                return (a_dev @ b_dev).to(torch.int32).cpu().numpy()  # type: ignore[no-any-return]

            return run_torch
        cupy = self.module
        with cupy.cuda.Device(index):
            b_dev = cupy.asarray(b.astype(np.float32))

        def run_cupy(a: np.ndarray) -> np.ndarray:
            with cupy.cuda.Device(index):
                return cupy.asnumpy((cupy.asarray(a.astype(np.float32)) @ b_dev).astype(cupy.int32))  # type: ignore[no-any-return]

        return run_cupy


def _gpu_backend() -> _GpuBackend | None:
    for name in ("torch", "cupy"):
        if importlib.util.find_spec(name) is None:
            continue
        try:
            module = __import__(name)
            backend = _GpuBackend(name, module)
            if backend.count() > 0:
                return backend
        except Exception:  # an unusable library is the same as none
            continue
    return None


# --- measurement -----------------------------------------------------------------


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


def measure_kernel(n: int, seconds: float, rows: int | None = None) -> tuple[float, bool]:
    """Return the best float32 GEMM rate (GFLOP/s) at inner dimension n, and whether it was exact."""
    rows = rows or min(n, BLOCK_ROWS)
    b = generate_b(BENCH_SEED, n).astype(np.float32)
    a = generate_a_rows(BENCH_SEED, n, 0, rows)
    best = 0.0
    exact = True
    deadline = time.perf_counter() + seconds
    for attempt in range(1000):
        t0 = time.perf_counter()
        c = multiply_block(a, b, "float32")
        dt = time.perf_counter() - t0
        best = max(best, 2 * rows * n * n / dt / 1e9)
        if attempt == 0:
            exact = is_block_exact(a, b, c)
        if attempt >= 2 and time.perf_counter() > deadline:
            break
    return best, exact


def measure_pipeline(seconds: float, n: int = MAX_N, runs: int = 2) -> tuple[float, int]:
    """Run whole challenges of about ``seconds / runs`` each; return (best GFLOP/s, rows)."""
    probe = compute_commitment(BENCH_SEED, n, 256)
    rate = 2 * 256 * n * n / max(probe.total_s, 1e-9)
    rows = max(256, int(rate * seconds / runs / (2 * n * n)) // 64 * 64)
    best = 0.0
    for _ in range(runs):
        t0 = time.perf_counter()
        compute_commitment(BENCH_SEED, n, rows)
        best = max(best, 2 * rows * n * n / (time.perf_counter() - t0) / 1e9)
    return best, rows


def _measure_gpu(backend: _GpuBackend, index: int, name: str, seconds: float) -> DeviceMeasurement:
    n = MAX_N
    b = generate_b(BENCH_SEED, n)
    run = backend.matmul_fn(index, b)
    a = generate_a_rows(BENCH_SEED, n, 0, BLOCK_ROWS)
    exact = is_block_exact(a, b, run(a))
    kernel = 0.0
    deadline = time.perf_counter() + seconds / 2
    while True:
        t0 = time.perf_counter()
        run(a)
        kernel = max(kernel, 2 * BLOCK_ROWS * n * n / (time.perf_counter() - t0) / 1e9)
        if time.perf_counter() > deadline:
            break
    # Pipeline: generate each block on the CPU, multiply on the GPU, hash rows on the CPU.
    rows = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2:
        block = generate_a_rows(BENCH_SEED, n, rows, rows + BLOCK_ROWS)
        compute_leaf_hashes(run(block))
        rows += BLOCK_ROWS
    pipeline = 2 * rows * n * n / (time.perf_counter() - t0) / 1e9
    return DeviceMeasurement(
        device=f"gpu{index}", name=name, kernel_gflops=((n, kernel),),
        pipeline_gflops=pipeline, pipeline_rows=rows, units=int(pipeline) if exact else 0,
        exact=exact,
    )


def run_benchmark(seconds: float = 10.0) -> HardwareReport:
    """Detect the hardware and measure it for about ``seconds`` in all (at least ~1 s)."""
    seconds = max(seconds, 0.5)
    notes: list[str] = []
    gpus = detect_gpus()
    bandwidth = measure_memory_bandwidth(seconds * 0.1)
    kernel_share = seconds * 0.3 / len(KERNEL_SIZES)
    measured = [(n, measure_kernel(n, kernel_share)) for n in KERNEL_SIZES]
    kernels = tuple((n, rate) for n, (rate, _) in measured)
    cpu_exact = all(exact for _, (_, exact) in measured)
    pipeline, rows = measure_pipeline(seconds * 0.5) if cpu_exact else (0.0, 0)
    cpu_model = read_cpu_model()
    devices = [DeviceMeasurement(
        device="cpu", name=cpu_model, kernel_gflops=kernels, pipeline_gflops=pipeline,
        pipeline_rows=rows, units=int(pipeline) if cpu_exact else 0, exact=cpu_exact,
    )]
    backend = _gpu_backend() if gpus else None
    if gpus and backend is None:
        notes.append("GPU found but neither torch nor cupy is importable: GPU not measured")
    if backend is not None:
        for index, gpu in enumerate(gpus[: backend.count()]):
            try:
                devices.append(_measure_gpu(backend, index, gpu.name, seconds / 2))
            except Exception as exc:  # report and go on with the CPU figures
                notes.append(f"gpu{index} ({gpu.name}) not measured: {exc}")
    for dev in devices:
        if not dev.exact:
            notes.append(f"{dev.device}: float32 product not exact, no units counted")
    return HardwareReport(
        cpu_model=cpu_model, logical_cores=os.cpu_count() or 1, memory_bytes=read_memory_bytes(),
        gpus=gpus, memory_bandwidth_gbs=bandwidth, devices=tuple(devices),
        units=sum(d.units for d in devices), notes=tuple(notes),
    )


def get_claimed_units(report: HardwareReport, *, overclaim: bool = False) -> int:
    """Return the units to register for ``report`` (doubled in the test-only poc-overclaim mode)."""
    return report.units * OVERCLAIM_FACTOR if overclaim else report.units


# --- output ----------------------------------------------------------------------


def report_to_json(report: HardwareReport) -> dict[str, Any]:
    """Return the report as a JSON-ready dict."""
    data = asdict(report)
    for dev in data["devices"]:
        dev["kernel_gflops"] = {str(n): round(v, 2) for n, v in dev["kernel_gflops"]}
        dev["pipeline_gflops"] = round(dev["pipeline_gflops"], 2)
    data["memory_bandwidth_gbs"] = round(report.memory_bandwidth_gbs, 2)
    data["gpus"] = [asdict(g) for g in report.gpus]
    data["notes"] = list(report.notes)
    data["unit"] = "1 compute unit = 1 GFLOP/s of the proof-of-compute pipeline (float32 exact-integer kernel)"
    return data


def format_report(report: HardwareReport) -> str:
    """Return a human-readable table of the report."""
    lines = [
        f"{'CPU':<26}{report.cpu_model}",
        f"{'logical cores':<26}{report.logical_cores}",
        f"{'memory':<26}{report.memory_bytes / (1 << 30):.1f} GiB",
        f"{'memory bandwidth (copy)':<26}{report.memory_bandwidth_gbs:.1f} GB/s",
    ]
    if report.gpus:
        for i, gpu in enumerate(report.gpus):
            lines.append(f"{f'GPU {i}':<26}{gpu.name}, {gpu.memory_mib} MiB ({gpu.source})")
    else:
        lines.append(f"{'GPUs':<26}none found")
    lines.append("")
    lines.append(f"{'device':<8}{'kernel GFLOP/s (n)':<40}{'pipeline GFLOP/s':>18}{'units':>8}")
    for dev in report.devices:
        kern = "  ".join(f"{v:.1f} ({n})" for n, v in dev.kernel_gflops)
        lines.append(f"{dev.device:<8}{kern:<40}{dev.pipeline_gflops:>18.1f}{dev.units:>8}")
    lines.append(f"{'total compute units':<26}{report.units}")
    lines.append("(1 unit = 1 GFLOP/s of the proof-of-compute pipeline at n = 2048: "
                 "generate, multiply in float32, hash rows)")
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cstake bench``."""
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
