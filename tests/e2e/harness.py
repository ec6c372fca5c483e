"""Drive real devnets from outside: the ``cstake`` CLI as a subprocess and JSON-RPC over HTTP.

Everything here talks to the nodes the way an operator or a script would
(command line, RPC, /health, /metrics); nothing reaches into a node's memory.
Ports are picked free on 127.0.0.1, waits are bounded polls, and
``Devnet.destroy`` stops every process the devnet started (by pid, never by
name), including nodes the test restarted itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from consensus.crypto import compute_address, encode_address

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "node.cli.main"]
T = TypeVar("T")


class E2EError(Exception):
    """A devnet step did not happen in time or answered something unexpected."""


class RPCFailure(Exception):
    """The node answered a JSON-RPC call with an error object."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.code = code
        self.message = message


# --- processes ------------------------------------------------------------------------------


def cstake(*args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cstake ARGS`` with this repository's code; raise E2EError on failure when ``check``."""
    proc = subprocess.run(
        [*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False,
    )
    if check and proc.returncode != 0:
        raise E2EError(f"cstake {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


def is_running(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (to check nothing was left behind)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes() and is_running(int(entry.name)):
                found.append(int(entry.name))
    return found


def free_base_port(n_nodes: int) -> int:
    """A base port P such that P + 10*i and P + 10*i + 1 are free on 127.0.0.1 for every node.

    Bases are drawn below the Linux ephemeral range (32768+), so outgoing
    connections made meanwhile cannot take them.
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 32_000 - 10 * n_nodes, 10)
        ports = [base + 10 * i + k for i in range(n_nodes) for k in (0, 1)]
        if all(_port_free(p) for p in ports):
            return base
    raise E2EError("found no free block of ports for a devnet")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(fn: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``fn`` until it returns a truthy value (returned); E2EError after ``timeout`` s.

    Exceptions from ``fn`` count as "not yet" (a node may be restarting); the
    last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except (RPCFailure, OSError, ValueError, E2EError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc})" if last_exc is not None else ""
            raise E2EError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)


# --- RPC ------------------------------------------------------------------------------------


def post(url: str, body: bytes, *, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    """POST a raw body; return (HTTP status, decoded JSON body or None for an empty one)."""
    req = urllib.request.Request(
        url + "/", data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    return status, (json.loads(text) if text else None)


def rpc_raw(url: str, method: str, params: Any = None, *, timeout: float = 10.0) -> dict[str, Any]:
    """One JSON-RPC call; return the whole response object."""
    call: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        call["params"] = params
    _, doc = post(url, json.dumps(call).encode(), timeout=timeout)
    if not isinstance(doc, dict):
        raise E2EError(f"{method}: the node answered {doc!r}, not a JSON-RPC response object")
    return doc


def rpc(url: str, method: str, params: Any = None, *, timeout: float = 10.0) -> Any:
    """One JSON-RPC call; return its result or raise RPCFailure."""
    doc = rpc_raw(url, method, params, timeout=timeout)
    if "error" in doc:
        raise RPCFailure(method, int(doc["error"]["code"]), str(doc["error"]["message"]))
    return doc["result"]


def http_get(url: str, path: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url + path, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def height(url: str) -> int:
    return int(rpc(url, "status", timeout=5.0)["latest_height"])


def block(url: str, h: int, *, txs: str = "hashes") -> dict[str, Any]:
    return dict(rpc(url, "block", {"height": h, "txs": txs}))


def wait_height(url: str, target: int, timeout: float) -> int:
    """Wait until the node at ``url`` has committed ``target``; return its height."""
    return wait_for(lambda: (h if (h := height(url)) >= target else None), timeout,
                    f"{url} to reach height {target}")


# --- a devnet -------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    home: str
    rpc: str
    pid: int


@dataclass
class Devnet:
    """A devnet made by ``cstake devnet up --detach`` in ``directory``."""

    directory: Path
    nodes: list[Node] = field(default_factory=list)
    chain_id: str = ""
    #: Every node pid this devnet ever had (restarts included), for the last-resort kill.
    all_pids: set[int] = field(default_factory=set)
    #: Processes a test started itself (``cstake start``), waited on at teardown.
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, n: int = 4, *, timeout: float = 120.0) -> None:
        """``cstake devnet up --detach`` with ``n`` validators on free ports."""
        base = free_base_port(n)
        try:
            cstake("devnet", "up", "--validators", str(n), "--dir", str(self.directory),
                   "--base-port", str(base), "--detach", "--json", timeout=timeout)
        finally:
            # Record whatever was started, even if `up` failed half-way, so teardown finds it.
            with contextlib.suppress(OSError, ValueError, KeyError):
                self.reload()

    def reload(self) -> None:
        doc = json.loads((self.directory / "devnet.json").read_text())
        self.chain_id = doc["chain_id"]
        self.nodes = [Node(n["name"], n["home"], n["rpc"], int(n["pid"])) for n in doc["nodes"]]
        self.all_pids |= {n.pid for n in self.nodes}

    @property
    def urls(self) -> list[str]:
        return [n.rpc for n in self.nodes]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def heights(self, nodes: list[Node] | None = None) -> dict[str, int]:
        return {n.name: height(n.rpc) for n in (nodes or self.nodes)}

    def wait_all_at(self, target: int, timeout: float, nodes: list[Node] | None = None) -> None:
        for n in nodes or self.nodes:
            wait_height(n.rpc, target, timeout)

    def address_of(self, name: str) -> str:
        """The node's account address, from the public key its keystore records (no CLI start-up)."""
        doc = json.loads((Path(self.node(name).home) / "keys" / "account.json").read_text())
        return encode_address(compute_address(bytes.fromhex(doc["pubkey"].removeprefix("0x"))))

    # -- a node restarted by the test ----------------------------------------------------------

    def sigkill(self, name: str) -> None:
        node = self.node(name)
        os.kill(node.pid, signal.SIGKILL)
        wait_for(lambda: not is_running(node.pid), 10, f"{name} (pid {node.pid}) to die")
        self._reap_children()

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``cstake start --home`` for a stopped node; record its pid in devnet.json too."""
        node = self.node(name)
        log = open(Path(node.home) / "logs" / "restart.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [*CLI, "start", "--home", node.home], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()
        self.children.append(proc)
        node.pid = proc.pid
        self.all_pids.add(proc.pid)
        # Keep devnet.json true to what runs, so `cstake devnet down` stops the new process.
        path = self.directory / "devnet.json"
        doc = json.loads(path.read_text())
        for entry in doc["nodes"]:
            if entry["name"] == name:
                entry["pid"] = proc.pid
        path.write_text(json.dumps(doc, indent=2) + "\n")
        return proc

    def _reap_children(self) -> None:
        for proc in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0)

    # -- teardown ------------------------------------------------------------------------------

    def down(self) -> subprocess.CompletedProcess[str]:
        return cstake("devnet", "down", "--dir", str(self.directory), "--json", timeout=60, check=False)

    def destroy(self) -> None:
        """Stop everything: ``devnet down``, then SIGKILL any recorded pid still a node of ours."""
        if (self.directory / "devnet.json").exists():
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                self.down()
        for pid in sorted(self.all_pids):
            if pid > 0 and is_running(pid) and self._is_ours(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for proc in self.children:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def _is_ours(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return (str(self.directory) + "/").encode() in cmdline
