"""The nodes of a scenario: homes, genesis and processes, one node per namespace of a NetLab.

``Cluster.build`` makes a home per node (validators 0..v-1 in genesis, full
nodes after them bootstrapped from every validator), plus a funded load
account in genesis. Nodes run ``cstake start`` inside their namespace as
their own process group (``NetLab.popen`` starts a new session), so a kill,
a pause or a resume reaches the node and its compute workers together.
``close`` resumes paused nodes, unmounts what it mounted and leaves the
processes, namespaces and links to ``NetLab.close``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.crypto import PrivateKey, encode_address
from consensus.hashing import tagged_hash
from node.init import DEV_BALANCE, init_home, make_genesis, write_genesis
from tests.kit.devnet import REPO, TRANSIENT_ERRORS, rpc
from tests.kit.netns import NetLab

P2P_PORT = 26656
RPC_PORT = 26657
CHAIN_ID = "cstake-faults"


def load_key(seed: int) -> PrivateKey:
    """The load account's key: derived from the scenario seed, funded in genesis."""
    return PrivateKey.from_seed(tagged_hash(b"cstake/faults-load", seed.to_bytes(8, "big")))


@dataclass
class ClusterNode:
    """One node: its home, address, process and what the faults did to it."""

    index: int
    home: Path
    ip: str
    validator: bool
    address: str = ""
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    tmpfs: Path | None = None
    """The data dir while it is a tmpfs mount (disk full)."""
    extra_config: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{RPC_PORT}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """The processes of one scenario's nodes on a lab."""

    def __init__(self, lab: NetLab, root: Path, validators: int, full_nodes: int, *,
                 params: dict[str, int], seed: int) -> None:
        self.lab = lab
        self.root = root
        self.params = params
        self.load_key = load_key(seed)
        self.nodes = [ClusterNode(i, root / f"node{i}", lab.ips[i], i < validators)
                      for i in range(validators + full_nodes)]
        self.mounts: list[Path] = []

    # -- homes ----------------------------------------------------------------------------------

    def build(self) -> None:
        """Make every home: keys, config on the node's namespace address, genesis, bootstrap peers."""
        results = []
        for n in self.nodes:
            r = init_home(n.home, moniker=n.name, passphrase=None, p2p_port=P2P_PORT, rpc_port=RPC_PORT,
                          p2p_host=n.ip, rpc_host=n.ip)
            n.address = encode_address(r.address)
            results.append(r)
        vals = [r for r, n in zip(results, self.nodes, strict=True) if n.validator]
        doc = make_genesis(CHAIN_ID, vals, monikers=[n.name for n in self.nodes if n.validator],
                           params=self.params or None)
        doc["accounts"].append({"address": encode_address(self.load_key.address()), "balance": DEV_BALANCE})
        for r, n in zip(results, self.nodes, strict=True):
            write_genesis(r.home, doc)
            # Validators keep each other as persistent peers; a full node dials every validator.
            boot = [f"/ip4/{m.ip}/tcp/{P2P_PORT}/p2p/{rm.peer_id}"
                    for m, rm in zip(self.nodes, results, strict=True) if m.validator and m is not n]
            cfg = r.home.config_file
            text = cfg.read_text()
            if "bootstrap = []" not in text:
                raise RuntimeError(f"{cfg}: no 'bootstrap = []' line to fill (config layout changed)")
            cfg.write_text(text.replace("bootstrap = []", "bootstrap = [" + ", ".join(f'"{b}"' for b in boot)
                                        + "]", 1))
            (n.home / "config.base.toml").write_text(cfg.read_text())

    def set_test_config(self, i: int, values: dict[str, Any]) -> None:
        """Rewrite node ``i``'s config.toml with a ``[test]`` table of ``values`` (none when empty)."""
        n = self.nodes[i]
        text = (n.home / "config.base.toml").read_text()
        if values:
            text += "\n[test]\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())
        (n.home / "config.toml").write_text(text)
        n.extra_config = dict(values)

    # -- processes ------------------------------------------------------------------------------

    def start(self, i: int) -> None:
        n = self.nodes[i]
        if n.is_running():
            raise RuntimeError(f"{n.name} is still running (pid {n.proc.pid if n.proc else '?'})")
        n.proc = self.lab.popen(
            i, [sys.executable, "-m", "node.cli.main", "start", "--home", str(n.home)],
            log=n.home / "logs" / "stdout.log",
            env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                 "PYTHONPATH": str(REPO), "HOME": str(self.root)},
        )
        n.paused = False

    def signal(self, i: int, sig: int) -> None:
        """Send ``sig`` to node ``i``'s process group (the node and its compute workers)."""
        n = self.nodes[i]
        if n.proc is None or n.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(n.proc.pid, sig)

    def kill(self, i: int) -> None:
        """``kill -9`` node ``i`` (and its workers) and reap it."""
        n = self.nodes[i]
        self.signal(i, signal.SIGKILL)
        if n.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                n.proc.wait(10)
        n.paused = False

    def stop(self, i: int, grace: float = 15.0) -> None:
        """SIGTERM node ``i`` (resumed first if paused), SIGKILL after ``grace`` s."""
        n = self.nodes[i]
        if n.paused:
            self.resume(i)
        self.signal(i, signal.SIGTERM)
        if n.proc is not None:
            try:
                n.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill(i)

    def pause(self, i: int) -> None:
        self.signal(i, signal.SIGSTOP)
        self.nodes[i].paused = True

    def resume(self, i: int) -> None:
        self.signal(i, signal.SIGCONT)
        self.nodes[i].paused = False

    # -- reads ----------------------------------------------------------------------------------

    def height(self, i: int, timeout: float = 3.0) -> int | None:
        """Node ``i``'s committed height, or None when it does not answer."""
        try:
            return int(rpc(self.nodes[i].url, "status", timeout=timeout)["latest_height"])
        except TRANSIENT_ERRORS:
            return None

    def block_hash(self, i: int, h: int, timeout: float = 3.0) -> str | None:
        try:
            return str(rpc(self.nodes[i].url, "block", {"height": h, "txs": "hashes"}, timeout=timeout)["hash"])
        except TRANSIENT_ERRORS:
            return None

    def live(self) -> list[int]:
        """Nodes whose process runs and is not paused."""
        return [n.index for n in self.nodes if n.is_running() and not n.paused]

    def wait_answering(self, i: int, timeout: float) -> int | None:
        """Wait until node ``i`` answers status; its height, or None after ``timeout`` s or if it exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.nodes[i].is_running():
                return None
            h = self.height(i)
            if h is not None:
                return h
            time.sleep(0.3)
        return None

    def log_tail(self, i: int, n: int = 2000) -> str:
        path = self.nodes[i].home / "logs" / "stdout.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"

    # -- data directories -----------------------------------------------------------------------

    def mount_tmpfs(self, i: int, margin_kb: int) -> None:
        """Put node ``i``'s (stopped) data dir on a tmpfs only ``margin_kb`` larger than its data."""
        n = self.nodes[i]
        disk = n.home / "data.disk"
        n.data_dir.rename(disk)
        n.data_dir.mkdir()
        used_kb = sum(p.stat().st_size for p in disk.rglob("*") if p.is_file()) // 1024
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={used_kb + margin_kb}k", "tmpfs", str(n.data_dir)],
                       check=True, capture_output=True, timeout=10)
        self.mounts.append(n.data_dir)
        n.tmpfs = n.data_dir
        shutil.copytree(disk, n.data_dir, dirs_exist_ok=True)

    def unmount_tmpfs(self, i: int) -> None:
        """Move node ``i``'s (stopped) tmpfs data back to disk and unmount the tmpfs."""
        n = self.nodes[i]
        if n.tmpfs is None:
            return
        disk = n.home / "data.disk"
        shutil.rmtree(disk)
        shutil.copytree(n.data_dir, disk)
        self._umount(n.data_dir)
        n.data_dir.rmdir()
        disk.rename(n.data_dir)
        n.tmpfs = None

    def _umount(self, path: Path) -> None:
        done = subprocess.run(["umount", str(path)], capture_output=True, timeout=10, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10, check=False)
        if path in self.mounts:
            self.mounts.remove(path)

    def snapshot(self, i: int, name: str) -> Path:
        """Copy node ``i``'s (stopped) data dir to ``name`` beside it."""
        n = self.nodes[i]
        dest = n.home / name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(n.data_dir, dest)
        return dest

    def restore(self, i: int, copy: Path) -> None:
        """Replace node ``i``'s (stopped) data dir by ``copy``."""
        n = self.nodes[i]
        shutil.rmtree(n.data_dir)
        shutil.copytree(copy, n.data_dir)

    # -- teardown -------------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Resume paused nodes, stop every node, unmount every tmpfs; what could not be undone."""
        problems = []
        for n in self.nodes:
            if n.paused:
                self.resume(n.index)
        for n in self.nodes:
            if n.is_running():
                self.stop(n.index, grace=10.0)
        for path in list(self.mounts):
            self._umount(path)
            if path in self.mounts or os.path.ismount(path):
                problems.append(f"mount {path}")
        return problems
