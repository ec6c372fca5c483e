"""cstake bench: hardware detection (GPUs optional) and the prover's measured compute units."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from consensus.params import DEVNET
from consensus.poc_state import get_poc_params
from node.compute import hwbench
from node.compute.hwbench import (
    KERNEL_SIZES,
    detect_gpus,
    format_report,
    main,
    parse_nvidia_smi,
    read_cpu_model,
    read_memory_bytes,
    report_to_json,
    run_benchmark,
)

DEVNET_POC = get_poc_params(DEVNET)


@pytest.fixture(scope="module")
def report() -> hwbench.HardwareReport:
    return run_benchmark(1.0, poc=DEVNET_POC)


def test_run_benchmark_measures_this_machine(report: hwbench.HardwareReport) -> None:
    assert report.logical_cores == os.cpu_count()
    assert report.memory_bytes > 1 << 30
    assert report.cpu_model
    assert report.memory_bandwidth_gbs > 0.5
    dev = report.device
    assert dev.exact
    assert [n for n, _ in dev.kernel_gflops] == list(KERNEL_SIZES)
    assert all(g > 0.5 for _, g in dev.kernel_gflops)
    cal = dev.prover
    assert cal is not None and cal.n == DEVNET_POC.max_n and cal.rows >= 64
    assert cal.gflops > 0.5 and cal.run_seconds
    assert report.units == cal.units == int(cal.gflops) >= 1


def test_format_report_and_json(report: hwbench.HardwareReport) -> None:
    text = format_report(report)
    for label in ("CPU", "logical cores", "memory bandwidth", "prover kernel", "prover GFLOP/s",
                  "measured compute units", "BLAS reports 1"):
        assert label in text
    assert str(report.units) in text
    data = json.loads(json.dumps(report_to_json(report)))
    assert data["units"] == report.units
    assert data["kernel_gflops"].keys() == {str(n) for n in KERNEL_SIZES}
    assert data["kernel"] == {"device": "cpu", "dtype": "float32", "threads": 1, "blas_threads": 1,
                              "backend": "numpy"}
    assert data["prover"]["n"] == DEVNET_POC.max_n and data["prover"]["units"] == report.units


def test_main_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--seconds", "0.5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["logical_cores"] == os.cpu_count() and data["units"] >= 1
    # Without a chain, the sizes are mainnet's: n = 2048.
    assert data["prover"]["n"] == 2048


def test_invalid_main_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--seconds", "0"])
    assert "--seconds" in capsys.readouterr().err


def test_parse_nvidia_smi() -> None:
    out = "NVIDIA H100 80GB HBM3, 81559 MiB\nNVIDIA A10, 23028 MiB\n\n"
    gpus = parse_nvidia_smi(out)
    assert [(g.name, g.memory_mib) for g in gpus] == [("NVIDIA H100 80GB HBM3", 81559),
                                                      ("NVIDIA A10", 23028)]


def test_detect_gpus_through_nvidia_smi_on_path(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA L4, 23034 MiB'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert [(g.name, g.memory_mib, g.source) for g in detect_gpus()] == [
        ("NVIDIA L4", 23034, "nvidia-smi")]


def test_detect_gpus_absent_or_failing_is_not_an_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hwbench, "_gpu_backend", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_gpus() == ()
    broken = tmp_path / "nvidia-smi"
    broken.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    assert detect_gpus() == ()


def test_read_cpu_and_memory_from_files(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example CPU @ 3.0GHz\n")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24576000 kB\nMemFree: 1 kB\n")
    assert read_cpu_model(str(cpuinfo)) == "Example CPU @ 3.0GHz"
    assert read_memory_bytes(str(meminfo)) == 24576000 * 1024
    assert read_memory_bytes(str(tmp_path / "missing")) == 0


def test_get_claimed_units_overclaim_doubles(report: hwbench.HardwareReport) -> None:
    assert hwbench.get_claimed_units(report) == report.units
    assert hwbench.get_claimed_units(report, overclaim=True) == 2 * report.units
