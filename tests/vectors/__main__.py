"""``python -m tests.vectors generate`` rewrites tests/vectors/data/*.json; ``check`` lists differences."""

from __future__ import annotations

import argparse
import sys

from tests.vectors.files import DATA_DIR, compare, write_all


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.vectors", description=__doc__)
    ap.add_argument("command", choices=("generate", "check"))
    args = ap.parse_args(argv)
    if args.command == "generate":
        for name in write_all():
            print(f"wrote {DATA_DIR / name}")
        return 0
    diffs = compare()
    for d in diffs:
        print(d)
    print("vectors match" if not diffs else f"{len(diffs)} differences (python -m tests.vectors generate "
          "rewrites the files after a deliberate change)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
