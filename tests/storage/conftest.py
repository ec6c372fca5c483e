"""Fixtures of the storage tests: every conformance test runs on both backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storage import LevelDBKV, MemoryKV, NodeStore
from storage.kv import KVStore

BACKENDS = ["leveldb", "memory"]


@pytest.fixture(params=BACKENDS)
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KVStore]:
    """A fresh key-value store of each backend."""
    store: KVStore = LevelDBKV(tmp_path / "kv") if request.param == "leveldb" else MemoryKV()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(backend: str, tmp_path: Path) -> Iterator[Callable[[], NodeStore]]:
    """Open (and on later calls reopen) a NodeStore of the parametrised backend.

    Reopening the memory backend reuses its MemoryKV, like a restart on the same disk.
    """
    memory = MemoryKV()
    opened: list[NodeStore] = []

    def factory() -> NodeStore:
        # A restart: LevelDB is closed and reopened; the memory twin is simply
        # dropped (closing it would discard its contents) and its KV reused.
        if backend == "leveldb":
            for previous in opened:
                previous.close()
        opened.clear()
        store = (
            NodeStore.open(tmp_path / "store")
            if backend == "leveldb"
            else NodeStore.open_memory(memory)
        )
        opened.append(store)
        return store

    try:
        yield factory
    finally:
        for store in opened:
            store.close()
