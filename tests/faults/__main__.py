"""``python -m tests.faults [SCENARIO ...] [--all] [--seed N] [--json FILE]``: run fault scenarios, print the report.

SCENARIO is a file or the name of one in tests/faults/scenarios/ (``--list``
shows them). Root only: without root (or without namespaces or iptables) it
refuses at once with the reason and exit code 2. Exit code 0 when every check
of every scenario passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.faults.loader import ScenarioError, all_scenarios, load_scenario
from tests.faults.runner import install_signal_handlers, refusal, run_scenario


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", help="scenario files or names")
    ap.add_argument("--all", action="store_true", help="every scenario in tests/faults/scenarios/")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--seed", type=int, help="override every scenario's seed")
    ap.add_argument("--json", type=Path, help="also write the reports as JSON here")
    ap.add_argument("--workdir", type=Path, help="where node homes and logs go (kept); default: a temp dir, "
                    "removed when the scenario passed")
    args = ap.parse_args(argv)
    if args.list:
        for path in all_scenarios():
            sc = load_scenario(path)
            print(f"{sc.name:24} {len(sc.faults):4} faults  {sc.duration_s:5.0f} s  {sc.description}")
        return 0
    names = [str(p) for p in all_scenarios()] if args.all else args.scenarios
    if not names:
        ap.error("name a scenario or use --all (--list shows them)")
    try:
        scenarios = [load_scenario(n, seed=args.seed) for n in names]
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reason = refusal()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    install_signal_handlers()
    reports = []
    for sc in scenarios:
        workdir = args.workdir / sc.name if args.workdir else None
        report = run_scenario(sc, workdir)
        reports.append(report)
        print(report.format(), flush=True)
        if args.json:
            args.json.write_text(json.dumps([r.to_json() for r in reports], indent=2) + "\n")
    print("\n== summary")
    for r in reports:
        rec = "n/a" if r.recovery_s is None else f"{r.recovery_s:.1f} s"
        print(f"   {'PASS' if r.passed else 'FAIL'}  {r.scenario.name:24} seed {r.scenario.seed:<8} "
              f"faults {len(r.scenario.faults):4}  recovery {rec:>8}  {r.wall_s:5.0f} s")
    return 0 if all(r.passed for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
