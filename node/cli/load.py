"""``cstake load``: the command line of the load generator (node/devtools/loadgen.py does the work)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from node.cli.common import EXIT_OK, as_command, load_account_key, resolve_home
from node.devtools.loadgen import LoadRun, format_report
from node.errors import CommandError
from node.home import DEFAULT_HOME


def cmd_load(args: argparse.Namespace) -> int:
    """Run ``cstake load``: fund the load accounts from the home's key, send, and print the report."""
    if args.rate <= 0 or args.duration <= 0:
        raise CommandError("--rate and --duration must be positive")
    if not 1 <= args.accounts <= 100_000:
        raise CommandError("--accounts must be in [1, 100000]")
    urls = [u.strip() for u in args.rpc.split(",") if u.strip()]
    if not urls:
        raise CommandError("--rpc needs at least one URL")
    funder = load_account_key(resolve_home(args))
    run = LoadRun(
        urls, funder, rate=args.rate, duration=args.duration, n_accounts=args.accounts,
        fee=args.fee, max_in_flight=args.max_in_flight, drain_s=args.drain,
        progress_every=args.progress_every, progress_out=sys.stderr if args.json else sys.stdout,
    )
    report = asyncio.run(run.run())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return EXIT_OK


def add_load_command(sub: Any) -> None:
    """Register ``load`` on the ``cstake`` subparsers (node/cli/main.py calls this)."""
    p = sub.add_parser("load", help="generate signed transfers at a rate and measure inclusion")
    p.add_argument("--home", default=DEFAULT_HOME, help="home whose account funds the load accounts")
    p.add_argument("--rpc", required=True, help="RPC URL(s), comma-separated")
    p.add_argument("--rate", type=float, required=True, help="transactions per second")
    p.add_argument("--duration", type=float, required=True, help="seconds of sending")
    p.add_argument("--accounts", type=int, default=20, help="load accounts to fund and send from")
    p.add_argument("--fee", type=int, help="fee per transaction (default: the chain's min_fee)")
    p.add_argument("--max-in-flight", type=int, default=64, help="most outstanding RPC requests")
    p.add_argument("--drain", type=float, default=30.0, help="seconds to wait for inclusion after sending")
    p.add_argument("--progress-every", type=float, default=3.0, help="seconds between progress lines")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(cmd_load))
