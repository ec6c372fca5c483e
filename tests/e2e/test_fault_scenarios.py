"""The fault-scenario runner on a short scenario: one of four validators isolated, then healed.

Runs ``tests/faults/scenarios/one_of_four.toml`` (about a minute) through
``tests.faults.runner.run_scenario`` on real processes in network namespaces,
and asserts every check passed: no fork, no block lost, no double-sign, every
accepted transaction committed exactly once, recovery within the bound,
slashing only for the injected fault; and that nothing was left behind.
The whole scenario set is ``python -m tests.faults --all`` (docs/testing.md).

Skipped, with the reason, where namespaces cannot be made (not root, no
``ip``, no iptables).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from tests.faults.loader import load_scenario
from tests.faults.runner import refusal, run_scenario

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


def test_one_of_four_isolated_and_healed_passes_every_check(tmp_path: Path) -> None:
    reason = refusal()
    if reason:
        pytest.skip(reason)
    # No proof-of-compute epoch inside this minute: on a loaded machine honest validators sometimes
    # miss a challenge (their 1.3 MB openings are not included within the deadline), which the
    # slashing check rightly reports but which is not what this test is about. The full scenario set
    # keeps proof of compute running (docs/testing.md, "Fault scenarios": findings).
    sc = dataclasses.replace(load_scenario("one_of_four"), params={"epoch_blocks": 1000})
    out = io.StringIO()
    report = run_scenario(sc, tmp_path / "run", out=out)
    text = report.format()
    print(out.getvalue() + text)
    assert report.error is None, text
    assert not report.leftovers, text
    assert [c.name for c in report.checks] == [
        "no fork", "no committed block lost", "no double-sign", "transactions exactly once", "recovered",
        "slashing only for injected faults",
    ]
    failed = [c for c in report.checks if not c.passed]
    assert not failed, text
    assert report.load.get("accepted", 0) > 0, text
    assert report.blocks_during_faults > 0, text
