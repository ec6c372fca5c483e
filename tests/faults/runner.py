"""Running one scenario: start the nodes, run the timeline under load, wait for recovery, check.

``run_scenario`` owns everything it makes: the NetLab (namespaces, veths,
bridge), the node processes, tmpfs mounts and the load thread. All of it is
undone in one ``finally`` whatever happens (a failed start, a check that
raises, Ctrl-C, SIGTERM: ``install_signal_handlers`` turns SIGTERM and
SIGHUP into SystemExit so the ``finally`` runs). ``refusal`` says why the
runner cannot run here (not root, no namespaces).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from tests.faults import checks
from tests.faults.cluster import Cluster
from tests.faults.faults import FaultInjector
from tests.faults.load import TxLoad
from tests.faults.loader import Fault, Scenario
from tests.kit.netns import NetLab, has_iptables, unavailable

START_TIMEOUT_S = 120.0
DRAIN_S = 60.0


def refusal() -> str | None:
    """Why fault scenarios cannot run on this machine, or None."""
    if sys.platform != "linux":
        return "fault scenarios need Linux network namespaces"
    if os.geteuid() != 0:
        return "fault scenarios need root: they create network namespaces, veths, a bridge, iptables rules " \
               "and tmpfs mounts (run as root, e.g. sudo .venv/bin/python -m tests.faults)"
    if not has_iptables():
        return "fault scenarios need iptables (apt-get install iptables)"
    return unavailable()


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP raise SystemExit in the main thread, so every ``finally`` cleans up."""
    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)


@dataclass
class ScenarioReport:
    scenario: Scenario
    checks: list[checks.Check] = field(default_factory=list)
    recovery_s: float | None = None
    """Seconds from the last heal until every node committed past the height then and agreed on a hash."""
    resumed_s: float | None = None
    """Seconds from the last heal until any node committed a new block."""
    events: list[str] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    heights: dict[str, int] = field(default_factory=dict)
    blocks_during_faults: int = 0
    wall_s: float = 0.0
    error: str | None = None
    leftovers: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and not self.leftovers and bool(self.checks) and all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        sc = self.scenario
        return {
            "scenario": sc.name, "seed": sc.seed, "passed": self.passed, "faults": len(sc.faults),
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 1),
            "resumed_s": None if self.resumed_s is None else round(self.resumed_s, 1),
            "blocks_during_faults": self.blocks_during_faults, "wall_s": round(self.wall_s, 1),
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks],
            "load": self.load, "heights": self.heights, "error": self.error, "leftovers": self.leftovers,
        }

    def format(self) -> str:
        sc = self.scenario
        lines = [f"== scenario {sc.name} (seed {sc.seed}): {'PASS' if self.passed else 'FAIL'} "
                 f"in {self.wall_s:.0f} s",
                 f"   {sc.description}" if sc.description else "",
                 f"   {sc.validators} validators, {sc.full_nodes} full nodes, {len(sc.faults)} faults, "
                 f"load {sc.load_rate:g} tx/s"]
        shown = sc.faults if len(sc.faults) <= 12 else (*sc.faults[:5], None, *sc.faults[-3:])
        lines += [f"   fault: {f.describe()}" if f else f"   ... ({len(sc.faults) - 8} more)" for f in shown]
        lines.append(f"   blocks committed during the fault phase: {self.blocks_during_faults}")
        rec = "n/a" if self.recovery_s is None else f"{self.recovery_s:.1f} s"
        res = "n/a" if self.resumed_s is None else f"{self.resumed_s:.1f} s"
        lines.append(f"   after the last heal: first new block {res}, all nodes converged {rec}")
        lines.append(f"   load: {self.load}")
        lines += [f"   [{'PASS' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        if self.error:
            lines.append(f"   ERROR: {self.error}")
        if self.leftovers:
            lines.append(f"   LEFT BEHIND: {self.leftovers}")
        return "\n".join(x for x in lines if x)


def _timeline(sc: Scenario) -> list[tuple[float, int, str, Fault]]:
    """(time, order, action, fault) sorted: snapshots, injections and heals of the scenario."""
    events = []
    for f in sc.faults:
        if f.snapshot_at is not None:
            events.append((f.snapshot_at, 0, "snapshot", f))
        events.append((f.at, 2, "inject", f))
        if f.heal_at is not None:
            events.append((f.heal_at, 1, "heal", f))  # a heal at the same time as an injection goes first
    return sorted(events, key=lambda e: (e[0], e[1]))


def _max_height(cluster: Cluster) -> int:
    hs = [cluster.height(i) for i in cluster.live()]
    return max([h for h in hs if h is not None], default=0)


def _converged_above(cluster: Cluster, nodes: list[int], above: int) -> bool:
    """Every node in ``nodes`` has committed past ``above`` and they agree at the lowest of their heights."""
    hs = [cluster.height(i) for i in nodes]
    if any(h is None or h <= above for h in hs):
        return False
    low = min(h for h in hs if h is not None)
    hashes = {cluster.block_hash(i, low) for i in nodes}
    return len(hashes) == 1 and None not in hashes


def run_scenario(sc: Scenario, workdir: Path | None = None, *, out: TextIO = sys.stdout,
                 keep: bool = False) -> ScenarioReport:
    """Run ``sc`` and return its report; every namespace, link, mount and process made is removed."""
    report = ScenarioReport(sc)
    reason = refusal()
    if reason:
        report.error = reason
        return report
    root = Path(workdir or tempfile.mkdtemp(prefix=f"cstake-faults-{sc.name}-"))
    root.mkdir(parents=True, exist_ok=True)
    t_begin = time.monotonic()

    def say(text: str) -> None:
        print(f"[{sc.name} {time.monotonic() - t_begin:6.1f}s] {text}", file=out, flush=True)

    say(f"seed {sc.seed}; work dir {root}")
    lab = NetLab(sc.n_nodes)
    cluster = Cluster(lab, root, sc.validators, sc.full_nodes, params=sc.params, seed=sc.seed)
    injector = FaultInjector(cluster)
    load = TxLoad(cluster, sc.load_rate, sc.seed)
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="restart-check")
    try:
        lab.create()
        cluster.build()
        late = sc.late_nodes()
        for n in cluster.nodes:
            if n.index not in late:
                cluster.start(n.index)
        for n in cluster.nodes:
            if n.index not in late and cluster.wait_answering(n.index, START_TIMEOUT_S) is None:
                raise RuntimeError(f"{n.name} did not answer RPC within {START_TIMEOUT_S:g} s: "
                                   f"{cluster.log_tail(n.index)}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while _max_height(cluster) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the chain did not reach height 2")
            time.sleep(0.5)
        say(f"{sc.n_nodes - len(late)} nodes up at height {_max_height(cluster)}; load {sc.load_rate:g} tx/s")
        load.start()
        time.sleep(2)

        h_start = _max_height(cluster)
        t0 = time.monotonic()
        last_heal = t0
        h_at_heal = h_start
        futures = []
        for at, _, action, f in _timeline(sc):
            while time.monotonic() < t0 + at:
                time.sleep(min(0.2, t0 + at - time.monotonic()))
            if action == "snapshot":
                injector.take_snapshot(f)
            elif action == "inject":
                injector.inject(f)
            else:
                injector.heal(f)
            if action == "heal" or (action == "inject" and f.heal_at is None):
                last_heal = time.monotonic()
                h_at_heal = _max_height(cluster)
            futures += [pool.submit(injector.verify_restart, r) for r in injector.to_verify]
            injector.to_verify.clear()
            if len(sc.faults) <= 20 or action == "inject" and sc.faults.index(f) % 10 == 0:
                say(f"{action} {f.describe()} (height {_max_height(cluster)})")
        # Recovery is watched from the last heal on, also while the fault phase runs out.
        nodes = [n.index for n in cluster.nodes if n.is_running()]
        recovery_deadline = last_heal + max(sc.recover_within_s, 60.0) * 2
        if not sc.faults:
            report.recovery_s = report.resumed_s = 0.0
        while time.monotonic() < t0 + sc.duration_s or (
                report.recovery_s is None and time.monotonic() < recovery_deadline):
            if report.resumed_s is None and _max_height(cluster) > h_at_heal:
                report.resumed_s = time.monotonic() - last_heal
            if report.recovery_s is None and _converged_above(cluster, nodes, h_at_heal):
                report.recovery_s = time.monotonic() - last_heal
            time.sleep(0.25)
        report.blocks_during_faults = _max_height(cluster) - h_start
        say(f"recovery {report.recovery_s if report.recovery_s is None else round(report.recovery_s, 1)} s; "
            "draining the load")
        load.stop_sending()
        left = load.drain(DRAIN_S)
        load.stop()
        report.load = load.summary()
        for fut in futures:
            fut.result(timeout=120)
        if left:
            say(f"{left} transactions still pending after {DRAIN_S:g} s")

        # Every node reaches the highest height any node reports now, so the chains compared
        # include the block of the last transaction the drain saw committed.
        # (a node's status may lag its transaction index by a block: take the higher of the two).
        top = max(_max_height(cluster), load.highest_commit())
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and not all((cluster.height(i) or 0) >= top for i in nodes):
            time.sleep(0.5)
        chains = {cluster.nodes[i].name: checks.collect_chain(cluster.nodes[i].url, min(top, cluster.height(i) or 0))
                  for i in nodes}
        report.heights = {cluster.nodes[i].name: cluster.height(i) or 0 for i in nodes}
        slashing = checks.fetch_slashing_records(cluster.nodes[nodes[0]].url)
        faulted: dict[str, set[str]] = {}
        for f in sc.faults:
            for i in f.nodes:
                if cluster.nodes[i].validator and f.kind != "join":
                    faulted.setdefault(cluster.nodes[i].address, set()).add(f.kind)
        ref = max(chains.values(), key=len)
        report.checks = [
            checks.check_no_fork(chains),
            checks.check_no_block_lost(injector.restarts),
            checks.check_no_double_sign(ref, slashing),
            checks.check_txs(load.records, ref),
            checks.check_recovery(report.recovery_s, sc.recover_within_s),
            checks.check_slashing(slashing, faulted),
        ]
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
    finally:
        load.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        report.events = injector.log
        problems = cluster.close()
        lab.close()
        report.leftovers = problems + lab.leftovers()
        report.wall_s = time.monotonic() - t_begin
        if report.passed and not keep and workdir is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            say(f"logs kept in {root}")
    return report
