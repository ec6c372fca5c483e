"""``promtool check metrics`` (Prometheus's linter) accepts the node's exposition.

promtool ships with Debian's ``prometheus`` package (.ci/run installs it where it
can); without it this test skips and says so. The devnet test checks a live node's
/metrics the same way.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from node.metrics import NodeMetrics

PROMTOOL = shutil.which("promtool")


def promtool_check(text: bytes) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, "check", "metrics"], input=text.decode(), capture_output=True,
                          text=True, timeout=30)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_accepts_every_series() -> None:
    m = NodeMetrics()
    m.on_block_committed(height=1, time_ms=1_000, n_txs=3, commit_seconds=0.01)
    m.on_commit_signatures([b"\x01" * 20, b"\x02" * 20], [b"\x01" * 20], height=1, own=b"\x02" * 20)
    m.on_slashed(b"\x02" * 20, "downtime")
    m.on_challenge_resolved("passed")
    m.on_prover_answer("openings", 0.5)
    m.set_compute(verified_units=10, jobs_by_status={"open": 1})
    m.rpc_requests.labels(method="status").inc()
    done = promtool_check(m.render())
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_would_catch_a_bad_name() -> None:
    """The check can fail: a counter without _total is reported."""
    done = promtool_check(b"# HELP bad_counter x\n# TYPE bad_counter counter\nbad_counter 1\n")
    assert done.returncode != 0 and "_total" in done.stdout + done.stderr
