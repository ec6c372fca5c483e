"""Network namespaces for fault tests: a bridge, one veth pair and one namespace per node.

``NetLab`` builds, on this host (root only), a Linux bridge with an address
on the host side and, per node, a namespace holding one end of a veth pair
(its own ``10.x.y.z/24`` address) whose other end is on the bridge. Node
processes run inside with ``lab.popen(i, argv)`` (``ip netns exec``); the host
reaches them at their namespace IP through the bridge.

Faults, per node link: ``link_down(i)``/``link_up(i)`` (the host end of the
veth goes down: no packets either way, no FIN, no RST), ``set_loss(i, p)``
(iptables statistic random drop on the namespace's INPUT and OUTPUT),
``set_rate(i, "2mbit")`` (``tc tbf`` on both ends of the veth) and
``clear_faults(i)``.

Only what the lab made itself is touched: its namespaces, veths and bridge
are named with a random prefix and recorded; ``close()`` (idempotent, also run
at interpreter exit) kills the processes it started (by pid, then any left in
its own namespaces) and deletes every namespace, link and the bridge.
``unavailable()`` says why the lab cannot run here (not root, no ``ip netns``),
for a test's skip message.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any


class NetLabError(Exception):
    """A command that builds or changes the lab failed."""


def _run(*argv: str, check: bool = True, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise NetLabError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def unavailable() -> str | None:
    """Why a lab cannot be built here (a skip message), or None when it can."""
    if os.geteuid() != 0:
        return "network namespace tests need root (ip netns, veth, bridge)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"cnp{secrets.token_hex(3)}"
    try:
        made = _run("ip", "netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` is not allowed here: {made.stderr.strip()}"
        link = _run("ip", "link", "add", f"{probe}b", "type", "bridge", check=False)
        if link.returncode != 0:
            return f"cannot create a bridge here: {link.stderr.strip()}"
        _run("ip", "link", "del", f"{probe}b", check=False)
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


def has_iptables() -> bool:
    return shutil.which("iptables") is not None


def _free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that no route or address on this host covers."""
    used = _run("ip", "-4", "route", "show", "table", "all", check=False).stdout
    used += _run("ip", "-4", "addr", check=False).stdout
    nets = []
    for word in used.split():
        with contextlib.suppress(ValueError):
            if "/" in word or word.count(".") == 3:
                nets.append(ipaddress.ip_network(word, strict=False))
    for _ in range(200):
        net = ipaddress.IPv4Network(f"10.{secrets.randbelow(150) + 100}.{secrets.randbelow(250) + 1}.0/24")
        if not any(net.overlaps(n) for n in nets if n.prefixlen > 0):
            return net
    raise NetLabError("no free 10.x.y.0/24 subnet found")


class NetLab:
    """A bridge plus ``n`` namespaces, each on its own veth with its own address."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.tag = f"cs{secrets.token_hex(2)}"  # names stay under Linux's 15 characters
        self.subnet = _free_subnet()
        hosts = list(self.subnet.hosts())
        self.bridge = f"{self.tag}br"
        self.host_ip = str(hosts[0])
        self.ips = [str(hosts[9 + i]) for i in range(n)]
        self.namespaces = [f"{self.tag}n{i}" for i in range(n)]
        self._made_ns: list[str] = []
        self._made_links: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._closed = False
        atexit.register(self.close)

    # -- building -------------------------------------------------------------------------------

    def veth(self, i: int) -> tuple[str, str]:
        """(host end, namespace end) of node ``i``'s veth pair."""
        return f"{self.tag}h{i}", f"{self.tag}v{i}"

    def create(self) -> NetLab:
        """Build the bridge, namespaces and links; on any failure undo everything and raise."""
        try:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            self._made_links.append(self.bridge)
            _run("ip", "addr", "add", f"{self.host_ip}/{self.subnet.prefixlen}", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for i, ns in enumerate(self.namespaces):
                _run("ip", "netns", "add", ns)
                self._made_ns.append(ns)
                host_end, ns_end = self.veth(i)
                _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
                self._made_links.append(host_end)
                _run("ip", "link", "set", ns_end, "netns", ns)
                _run("ip", "link", "set", host_end, "master", self.bridge)
                _run("ip", "link", "set", host_end, "up")
                self.ns_exec(i, "ip", "link", "set", "lo", "up")
                self.ns_exec(i, "ip", "addr", "add", f"{self.ips[i]}/{self.subnet.prefixlen}", "dev", ns_end)
                self.ns_exec(i, "ip", "link", "set", ns_end, "up")
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> NetLab:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running things inside ---------------------------------------------------------------------

    def ns_exec(self, i: int, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a short command inside node ``i``'s namespace."""
        return _run("ip", "netns", "exec", self.namespaces[i], *argv, check=check)

    def popen(
        self, i: int, argv: Sequence[str], *, log: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process inside node ``i``'s namespace (own session); ``close`` kills it."""
        out: IO[Any] | int = subprocess.DEVNULL
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = open(log, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.namespaces[i], *argv],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env,
            )
        finally:
            if not isinstance(out, int):
                out.close()
        self._procs.append(proc)
        return proc

    # -- faults -------------------------------------------------------------------------------------

    def link_down(self, i: int) -> None:
        """Cut node ``i`` off: its veth's host end goes down (no packets either way, no FIN or RST)."""
        _run("ip", "link", "set", self.veth(i)[0], "down")

    def link_up(self, i: int) -> None:
        _run("ip", "link", "set", self.veth(i)[0], "up")
        _run("ip", "link", "set", self.veth(i)[0], "master", self.bridge)

    def set_loss(self, i: int, probability: float) -> None:
        """Drop ``probability`` of the packets entering and leaving node ``i``'s link (iptables).

        Only the veth is lossy, not the namespace's loopback: a probe run inside the
        namespace (``ns_exec``) reads the node without riding the faulted link.
        """
        if not has_iptables():
            raise NetLabError("iptables is not installed")
        _, ns_end = self.veth(i)
        for chain, direction in (("INPUT", "-i"), ("OUTPUT", "-o")):
            self.ns_exec(i, "iptables", "-A", chain, direction, ns_end, "-m", "statistic", "--mode", "random",
                         "--probability", f"{probability:.4f}", "-j", "DROP")

    def set_rate(self, i: int, rate: str = "2mbit", burst: str = "32kbit", latency: str = "200ms") -> None:
        """Shape both directions of node ``i``'s link with ``tc tbf``."""
        host_end, ns_end = self.veth(i)
        _run("tc", "qdisc", "replace", "dev", host_end, "root", "tbf", "rate", rate, "burst", burst, "latency", latency)
        self.ns_exec(i, "tc", "qdisc", "replace", "dev", ns_end, "root", "tbf", "rate", rate, "burst", burst,
                     "latency", latency)

    def clear_faults(self, i: int) -> None:
        """Undo loss and shaping on node ``i``'s link and bring it up."""
        host_end, ns_end = self.veth(i)
        _run("tc", "qdisc", "del", "dev", host_end, "root", check=False)
        self.ns_exec(i, "tc", "qdisc", "del", "dev", ns_end, "root", check=False)
        if has_iptables():
            for chain in ("INPUT", "OUTPUT"):
                self.ns_exec(i, "iptables", "-F", chain, check=False)
        self.link_up(i)

    # -- teardown -----------------------------------------------------------------------------------

    def stop_processes(self, grace: float = 10.0) -> None:
        """SIGTERM what the lab started, SIGKILL after ``grace`` s, then kill anything left in its namespaces."""
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5.0)
        for ns in self._made_ns:
            pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)

    def close(self) -> None:
        """Kill the lab's processes and delete its namespaces, links and bridge (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop_processes()
        finally:
            for ns in reversed(self._made_ns):
                _run("ip", "netns", "del", ns, check=False)
            for link in reversed(self._made_links):
                _run("ip", "link", "del", link, check=False)
            self._made_ns.clear()
            self._made_links.clear()
            with contextlib.suppress(Exception):
                atexit.unregister(self.close)

    def leftovers(self) -> list[str]:
        """Names of this lab's namespaces and links still present (empty after ``close``)."""
        out = []
        ns_list = _run("ip", "netns", "list", check=False).stdout
        out += [ns for ns in self.namespaces if ns in ns_list.split()]
        links = _run("ip", "-o", "link", "show", check=False).stdout
        out += sorted({w.split("@")[0].rstrip(":") for w in links.split() if w.startswith(self.tag)})
        return out
