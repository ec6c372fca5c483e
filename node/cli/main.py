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

from node.cli import bench, devnet, keys, lifecycle, query, tx
from node.cli.common import EXIT_INTERRUPTED
from node.cli.load import add_load_command


def build_parser() -> argparse.ArgumentParser:
    """The ``cstake`` parser with every command; each sets ``func`` to its handler."""
    parser = argparse.ArgumentParser(prog="cstake", description="compute-staking blockchain node")
    sub = parser.add_subparsers(dest="command", required=True)
    lifecycle.add_commands(sub)
    devnet.add_commands(sub)
    bench.add_commands(sub)
    tx.add_commands(sub)
    query.add_commands(sub)
    keys.add_commands(sub)
    add_load_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``cstake`` command line; return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
