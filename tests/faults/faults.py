"""Injecting and healing one fault of a scenario on a running cluster.

``FaultInjector.inject(fault)`` does what the fault's kind says and
``heal(fault)`` undoes it; every iptables rule and tc qdisc it adds is
recorded and removed by exactly that rule (``iptables -D``), so overlapping
faults heal independently and ``heal_all`` undoes whatever is still in place
on any exit path. Before a node is taken down its height and the hash there
are recorded (``Restart``), so the checks can verify that no committed block
was lost across the restart.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.cluster import Cluster
from tests.faults.loader import Fault
from tests.kit.netns import NetLabError


@dataclass
class Restart:
    """A node taken down and started again: what it held before, and what it answered after."""

    node: int
    kind: str
    height_before: int | None
    hash_before: str | None
    height_after: int | None = None
    hash_after: str | None = None
    """The hash at ``height_before`` as the restarted node serves it."""
    expect_kept: bool = True
    """False where the fault itself throws data away (a stale data directory)."""
    queued: bool = False
    """Its verification is queued (the node was started again)."""


@dataclass
class FaultInjector:
    """Applies faults to a cluster and remembers how to undo them."""

    cluster: Cluster
    rules: dict[int, list[tuple[int, list[str]]]] = field(default_factory=dict)
    """Per fault (by id): (node, iptables rule arguments after -A/-D CHAIN)."""
    shaped: dict[int, list[int]] = field(default_factory=dict)
    restarts: list[Restart] = field(default_factory=list)
    snapshots: dict[int, Path] = field(default_factory=dict)
    active: dict[int, Fault] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    to_verify: list[Restart] = field(default_factory=list)
    """Restarted nodes whose state after the restart is not read yet (the runner reads it in the background)."""

    def _note(self, text: str) -> None:
        self.log.append(text)

    # -- restarts -------------------------------------------------------------------------------

    def _before_down(self, i: int, kind: str, *, expect_kept: bool = True) -> Restart:
        h = self.cluster.height(i)
        r = Restart(i, kind, h, self.cluster.block_hash(i, h) if h else None, expect_kept=expect_kept)
        self.restarts.append(r)
        return r

    def _start(self, i: int) -> None:
        """Start node ``i``; its restart record (if it was taken down) waits for ``verify_restart``."""
        self.cluster.start(i)
        self.to_verify += [r for r in self.restarts if r.node == i and not r.queued]
        for r in self.to_verify:
            r.queued = True

    def verify_restart(self, r: Restart, timeout: float = 90.0) -> None:
        """Wait for the restarted node to answer; record its height and its hash at the old height."""
        # A node killed again before it answered is started again by that fault's heal: keep
        # waiting for whichever incarnation answers first (heights never go back without a loss).
        deadline = time.monotonic() + timeout
        h = self.cluster.height(r.node)
        while h is None and time.monotonic() < deadline:
            time.sleep(0.3)
            h = self.cluster.height(r.node)
        r.height_after = h
        if h is not None and r.height_before:
            r.hash_after = self.cluster.block_hash(r.node, r.height_before) if h >= r.height_before else None

    # -- iptables -------------------------------------------------------------------------------

    def _iptables(self, i: int, op: str, chain: str, rule: list[str]) -> None:
        self.cluster.lab.ns_exec(i, "iptables", "-w", op, chain, *rule)

    def _add_rule(self, key: int, i: int, chain: str, rule: list[str]) -> None:
        self._iptables(i, "-A", chain, rule)
        self.rules.setdefault(key, []).append((i, [chain, *rule]))

    def _drop_between(self, key: int, src: int, dst: int) -> None:
        """Drop every packet from ``src`` to ``dst`` (on both ends, so neither side sees it)."""
        ips = self.cluster.lab.ips
        self._add_rule(key, src, "OUTPUT", ["-d", ips[dst], "-j", "DROP"])
        self._add_rule(key, dst, "INPUT", ["-s", ips[src], "-j", "DROP"])

    def _remove_rules(self, key: int) -> None:
        for i, (chain, *rule) in reversed(self.rules.pop(key, [])):
            with contextlib.suppress(NetLabError, subprocess.TimeoutExpired):
                self._iptables(i, "-D", chain, rule)

    # -- inject and heal ------------------------------------------------------------------------

    def inject(self, f: Fault) -> None:
        key = id(f)
        c = self.cluster
        n_all = len(c.nodes)
        self.active[key] = f
        self._note(f"inject {f.describe()}")
        if f.kind == "kill":
            for i in f.nodes:
                self._before_down(i, "kill -9")
                c.kill(i)
        elif f.kind == "restart":
            for i in f.nodes:
                self._before_down(i, "restart")
                c.stop(i)
        elif f.kind == "pause":
            for i in f.nodes:
                c.pause(i)
        elif f.kind in ("isolate", "partition"):
            groups = f.groups if f.kind == "partition" else (f.nodes, tuple(i for i in range(n_all)
                                                                             if i not in f.nodes))
            for gi, group in enumerate(groups):
                for other in [j for gj, g in enumerate(groups) if gj != gi for j in g]:
                    for src in group:
                        # One way: only the first group's packets to the others are lost.
                        if not f.one_way or gi == 0:
                            self._drop_between(key, src, other)
        elif f.kind == "loss":
            for i in f.nodes:
                for chain in ("INPUT", "OUTPUT"):
                    self._add_rule(key, i, chain, ["-m", "statistic", "--mode", "random", "--probability",
                                                   f"{f.percent / 100:.4f}", "-j", "DROP"])
        elif f.kind == "bandwidth":
            for i in f.nodes:
                c.lab.set_rate(i, f.rate)
            self.shaped[key] = list(f.nodes)
        elif f.kind == "clock":
            for i in f.nodes:
                self._before_down(i, "restart with clock offset")
                c.stop(i)
                c.set_test_config(i, {"clock_offset_ms": f.offset_ms})
                self._start(i)
        elif f.kind == "disk_full":
            for i in f.nodes:
                # The node may refuse to start on a full disk: what it held is verified once it is back on disk.
                self._before_down(i, "restart on a full disk, then back on disk")
                c.stop(i)
                c.mount_tmpfs(i, f.margin_kb)
                c.start(i)
        elif f.kind == "wal_tail":
            for i in f.nodes:
                self._before_down(i, f"kill -9, WAL tail {f.mode}")
                c.kill(i)
                self._note(f"  node{i}: {damage_wal(c.nodes[i].data_dir / 'cs.wal', f.mode)}")
                self._start(i)
            self.active.pop(key, None)
        elif f.kind == "stale_data":
            for i in f.nodes:
                self._before_down(i, "restart on a stale data dir", expect_kept=False)
                c.kill(i)
                c.restore(i, self.snapshots[i])
                self._start(i)
            self.active.pop(key, None)
        elif f.kind == "join":
            for i in f.nodes:
                self._start(i)
            self.active.pop(key, None)

    def take_snapshot(self, f: Fault) -> None:
        """The copy a ``stale_data`` fault restores later: taken from the stopped node, then restarted."""
        for i in f.nodes:
            self._before_down(i, "stop for a data dir copy")
            self.cluster.stop(i)
            self.snapshots[i] = self.cluster.snapshot(i, "data.stale")
            self._start(i)
            self._note(f"snapshot of node{i}'s data dir at height {self.restarts[-1].height_before}")

    def heal(self, f: Fault) -> None:
        key = id(f)
        c = self.cluster
        if self.active.pop(key, None) is None:
            return
        self._note(f"heal {f.kind} {list(f.nodes)}")
        if f.kind in ("kill", "restart"):
            for i in f.nodes:
                self._start(i)
        elif f.kind == "pause":
            for i in f.nodes:
                c.resume(i)
        elif f.kind in ("isolate", "partition", "loss"):
            self._remove_rules(key)
        elif f.kind == "bandwidth":
            for i in self.shaped.pop(key, []):
                host_end, ns_end = c.lab.veth(i)
                subprocess.run(["tc", "qdisc", "del", "dev", host_end, "root"], capture_output=True, check=False)
                c.lab.ns_exec(i, "tc", "qdisc", "del", "dev", ns_end, "root", check=False)
        elif f.kind == "clock":
            for i in f.nodes:
                self._before_down(i, "restart without clock offset")
                c.stop(i)
                c.set_test_config(i, {})
                self._start(i)
        elif f.kind == "disk_full":
            for i in f.nodes:
                # A node on a full disk may have stopped by itself: a kill -9 covers both cases.
                c.kill(i)
                c.unmount_tmpfs(i)
                self._start(i)


def damage_wal(path: Path, mode: str) -> str:
    """Tear the WAL's tail as a crash (or a bad sector) would; say what was done."""
    if not path.exists():
        return f"no WAL at {path}"
    data = path.read_bytes()
    if mode == "truncate":
        cut = min(len(data), 7)  # the last record loses its end (or the header is cut)
        path.write_bytes(data[: len(data) - cut])
        return f"WAL cut from {len(data)} to {len(data) - cut} bytes"
    if mode == "corrupt":
        if not data:
            return "WAL empty, nothing to corrupt"
        pos = len(data) - 1
        path.write_bytes(data[:pos] + bytes([data[pos] ^ 0xFF]))
        return f"WAL byte {pos} of {len(data)} flipped (the last record fails its checksum)"
    with path.open("ab") as fh:
        fh.write(bytes(4096))
    return f"4096 zero bytes appended to a {len(data)}-byte WAL"
