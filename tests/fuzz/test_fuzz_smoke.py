"""Smoke run of every fuzz target: its corpus and a few thousand mutations, in-process.

No atheris here (``make fuzz`` runs the coverage-guided million): each target
gets its seed corpus and seeded mutations of it; an undeclared exception or an
input taking over a second fails the test, with the input written out as a
reproducer for ``python -m tests.fuzz TARGET --reproduce FILE``. One more test
runs the atheris runner itself for a few hundred inputs when atheris is installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from consensus.errors import ConsensusError, DecodeError
from tests.fuzz.mutate import smoke_inputs
from tests.fuzz.targets import TARGETS, Target, input_id

CORPUS = Path(__file__).parent / "corpus"
REPO = Path(__file__).parent.parent.parent
#: Inputs per target beyond its corpus (the state transition target is slower per input).
SMOKE_INPUTS = {"transition": 1_500}
DEFAULT_INPUTS = 3_000
HANG_S = 1.0


def _seeds(name: str) -> list[bytes]:
    folder = CORPUS / name
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


def test_every_target_has_a_seed_corpus() -> None:
    for name in TARGETS:
        assert _seeds(name), f"tests/fuzz/corpus/{name} is empty: run python -m tests.fuzz seed"


def test_a_target_refuses_declared_exceptions_and_reports_the_rest() -> None:
    def planted(data: bytes) -> None:
        if not data:
            raise DecodeError("empty")
        raise KeyError(data)

    target = Target("planted", planted, (ConsensusError,), 16, "a target with a planted bug")
    target.run(b"")
    with pytest.raises(KeyError):
        target.run(b"x")


def test_runner_reproduces_an_input_without_atheris(tmp_path: Path) -> None:
    seed = next(p for p in sorted((CORPUS / "vote").iterdir()) if p.name.startswith("seed-"))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz", "vote", "--reproduce", str(seed)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz_target_smoke(name: str, tmp_path: Path) -> None:
    target = TARGETS[name]
    target.prepare()
    seeds = _seeds(name)
    n = SMOKE_INPUTS.get(name, DEFAULT_INPUTS)
    ran = 0
    for data in smoke_inputs(seeds, n, seed=zlib.crc32(name.encode())):
        t0 = time.perf_counter()
        try:
            target.run(data)
        except Exception as exc:
            path = tmp_path / f"{name}-{input_id(data)}"
            path.write_bytes(data)
            raise AssertionError(f"{name}: {type(exc).__name__}: {exc} (reproducer {path})") from exc
        elapsed = time.perf_counter() - t0
        if elapsed > HANG_S:
            path = tmp_path / f"{name}-slow-{input_id(data)}"
            path.write_bytes(data)
            raise AssertionError(f"{name}: an input took {elapsed:.2f} s (reproducer {path})")
        ran += 1
    assert ran == len(seeds) + n


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed (make fuzz installs it)")
def test_runner_fuzzes_a_target_under_atheris(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz", "vote", "--runs", "500", "--seed", "1", "--work", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "DONE" in proc.stderr and "cov:" in proc.stderr
    assert (tmp_path / "vote.stats.json").exists()
