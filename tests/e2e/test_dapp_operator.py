"""What a dapp developer and an operator do first, against a live 4-validator devnet.

Dapp: send a transfer, wait for it on a WebSocket subscription filtered by the
recipient, find it with tx_search on another node, verify the recipient's
balance with a Merkle proof against a block header (``query account --prove``).
Operator: add a key from a mnemonic, fund it, send with ``--from``, read the
node's own-validator metrics (missed blocks, power, last signed height), and
lint the live /metrics with promtool (skipped, with a message, where absent).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess

import aiohttp
import pytest

from consensus.crypto import PrivateKey, encode_address
from node.keyring import derive_key
from tests.kit.devnet import CLI, REPO, Devnet, cstake, http_get, rpc, wait_height, wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

WORDS = "legal winner thank year wave sausage worth useful legal winner thank yellow"


async def _send_and_watch(devnet: Devnet, recipient: str) -> tuple[dict, dict]:
    ws_url = devnet.node("node1").url.replace("http://", "ws://") + "/ws"
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                            "params": {"event": "tx", "address": recipient}})
        assert (await ws.receive_json(timeout=10))["result"] == {"subscribed": "tx", "address": recipient}
        out = await asyncio.to_thread(
            cstake, "tx", "send", recipient, "4242", "--home", str(devnet.node("node0").home), "--json",
            timeout=90)
        sent = json.loads(out.stdout)
        event = await ws.receive_json(timeout=60)
        return sent, event


def test_dapp_flow_transfer_subscription_search_and_proof(shared_devnet: Devnet) -> None:
    recipient = encode_address(PrivateKey.generate().address())
    sent, event = asyncio.run(_send_and_watch(shared_devnet, recipient))
    assert sent["code"] == 0, sent
    data = event["params"]["data"]
    assert event["params"]["event"] == "tx" and data["hash"] == sent["hash"] and data["code"] == 0
    included = data["height"]
    url = shared_devnet.node("node2").url
    wait_height(url, included, timeout=30)
    found = wait_until(lambda: rpc(url, "tx_search", {"address": recipient})["txs"] or None, timeout=30,
                       what="the transfer in node2's address index")
    assert [(t["hash"], t["height"]) for t in found] == [(sent["hash"], included)]
    assert found[0]["result"]["code"] == 0
    out = cstake("query", "account", recipient, "--prove", "--json", "--rpc", url, "--timeout", "30")
    proved = json.loads(out.stdout)
    assert proved["balance"] == 4242 and proved["proof"]["verified_against_block"] >= included + 1


def test_operator_flow_mnemonic_key_from_and_own_metrics(shared_devnet: Devnet) -> None:
    home = str(shared_devnet.node("node0").home)
    added = subprocess.run([*CLI, "keys", "add", "ops", "--recover", "--unencrypted", "--home", home, "--json"],
                           cwd=REPO, input=WORDS + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert added.returncode == 0, added.stderr
    ops = json.loads(added.stdout)["address"]
    assert ops == encode_address(derive_key(WORDS).address())
    funded = json.loads(cstake("tx", "send", ops, "1000000", "--home", home, "--wait", "--json", timeout=90).stdout)
    assert funded["code"] == 0, funded
    target = encode_address(PrivateKey.generate().address())
    sent = json.loads(cstake("tx", "send", target, "777", "--from", "ops", "--home", home, "--wait", "--json",
                             timeout=90).stdout)
    assert sent["code"] == 0, sent
    assert rpc(shared_devnet.node("node0").url, "tx", {"hash": sent["hash"]})["tx"]["sender"] == ops
    refused = cstake("tx", "send", target, "1", "--from", "nobody", "--home", home, check=False)
    assert refused.returncode == 1 and "no key named 'nobody'" in refused.stderr
    # The node's own validator, as Prometheus sees it.
    _, text = http_get(shared_devnet.node("node0").url, "/metrics")

    def value(name: str) -> float:
        match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
        assert match is not None, f"{name} missing from /metrics"
        return float(match.group(1))

    assert value("cstake_validator_active") == 1 and value("cstake_validator_voting_power") > 0
    assert value("cstake_validator_missed_blocks_total") >= 0
    assert value("cstake_validator_last_signed_height") >= 1
    assert "_created" not in text and "cstake_build_info{" in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_accepts_a_live_nodes_metrics(shared_devnet: Devnet) -> None:
    _, text = http_get(shared_devnet.node("node3").url, "/metrics")
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
