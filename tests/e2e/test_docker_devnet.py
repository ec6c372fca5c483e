"""The docker devnet's files: the compose file, the Dockerfile, the homes its init service writes.

``make test-docker`` (tests/docker/run.py) runs the compose devnet for real
where a Docker engine can run; these tests check the files on any machine:
the root ``docker-compose.yml`` names what the README promises (4 nodes
after a one-shot init service, RPC on 127.0.0.1:26657+10*i, healthchecks,
one named volume, the joiner profile), ``docker-compose config`` accepts it
where compose is installed, the homes ``cstake devnet init --docker`` writes
form one chain on the compose network, and the container's exact command runs
as a local process (healthcheck endpoint, clean SIGTERM exit).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from node.devtools.devnet import docker_ip
from tests.kit.devnet import (
    REPO,
    cstake,
    http_get,
    start_node,
    stop_process,
    wait_until,
)
from tests.kit.ports import reserve_ports

COMPOSE = REPO / "docker-compose.yml"


def test_compose_file_runs_four_nodes_after_init_and_a_joiner_profile() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert sorted(services) == ["init", "joiner", "node0", "node1", "node2", "node3"]
    assert "devnet" in doc["volumes"]
    init = services["init"]
    assert init["command"][:6] == ["devnet", "init", "--docker", "/devnet", "--validators", "4"]
    assert init["volumes"] == ["devnet:/devnet"]
    for i in range(4):
        svc = services[f"node{i}"]
        assert svc["image"] == "cstake:dev" and svc["build"]["context"] == "."
        assert svc["build"]["args"]["CSTAKE_BASE_IMAGE"] == "${CSTAKE_BASE_IMAGE:-python:3.11-slim}"
        assert svc["command"] == ["start", "--home", f"/devnet/node{i}"]
        assert svc["ports"] == [f"127.0.0.1:{26657 + 10 * i}:26657"]
        assert svc["networks"]["devnet"]["ipv4_address"] == docker_ip(i)
        assert svc["depends_on"] == {"init": {"condition": "service_completed_successfully"}}
        assert "/health" in " ".join(svc["healthcheck"]["test"])
        assert "profiles" not in svc
    joiner = services["joiner"]
    assert joiner["profiles"] == ["joiner"]
    script = joiner["command"][0]
    for step in ("cstake init", "--genesis /devnet/genesis.json", "--bootstrap", "tx create-validator",
                 "tx register-compute --from-bench", "tx bind-nft"):
        assert step in script, step


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed here "
                    "(make test-docker installs it where it runs as root)")
def test_docker_compose_config_accepts_the_file() -> None:
    proc = subprocess.run(["docker-compose", "-f", str(COMPOSE), "--profile", "joiner", "config", "-q"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_dockerfile_is_multi_stage_non_root_and_small_context() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert stages == ["FROM ${CSTAKE_BASE_IMAGE} AS builder", "FROM ${CSTAKE_BASE_IMAGE}"]
    builder, runtime = text.split("\nFROM ${CSTAKE_BASE_IMAGE}\n")
    assert "libgmp-dev" in builder and "build-essential" in builder
    # The compiler stays in the builder: the runtime stage installs at most libgmp10.
    assert "build-essential" not in runtime and "libgmp-dev" not in runtime
    assert "COPY --from=builder /opt/cstake/venv /opt/cstake/venv" in runtime
    assert "USER cstake" in runtime and "HEALTHCHECK" in runtime and "/health" in runtime
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1:].count("!.venv") == 0 and "*" in ignore


def test_devnet_init_docker_writes_one_chain_for_the_compose_network(tmp_path: Path) -> None:
    out = tmp_path / "devnet"
    first = json.loads(cstake("devnet", "init", "--docker", str(out), "--validators", "4", "--json",
                              "--params", '{"poc_max_n": 128}', timeout=60).stdout)
    assert first["created"] is True
    peers = first["bootstrap"].split(",")
    assert [p.split("/")[2] for p in peers] == [docker_ip(i) for i in range(4)]
    genesis = {(out / f"node{i}" / "genesis.json").read_text() for i in range(4)}
    assert genesis == {(out / "genesis.json").read_text()}, "every node and a joiner share one genesis"
    assert json.loads((out / "genesis.json").read_text())["params"] == {"poc_max_n": 128}
    for i in range(4):
        home = out / f"node{i}"
        for rel in ("config.toml", "keys/account.json", "keys/consensus.json", "keys/node_key"):
            assert (home / rel).exists(), f"node{i}: {rel} missing"
        cfg = tomllib.loads((home / "config.toml").read_text())
        assert cfg["rpc"]["listen"] == "0.0.0.0:26657"
        assert cfg["p2p"]["listen"] == "/ip4/0.0.0.0/tcp/26656"
        # Each node dials every node before it, so the mesh is whole and redialled after a partition.
        assert list(cfg["p2p"].get("bootstrap", [])) == peers[:i]
    # The init service runs on every `up`: a second run keeps the chain.
    again = json.loads(cstake("devnet", "init", "--docker", str(out), "--validators", "4", "--json",
                              timeout=60).stdout)
    assert again["created"] is False and again["bootstrap"] == first["bootstrap"]
    assert (out / "genesis.json").read_text() in genesis


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
