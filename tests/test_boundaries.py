"""Layer boundaries, checked mechanically by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "consensus": {"asyncio", "trio", "plyvel", "libp2p", "time", "random", "node", "p2p", "storage",
                  "logging", "threading", "socket", "subprocess", "os", "secrets", "aiohttp", "uvloop"},
    "storage": {"node", "p2p", "libp2p", "trio"},
    "p2p": {"node", "storage", "plyvel"},
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for lineno, name in imported_modules(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports_stay_within_bounds(package: str) -> None:
    assert violations(package) == []


def test_numpy_only_in_proof_of_compute() -> None:
    """numpy is for the exact-integer matrix checks of proofs of compute and matrix jobs only."""
    bad = []
    for path in sorted((ROOT / "consensus").rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if "poc" in parts or "jobs" in parts:
            continue
        bad += [f"{path}:{n}" for n, name in imported_modules(path) if name.split(".")[0] == "numpy"]
    assert bad == []


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import time\nfrom random import choice\nfrom storage.kv import X\n")
    names = [n for _, n in imported_modules(sample)]
    assert {"time", "random", "storage.kv"} <= set(names)
