"""Real processes killed with SIGKILL: the signer never releases two conflicting signatures,
and the WAL loses no synced record and repairs its torn tail."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consensus.crypto import Domain
from consensus.votes import Vote
from node.engine.wal import WriteAheadLog
from tests.node.engine.crash_child import CHAIN, KEY

ROOT = Path(__file__).resolve().parents[3]


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.node.engine.crash_child", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _finish(proc: subprocess.Popen[str], kill_after: float | None) -> tuple[str, int]:
    """Wait for the child (or SIGKILL it ``kill_after`` seconds after it printed START); return its output."""
    head = ""
    try:
        if kill_after is not None:
            # Timed from the child's START, not its spawn: an interpreter that takes longer to
            # start on a loaded machine would otherwise be killed before it did anything.
            if proc.stdout is not None:
                head = proc.stdout.readline()
            time.sleep(kill_after)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            # Read on through the same buffered file: communicate() would read the pipe
            # underneath it and lose what readline() had already buffered.
            if proc.stdout is not None:
                head += proc.stdout.read()
            if proc.stderr is not None:
                proc.stderr.read()
            proc.wait(timeout=60)
            return head, proc.returncode
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return head + out, proc.returncode


@pytest.mark.multiprocess
def test_signer_killed_between_signing_and_persisting_never_double_signs(tmp_path: Path) -> None:
    seed = 20240611
    print(f"kill-test seed={seed}")
    rng = random.Random(seed)
    state = tmp_path / "signer.state"
    modes = ["before-persist", "mid-persist", "after-persist", "none"] * 3
    released: dict[tuple[int, int, int], set[bytes]] = {}
    kills = 0
    refused_reruns = 0
    for nonce, mode in enumerate(modes, start=1):
        proc = _spawn("signer", str(state), mode, str(nonce), "3000")
        out, code = _finish(proc, rng.uniform(0.05, 0.6) if mode == "none" else None)
        assert "START" in out, f"child failed to start: {proc.stderr}"
        if code == -signal.SIGKILL:
            kills += 1
        else:
            assert code == 0, f"child exited with {code}"
        for line in out.splitlines():
            if not line.startswith("SIGNED "):
                continue
            vote = Vote.decode(bytes.fromhex(line.split()[1]))
            # Every released signature is genuine for the vote it came with.
            KEY.public_key.verify(Domain.VOTE, CHAIN, vote.sign_payload(), vote.signature)
            released.setdefault((vote.height, vote.round, vote.vote_type), set()).add(
                vote.block_hash
            )
        # Each rerun asked again, for other blocks, at the steps already signed.
        if nonce > 1 and "REFUSED 1 0 1" in out:
            refused_reruns += 1
    conflicts = {k: v for k, v in released.items() if len(v) > 1}
    assert not conflicts, f"conflicting signatures released at {sorted(conflicts)}"
    assert kills == len(modes), "a child was not killed: the test proved less than it says"
    assert refused_reruns == len(modes) - 1
    assert len(released) >= 30


@pytest.mark.multiprocess
def test_signer_unpersisted_signature_is_replaced_not_duplicated(tmp_path: Path) -> None:
    """Killed after signing step k but before storing it: the rerun signs step k afresh.

    The first signature never left the process, so the new one (for another
    block) is the only one released at that step, and the state file points at it.
    """
    state = tmp_path / "signer.state"
    out1, code1 = _finish(_spawn("signer", str(state), "before-persist", "3", "40"), None)
    assert code1 == -signal.SIGKILL
    first = [
        Vote.decode(bytes.fromhex(x.split()[1]))
        for x in out1.splitlines()
        if x.startswith("SIGNED")
    ]
    kill_at = 3 + 3 % 7
    assert len(first) == kill_at - 1
    out2, code2 = _finish(_spawn("signer", str(state), "none", "11", "40"), None)
    assert code2 == 0
    second = [
        Vote.decode(bytes.fromhex(x.split()[1]))
        for x in out2.splitlines()
        if x.startswith("SIGNED")
    ]
    steps1 = {(v.height, v.round, v.vote_type) for v in first}
    steps2 = {(v.height, v.round, v.vote_type) for v in second}
    assert not steps1 & steps2, "a step signed by the first run was signed again"
    # The step the first run died on (signed, never stored) is signed by the second run.
    last1 = max(steps1)
    assert min(steps2) > last1
    assert len(second) == 40 * 2 * 2 - len(first)


@pytest.mark.multiprocess
def test_wal_writer_killed_loses_no_synced_record(tmp_path: Path) -> None:
    seed = 77
    print(f"wal-kill seed={seed}")
    rng = random.Random(seed)
    path = tmp_path / "consensus.wal"
    synced = -1
    for _ in range(4):
        out, code = _finish(_spawn("wal", str(path)), rng.uniform(0.3, 0.8))
        assert code == -signal.SIGKILL
        lines = out.splitlines()
        assert lines and lines[0].startswith("OPENED")
        opened = int(lines[0].split()[1])
        # Everything synced by the previous writer was there when this one opened.
        assert opened > synced
        acks = [int(x.split()[1]) for x in lines if x.startswith("SYNCED")]
        assert acks, "the writer never synced before it was killed"
        synced = acks[-1]
    wal = WriteAheadLog(path)
    records = wal.records()
    wal.close()
    assert len(records) > synced
    for i, rec in enumerate(records):
        assert rec == b"record-%d-" % i + bytes(i % 251 for _ in range(i % 300))
