"""The docker devnet: the compose file parses and references what exists; the container command runs.

No Docker engine runs on these machines, so the container itself is not
started. Instead the test runs the exact command and home a container would
use as a local process (ports moved to a block reserved on 127.0.0.1 by the
devnet kit), checks the healthcheck endpoint, and stops it with SIGTERM as
Docker would.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.kit.devnet import (
    REPO,
    cstake,
    http_get,
    start_node,
    stop_process,
    wait_until,
)
from tests.kit.ports import reserve_ports


def test_compose_file_references_existing_files(tmp_path: Path) -> None:
    out = tmp_path / "dk"
    proc = cstake("devnet", "init", "--docker", str(out), "--validators", "3", "--json", timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    compose_path = Path(json.loads(proc.stdout)["compose"])
    doc = yaml.safe_load(compose_path.read_text())
    services = doc["services"]
    assert sorted(services) == ["node0", "node1", "node2"]
    dockerfile = REPO / "Dockerfile"
    assert dockerfile.exists()
    docker_text = dockerfile.read_text()
    assert "USER cstake" in docker_text and "HEALTHCHECK" in docker_text and "/health" in docker_text
    for name, svc in services.items():
        context = (compose_path.parent / svc["build"]["context"]).resolve()
        assert context == REPO
        assert (context / svc["build"]["dockerfile"]).exists()
        assert svc["command"] == ["start", "--home", "/home/cstake/node"]
        host_dir, _, mount = svc["volumes"][0].partition(":")
        home = (compose_path.parent / host_dir).resolve()
        assert mount == "/home/cstake/node"
        for rel in ("config.toml", "genesis.json", "keys/account.json", "keys/consensus.json", "keys/node_key"):
            assert (home / rel).exists(), f"{name}: {rel} missing"
        cfg = tomllib.loads((home / "config.toml").read_text())
        assert cfg["rpc"]["listen"] == "0.0.0.0:26657"
        if name != "node0":
            assert cfg["p2p"]["bootstrap"][0].startswith("/ip4/172.28.0.10/tcp/26656/p2p/")
    genesis = {(out / n / "genesis.json").read_text() for n in services}
    assert len(genesis) == 1, "every container shares one genesis"


@pytest.mark.multiprocess
def test_container_command_runs_as_a_process_and_stops_on_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "dk"
    cstake("devnet", "init", "--docker", str(out), "--validators", "1", timeout=60)
    home = tmp_path / "home"
    shutil.copytree(out / "node0", home)
    ports = reserve_ports(1)
    rpc_port, p2p_port = ports.rpc_port(0), ports.p2p_port(0)
    cfg = (home / "config.toml").read_text()
    cfg = cfg.replace('listen = "0.0.0.0:26657"', f'listen = "127.0.0.1:{rpc_port}"')
    cfg = cfg.replace('listen = "/ip4/0.0.0.0/tcp/26656"', f'listen = "/ip4/127.0.0.1/tcp/{p2p_port}"')
    (home / "config.toml").write_text(cfg)
    # The container's command line, with the home where the volume would be mounted.
    proc = start_node(home)
    try:
        status, _ = wait_until(lambda: http_get(f"http://127.0.0.1:{rpc_port}", "/health", timeout=2), 60,
                               "the healthcheck endpoint to answer 200", until=lambda answer: answer[0] == 200)
        assert status == 200
        assert proc.poll() is None, "the node exited"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        assert code == 0
        assert time.monotonic() - started < 10
    finally:
        stop_process(proc, sig=signal.SIGKILL)
        ports.release()
