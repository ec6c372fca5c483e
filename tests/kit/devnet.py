"""The devnet kit: real nodes as processes on 127.0.0.1, driven from outside through the CLI and RPC.

Every end-to-end test (tests/e2e/) and every benchmark that runs a devnet uses
this one module; it imports nothing from pytest, so benches can use it too.

- ``Devnet``: N validator homes made by ``cstake devnet up --detach`` in a
  directory, each node a separate process. Single nodes can be stopped
  (SIGTERM), killed (SIGKILL) and started again (``cstake start --home``, its
  byzantine mode kept); ``devnet.json`` is kept true to what runs, so
  ``cstake devnet down`` stops restarted nodes too.
- Ports: one policy, ``tests.kit.ports.reserve_ports``: a block of ports no
  other devnet, test process or outgoing connection can take.
- Waits: ``wait_until`` polls a getter until a predicate holds, with a
  deadline; on timeout it raises ``WaitTimeout`` naming what it waited for, the
  last value seen and the last error.
- Teardown: ``Devnet.destroy`` stops every process the devnet ever had (the
  nodes ``devnet up`` started, nodes it restarted, helper commands from
  ``spawn``, the nodes' compute workers) by its pid, SIGTERM first and SIGKILL
  after a grace period, never by name; a node pid is signalled only while it
  is still a node of this devnet's home, a worker only while its start time
  matches (pids are reused). It raises if anything survives.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from consensus.crypto import compute_address, encode_address
from node.devtools.devnet import is_node_process
from tests.kit.ports import (
    PortBlock,
    reserve_ports,
)

REPO = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "node.cli.main")
T = TypeVar("T")


class E2EError(Exception):
    """A devnet step failed, did not happen in time, or got an unexpected answer."""


class RPCFailure(E2EError):
    """The node answered a JSON-RPC call with an error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class BadAnswer(E2EError):
    """The node answered something that is not a JSON-RPC response object."""


class WaitTimeout(E2EError):
    """A condition did not hold before its deadline."""


class NodeExited(E2EError):
    """A node process that should run has exited."""


#: What a call to a node that is starting, restarting or briefly overloaded may raise:
#: ``wait_until`` counts these as "not yet", benches count them as refused.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    RPCFailure, BadAnswer, OSError, ValueError, http.client.HTTPException,
)


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


# --- processes ------------------------------------------------------------------------------


def cstake(*args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cstake ARGS`` with this repository's code and wait; E2EError on failure when ``check``."""
    proc = subprocess.run(
        [*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, env=_child_env(), check=False,
    )
    if check and proc.returncode != 0:
        raise E2EError(f"cstake {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


def spawn_cstake(*args: str, stdout: Path | None = None, stderr: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``cstake ARGS`` in its own session, output appended to files (or discarded); return it.

    The caller owns the process: stop it with ``stop_process`` (``Devnet.spawn``
    does that at teardown).
    """
    with contextlib.ExitStack() as files:
        out = files.enter_context(open(stdout, "ab")) if stdout else subprocess.DEVNULL
        if stderr is None:
            err: Any = subprocess.DEVNULL
        elif stderr == stdout:
            err = subprocess.STDOUT
        else:
            err = files.enter_context(open(stderr, "ab"))
        # The child keeps its own copies of the descriptors; ours close on leaving.
        return subprocess.Popen(
            [*CLI, *args], cwd=REPO, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            start_new_session=True, env=_child_env(),
        )


def start_node(home: Path, *extra: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``cstake start --home HOME EXTRA`` as its own process, output appended to ``log``.

    ``log`` defaults to ``HOME/logs/stdout.log``, where ``devnet up`` sends it.
    """
    log = log if log is not None else home / "logs" / "stdout.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return spawn_cstake("start", "--home", str(home), *extra, stdout=log, stderr=log)


def _read_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, ...), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is parenthesised and may hold spaces: split after its closing parenthesis.
    return stat.rsplit(")", 1)[1].split()


def is_running(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    fields = _read_stat(pid)
    return fields is not None and fields[0] != "Z"


@dataclass(frozen=True, slots=True)
class ProcessId:
    """A process by pid and start time, so a reused pid is never mistaken for it."""

    pid: int
    start: int
    """Start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        fields = _read_stat(pid)
        return None if fields is None else cls(pid, int(fields[19]))

    def is_alive(self) -> bool:
        fields = _read_stat(self.pid)
        return fields is not None and fields[0] != "Z" and int(fields[19]) == self.start


def get_descendants(pid: int) -> list[ProcessId]:
    """Every live process below ``pid`` (children, their children, ...): a node's compute workers."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _read_stat(int(entry.name))
            if fields is not None and fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[ProcessId] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        ident = ProcessId.of(child)
        if ident is not None:
            found.append(ident)
        todo += children.get(child, [])
    return found


def kill_stragglers(procs: Iterable[ProcessId], grace: float = 5.0) -> list[int]:
    """Wait up to ``grace`` s for ``procs`` to exit, SIGKILL (by pid) what is left; return what survives that."""
    procs = list(procs)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.is_alive() for p in procs):
        time.sleep(0.1)
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(p.is_alive() for p in procs):
        time.sleep(0.05)
    return [p.pid for p in procs if p.is_alive()]


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


def stop_process(proc: subprocess.Popen[Any], *, sig: int = signal.SIGTERM, grace: float = 10.0) -> int:
    """Send ``sig`` to a child by its pid, SIGKILL it after ``grace`` s; reap it and return its exit code.

    Processes it started itself (a node's compute workers) get a few seconds to
    follow it, then SIGKILL by pid.
    """
    below = get_descendants(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    code = proc.wait(timeout=30)
    left = kill_stragglers(below)
    if left:
        raise E2EError(f"processes {left} started by pid {proc.pid} survived SIGKILL")
    return code


# --- waits ----------------------------------------------------------------------------------


def wait_until(
    get: Callable[[], T], timeout: float, what: str, *,
    until: Callable[[T], object] = bool, interval: float = 0.2,
) -> T:
    """Call ``get`` every ``interval`` s until ``until(value)`` holds; return that value.

    A call raising one of ``TRANSIENT_ERRORS`` counts as "not yet" (a node may be
    restarting). After ``timeout`` s raise WaitTimeout naming ``what``, the last value
    and the last error.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    last: Any = "(no answer)"
    while True:
        try:
            value = get()
        except TRANSIENT_ERRORS as exc:
            last_error = exc
        else:
            if until(value):
                return value
            last = value
        if time.monotonic() >= deadline:
            seen = repr(last)
            seen = seen if len(seen) <= 500 else seen[:500] + "..."
            detail = f"; last error: {last_error}" if last_error is not None else ""
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}; last value {seen}{detail}")
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
        raise BadAnswer(f"{method}: the node answered {doc!r}, not a JSON-RPC response object")
    return doc


def rpc(url: str, method: str, params: Any = None, *, timeout: float = 10.0) -> Any:
    """One JSON-RPC call; return its result or raise RPCFailure."""
    doc = rpc_raw(url, method, params, timeout=timeout)
    if "error" in doc:
        err = doc["error"]
        raise RPCFailure(method, int(err["code"]), str(err["message"]), err.get("data"))
    return doc["result"]


def http_get(url: str, path: str, *, timeout: float = 10.0) -> tuple[int, str]:
    """GET ``url + path``; return (HTTP status, body text)."""
    try:
        with urllib.request.urlopen(url + path, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def height(url: str) -> int:
    """The node's latest committed height."""
    return int(rpc(url, "status", timeout=5.0)["latest_height"])


def block(url: str, h: int, *, txs: str = "hashes") -> dict[str, Any]:
    """Block ``h`` as the node serves it (transactions as hashes unless ``txs`` says otherwise)."""
    return dict(rpc(url, "block", {"height": h, "txs": txs}))


def wait_height(url: str, target: int, timeout: float) -> int:
    """Wait until the node at ``url`` has committed ``target``; return its height."""
    return wait_until(lambda: height(url), timeout, f"{url} to reach height {target}",
                      until=lambda h: h >= target)


# --- a devnet -------------------------------------------------------------------------------


@dataclass
class Node:
    """One node of a devnet, as ``devnet.json`` records it (``pid`` follows restarts)."""

    name: str
    home: Path
    url: str
    """The RPC base URL, ``http://127.0.0.1:PORT``."""
    p2p: str
    """The node's multiaddr, with its peer id."""
    pid: int

    @property
    def rpc_port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log_path(self, file: str = "node.log") -> Path:
        """A file of the node's log directory: ``node.log`` (its JSON log) or ``stdout.log``."""
        return self.home / "logs" / file


NodeRef = str | int | Node


class Devnet:
    """A devnet of ``validators`` nodes made by ``cstake devnet up --detach`` in ``directory``.

    ``up`` reserves ports and starts it; ``destroy`` (or leaving a ``with``
    block) stops every process it started, by pid. Nodes are named by name
    (``"node2"``), index (``2``) or ``Node``.
    """

    def __init__(
        self, directory: Path, validators: int = 4, *,
        params: dict[str, int] | None = None, byzantine: dict[str, str] | None = None,
        compute_units: int | None = None,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.validators = validators
        self.params = params
        #: What each genesis compute NFT claims (``devnet up --compute-units``; None: the default).
        self.compute_units = compute_units
        #: node name -> test-only misbehaviour (``--byzantine NODE=MODE``), kept across restarts.
        self.byzantine = dict(byzantine or {})
        self.chain_id = ""
        self.nodes: list[Node] = []
        self.ports: PortBlock | None = None
        #: Every node pid this devnet ever had, with its home: what teardown may signal.
        self._pids: set[tuple[int, str]] = set()
        #: Processes the kit started itself (restarted nodes, spawned commands), reaped at teardown.
        self._children: list[subprocess.Popen[bytes]] = []
        #: Children of nodes the test stopped (compute workers), killed at teardown if still there.
        self._strays: set[ProcessId] = set()

    # -- start and stop the whole devnet -------------------------------------------------------

    def up(self, *, timeout: float = 180.0) -> None:
        """Reserve ports and run ``cstake devnet up --detach``: every node answers RPC on return."""
        if self.ports is None:
            self.ports = reserve_ports(self.validators)
        args = ["devnet", "up", "--validators", str(self.validators), "--dir", str(self.directory),
                "--base-port", str(self.ports.base), "--detach", "--json"]
        if self.params:
            args += ["--params", json.dumps(self.params)]
        if self.compute_units is not None:
            args += ["--compute-units", str(self.compute_units)]
        for name, mode in self.byzantine.items():
            args += ["--byzantine", f"{name}={mode}"]
        try:
            cstake(*args, timeout=timeout)
        finally:
            # Record whatever was started, even if `up` failed half-way, so teardown finds it.
            with contextlib.suppress(OSError, ValueError, KeyError):
                self.reload()

    def reload(self) -> None:
        """Read ``devnet.json`` again (chain id, nodes and their pids)."""
        doc = json.loads((self.directory / "devnet.json").read_text())
        self.chain_id = str(doc["chain_id"])
        self.nodes = [Node(n["name"], Path(n["home"]), n["rpc"], n["p2p"], int(n["pid"])) for n in doc["nodes"]]
        self._pids |= {(n.pid, str(n.home)) for n in self.nodes}

    def down(self) -> subprocess.CompletedProcess[str]:
        """``cstake devnet down --json`` (the CLI's own stop, by the pids in devnet.json)."""
        return cstake("devnet", "down", "--dir", str(self.directory), "--json", timeout=60, check=False)

    def destroy(self, *, grace: float = 15.0) -> None:
        """Stop every process this devnet started, by pid: SIGTERM, SIGKILL after ``grace`` s.

        Spawned commands go first, then every node pid ever recorded that is
        still a node of its home, then the nodes' own children (compute
        workers). Releases the ports; raises E2EError if a process survives.
        """
        try:
            survivors: list[int] = []
            for proc in self._children:
                if not self._is_node_child(proc):
                    try:
                        stop_process(proc, grace=5.0)
                    except E2EError:
                        survivors.append(proc.pid)
            live = [(pid, home) for pid, home in sorted(self._pids) if self._alive(pid, home)]
            below = {d for pid, _ in live for d in get_descendants(pid)} | self._strays
            for pid, _ in live:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(self._alive(pid, home) for pid, home in live):
                time.sleep(0.1)
            for pid, home in live:
                if self._alive(pid, home):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(self._alive(pid, home) for pid, home in live):
                time.sleep(0.1)
            for proc in self._children:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)
            survivors += [pid for pid, home in live if self._alive(pid, home)]
            survivors += kill_stragglers(below)
            if survivors:
                raise E2EError(f"devnet in {self.directory}: processes {survivors} survived SIGKILL")
        finally:
            if self.ports is not None:
                self.ports.release()

    def __enter__(self) -> Devnet:
        try:
            self.up()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.destroy()

    # -- nodes ---------------------------------------------------------------------------------

    def node(self, ref: NodeRef) -> Node:
        """The node named ``ref`` (``"node1"``), at index ``ref``, or ``ref`` itself."""
        if isinstance(ref, Node):
            return ref
        if isinstance(ref, int):
            return self.nodes[ref]
        for n in self.nodes:
            if n.name == ref:
                return n
        raise E2EError(f"no node {ref!r} in the devnet ({', '.join(n.name for n in self.nodes)})")

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def address_of(self, ref: NodeRef) -> str:
        """The node's account (and validator) address, from its keystore's public key (no CLI start-up)."""
        doc = json.loads((self.node(ref).home / "keys" / "account.json").read_text())
        return encode_address(compute_address(bytes.fromhex(doc["pubkey"].removeprefix("0x"))))

    def log(self, ref: NodeRef, file: str = "node.log") -> str:
        """The text of one of the node's log files (``node.log`` or ``stdout.log``)."""
        return self.node(ref).log_path(file).read_text(errors="replace")

    # -- single processes ----------------------------------------------------------------------

    def is_running(self, ref: NodeRef) -> bool:
        """Whether the node's recorded process is alive and still that node."""
        node = self.node(ref)
        return self._alive(node.pid, str(node.home))

    def stop(self, ref: NodeRef, *, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Send ``sig`` to the node's process (by pid) and wait until it has exited."""
        node = self.node(ref)
        if not self._alive(node.pid, str(node.home)):
            raise NodeExited(f"{node.name} (pid {node.pid}) is not running")
        self._strays |= set(get_descendants(node.pid))
        os.kill(node.pid, sig)
        wait_until(lambda: self._alive(node.pid, str(node.home)), timeout,
                   f"{node.name} (pid {node.pid}) to exit after signal {signal.Signals(sig).name}",
                   until=lambda alive: not alive, interval=0.1)

    def kill(self, ref: NodeRef) -> None:
        """``kill -9`` the node's process and wait until it is gone."""
        self.stop(ref, sig=signal.SIGKILL, timeout=10.0)

    def start(self, ref: NodeRef, *extra: str) -> Node:
        """Start a stopped node again with ``cstake start --home`` (its byzantine mode kept).

        Output is appended to ``logs/stdout.log``; the new pid is recorded here
        and in ``devnet.json``. Returns at once: wait for it with ``wait_ready``.
        """
        node = self.node(ref)
        if self.is_running(node):
            raise E2EError(f"{node.name} is still running (pid {node.pid})")
        mode = self.byzantine.get(node.name)
        args = [*extra, *(["--byzantine", mode] if mode else [])]
        proc = start_node(node.home, *args)
        self._children.append(proc)
        node.pid = proc.pid
        self._pids.add((proc.pid, str(node.home)))
        # Keep devnet.json true to what runs, so `cstake devnet down` stops the new process.
        path = self.directory / "devnet.json"
        doc = json.loads(path.read_text())
        for entry in doc["nodes"]:
            if entry["name"] == node.name:
                entry["pid"] = proc.pid
        path.write_text(json.dumps(doc, indent=2) + "\n")
        return node

    def restart(self, ref: NodeRef, *, sig: int = signal.SIGTERM, timeout: float = 60.0) -> Node:
        """Stop the node with ``sig``, start it again and wait until it answers RPC."""
        self.stop(ref, sig=sig)
        node = self.start(ref)
        self.wait_ready(node, timeout=timeout)
        return node

    def wait_ready(self, ref: NodeRef, *, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the node answers ``status``; return it. NodeExited at once if its process is gone."""
        node = self.node(ref)

        def status() -> Any:
            if not self.is_running(node):
                raise NodeExited(f"{node.name} (pid {node.pid}) exited; last output: "
                                 f"{self.log(node, 'stdout.log')[-2000:]}")
            return rpc(node.url, "status", timeout=5.0)

        return dict(wait_until(status, timeout, f"{node.name} to answer RPC"))

    def spawn(self, *args: str, stdout: Path | None = None, stderr: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``cstake ARGS`` (a load generator, say); teardown stops it if it still runs."""
        proc = spawn_cstake(*args, stdout=stdout, stderr=stderr)
        self._children.append(proc)
        return proc

    def _alive(self, pid: int, home: str) -> bool:
        for proc in self._children:
            if proc.pid == pid:
                proc.poll()  # reap it if it exited, or it stays a zombie
        return is_running(pid) and is_node_process(pid, home)

    def _is_node_child(self, proc: subprocess.Popen[bytes]) -> bool:
        return any(pid == proc.pid for pid, _ in self._pids)

    # -- RPC -----------------------------------------------------------------------------------

    def rpc(self, ref: NodeRef, method: str, params: Any = None, *, timeout: float = 10.0) -> Any:
        """One JSON-RPC call to the node; its result, or RPCFailure."""
        return rpc(self.node(ref).url, method, params, timeout=timeout)

    def height(self, ref: NodeRef) -> int:
        return height(self.node(ref).url)

    def heights(self, nodes: Iterable[NodeRef] | None = None) -> dict[str, int]:
        """Latest height per node name (all nodes unless ``nodes``)."""
        chosen = [self.node(r) for r in nodes] if nodes is not None else self.nodes
        return {n.name: height(n.url) for n in chosen}

    def block(self, ref: NodeRef, h: int, *, txs: str = "hashes") -> dict[str, Any]:
        return block(self.node(ref).url, h, txs=txs)

    def block_hashes(self, ref: NodeRef, top: int) -> list[str]:
        """The hashes of heights 1..top on the node."""
        url = self.node(ref).url
        return [block(url, h)["hash"] for h in range(1, top + 1)]

    def wait_height(self, ref: NodeRef, target: int, timeout: float) -> int:
        return wait_height(self.node(ref).url, target, timeout)

    def wait_all_at(self, target: int, timeout: float, nodes: Iterable[NodeRef] | None = None) -> None:
        """Wait until every node (or every one of ``nodes``) has committed ``target``, within ``timeout`` s in all."""
        deadline = time.monotonic() + timeout
        for n in [self.node(r) for r in nodes] if nodes is not None else self.nodes:
            wait_height(n.url, target, max(0.0, deadline - time.monotonic()))



#: The type of tests/e2e's ``make_devnet`` fixture: ``make(validators=4, *, params=None, byzantine=None)``.
MakeDevnet = Callable[..., Devnet]
