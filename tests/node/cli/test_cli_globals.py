"""``cstake --version``, global flags before the command, and help texts with descriptions and defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from node.cli.main import build_parser, hoist_global_flags, main
from node.version import get_version


def test_version_names_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == get_version() and out.startswith("cstake 0.") and "Python 3." in out


def test_global_flags_move_behind_the_command() -> None:
    assert hoist_global_flags(["--home", "H", "--json", "query", "status"]) == ["query", "status", "--home", "H", "--json"]
    assert hoist_global_flags(["--home=H", "query", "status"]) == ["query", "status", "--home=H"]
    assert hoist_global_flags(["query", "status", "--home", "H"]) == ["query", "status", "--home", "H"]
    assert hoist_global_flags(["--bogus", "query"]) == ["--bogus", "query"]
    args = build_parser().parse_args(hoist_global_flags(["--home", "/x", "--json", "query", "status"]))
    assert args.home == "/x" and args.json is True


def test_home_before_the_command_reaches_it(tmp_path) -> None:
    """An uninitialised home before the subcommand is read (the error names it), not refused as usage."""
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli.main", "--home", str(tmp_path / "none"), "keys", "show"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "error:" in proc.stderr and "unrecognized" not in proc.stderr


def test_every_home_and_json_option_is_explained() -> None:
    from node.cli.main import _walk

    seen = 0
    for parser in _walk(build_parser()):
        for action in parser._actions:
            if action.dest in ("home", "json", "rpc") and action.option_strings:
                assert action.help, f"{parser.prog} {action.option_strings} has no help"
                seen += 1
        text = parser.format_help()
        if "--home" in text:
            assert "(default: " in " ".join(text.split()), parser.prog
    assert seen > 20


def test_cstake_home_sets_the_default_home(tmp_path) -> None:
    import os

    env = {**os.environ, "CSTAKE_HOME": str(tmp_path / "from-env")}
    proc = subprocess.run([sys.executable, "-m", "node.cli.main", "keys", "show"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 1 and str(tmp_path / "from-env") in proc.stderr, proc.stderr
