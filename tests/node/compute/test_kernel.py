"""The shared kernel: the GPU path is optional and, when used, gives the CPU's exact product.

No GPU library is a dependency, so the GPU path runs here on a stand-in for cupy
backed by numpy (the same calls: a device context, ``asarray``, ``@``,
``astype``, ``asnumpy``): the prover's commitment through it equals the CPU's.
Without a usable GPU, asking for one is a clear ProverError, never a silent CPU run.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import numpy as np
import pytest

from node.compute import kernel
from node.compute.kernel import GpuBackend, KernelConfig, describe_kernel, get_blas_threads
from node.compute.prover import compute_commitment
from node.errors import ProverError

SEED = bytes(range(32))


def _fake_cupy() -> types.SimpleNamespace:
    @contextlib.contextmanager
    def device(index: int) -> Iterator[None]:
        yield

    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        getDeviceProperties=lambda i: {"name": b"Fake GPU", "totalGlobalMem": 8 << 30},
    )
    return types.SimpleNamespace(cuda=types.SimpleNamespace(Device=device, runtime=runtime),
                                 asarray=np.asarray, asnumpy=np.asarray, int32=np.int32)


def test_gpu_kernel_commits_the_cpu_product(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = GpuBackend("cupy", _fake_cupy())
    monkeypatch.setattr(kernel, "get_gpu_backend", lambda: backend)
    assert backend.describe() == (("Fake GPU", 8192),)
    gpu = compute_commitment(SEED, 128, 300, device="gpu")
    assert gpu.root == compute_commitment(SEED, 128, 300).root
    assert describe_kernel(KernelConfig(device="gpu:0")).backend == "cupy"


def test_invalid_gpu_kernel_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "get_gpu_backend", lambda: None)
    with pytest.raises(ProverError, match="no GPU usable"):
        compute_commitment(SEED, 64, 64, device="gpu")
    backend = GpuBackend("cupy", _fake_cupy())
    monkeypatch.setattr(kernel, "get_gpu_backend", lambda: backend)
    with pytest.raises(ProverError, match="only 1 GPU"):
        compute_commitment(SEED, 64, 64, device="gpu:3")


def test_kernel_config_labels_and_defaults() -> None:
    assert KernelConfig() == KernelConfig.from_options("cpu", None)
    assert KernelConfig().describe() == "cpu, 1 BLAS thread, float32"
    assert KernelConfig(device="gpu:1", threads=4).describe() == "gpu:1, 4 BLAS threads, float32"
    assert KernelConfig(threads=None).describe() == "cpu, library-default BLAS threads, float32"
    assert not KernelConfig().is_gpu and KernelConfig(device="gpu").is_gpu


def test_get_blas_threads_reads_this_process() -> None:
    # The test process's BLAS runs with its default (all cores, or a cap from the environment).
    threads = get_blas_threads()
    assert threads is not None and threads >= 1
