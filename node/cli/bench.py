"""``cstake bench``: measure this machine's compute (CPU and, where present, GPU) and print the report.

The benchmark itself lives in node/compute/hwbench.py; the units it reports
are what ``cstake tx register-compute --from-bench`` claims.
"""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.common import EXIT_OK, as_command, emit
from node.errors import CommandError


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the hardware benchmark for ``--seconds`` and print the report."""
    from node.compute.hwbench import format_report, report_to_json, run_benchmark

    if args.seconds <= 0:
        raise CommandError("--seconds must be positive")
    report = run_benchmark(args.seconds)
    emit(args, format_report(report), report_to_json(report))
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register ``bench`` on the ``cstake`` subparsers."""
    p = sub.add_parser("bench", help="benchmark this machine's compute")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(cmd_bench))
