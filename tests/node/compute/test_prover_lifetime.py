"""A node's prover worker never outlives the node (even one killed with SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = """
import asyncio, os, sys, time
from node.compute.service import NodeProver

async def main():
    prover = NodeProver(blas_threads=1)
    print(await prover._run(os.getpid), flush=True)
    time.sleep(60)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.multiprocess
def test_worker_exits_when_the_node_is_killed() -> None:
    node = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    worker = 0
    try:
        assert node.stdout is not None
        worker = int(node.stdout.readline())
        assert worker != node.pid and _alive(worker)
        os.kill(node.pid, signal.SIGKILL)
        node.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        if worker and _alive(worker):
            os.kill(worker, signal.SIGKILL)
