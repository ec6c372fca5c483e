"""The proof-of-compute kernel: the one product the prover runs and the benchmark measures.

A kernel is chosen by a ``KernelConfig``: the device (``cpu``, or ``gpu`` /
``gpu:N`` through torch or cupy when one is installed) and the BLAS thread count
of the worker process that runs it. The prover (``node.compute.prover``) and the
benchmark (``node.compute.hwbench``, through ``node.compute.calibrate``) run the
product only here, and only inside a prover worker spawned with that thread
count, so what ``cstake bench`` measures is what the prover delivers.

The product: float32 (or float64) GEMM of small-integer matrices, exact on any
hardware (every partial sum stays below 2^24, see consensus.poc.matrices),
converted to int32 rows for the commitment. A GPU runs the same GEMM with TF32
disabled (its 10-bit mantissa would round); every first block is checked
exact (``is_block_exact``) before anything is committed.

``describe_kernel`` runs in the worker and reports what it actually got (the
BLAS library's own thread count, read through its C API): the bench result
records it, so a thread cap that did not reach BLAS is visible.

The GPU path is optional: neither torch nor cupy is a dependency; a missing or
broken library just means no GPU device.
"""

from __future__ import annotations

import ctypes
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from node.errors import ProverError

KERNEL_DTYPES = ("float32", "float64")
#: What the node's prover runs unless configured otherwise: one BLAS thread on the CPU,
#: since a devnet's nodes share a small machine and each served NFT has its own worker.
DEFAULT_THREADS = 1
#: Environment variables that cap BLAS threads in a worker (read when BLAS loads).
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: C entry points reporting OpenBLAS's thread count (numpy's bundled build prefixes its symbols).
_BLAS_THREAD_SYMBOLS = (
    "scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_", "openblas_get_num_threads", "mkl_get_max_threads",
)


@dataclass(frozen=True, slots=True)
class KernelConfig:
    """Which kernel the prover runs: the device, the worker's BLAS threads, the float type."""

    device: str = "cpu"
    """``cpu``, or ``gpu`` / ``gpu:N`` (GPU N through torch or cupy)."""
    threads: int | None = DEFAULT_THREADS
    """BLAS threads of the worker process (None: the library's default, all cores)."""
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in KERNEL_DTYPES:
            raise ProverError(f"kernel dtype must be one of {KERNEL_DTYPES}, got {self.dtype!r}")
        if self.threads is not None and (type(self.threads) is not int or self.threads < 1):
            raise ProverError(f"kernel threads must be a positive integer, got {self.threads!r}")
        get_gpu_index(self.device)

    @classmethod
    def from_options(cls, device: str = "cpu", threads: int | None = None) -> KernelConfig:
        """The kernel of command-line options (``--device``, ``--threads``; None: the default)."""
        return cls(device=device, threads=DEFAULT_THREADS if threads is None else threads)

    @property
    def is_gpu(self) -> bool:
        return self.device != "cpu"

    def describe(self) -> str:
        """A short human label: ``cpu, 1 BLAS thread, float32``."""
        threads = "library-default BLAS threads" if self.threads is None else (
            f"{self.threads} BLAS thread{'s' if self.threads != 1 else ''}")
        return f"{self.device}, {threads}, {self.dtype}"


def get_gpu_index(device: str) -> int | None:
    """Return the GPU index of ``device`` (None for the CPU); raise ProverError if malformed."""
    if device == "cpu":
        return None
    if device == "gpu":
        return 0
    head, sep, tail = device.partition(":")
    if head == "gpu" and sep and tail.isdigit() and len(tail) <= 3:
        return int(tail)
    raise ProverError(f"kernel device must be 'cpu', 'gpu' or 'gpu:N', got {device!r}")


@dataclass(frozen=True, slots=True)
class KernelInfo:
    """What a worker process actually ran: recorded with every measurement."""

    device: str
    dtype: str
    threads: int | None
    """The configured BLAS thread cap (None: the library's default)."""
    blas_threads: int | None
    """The thread count BLAS itself reports in the worker (None when it cannot be read)."""
    backend: str
    """``numpy`` (CPU BLAS), ``torch`` or ``cupy``."""

    @property
    def config(self) -> KernelConfig:
        return KernelConfig(device=self.device, threads=self.threads, dtype=self.dtype)


def format_kernel_info(info: KernelInfo) -> str:
    """``cpu, 1 BLAS thread, float32 (BLAS reports 1; numpy)``."""
    actual = "unknown" if info.blas_threads is None else str(info.blas_threads)
    return f"{info.config.describe()} (BLAS reports {actual}; {info.backend})"


# --- the CPU kernel ------------------------------------------------------------------


def multiply_block(a: npt.NDArray[np.int8], b: npt.NDArray[np.floating], dtype: str) -> npt.NDArray[np.int32]:
    """Return A·B as int32 using the BLAS float kernel (``b`` already in ``dtype``)."""
    c = np.matmul(a.astype(dtype), b)
    out: npt.NDArray[np.int32] = c.astype(np.int32)
    return out


def is_block_exact(a: npt.NDArray[np.int8], b: npt.NDArray[np.integer] | npt.NDArray[np.floating],
                   c: npt.NDArray[np.int32]) -> bool:
    """Return whether C = A·B, by an int64 Freivalds check with a fixed vector (O(rows·n)).

    A BLAS or GPU mode that rounds (TF32, reduced-precision "fast math") would make the
    prover commit wrong rows and be slashed; checking the first block catches such a
    systematic fault before anything is committed, at a small share of the product's cost.
    """
    r = (np.arange(b.shape[1], dtype=np.int64) * 7919 + 104729) % (1 << 20)
    br = np.asarray(b, dtype=np.int64) @ r
    return bool(np.array_equal(c.astype(np.int64) @ r, a.astype(np.int64) @ br))


def get_blas_threads() -> int | None:
    """Return the thread count this process's BLAS library reports, or None if unknown."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = sorted({line.split()[-1] for line in f
                            if "/" in line and ("blas" in line.lower() or "mkl" in line.lower())})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_THREAD_SYMBOLS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                return int(fn())
    return None


# --- the GPU kernel (optional: torch or cupy, whichever is installed) --------------------


class GpuBackend:
    """The few operations the GPU kernel needs, from torch or cupy."""

    def __init__(self, name: str, module: Any) -> None:
        self.name = name
        self.module = module

    def count(self) -> int:
        if self.name == "torch":
            return int(self.module.cuda.device_count()) if self.module.cuda.is_available() else 0
        return int(self.module.cuda.runtime.getDeviceCount())

    def describe(self) -> tuple[tuple[str, int], ...]:
        """Return (name, memory MiB) of each GPU."""
        out = []
        for i in range(self.count()):
            if self.name == "torch":
                props = self.module.cuda.get_device_properties(i)
                out.append((str(props.name), int(props.total_memory) >> 20))
            else:
                props = self.module.cuda.runtime.getDeviceProperties(i)
                name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
                out.append((name, int(props["totalGlobalMem"]) >> 20))
        return tuple(out)

    def matmul_fn(self, index: int, b: np.ndarray, dtype: str) -> Callable[[np.ndarray], np.ndarray]:
        """Return f(A int8 block) -> C int32 block, multiplying on GPU ``index`` in ``dtype``."""
        if self.name == "torch":
            torch = self.module
            torch.backends.cuda.matmul.allow_tf32 = False  # TF32 is not exact
            dev = torch.device(f"cuda:{index}")
            b_dev = torch.from_numpy(b.astype(dtype)).to(dev)

            def run_torch(a: np.ndarray) -> np.ndarray:
                a_dev = torch.from_numpy(a.astype(dtype)).to(dev)
                return (a_dev @ b_dev).to(torch.int32).cpu().numpy()  # type: ignore[no-any-return]

            return run_torch
        cupy = self.module
        with cupy.cuda.Device(index):
            b_dev = cupy.asarray(b.astype(dtype))

        def run_cupy(a: np.ndarray) -> np.ndarray:
            with cupy.cuda.Device(index):
                return cupy.asnumpy((cupy.asarray(a.astype(dtype)) @ b_dev).astype(cupy.int32))  # type: ignore[no-any-return]

        return run_cupy


def get_gpu_backend() -> GpuBackend | None:
    """Return torch's or cupy's CUDA backend if one is installed and sees a GPU, else None."""
    for name in ("torch", "cupy"):
        if importlib.util.find_spec(name) is None:
            continue
        try:
            module = __import__(name)
            backend = GpuBackend(name, module)
            if backend.count() > 0:
                return backend
        except Exception:  # an unusable library is the same as none
            continue
    return None


def get_block_multiplier(config: KernelConfig, b: npt.NDArray[np.int8]) -> Callable[[npt.NDArray[np.int8]], npt.NDArray[np.int32]]:
    """Return the GPU product f(A block) -> C block for ``config`` and B; ProverError if no GPU."""
    index = get_gpu_index(config.device)
    if index is None:
        raise ProverError("get_block_multiplier is the GPU path; the CPU path is multiply_block")
    backend = get_gpu_backend()
    if backend is None:
        raise ProverError(f"kernel device {config.device!r}: no GPU usable through torch or cupy")
    if index >= backend.count():
        raise ProverError(f"kernel device {config.device!r}: only {backend.count()} GPU(s) found")
    return backend.matmul_fn(index, b, config.dtype)


def describe_kernel(config: KernelConfig) -> KernelInfo:
    """Return what this process runs for ``config`` (call it in the worker that runs the kernel)."""
    backend = "numpy"
    if config.is_gpu:
        gpu = get_gpu_backend()
        backend = gpu.name if gpu is not None else "none"
    return KernelInfo(device=config.device, dtype=config.dtype, threads=config.threads,
                      blas_threads=get_blas_threads(), backend=backend)
