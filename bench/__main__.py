"""Run the benchmark suites: ``python -m bench`` runs all, ``python -m bench storage p2p`` some.

Each suite is a module ``bench.<name>`` with a ``run() -> None`` that prints
its figures; the suites are listed here in the order they run.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time

SUITES = ["foundation", "storage", "consensus", "p2p", "compute", "node", "incentives", "jobs"]


def main(argv: list[str]) -> int:
    chosen = argv or SUITES
    unknown = [n for n in chosen if n not in SUITES]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; known: {', '.join(SUITES)}", file=sys.stderr)
        return 2
    print(f"# machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    for name in chosen:
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                print(f"\n## {name}: no benchmark yet")
                continue
            raise
        print(f"\n## {name}")
        t0 = time.perf_counter()
        mod.run()
        print(f"({name} took {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
