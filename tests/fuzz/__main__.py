"""The fuzz runner: ``python -m tests.fuzz TARGET --runs N`` (atheris), ``all``, ``seed``, ``--reproduce``.

One target runs in this process under atheris (libFuzzer) with ``-runs``,
``-max_len``, ``-timeout=1`` (an input over a second is a hang) and
``-artifact_prefix=tests/fuzz/crashes/TARGET-``: a finding stops the run and
leaves its reproducer there. New coverage-increasing inputs go to the working
corpus ``tests/fuzz/.work/TARGET`` (not in git); the repository's corpus
``tests/fuzz/corpus/TARGET`` is read as seeds, and ``--merge`` adds to it the
working inputs that add coverage. ``all`` runs every target in turn, each in
its own process, and prints inputs run, coverage and the slowest input.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"
WORK = HERE / ".work"
#: Packages whose code atheris instruments for coverage.
INSTRUMENTED = ["consensus", "p2p", "node", "storage"]
TARGET_NAMES = (
    "codec", "tx", "block", "vote", "proposal", "parts", "evidence", "envelope", "sync", "wal",
    "transition", "gossip", "rpc",
)


def _parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("target", help=f"one of {', '.join(TARGET_NAMES)}; 'all'; or 'seed' to rewrite the seed corpus")
    ap.add_argument("--runs", type=int, default=1_000_000, help="inputs to run (default 1,000,000)")
    ap.add_argument("--corpus", type=Path, default=None, help="seed corpus folder (default tests/fuzz/corpus/TARGET)")
    ap.add_argument("--max-len", type=int, default=None, help="longest input (default: the target's)")
    ap.add_argument("--max-time", type=int, default=0, help="stop after this many seconds (0: no limit)")
    ap.add_argument("--timeout", type=int, default=1, help="seconds after which an input is a hang (default 1)")
    ap.add_argument("--seed", type=int, default=0, help="libFuzzer's random seed (0: its own)")
    ap.add_argument("--work", type=Path, default=WORK, help="working folder: new inputs, logs, stats (default tests/fuzz/.work)")
    ap.add_argument("--merge", action="store_true", help="add the working inputs that add coverage to the repo corpus")
    ap.add_argument("--reproduce", nargs="+", type=Path, metavar="FILE", help="run these inputs once, without atheris")
    ap.add_argument("--libfuzzer", action="store_true", help="pass the other arguments to libFuzzer as they are")
    args, extra = ap.parse_known_args(argv)
    if extra and not args.libfuzzer:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    return args


# --- one target under atheris -----------------------------------------------------------


class _Stats:
    """Inputs run and the slowest one, kept in ``.work/TARGET.stats.json`` as the run goes."""

    def __init__(self, name: str, work: Path) -> None:
        self.name = name
        self.work = work
        self.path = work / f"{name}.stats.json"
        self.runs = 0
        self.slowest_s = 0.0
        self.slowest_len = 0
        self.started = time.time()

    def record(self, data: bytes, elapsed: float) -> None:
        self.runs += 1
        if elapsed > self.slowest_s:
            self.slowest_s, self.slowest_len = elapsed, len(data)
            (self.work / f"{self.name}.slowest").write_bytes(data)
            self.save()
        elif self.runs % 20_000 == 0:
            self.save()

    def save(self) -> None:
        doc = {
            "target": self.name, "runs": self.runs, "slowest_s": round(self.slowest_s, 6),
            "slowest_len": self.slowest_len, "seconds": round(time.time() - self.started, 1),
        }
        self.path.write_text(json.dumps(doc) + "\n")


def _write_dict(name: str, work: Path) -> Path | None:
    """A libFuzzer dictionary: JSON-RPC words for rpc, container names for codec; None for the rest."""
    if name == "rpc":
        from node.rpc.methods import METHODS

        words = {"jsonrpc", "2.0", "id", "method", "params", "null", "true", "false", "0x", "sync", "async",
                 "commit", "full", "hashes", "cstake1", "-1", "9223372036854775807", "18446744073709551616",
                 "1e309", "[", "{"}
        for method, (_, names) in METHODS.items():
            words.add(method)
            words.update(names)
    elif name == "codec":
        from tests.fuzz.targets import ENCODABLES, codec_name

        words = {codec_name(cls).decode() + ":" for cls in ENCODABLES}
    else:
        return None
    path = work / f"{name}.dict"
    path.write_text("".join(json.dumps(w) + "\n" for w in sorted(words)))
    return path


def run_one(args: argparse.Namespace) -> int:
    import atheris

    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz.targets import get_target

        target = get_target(args.target)
        target.prepare()
    args.work.mkdir(parents=True, exist_ok=True)
    CRASHES.mkdir(exist_ok=True)
    work = args.work / target.name
    work.mkdir(exist_ok=True)
    seeds = args.corpus or CORPUS / target.name
    stats = _Stats(f"{target.name}.merge" if args.merge else target.name, args.work)
    atexit.register(stats.save)
    declared = target.declared
    func = target.func
    clock = time.perf_counter

    def test_one_input(data: bytes) -> None:
        t0 = clock()
        try:
            func(data)
        except declared:
            pass
        finally:
            stats.record(data, clock() - t0)

    flags = [
        f"-runs={args.runs}", f"-max_len={args.max_len or target.max_len}", f"-timeout={args.timeout}",
        f"-artifact_prefix={CRASHES}/{target.name}-", "-print_final_stats=1", "-rss_limit_mb=4096",
    ]
    if args.max_time:
        flags.append(f"-max_total_time={args.max_time}")
    if args.seed:
        flags.append(f"-seed={args.seed}")
    dictionary = _write_dict(target.name, args.work)
    if dictionary is not None:
        flags.append(f"-dict={dictionary}")
    folders = [str(work), str(seeds)]
    program = sys.argv[0]
    if args.merge:
        # libFuzzer merges in a child process it starts from argv[0]: give it a command that can.
        program = str(args.work / f"{target.name}-libfuzzer.sh")
        Path(program).write_text(
            f"#!/bin/sh\ncd {REPO}\nexec {sys.executable} -m tests.fuzz {target.name} --libfuzzer \"$@\"\n"
        )
        Path(program).chmod(0o755)
        flags = ["-merge=1", f"-max_len={args.max_len or target.max_len}", f"-timeout={args.timeout}"]
        folders = [str(seeds), str(work)]
    if args.libfuzzer:
        flags, folders = args.extra, []
    atheris.Setup([program, *flags, *folders], test_one_input)
    atheris.Fuzz()
    return 0


# --- reproducing a finding without atheris ------------------------------------------------


def reproduce(args: argparse.Namespace) -> int:
    from tests.fuzz.targets import get_target

    target = get_target(args.target)
    target.prepare()
    failed = 0
    for path in args.reproduce:
        data = path.read_bytes()
        t0 = time.perf_counter()
        try:
            target.run(data)
        except Exception:
            failed += 1
            print(f"{path}: FINDING ({len(data)} bytes)")
            traceback.print_exc()
            continue
        print(f"{path}: ok ({len(data)} bytes, {time.perf_counter() - t0:.3f} s)")
    return 1 if failed else 0


# --- every target, each in its own process -------------------------------------------------

_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+)")
_LAST = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)")


def run_all(args: argparse.Namespace) -> int:
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    summary = []
    failed = []
    for name in TARGET_NAMES:
        cmd = [sys.executable, "-m", "tests.fuzz", name, f"--runs={args.runs}", f"--work={work}", f"--timeout={args.timeout}"]
        if args.max_time:
            cmd.append(f"--max-time={args.max_time}")
        if args.seed:
            cmd.append(f"--seed={args.seed}")
        log_path = work / f"{name}.log"
        print(f"== {name}: {args.runs} inputs (log {log_path})", flush=True)
        t0 = time.time()
        with log_path.open("w") as log:
            rc = subprocess.call(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        text = log_path.read_text(errors="replace")
        found = _DONE.findall(text) or _LAST.findall(text)
        runs, cov, ft = (int(x) for x in found[-1]) if found else (0, 0, 0)
        stats_path = work / f"{name}.stats.json"
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        row = {
            "target": name, "rc": rc, "runs": runs, "cov": cov, "ft": ft,
            "slowest_s": stats.get("slowest_s"), "seconds": round(time.time() - t0, 1),
        }
        summary.append(row)
        print(f"   rc={rc} runs={runs} cov={cov} ft={ft} slowest={row['slowest_s']} s in {row['seconds']} s", flush=True)
        if rc != 0:
            failed.append(name)
            print(text[-3000:])
    (work / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if failed:
        print(f"findings or failures in: {', '.join(failed)} (reproducers under {CRASHES.relative_to(REPO)})")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    os.chdir(REPO)
    if args.target == "seed":
        from tests.fuzz.seeds import write_seeds

        for name, n in write_seeds().items():
            print(f"{name}: {n} seeds")
        return 0
    if args.target == "all":
        return run_all(args)
    if args.target not in TARGET_NAMES:
        print(f"unknown target {args.target!r}; known: {', '.join(TARGET_NAMES)}", file=sys.stderr)
        return 2
    if args.reproduce:
        return reproduce(args)
    return run_one(args)


if __name__ == "__main__":
    sys.exit(main())
