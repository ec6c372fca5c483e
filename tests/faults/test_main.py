"""The runner's command line: refuses without root before touching anything; lists and checks scenario files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults import __main__ as cli
from tests.faults import runner
from tests.faults.loader import load_scenario


def test_invalid_without_root_refuses_with_the_reason(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    made: list[object] = []
    monkeypatch.setattr(runner, "NetLab", lambda *a: made.append(a))
    assert "need root" in (runner.refusal() or "")
    assert cli.main(["one_of_four"]) == 2
    assert "need root" in capsys.readouterr().err
    report = runner.run_scenario(load_scenario("one_of_four"))
    assert not report.passed and "root" in (report.error or "") and made == []


def test_invalid_scenario_file_is_refused_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nvalidators = 4\nduration_s = 10\n[[fault]]\nkind = "melt"\nat = 1\n')
    assert cli.main([str(bad)]) == 2
    assert "kind" in capsys.readouterr().err


def test_list_shows_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "kill9_100" in out and "one_of_four" in out
