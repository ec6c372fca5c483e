"""A 4-validator devnet from ``cstake devnet up --detach`` to ``cstake devnet down``.

The checks on a devnet use the one shared with other modules
(tests/e2e/conftest.py); the check that takes it down runs after the others.
Checks: blocks are committed with identical hashes on every node, a
``cstake tx send --wait`` lands on every node, standard JSON-RPC errors,
/health and /metrics, a second ``cstake start`` on a running home is refused,
and ``devnet down`` leaves no process behind.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from consensus.crypto import PrivateKey, encode_address
from tests.kit.devnet import (
    Devnet,
    block,
    cstake,
    height,
    http_get,
    is_running,
    pids_mentioning,
    post,
    rpc,
    rpc_raw,
    wait_height,
    wait_until,
)

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


def test_blocks_are_committed_with_identical_hashes_on_every_node(shared_devnet: Devnet) -> None:
    start = max(shared_devnet.heights().values())
    shared_devnet.wait_all_at(start + 3, timeout=60)
    top = min(shared_devnet.heights().values())
    assert top >= 3
    # The nodes listen where the kit reserved their ports.
    assert shared_devnet.ports is not None
    assert [n.rpc_port for n in shared_devnet.nodes] == [shared_devnet.ports.rpc_port(i) for i in range(4)]
    assert [n.p2p.split("/tcp/")[1].split("/")[0] for n in shared_devnet.nodes] == [
        str(shared_devnet.ports.p2p_port(i)) for i in range(4)
    ]
    hashes = {n.name: shared_devnet.block_hashes(n, top) for n in shared_devnet.nodes}
    reference = hashes["node0"]
    for name, chain in hashes.items():
        assert chain == reference, f"{name} disagrees with node0 on some height in 1..{top}"
    # The hashes form one chain: each header names its parent's hash.
    for h in range(2, top + 1):
        assert block(shared_devnet.nodes[0].url, h)["header"]["parent_hash"] == reference[h - 2]
    for n in shared_devnet.nodes:
        st = rpc(n.url, "status")
        assert st["chain_id"] == shared_devnet.chain_id
        assert st["validator_address"] is not None, f"{n.name} is not a validator"
    vals = rpc(shared_devnet.nodes[0].url, "validators")["validators"]
    assert sorted(v["address"] for v in vals) == sorted(shared_devnet.address_of(n.name) for n in shared_devnet.nodes)
    shown = json.loads(cstake("keys", "show", "--home", str(shared_devnet.node("node2").home), "--json").stdout)
    assert shown["address"] == shared_devnet.address_of("node2")
    assert shown["address"] == rpc(shared_devnet.node("node2").url, "status")["validator_address"]
    status = cstake("devnet", "status", "--dir", str(shared_devnet.directory), "--json")
    rows = json.loads(status.stdout)["nodes"]
    assert [r["up"] for r in rows] == [True] * 4
    assert all(r["peers"] >= 1 and r["validator"] for r in rows)


def test_tx_send_wait_lands_on_every_node(shared_devnet: Devnet) -> None:
    recipient = encode_address(PrivateKey.generate().address())
    sender = shared_devnet.address_of("node0")
    out = cstake("tx", "send", recipient, "12345", "--home", str(shared_devnet.node("node0").home), "--wait", "--json",
                 timeout=90)
    sent = json.loads(out.stdout)
    assert sent["code"] == 0, sent
    included = int(sent["height"])
    tx_hash = sent["hash"]
    for n in shared_devnet.nodes:
        wait_height(n.url, included, timeout=30)
        found = rpc(n.url, "tx", {"hash": tx_hash})
        assert (found["height"], found["index"], found["result"]["code"]) == (included, sent["index"], 0)
        assert found["tx"]["sender"] == sender
        assert tx_hash in block(n.url, included)["txs"]
        assert rpc(n.url, "account", {"address": recipient})["balance"] == 12345
    assert len({block(n.url, included)["hash"] for n in shared_devnet.nodes}) == 1


def test_malformed_json_is_a_parse_error_and_unknown_method_is_not_found(shared_devnet: Devnet) -> None:
    for n in shared_devnet.nodes:
        _, doc = post(n.url, b'{"jsonrpc": "2.0", "id": 1, "method": ')
        assert doc["error"]["code"] == -32700
        assert doc["id"] is None
        doc = rpc_raw(n.url, "no_such_method")
        assert doc["error"]["code"] == -32601
        assert doc["id"] == 1
        assert "no_such_method" in doc["error"]["message"]


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match is not None, f"metric {name}{labels} missing"
    return float(match.group(1))


def test_health_and_metrics_answer(shared_devnet: Devnet) -> None:
    for n in shared_devnet.nodes:
        status, body = http_get(n.url, "/health")
        assert status == 200
        doc = json.loads(body)
        assert doc["status"] == "ok" and doc["height"] >= 1
        status, before = http_get(n.url, "/metrics")
        assert status == 200
        assert _metric(before, "cstake_height") >= 1
        assert _metric(before, "cstake_commit_duration_seconds_count") >= 1
        assert _metric(before, "cstake_peers") >= 1
        assert _metric(before, "cstake_validators") == 4
        errors = _errors_601(before)
        rpc_raw(n.url, "no_such_method")
        _, after = http_get(n.url, "/metrics")
        assert _errors_601(after) == errors + 1


def _errors_601(text: str) -> float:
    match = re.search(r'^cstake_rpc_errors_total\{code="-32601"\} ([0-9.e+-]+)$', text, re.MULTILINE)
    return 0.0 if match is None else float(match.group(1))


def test_second_start_on_a_running_home_is_refused(shared_devnet: Devnet) -> None:
    node = shared_devnet.node("node1")
    proc = cstake("start", "--home", str(node.home), timeout=60, check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == errors[0]
    assert "lock" in errors[0] and "another node" in errors[0], errors[0]
    # The node that holds the home is untouched and keeps committing.
    assert is_running(node.pid)
    wait_height(node.url, height(node.url) + 2, timeout=30)


def test_refused_start_does_not_write_into_the_running_nodes_log(shared_devnet: Devnet) -> None:
    node = shared_devnet.node("node3")
    log_file = node.log_path("node.log")
    before = log_file.read_text().count("node stopped")
    proc = cstake("start", "--home", str(node.home), timeout=60, check=False)
    assert proc.returncode != 0
    wait_height(node.url, height(node.url) + 1, timeout=30)
    # The refused process never ran a node, so the running node's log must not say it stopped.
    assert log_file.read_text().count("node stopped") == before, (
        "the refused `cstake start` logged 'node stopped' into the running node's log"
    )


def test_devnet_down_leaves_no_process(shared_devnet_to_end: Devnet) -> None:
    devnet = shared_devnet_to_end
    pids = [n.pid for n in devnet.nodes]
    assert all(is_running(pid) for pid in pids)
    assert len(pids_mentioning(str(devnet.directory) + "/")) >= 4
    proc = devnet.down()
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)["stopped"]) == ["node0", "node1", "node2", "node3"]
    wait_until(lambda: any(is_running(pid) for pid in pids), 10, "every node process to exit",
               until=lambda alive: not alive)
    assert pids_mentioning(str(devnet.directory) + "/") == []
    for n in devnet.nodes:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", n.rpc_port)) != 0, f"{n.name}'s RPC port still accepts connections"
    status = cstake("devnet", "status", "--dir", str(devnet.directory), check=False)
    assert status.returncode != 0
    assert status.stdout.count("stopped") == 4


def test_a_node_process_just_spawned_is_recognised(tmp_path: Path) -> None:
    """Right after Popen returns, a child may still be inside execve with an empty /proc cmdline.

    ``devnet up`` spawns four nodes back to back and checks them at once; it used to call
    the last one "exited during start". The race needs a busy machine to show, so try often.
    """
    from node.devtools.devnet import is_node_process

    home = str(tmp_path / "home")
    for _ in range(10):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(30)", "start", "--home", home],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for _ in range(4)
        ]
        try:
            assert [is_node_process(p.pid, home) for p in procs] == [True] * 4
            assert not is_node_process(procs[0].pid, home + "-other")
        finally:
            for p in procs:
                p.kill()
                p.wait(timeout=10)
        assert not any(is_node_process(p.pid, home) for p in procs)
