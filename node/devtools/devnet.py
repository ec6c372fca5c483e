"""A local devnet: N validator homes sharing one genesis, run as separate processes on 127.0.0.1.

``DIR/devnet.json`` records the chain id and, per node, its home, RPC URL,
p2p multiaddr (with peer id) and the pid of the node process itself. Node i
listens on p2p ``base_port + 10*i`` and RPC ``base_port + 10*i + 1``; every
node bootstraps from node0 and learns the others through peer exchange.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consensus.errors import ConsensusError
from consensus.params import DEVNET, Params
from node.errors import DevnetError
from node.home import NodeHome
from node.init import InitResult, init_home, make_genesis, write_genesis

DEVNET_FILE = "devnet.json"


@dataclass(frozen=True, slots=True)
class DevnetNode:
    name: str
    home: str
    rpc: str
    p2p: str
    pid: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "home": self.home, "rpc": self.rpc, "p2p": self.p2p, "pid": self.pid}


def load_devnet(directory: Path) -> dict[str, Any]:
    path = directory / DEVNET_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DevnetError(f"no devnet in {directory} ({DEVNET_FILE} not found)") from exc
    except ValueError as exc:
        raise DevnetError(f"{path} is not valid JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise DevnetError(f"{path} has no node list")
    return doc


def save_devnet(directory: Path, chain_id: str, nodes: list[DevnetNode]) -> None:
    path = directory / DEVNET_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"chain_id": chain_id, "nodes": [n.to_json() for n in nodes]}, indent=2) + "\n")
    os.replace(tmp, path)


def is_node_process(pid: int, home: str) -> bool:
    """True when ``pid`` is alive and is a node started with ``home`` (never trust a bare pid)."""
    if pid <= 0:
        return False
    for _ in range(100):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        # A child still inside execve() (Popen has just returned) shows an empty cmdline
        # for a moment; only a zombie's stays empty.
        if raw or state == "Z":
            break
        time.sleep(0.01)
    cmdline = raw.split(b"\0")
    return home.encode() in cmdline and b"start" in cmdline


def create_devnet(
    directory: Path,
    n: int,
    base_port: int,
    chain_id: str = "cstake-devnet",
    params: dict[str, int] | None = None,
    compute_units: int | None = None,
) -> tuple[str, list[tuple[str, NodeHome, int, int, str]]]:
    """Create N homes with one genesis; return (chain id, [(name, home, p2p port, rpc port, peer id)]).

    ``compute_units``: what each validator's genesis NFT claims (default ``DEV_COMPUTE_UNITS``).
    """
    if n < 1 or n > 64:
        raise DevnetError("a devnet has between 1 and 64 validators")
    if compute_units is not None and not 1 <= compute_units <= 1_000_000:
        raise DevnetError("compute units must be between 1 and 1000000")
    try:
        Params.from_json(params or {}, base=DEVNET)
    except ConsensusError as exc:
        raise DevnetError(f"genesis params: {exc}") from exc
    directory.mkdir(parents=True, exist_ok=True)
    results: list[InitResult] = []
    rows = []
    first_addr = ""
    for i in range(n):
        name = f"node{i}"
        p2p_port, rpc_port = base_port + 10 * i, base_port + 10 * i + 1
        bootstrap = (first_addr,) if first_addr else ()
        r = init_home(
            directory / name, moniker=name, passphrase=None, p2p_port=p2p_port,
            rpc_port=rpc_port, bootstrap=bootstrap,
        )
        if i == 0:
            first_addr = f"/ip4/127.0.0.1/tcp/{p2p_port}/p2p/{r.peer_id}"
        results.append(r)
        rows.append((name, r.home, p2p_port, rpc_port, r.peer_id))
    units = None if compute_units is None else [compute_units] * n
    doc = make_genesis(chain_id, results, monikers=[r[0] for r in rows], params=params, compute_units=units)
    for _, home, _, _, _ in rows:
        write_genesis(home, doc)
    return chain_id, rows


# --- the docker devnet (docker-compose.yml at the repository root) ------------------------------

DOCKER_SUBNET = "172.28.0.0/24"
"""The compose file's network; node i has the fixed address ``docker_ip(i)``."""
DOCKER_P2P_PORT = 26656
DOCKER_RPC_PORT = 26657
DOCKER_GENESIS = "genesis.json"
"""The chain's genesis, beside the homes, for a node that joins later."""
DOCKER_BOOTSTRAP = "bootstrap.txt"
"""Every validator's multiaddr, comma-separated: a joiner's ``cstake init --bootstrap``."""


def docker_ip(i: int) -> str:
    return f"172.28.0.{10 + i}"


def docker_multiaddr(i: int, peer_id: str) -> str:
    return f"/ip4/{docker_ip(i)}/tcp/{DOCKER_P2P_PORT}/p2p/{peer_id}"


def init_docker_devnet(
    directory: Path, n: int, chain_id: str = "cstake-devnet", *, params: dict[str, int] | None = None,
) -> bool:
    """Write N homes for the compose devnet into ``directory``; False if it already holds them.

    The compose file's one-shot init service runs this (``cstake devnet init
    --docker /devnet``) as the container's user, inside the named volume every
    node mounts, so the keys belong to the user that reads them. Node i is
    ``directory/node{i}``, listening on 0.0.0.0 (p2p 26656, RPC 26657) at
    ``docker_ip(i)``, with every node before it as a bootstrap peer (so the
    mesh is whole without peer exchange, and each link is redialled after a
    partition). The genesis and the bootstrap list are also written beside the
    homes for a validator that joins later. Existing homes are kept: a second
    ``docker compose up`` restarts the same chain.
    """
    if n < 1 or n > 32:
        raise DevnetError("a docker devnet has between 1 and 32 validators")
    if (directory / DOCKER_GENESIS).exists():
        return False
    for i in range(n):
        if (directory / f"node{i}").exists():
            raise DevnetError(f"{directory / f'node{i}'} exists without {DOCKER_GENESIS}: a half-written devnet "
                              "(remove the volume: docker compose down -v)")
    directory.mkdir(parents=True, exist_ok=True)
    results: list[InitResult] = []
    peers: list[str] = []
    for i in range(n):
        r = init_home(
            directory / f"node{i}", moniker=f"node{i}", passphrase=None, p2p_port=DOCKER_P2P_PORT,
            rpc_port=DOCKER_RPC_PORT, bootstrap=tuple(peers), rpc_host="0.0.0.0", p2p_host="0.0.0.0",
        )
        peers.append(docker_multiaddr(i, r.peer_id))
        results.append(r)
    doc = make_genesis(chain_id, results, monikers=[f"node{i}" for i in range(n)], params=params)
    for r in results:
        write_genesis(r.home, doc)
    (directory / DOCKER_BOOTSTRAP).write_text(",".join(peers) + "\n")
    # Written last: its presence says the devnet is complete.
    tmp = directory / (DOCKER_GENESIS + ".tmp")
    tmp.write_text((results[0].home.genesis_file).read_text())
    os.replace(tmp, directory / DOCKER_GENESIS)
    return True


def rpc_call(url: str, method: str, params: Any = None, timeout: float = 2.0) -> Any:
    """One JSON-RPC call with urllib; raise DevnetError on any failure."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            doc = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DevnetError(f"{url}: {exc}") from exc
    if "error" in doc:
        raise DevnetError(f"{url}: {doc['error'].get('message')}")
    return doc.get("result")


def start_node_process(home: Path, byzantine: str | None = None) -> int:
    """Start ``cstake start --home HOME`` as its own process; return its pid."""
    home_s = str(home)
    cmd = [sys.executable, "-m", "node.cli.main", "start", "--home", home_s]
    if byzantine:
        cmd += ["--byzantine", byzantine]
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        out.close()
    return proc.pid


def stop_pids(nodes: list[dict[str, Any]], timeout: float = 15.0) -> list[str]:
    """SIGTERM every live node of the list, wait, SIGKILL what is left; return what was stopped."""
    live = [(n["name"], int(n["pid"]), n["home"]) for n in nodes if is_node_process(int(n.get("pid", 0)), n["home"])]
    for _, pid, _ in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_node_process(pid, home) for _, pid, home in live):
        _reap()
        time.sleep(0.1)
    for _, pid, home in live:
        if is_node_process(pid, home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _reap()
    return [name for name, _, _ in live]


def _reap() -> None:
    """Collect exited children (a foreground devnet is their parent)."""
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
    except ChildProcessError:
        pass


def node_status(node: dict[str, Any]) -> dict[str, Any]:
    """Height, peers and validator flag of one node, or its error."""
    try:
        st = rpc_call(node["rpc"], "status")
        net = rpc_call(node["rpc"], "net_info")
    except DevnetError as exc:
        return {"name": node["name"], "rpc": node["rpc"], "up": False, "error": str(exc)}
    return {
        "name": node["name"],
        "rpc": node["rpc"],
        "up": True,
        "height": st.get("latest_height"),
        "peers": net.get("n_peers"),
        "validator": st.get("validator_address") is not None,
        "catching_up": st.get("catching_up"),
    }
