"""Running a real devnet from tests: free ports, RPC polling, teardown by pid."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_base_port(n: int) -> int:
    """A base port whose base+10*i and base+10*i+1 are free for i < n."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        base -= base % 10
        if base + 10 * n >= 65000 or base < 20000:
            continue
        ok = True
        for i in range(n):
            for port in (base + 10 * i, base + 10 * i + 1):
                with socket.socket() as t:
                    try:
                        t.bind(("127.0.0.1", port))
                    except OSError:
                        ok = False
        if ok:
            return base
    raise RuntimeError("no free port range found")


def cstake(*args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli.main", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"cstake {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def rpc(url: str, method: str, params: Any = None, timeout: float = 5.0) -> Any:
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        doc = json.loads(resp.read())
    if "error" in doc:
        raise RuntimeError(f"{method}: {doc['error']}")
    return doc["result"]


def wait_until(cond: Callable[[], Any], timeout: float, what: str, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_exc})")


class Devnet:
    """A devnet started with `cstake devnet up --detach`, stopped by pid on teardown."""

    def __init__(self, directory: Path, n: int = 4, params: dict[str, int] | None = None,
                 byzantine: list[str] | None = None) -> None:
        self.dir = directory
        self.n = n
        self.params = params
        self.byzantine = byzantine or []
        self.doc: dict[str, Any] = {}
        self.extra_pids: list[int] = []

    def up(self) -> None:
        args = ["devnet", "up", "--validators", str(self.n), "--dir", str(self.dir),
                "--base-port", str(free_base_port(self.n)), "--detach", "--json"]
        if self.params:
            args += ["--params", json.dumps(self.params)]
        for b in self.byzantine:
            args += ["--byzantine", b]
        cstake(*args, timeout=180)
        self.doc = json.loads((self.dir / "devnet.json").read_text())

    def url(self, i: int) -> str:
        return str(self.doc["nodes"][i]["rpc"])

    def home(self, i: int) -> str:
        return str(self.doc["nodes"][i]["home"])

    def pid(self, i: int) -> int:
        return int(json.loads((self.dir / "devnet.json").read_text())["nodes"][i]["pid"])

    def height(self, i: int) -> int:
        return int(rpc(self.url(i), "status")["latest_height"])

    def stop_node(self, i: int, sig: int = signal.SIGTERM) -> None:
        pid = self.pid(i)
        os.kill(pid, sig)
        wait_until(lambda: not _alive(pid), 20, f"node{i} to exit")

    def start_node(self, i: int, *extra: str) -> int:
        """Restart node i with `cstake start` (as its own process); return its pid."""
        logs = Path(self.home(i)) / "logs"
        out = open(logs / "restart.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli.main", "start", "--home", self.home(i), *extra],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        out.close()
        self.extra_pids.append(proc.pid)
        doc = json.loads((self.dir / "devnet.json").read_text())
        doc["nodes"][i]["pid"] = proc.pid
        (self.dir / "devnet.json").write_text(json.dumps(doc))
        return proc.pid

    def down(self) -> None:
        if (self.dir / "devnet.json").exists():
            cstake("devnet", "down", "--dir", str(self.dir), check=False, timeout=60)
        for pid in self.extra_pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"
