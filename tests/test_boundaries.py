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


# --- the rooms of node/ (docs/architecture.md) ----------------------------------------------

#: Modules at the top of node/ that every room may use.
FOUNDATION = {"clock", "config", "errors", "home", "keyfiles", "keyring", "logs", "metrics", "init", "client", "version"}

#: What each room of node/ may import from node/, besides itself and (except the
#: foundation, which imports only itself) the foundation.
ROOMS: dict[str, set[str]] = {
    "foundation": set(),
    "engine": set(),
    "mempool": set(),
    "compute": {"engine", "mempool"},
    "rpc": {"compute", "mempool"},
    "devtools": set(),
    "cli": {"app", "compute", "devtools"},
    "app": {"engine", "mempool", "compute", "rpc"},
}


def room_of(module: str) -> str:
    """The room of a node/ module: its subpackage, ``app``, or ``foundation``."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    if name in FOUNDATION or name in ("", "__init__"):
        return "foundation"
    return name


def room_violations(root: Path) -> list[str]:
    bad = []
    for path in sorted((root / "node").rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        me = room_of(".".join(rel.parts))
        allowed = ROOMS[me] | {me} | ({"foundation"} if me != "foundation" else set())
        for lineno, name in imported_modules(path):
            if name.startswith("node.") and room_of(name) not in allowed:
                bad.append(f"{path.relative_to(root)}:{lineno} ({me}) imports {name} ({room_of(name)})")
    return bad


def test_node_rooms_import_only_what_the_house_plan_allows() -> None:
    assert sorted(ROOMS) == sorted({room_of("node." + p.stem) for p in (ROOT / "node").iterdir()
                                    if not p.name.startswith(("_", ".")) and (p.suffix == ".py" or p.is_dir())})
    assert room_violations(ROOT) == []


def test_room_checker_catches_a_wrong_way_import(tmp_path: Path) -> None:
    (tmp_path / "node" / "engine").mkdir(parents=True)
    (tmp_path / "node" / "engine" / "x.py").write_text("from node.rpc.server import RPCServer\n")
    (tmp_path / "node" / "config.py").write_text("from node.app import Node\n")
    assert len(room_violations(tmp_path)) == 2
