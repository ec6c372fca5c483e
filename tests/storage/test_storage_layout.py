"""Structural rules of storage/: one plyvel handle, one schema module, StateReader views."""

from __future__ import annotations

import ast
from pathlib import Path

from consensus.state_reader import StateReader
from storage import NodeStore, StateSnapshot, StateView

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_leveldb_module_imports_plyvel() -> None:
    users = sorted(p.name for p in (ROOT / "storage").glob("*.py") if "plyvel" in _imports(p))
    assert users == ["leveldb.py"]


def test_only_the_schema_module_spells_key_prefixes() -> None:
    # Every key family is built by storage/schema.py; other modules call it.
    offenders = []
    for path in (ROOT / "storage").glob("*.py"):
        if path.name == "schema.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, bytes) and value[:1] == bytes((1,)) and len(value) >= 2:
                offenders.append(f"{path.name}: {value!r}")
    assert offenders == []


def test_live_and_snapshot_views_are_state_readers() -> None:
    store = NodeStore.open_memory()
    store.commit_genesis({b"a/1": b"x", b"a/2": b"y", b"b/1": b"z"})

    def read_all(reader: StateReader, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return list(reader.iter_prefix(prefix))

    assert isinstance(store.reader, StateView)
    assert read_all(store.reader, b"a/") == [(b"a/1", b"x"), (b"a/2", b"y")]
    with store.snapshot() as snap:
        assert isinstance(snap, StateSnapshot)
        assert read_all(snap.as_reader(), b"b/") == [(b"b/1", b"z")]
        assert snap.as_reader().get(b"a/1") == b"x"
