"""The command line's layout: shared helpers in node/cli/common.py, which imports no command module."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[3] / "node" / "cli"


def imported(path: Path) -> set[str]:
    names = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Import):
            names.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module:
            names.update(f"{n.module}.{a.name}" for a in n.names)
    return names


def test_common_imports_no_command_module_and_no_devtool() -> None:
    bad = {n for n in imported(CLI / "common.py") if n.startswith(("node.cli.", "node.devtools."))}
    assert bad == set()


def test_command_modules_share_only_common() -> None:
    for path in sorted(CLI.glob("*.py")):
        if path.stem in ("main", "__main__", "__init__", "common"):
            continue
        others = {n for n in imported(path) if n.startswith("node.cli.") and not n.startswith("node.cli.common.")}
        assert others == set(), f"{path.name} imports {others}"


def test_every_module_states_its_concept() -> None:
    for path in sorted(CLI.glob("*.py")):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} has no docstring"


def test_byzantine_help_lists_every_mode_the_daemon_knows() -> None:
    import contextlib
    import io

    from node.app import BYZANTINE_MODES
    from node.cli.main import build_parser

    for argv in (["start", "--help"], ["devnet", "up", "--help"]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            build_parser().parse_args(argv)
        text = "".join(out.getvalue().split())  # argparse wraps lines at hyphens too
        assert all(mode in text for mode in BYZANTINE_MODES), (argv, text)
