"""p2p/ imports only what the architecture allows: no node/, no storage/, consensus primitives only."""

from __future__ import annotations

import ast
from pathlib import Path

P2P = Path(__file__).resolve().parents[2] / "p2p"
ALLOWED_CONSENSUS = {"consensus.codec", "consensus.crypto", "consensus.hashing", "consensus.errors"}


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_p2p_never_imports_node_or_storage_and_only_consensus_primitives():
    files = sorted(P2P.rglob("*.py"))
    assert len(files) > 10
    for f in files:
        for mod in _imports(f):
            top = mod.split(".")[0]
            assert top not in ("node", "storage"), f"{f.name} imports {mod}"
            if top == "consensus":
                assert mod in ALLOWED_CONSENSUS, f"{f.name} imports {mod}"


def test_trio_and_libp2p_stay_inside_the_host_package():
    # The asyncio-facing modules must not touch trio or libp2p (keys.py derives the
    # peer id lazily inside a function, and the harness is a process entry point).
    for f in sorted(P2P.glob("*.py")):
        mods = _imports(f, top_level_only=True)
        assert not any(m.split(".")[0] in ("trio", "libp2p") for m in mods), f"{f.name}: {mods}"


def test_default_block_budget_matches_the_largest_preset() -> None:
    """p2p may not import consensus.params, so its default block size is a copy: keep it equal."""
    from consensus.params import MAINNET
    from p2p.config import DEFAULT_MAX_BLOCK_BYTES

    assert MAINNET.max_block_bytes == DEFAULT_MAX_BLOCK_BYTES
