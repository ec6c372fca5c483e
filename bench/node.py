"""Node benchmark: a fresh 4-validator devnet on this machine, idle and under ``cstake load``.

Every figure is measured in this run, from the outside:

- block interval at idle (~15 s) and under load, from the header times of
  committed blocks (RPC ``block``), and each node's RSS at idle;
- committed transactions per second over the load window, counted from the
  committed blocks' transaction lists (not from the load generator's report);
- inclusion latency p50/p99 as the load generator reports it, cross-checked by
  probe transactions this benchmark sends itself (send time vs. block time);
- saturation: ``cstake load`` offering 2,000, 2,500 and 3,000 tx/s for 30 s
  each (``SAT_RATES``); committed tx/s counted from the blocks, the best of
  them reported (overload past the plateau commits less: it is printed too).
  A chain commits at most what is offered, so a rate above the target is in
  the sweep;
- where the time goes: per-block execute and write times from the node's log,
  the commit-duration histogram from /metrics, and a py-spy sample of one
  validator when py-spy is installed.

The devnet is the test kit's (tests/kit/devnet.py): a temporary directory,
ports reserved by its port policy, every process stopped by pid and the
directory deleted at the end.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.kit.devnet import (
    CLI,
    REPO,
    TRANSIENT_ERRORS,
    Devnet,
    E2EError,
    Node,
    height,
    http_get,
    rpc,
    wait_height,
)

N_NODES = 4
IDLE_S = 15.0
#: Offered load; BENCH_NODE_RATE / BENCH_NODE_SECONDS override them for exploring.
LOAD_RATE = int(os.environ.get("BENCH_NODE_RATE", "1000"))
LOAD_S = float(os.environ.get("BENCH_NODE_SECONDS", "60"))
LOAD_ACCOUNTS = 200
#: The saturation phase: offered rates from near to far above what the chain commits, each
#: counted from blocks; the saturation throughput is the best of them (BENCH_NODE_SAT_RATE:
#: comma-separated rates).
SAT_RATES = tuple(int(r) for r in os.environ.get("BENCH_NODE_SAT_RATE", "2000,2500,3000").split(","))
SAT_S = float(os.environ.get("BENCH_NODE_SAT_SECONDS", "30"))
DRAIN_S = 20.0
PROBE_EVERY_S = 1.0
PROFILE_S = 20.0


# --- small helpers ------------------------------------------------------------------------


def _blocks(url: str, lo: int, hi: int) -> list[dict[str, Any]]:
    """Headers and tx ids of heights lo..hi (inclusive)."""
    out = []
    for h in range(lo, hi + 1):
        b = rpc(url, "block", {"height": h, "txs": "hashes"}, timeout=30)
        out.append({"height": h, "time": int(b["header"]["time"]), "txs": b["txs"], "round": b["header"]["round"]})
    return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def _fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f} ms"


def _intervals(blocks: list[dict[str, Any]]) -> list[float]:
    return [float(b["time"] - a["time"]) for a, b in zip(blocks, blocks[1:], strict=False)]


def _interval_line(label: str, blocks: list[dict[str, Any]]) -> str:
    iv = _intervals(blocks)
    if not iv:
        return f"{label}: fewer than two blocks"
    mean = sum(iv) / len(iv)
    return (f"{label}: mean {mean / 1000:.2f} s, p50 {_pct(iv, 50) / 1000:.2f} s, "  # type: ignore[operator]
            f"p99 {_pct(iv, 99) / 1000:.2f} s, "  # type: ignore[operator]
            f"max {max(iv) / 1000:.2f} s over {len(iv)} intervals (heights {blocks[0]['height']}..{blocks[-1]['height']})")


def _rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (Linux /proc), None where unreadable."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def _start_load(devnet: Devnet, tmp: Path, tag: str, rate: int, seconds: float,
                drain: float) -> tuple[subprocess.Popen[Any], Path, Path]:
    """Start `cstake load` across every node's RPC; return the process and its output and log files."""
    out_file, err_file = tmp / f"load-{tag}.json", tmp / f"load-{tag}.log"
    with open(out_file, "wb") as out, open(err_file, "wb") as err:
        proc = subprocess.Popen(
            [*CLI, "load", "--home", str(devnet.nodes[0].home), "--rpc", ",".join(devnet.urls), "--rate",
             str(rate), "--duration", str(seconds), "--accounts", str(LOAD_ACCOUNTS), "--drain", str(drain),
             "--progress-every", "2", "--json"],
            cwd=REPO, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
        )
    return proc, out_file, err_file


def _saturation(devnet: Devnet, tmp: Path, extra: list[subprocess.Popen[Any]]) -> None:
    """Offer each of SAT_RATES for SAT_S seconds (the chain idles 10 s between); print the best."""
    results: list[tuple[int, float]] = []
    for rate in SAT_RATES:
        committed = _saturation_at(devnet, tmp, extra, rate)
        if committed is not None:
            results.append((rate, committed))
        time.sleep(10.0)  # let the mempools drain before the next rate
    if results:
        rate, best = max(results, key=lambda r: r[1])
        points = ", ".join(f"{r:,} offered -> {c:,.0f}" for r, c in results)
        print(f"saturation throughput: {best:,.0f} committed tx/s (at {rate:,} tx/s offered; {points})")


def _saturation_at(devnet: Devnet, tmp: Path, extra: list[subprocess.Popen[Any]], rate: int) -> float | None:
    """Offer ``rate`` tx/s for SAT_S seconds; return the committed tx/s the blocks carried."""
    main = devnet.urls[0]
    load, out_file, err_file = _start_load(devnet, tmp, f"saturation-{rate}", rate, SAT_S, 10.0)
    extra.append(load)
    try:
        load.wait(timeout=SAT_S + 10.0 + 180)
    except subprocess.TimeoutExpired:
        load.kill()
        print(f"saturation at {rate} tx/s: the load generator did not finish in time; killed")
        return None
    if load.returncode != 0:
        print(f"saturation at {rate} tx/s: cstake load failed: {err_file.read_text(errors='replace').strip()[-500:]}")
        return None
    report = json.loads(out_file.read_text())
    start_h, end_h = int(report["start_height"]), int(report["end_height"])
    blocks = _blocks(main, start_h, max(end_h, height(main)))
    t_start = blocks[0]["time"]
    # Skip the ramp-up: count from the first block carrying load transactions to SAT_S after it.
    loaded = [b for b in blocks[1:] if b["txs"]]
    if len(loaded) < 2:
        print(f"saturation at {rate} tx/s: fewer than two blocks carried transactions")
        return None
    t_first = loaded[0]["time"]
    window = [b for b in loaded if b["time"] <= t_first + SAT_S * 1000]
    span_s = max(1e-9, (window[-1]["time"] - t_first) / 1000)
    txs = sum(len(b["txs"]) for b in window[1:])
    print(f"saturation at {rate} tx/s: cstake load --rate {rate} --duration {SAT_S:g}; generator sent "
          f"{report['sent']} ({report['sent_rate_tps']} tx/s achieved), accepted {report['accepted']}, rejected "
          f"{sum(report['rejected'].values())} {report['rejected'] or ''}")
    print(f"  committed (from block tx lists, heights {window[1]['height'] if len(window) > 1 else '-'}"
          f"..{window[-1]['height']}, {span_s:.1f} s after the first loaded block at "
          f"{(t_first - t_start) / 1000:.1f} s): {txs / span_s:,.0f} committed tx/s ({txs} txs), "
          f"largest block {max(len(b['txs']) for b in window)} txs")
    return txs / span_s


# --- probe transactions (the latency cross-check) ----------------------------------------


class Prober(threading.Thread):
    """Sends one transfer per second to node1's RPC from an account of its own and records the send time.

    The account is funded from node1's (``fund``, before the load starts): node1's
    own account also signs its compute service's transactions, and probes sharing
    its nonces were refused whenever the two raced.
    """

    def __init__(self, home: Path, url: str, chain_id: str) -> None:
        super().__init__(daemon=True)
        from consensus.crypto import PrivateKey
        from consensus.hashing import tagged_hash
        from consensus.txs import Transfer, build_tx
        from node.keyfiles import load_keystore

        self._build = build_tx
        self._transfer = Transfer
        self.funder = load_keystore(home / "keys" / "account.json", None)
        self.key = PrivateKey.from_seed(tagged_hash(b"cstake/bench-probe", self.funder.seed()))
        self.url = url
        self.chain_id = chain_id
        self.sent: dict[str, int] = {}  # tx hash -> wall ms at send
        self.errors = 0
        self.stop = threading.Event()

    def fund(self, amount: int = 1_000_000, timeout: float = 30.0) -> None:
        """Fund the probe account from node1's and wait until the chain has it."""
        from consensus.crypto import encode_address

        fee = int(rpc(self.url, "params")["min_fee"])
        me = encode_address(self.key.address())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nonce = int(rpc(self.url, "account", {"address": encode_address(self.funder.address())})["next_nonce"])
            tx = self._build(self.funder, self.chain_id, nonce, fee, self._transfer(self.key.address(), amount))
            with contextlib.suppress(*TRANSIENT_ERRORS):
                rpc(self.url, "broadcast_tx", {"tx": "0x" + tx.raw.hex()}, timeout=10)
            for _ in range(10):
                if int(rpc(self.url, "account", {"address": me})["balance"]) >= amount:
                    return
                time.sleep(0.5)
        raise E2EError("the probe account was not funded in time")

    def run(self) -> None:
        from consensus.crypto import encode_address

        fee = int(rpc(self.url, "params")["min_fee"])
        nonce = int(rpc(self.url, "account", {"address": encode_address(self.key.address())})["next_nonce"])
        while not self.stop.wait(PROBE_EVERY_S):
            tx = self._build(self.key, self.chain_id, nonce, fee, self._transfer(self.key.address(), 1))
            sent_ms = time.time_ns() // 1_000_000
            try:
                res = rpc(self.url, "broadcast_tx", {"tx": "0x" + tx.raw.hex()}, timeout=10)
            except TRANSIENT_ERRORS:
                self.errors += 1
                continue
            if res["code"] == 0:
                self.sent[res["hash"]] = sent_ms
                nonce += 1
            else:
                self.errors += 1


# --- profile -------------------------------------------------------------------------------

_LOG_RE = re.compile(r"committed height (\d+): (\d+) txs .* execute (\d+) ms, write (\d+) ms")


def _log_breakdown(log_file: Path, lo: int, hi: int) -> dict[int, tuple[int, float, float]]:
    """height -> (txs, execute ms, write ms) from the node's JSON log lines."""
    out: dict[int, tuple[int, float, float]] = {}
    with contextlib.suppress(OSError):
        for line in log_file.read_text(errors="replace").splitlines():
            m = _LOG_RE.search(line)
            if m and lo <= int(m.group(1)) <= hi:
                out[int(m.group(1))] = (int(m.group(2)), float(m.group(3)), float(m.group(4)))
    return out


def _metric_sum_count(text: str, name: str) -> tuple[float, float]:
    s = re.search(rf"^{name}_sum ([0-9.e+-]+)$", text, re.MULTILINE)
    c = re.search(rf"^{name}_count ([0-9.e+-]+)$", text, re.MULTILINE)
    return (float(s.group(1)) if s else 0.0, float(c.group(1)) if c else 0.0)


def _metrics(url: str) -> str:
    status, text = http_get(url, "/metrics")
    if status != 200:
        raise ValueError(f"{url}/metrics answered HTTP {status}")
    return text


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


def _spy_summary(raw_file: Path, top: int = 12) -> list[str]:
    """Fold py-spy's raw (collapsed) stacks into shares by project function and by leaf package."""
    project = ("consensus/", "node/", "storage/", "p2p/")
    by_func: dict[str, int] = {}
    by_leaf: dict[str, int] = {}
    total = 0
    for line in raw_file.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        owner = next((f for f in reversed(frames) if any(f"({p}" in f for p in project)), "(outside project code)")
        owner = re.sub(r":\d+\)$", ")", owner)
        by_func[owner] = by_func.get(owner, 0) + count
        leaf = frames[-1]
        m = re.search(r"\(([^):]+)", leaf)
        path = m.group(1) if m else leaf
        pkg = path.split("site-packages/")[-1].split("/")[0] if "site-packages/" in path else path.split("/")[0]
        by_leaf[pkg] = by_leaf.get(pkg, 0) + count
    if total == 0:
        return ["  (no samples)"]
    lines = [f"  {total} samples; innermost project function on the stack:"]
    for name, n in sorted(by_func.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {100 * n / total:5.1f}%  {name}")
    lines.append("  by the leaf frame's module/package:")
    for name, n in sorted(by_leaf.items(), key=lambda kv: -kv[1])[:8]:
        lines.append(f"    {100 * n / total:5.1f}%  {name}")
    return lines


# --- the run -------------------------------------------------------------------------------


def run() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cstake-bench-node-"))
    devnet = Devnet(tmp / "devnet", N_NODES)
    extra: list[subprocess.Popen[Any]] = []
    try:
        _run(devnet, tmp, extra)
    finally:
        for proc in extra:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        try:
            devnet.destroy()  # every node, by pid
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(devnet: Devnet, tmp: Path, extra: list[subprocess.Popen[Any]]) -> None:
    t0 = time.perf_counter()
    try:
        devnet.up(timeout=150)
    except E2EError as exc:
        print(f"devnet up failed: {str(exc)[-500:]}")
        return
    nodes = devnet.nodes
    urls = devnet.urls
    main = urls[0]
    print(f"devnet: {N_NODES} validators (separate processes, libp2p, LevelDB) up in "
          f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPU cores on this machine, "
          f"load average {os.getloadavg()[0]:.1f} before the run")
    wait_height(main, 2, timeout=60)

    # Idle: block times over ~15 s.
    h0 = height(main)
    time.sleep(IDLE_S)
    idle = _blocks(main, h0, height(main))
    print(_interval_line("block interval at idle", idle))
    rss = [(n.name, _rss_mb(n.pid)) for n in nodes]
    print("node RSS at idle: " + ", ".join(f"{name} {'n/a' if mb is None else f'{mb:.0f} MB'}" for name, mb in rss))

    # Load: `cstake load` across the four RPC URLs, probes on the side, py-spy on node1.
    prober = Prober(nodes[1].home, urls[1], devnet.chain_id)
    prober.fund()
    load, load_out, load_err = _start_load(devnet, tmp, "latency", LOAD_RATE, LOAD_S, DRAIN_S)
    extra.append(load)
    spy_file = tmp / "spy.txt"
    spy_started = False
    load_started = time.monotonic()
    started_probes = False
    spy_bin = _py_spy()
    while load.poll() is None:
        time.sleep(0.5)
        if not started_probes and "sent" in load_err.read_text(errors="replace"):
            prober.start()  # the generator is past funding and sending
            started_probes = True
        if started_probes and not spy_started and spy_bin and time.monotonic() - load_started > 25:
            spy_started = True
            extra.append(subprocess.Popen(
                [spy_bin, "record", "-p", str(nodes[1].pid), "-d", str(int(PROFILE_S)), "-r", "100",
                 "-f", "raw", "-o", str(spy_file), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        if time.monotonic() - load_started > LOAD_S + DRAIN_S + 120:
            load.kill()
            print("load generator did not finish in time; killed")
            break
    prober.stop.set()
    if started_probes:
        prober.join(timeout=15)
    if load.wait() != 0:
        print(f"cstake load failed: {load_err.read_text(errors='replace').strip()[-500:]}")
        return
    report = json.loads(load_out.read_text())
    start_h, end_h = int(report["start_height"]), int(report["end_height"])
    wait_height(main, end_h, timeout=30)
    blocks = _blocks(main, start_h, max(end_h, height(main)))
    t_start = blocks[0]["time"]
    in_window = [b for b in blocks[1:] if b["time"] <= t_start + LOAD_S * 1000]
    window_txs = sum(len(b["txs"]) for b in in_window)
    all_txs = sum(len(b["txs"]) for b in blocks[1:])
    last_with_txs = max((b for b in blocks[1:] if b["txs"]), key=lambda b: b["height"], default=blocks[0])
    span_s = max(1e-9, (last_with_txs["time"] - t_start) / 1000)

    print(f"load: cstake load --rate {LOAD_RATE} --duration {LOAD_S:g} --accounts {LOAD_ACCOUNTS} over "
          f"{len(urls)} RPC URLs; generator sent {report['sent']} ({report['sent_rate_tps']} tx/s achieved), "
          f"accepted {report['accepted']}, rejected {sum(report['rejected'].values())} {report['rejected'] or ''}")
    where = (f"heights {start_h + 1}..{in_window[-1]['height']}" if in_window
             else f"no block committed after height {start_h} in the window")
    print(f"committed tx/s over the {LOAD_S:g} s load window (from block tx lists, {where}): "
          f"{window_txs / LOAD_S:,.0f} tx/s ({window_txs} txs)")
    print(f"committed tx/s until the last loaded block (window + drain, {span_s:.1f} s): "
          f"{all_txs / span_s:,.0f} tx/s ({all_txs} txs; generator counted {report['committed']})")
    lat = report["latency_ms"]
    print(f"inclusion latency (generator, send -> block time): p50 {_fmt_ms(lat['block_time']['p50'])}, "
          f"p99 {_fmt_ms(lat['block_time']['p99'])}, max {_fmt_ms(lat['block_time']['max'])}")
    print(f"inclusion latency (generator, send -> seen committed over RPC): p50 {_fmt_ms(lat['observed']['p50'])}, "
          f"p99 {_fmt_ms(lat['observed']['p99'])}")
    probe_lat = []
    for tx_hash, sent_ms in prober.sent.items():
        with contextlib.suppress(*TRANSIENT_ERRORS):
            found = rpc(main, "tx", {"hash": tx_hash})
            if found.get("status") != "committed":
                continue  # still pending: counted as not committed
            btime = next((b["time"] for b in blocks if b["height"] == found["height"]), None)
            if btime is None:
                btime = int(rpc(main, "block", {"height": found["height"], "txs": "hashes"})["header"]["time"])
            probe_lat.append(float(btime - sent_ms))
    print(f"inclusion latency cross-check ({len(probe_lat)} of {len(prober.sent)} probe txs committed, "
          f"{prober.errors} refused): p50 {_fmt_ms(_pct(probe_lat, 50))}, p99 {_fmt_ms(_pct(probe_lat, 99))}, "
          f"max {_fmt_ms(max(probe_lat) if probe_lat else None)}")
    print(_interval_line("block interval under load", [blocks[0], *in_window]))
    rounds = [b["round"] for b in in_window]
    if rounds:
        print(f"blocks decided after round 0 under load: {sum(1 for r in rounds if r > 0)} of {len(rounds)} "
              f"({100 * sum(1 for r in rounds if r == 0) / len(rounds):.0f}% in round 0)")
    print(f"load average after the run: {os.getloadavg()[0]:.1f} (the load generator and all four nodes share "
          f"these {os.cpu_count()} cores)")
    _profile(nodes, [blocks[0], *in_window], spy_file if spy_started else None, spy_bin)
    _saturation(devnet, tmp, extra)


def _profile(nodes: list[Node], window: list[dict[str, Any]], spy_file: Path | None,
             spy_bin: str | None) -> None:
    print("where the time goes under load (node1):")
    if len(window) >= 2:
        lo, hi = window[1]["height"], window[-1]["height"]
        per = _log_breakdown(nodes[1].log_path("node.log"), lo, hi)
        interval_ms = sum(_intervals(window))
        execute = sum(v[1] for v in per.values())
        write = sum(v[2] for v in per.values())
        if per and interval_ms > 0:
            k = len(per)
            print(f"  {k} blocks from the node log: execute {execute / k:,.0f} ms/block, write {write / k:,.0f} "
                  f"ms/block, of a {interval_ms / len(window[1:]):,.0f} ms mean interval; the remaining "
                  f"{max(0.0, 100 * (1 - (execute + write) / interval_ms)):.0f}% is proposing, gossiping the "
                  "block, voting and timeouts")
            big = max(per.items(), key=lambda kv: kv[1][0])
            print(f"  largest block: height {big[0]}, {big[1][0]} txs, execute {big[1][1]:.0f} ms, "
                  f"write {big[1][2]:.0f} ms")
    for node in nodes:
        with contextlib.suppress(*TRANSIENT_ERRORS):
            text = _metrics(node.url)
            total, count = _metric_sum_count(text, "cstake_commit_duration_seconds")
            rs, rc = _metric_sum_count(text, "cstake_rounds_per_height")
            if count:
                print(f"  {node.name} /metrics: commit (execute+write) {1000 * total / count:,.1f} ms mean over "
                      f"{count:.0f} blocks; rounds per height {rs / max(rc, 1):.2f} mean")
    if spy_file is None:
        print("  py-spy: not installed; (pip install py-spy) for a sampled profile"
              if spy_bin is None else "  py-spy: not run (the load ended early)")
        return
    if not spy_file.exists():
        print("  py-spy: no profile written (ptrace not permitted here?)")
        return
    print(f"  py-spy sample of node1 over {PROFILE_S:g} s of load (100 Hz, active threads only):")
    for line in _spy_summary(spy_file):
        print(line)

