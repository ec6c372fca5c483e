"""The ``cstake`` command line: the parser, assembled from one module per command group, and ``main``.

| command | module |
| --- | --- |
| ``init``, ``start`` | node/cli/lifecycle.py |
| ``devnet up/init/down/status`` | node/cli/devnet.py |
| ``bench`` | node/cli/bench.py |
| ``tx ...`` | node/cli/tx.py |
| ``query ...`` | node/cli/query.py |
| ``keys show`` | node/cli/keys.py |
| ``load`` | node/cli/load.py (the generator: node/devtools/loadgen.py) |

What they share (home, RPC URL, passphrase, output, exit codes) is in
node/cli/common.py. Human output by default, ``--json`` for scripts; a
failure prints one line on stderr and exits non-zero (1; 2 for a malformed
command line, 130 on Ctrl-C). The ``cstake`` console script and
``python -m node.cli.main`` (or ``python -m node.cli``) both run ``main``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from node.cli import bench, devnet, keys, lifecycle, query, tx
from node.cli.common import EXIT_INTERRUPTED
from node.cli.load import add_load_command
from node.version import get_version

#: Options every command that has them accepts before its name too (``cstake --home H query status``).
GLOBAL_FLAGS = {"--home": True, "--rpc": True, "--json": False}
"""Flag -> whether it takes a value."""

#: Help for options that commands declare without any, so every ``--help`` explains them.
_DEFAULT_HELP = {
    "home": "node home directory: config.toml, keys/, data/, logs/",
    "json": "print JSON (for scripts) instead of human-readable text",
    "rpc": "node RPC URL (default: the home's rpc.listen, else http://127.0.0.1:26657)",
    "timeout": "seconds to wait for the node's answer",
}


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` where an option has a meaningful default its help does not state."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            default not in (None, False, argparse.SUPPRESS, "")
            and "default" not in text
            and action.option_strings
        ):
            text += f" (default: {default})"
        return text


def _walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _walk(child)


def _explain(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command's help shows defaults, and shared options get a description."""
    for p in _walk(parser):
        p.formatter_class = _DefaultsFormatter
        for action in p._actions:
            if not action.help and action.dest in _DEFAULT_HELP:
                action.help = _DEFAULT_HELP[action.dest]


def hoist_global_flags(argv: list[str]) -> list[str]:
    """Move global flags written before the command name to the end, where its parser reads them."""
    lead: list[str] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        flag, eq, _ = argv[i].partition("=")
        if flag not in GLOBAL_FLAGS:
            return argv  # -h, --version or a typo: argparse answers it
        takes_value = GLOBAL_FLAGS[flag] and not eq
        lead.extend(argv[i : i + 1 + takes_value])
        i += 1 + takes_value
    return argv[i:] + lead if lead else argv


def build_parser() -> argparse.ArgumentParser:
    """The ``cstake`` parser with every command; each sets ``func`` to its handler."""
    parser = argparse.ArgumentParser(prog="cstake", description="compute-staking blockchain node")
    parser.add_argument("--version", action="version", version=get_version())
    sub = parser.add_subparsers(dest="command", required=True)
    lifecycle.add_commands(sub)
    devnet.add_commands(sub)
    bench.add_commands(sub)
    tx.add_commands(sub)
    query.add_commands(sub)
    keys.add_commands(sub)
    add_load_command(sub)
    _explain(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``cstake`` command line; return its exit code."""
    args = build_parser().parse_args(hoist_global_flags(sys.argv[1:] if argv is None else list(argv)))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
