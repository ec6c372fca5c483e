"""Crash test: a child commits heights in a loop and is SIGKILLed at random points.

After every kill the store must reopen (full verification) at a consistent
height whose state root verifies against the expected state rebuilt in
memory, with every height the child reported committed still there.
"""

from __future__ import annotations

import importlib.util
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from consensus.state_proof import compute_state_root, is_valid_state_proof
from storage import NodeStore

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("crash_child.py")


def _load_workload() -> ModuleType:
    # Loaded by path: the child imports it as a sibling script module, and the
    # test suite runs in importlib mode where tests/storage is not on sys.path.
    spec = importlib.util.spec_from_file_location(
        "crash_workload", Path(__file__).with_name("crash_workload.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


workload = _load_workload()
KILLS = 60
SEED = 424242


class Child:
    """The child process and the lines it printed."""

    def __init__(self, directory: Path, pause_height: int) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(directory), str(pause_height)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self._buffer = b""
        self.prepared: list[int] = []
        self.committed: dict[int, str] = {}

    def _absorb(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            parts = line.decode().split()
            if parts[0] == "P":
                self.prepared.append(int(parts[1]))
            elif parts[0] == "C":
                self.committed[int(parts[1])] = parts[2]

    def wait_for_prepared(self, height: int | None, timeout: float = 30.0) -> None:
        """Read output until height ``height`` (None: any height) is reported prepared."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while not (self.prepared if height is None else height in self.prepared):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"child reported nothing for {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"child exited early: {err}")
            self._absorb(chunk)

    def kill(self) -> None:
        """SIGKILL the child, then collect what it printed before dying."""
        self.proc.send_signal(signal.SIGKILL)
        out, _ = self.proc.communicate(timeout=30)
        self._absorb(out)
        assert self.proc.returncode == -signal.SIGKILL


class Expected:
    """The workload replayed in memory: the state root of every height."""

    def __init__(self) -> None:
        self.store = NodeStore.open_memory()
        self.store.commit_genesis(workload.genesis_changes())
        self.roots = [self.store.state_root]

    def root(self, height: int) -> bytes:
        while len(self.roots) <= height:
            h = len(self.roots)
            block_hash, block, commit, txs = workload.block_for(h)
            self.roots.append(
                self.store.commit_height(h, block_hash, block, commit, txs, workload.changes_for(h))
            )
        return self.roots[height]


@pytest.mark.multiprocess
@pytest.mark.slow
def test_sigkill_during_commits_never_loses_or_tears_a_height(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"crash test seed {SEED}")
    directory = tmp_path / "store"
    expected = Expected()
    reported: dict[int, str] = {}
    last_height = -1
    paused_kills = 0
    outcomes = {"at the last prepared height": 0, "one below the last prepared height": 0}
    for attempt in range(KILLS):
        pause = attempt % 3 == 0
        pause_height = max(last_height, 0) + rng.randint(1, 3) if pause else 0
        child = Child(directory, pause_height)
        try:
            if pause:
                # Killed exactly between building the batch and writing it.
                child.wait_for_prepared(pause_height)
            else:
                child.wait_for_prepared(None)
                time.sleep(rng.uniform(0.0, 0.08))
        finally:
            child.kill()
        if pause:
            paused_kills += 1
            assert pause_height not in child.committed
        reported.update(child.committed)

        with NodeStore.open(directory, verify="full") as store:
            head = store.head
            assert head is not None
            height = head.height
            # Nothing reported committed is missing, and nothing unprepared appears.
            assert height >= max(reported, default=-1)
            assert height <= max(child.prepared, default=last_height)
            if pause:
                assert height == pause_height - 1
            # The head's state is exactly the workload's state at that height.
            assert store.state_root == expected.root(height) == head.state_root
            for h, root_hex in reported.items():
                assert store.state_root_at(h) == bytes.fromhex(root_hex)
            for h in range(max(1, last_height), height + 1):
                block_hash, block, _, _ = workload.block_for(h)
                assert store.blocks.load_block(h) == block
                assert store.blocks.load_block_hash(h) == block_hash
            key = workload.key(rng.randrange(workload.KEY_SPACE))
            assert is_valid_state_proof(store.state_root, key, store.get(key), store.prove(key))
            assert compute_state_root(dict(store.iter_prefix(b""))) == store.state_root
            last_prepared = max(child.prepared, default=last_height)
            if height == last_prepared:
                outcomes["at the last prepared height"] += 1
            else:
                outcomes["one below the last prepared height"] += 1
        last_height = height
    print(f"{KILLS} kills ({paused_kills} between batch and write); reopened {outcomes}; "
          f"final height {last_height}")
    assert paused_kills >= KILLS // 3
    assert last_height > 10  # the child made real progress between kills
