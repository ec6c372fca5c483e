"""``cstake bench``: measure what this machine's prover delivers (CPU or GPU) and print the report.

The benchmark itself lives in node/compute/hwbench.py. It measures in a prover
worker with the kernel the node's prover runs (``--device``, ``--threads``;
the node's default is one BLAS thread on the CPU) at the challenge size of
the chain's parameters: ``--rpc URL`` (the node's head), ``--genesis FILE``,
else mainnet's. ``cstake tx register-compute --from-bench`` claims a margin
of the units it reports (80% by default).
"""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.common import EXIT_OK, as_command, emit
from node.errors import CommandError


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the hardware benchmark for ``--seconds`` and print the report."""
    # Imported here: numpy loads only for the commands that measure.
    from node.compute.calibrate import resolve_poc_params
    from node.compute.hwbench import format_report, report_to_json, run_benchmark
    from node.compute.kernel import KernelConfig

    if args.seconds <= 0:
        raise CommandError("--seconds must be positive")

    kernel = KernelConfig.from_options(args.device, args.threads)
    poc, source = resolve_poc_params(args.genesis, args.rpc, timeout=10.0)
    report = run_benchmark(args.seconds, kernel=kernel, poc=poc)
    data = report_to_json(report)
    data["params_source"] = source
    emit(args, f"{format_report(report)}\n(challenge sizes from {source})", data)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register ``bench`` on the ``cstake`` subparsers."""
    p = sub.add_parser("bench", help="benchmark this machine's prover")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--rpc", help="a node's RPC URL: measure at its chain's challenge size")
    p.add_argument("--genesis", help="a genesis file: measure at its chain's challenge size")
    # The same two options as `tx register-compute --from-bench`: they must match the node's prover.
    p.add_argument("--device", default="cpu",
                   help="cpu, gpu or gpu:N: the device the node's prover uses (default cpu)")
    p.add_argument("--threads", type=int,
                   help="BLAS threads of the node's prover (default: the node's default, 1)")
    p.set_defaults(func=as_command(cmd_bench))
