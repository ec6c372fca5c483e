"""The client side of ``cstake`` (tx, query, keys show, load) against a real RPC server.

The server and an in-memory node that makes a block every 50 ms run on their
own event loop in a thread (the CLI handlers run ``asyncio.run`` themselves).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consensus.crypto import PrivateKey, encode_address
from node.cli.common import render
from node.cli.main import build_parser
from node.config import default_config, write_config
from node.home import NodeHome
from node.keyfiles import save_keystore
from node.rpc.server import RPCServer
from p2p.keys import load_or_create_peer_key, peer_id_from_seed
from tests.kit.memview import MemoryNodeView


@dataclass
class LiveNode:
    view: MemoryNodeView
    url: str
    home: Path
    key: PrivateKey


def _serve(ready: threading.Event, box: dict, stop: threading.Event) -> None:
    async def main() -> None:
        view = MemoryNodeView()
        server = RPCServer(view, default_config("cli-test", rpc_listen="127.0.0.1:0").rpc)
        await server.start()
        view.start_blocks(0.05)
        box.update(view=view, url=server.url)
        ready.set()
        try:
            while not stop.is_set():
                await asyncio.sleep(0.05)
        finally:
            await view.stop_blocks()
            await server.stop()

    try:
        asyncio.run(main())
    except BaseException as exc:  # surface a start-up failure to the fixture
        box["error"] = exc
        ready.set()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    ready, stop, box = threading.Event(), threading.Event(), {}
    thread = threading.Thread(target=_serve, args=(ready, box, stop), daemon=True)
    thread.start()
    assert ready.wait(30)
    if "error" in box:
        raise box["error"]
    view: MemoryNodeView = box["view"]
    root = tmp_path_factory.mktemp("home")
    home = NodeHome.at(root)
    home.make_dirs()
    key = view.chain.account_keys[0]
    save_keystore(home.account_key_file, key, None)
    save_keystore(home.consensus_key_file, view.chain.consensus_keys[0], None)
    load_or_create_peer_key(home.node_key_file)
    host_port = box["url"].removeprefix("http://")
    write_config(home.config_file, default_config("cli-test", rpc_listen=host_port))
    try:
        yield LiveNode(view, box["url"], root, key)
    finally:
        stop.set()
        thread.join(10)


def cli(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return int(args.func(args))


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()
    assert cli(*argv, "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_tx_send_wait_lands_in_the_chain(live: LiveNode, capsys) -> None:
    to = encode_address(live.view.chain.account_keys[1].address())
    before = cli_json(capsys, "query", "account", to, "--home", str(live.home))["balance"]
    assert cli("tx", "send", to, "1234", "--home", str(live.home), "--wait") == 0
    out = capsys.readouterr().out
    assert "committed in block" in out
    tx_hash = out.split()[1]
    tx = cli_json(capsys, "query", "tx", tx_hash, "--home", str(live.home))
    assert tx["result"]["code"] == 0
    assert tx["tx"]["body"] == {"to": to, "amount": 1234}
    after = cli_json(capsys, "query", "account", to, "--rpc", live.url)["balance"]
    assert after == before + 1234


def test_tx_send_sync_and_json(live: LiveNode, capsys) -> None:
    to = encode_address(live.view.chain.account_keys[2].address())
    res = cli_json(capsys, "tx", "send", to, "5", "--home", str(live.home), "--fee", "3")
    assert res["code"] == 0 and res["hash"].startswith("0x") and "height" not in res


def test_tx_other_kinds_build_and_report(live: LiveNode, capsys) -> None:
    validator = encode_address(live.view.chain.operator_keys[1].address())
    res = cli_json(capsys, "tx", "delegate", validator, "100", "--home", str(live.home), "--wait")
    assert res["code"] == 0 and res["height"] >= 1
    res = cli_json(capsys, "tx", "register-compute", "--units", "50", "--collateral", "1000",
                   "--model", "test-cpu", "--cores", "2", "--memory-mb", "2048",
                   "--home", str(live.home), "--wait")
    assert res["code"] == 0
    nfts = cli_json(capsys, "query", "nfts", "--owner", encode_address(live.key.address()),
                    "--home", str(live.home))
    assert [n["claimed_units"] for n in nfts["nfts"]] == [50]
    # Not a validator: the unjail transaction is included but fails, and the command says so.
    capsys.readouterr()
    assert cli("tx", "unjail", "--home", str(live.home), "--wait") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: transaction") and "failed in block" in err[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("tx", "send", "cs1notanaddress", "5"), "not a valid address"),
        (("tx", "send", "{to}", "-5"), "must be positive"),
        (("tx", "send", "{to}", "lots"), "whole number"),
        (("tx", "register-compute", "--units", "5"), "needs --model"),
        (("query", "block", "0"), "heights start at 1"),
        (("query", "block", "99999"), "not available"),
        (("query", "tx", "0x1234"), "32-byte hash"),
        (("query", "account", "cs1qqqq"), "not a valid address"),
    ],
)
def test_invalid_client_input_is_one_line_and_nonzero(live: LiveNode, capsys, argv, needle) -> None:
    to = encode_address(live.view.chain.account_keys[1].address())
    capsys.readouterr()
    code = cli(*(a.replace("{to}", to) for a in argv), "--home", str(live.home))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def test_unreachable_node_is_reported(live: LiveNode, capsys) -> None:
    capsys.readouterr()
    assert cli("query", "status", "--rpc", "http://127.0.0.1:9", "--home", str(live.home)) == 1
    err = capsys.readouterr().err
    assert "cannot reach the node at http://127.0.0.1:9: connection refused" in err


def test_queries_print_human_and_json(live: LiveNode, capsys) -> None:
    home = str(live.home)
    assert cli("query", "status", "--home", home) == 0
    out = capsys.readouterr().out
    assert "chain id" in out and live.view.chain_id in out
    status = cli_json(capsys, "query", "status", "--home", home)
    assert status["latest_height"] >= 0
    assert cli("query", "validators", "--home", home) == 0
    out = capsys.readouterr().out
    assert "total power" in out and out.count("cs1") >= 4
    assert cli_json(capsys, "query", "params", "--home", home)["min_fee"] == 1
    assert cli_json(capsys, "query", "nft", "0", "--home", home)["id"] == 0
    assert cli_json(capsys, "query", "slashing", "--home", home) == []
    assert cli_json(capsys, "query", "jobs", "--home", home)["available"] is False
    assert cli_json(capsys, "query", "peers", "--home", home)["n_peers"] == 0
    assert cli("query", "peers", "--home", home) == 0
    assert "no peers" in capsys.readouterr().out


def test_keys_show(live: LiveNode, capsys) -> None:
    keys = cli_json(capsys, "keys", "show", "--home", str(live.home))
    assert keys["address"] == encode_address(live.key.address())
    assert keys["pubkey"] == "0x" + live.key.public_key.raw.hex()
    assert keys["consensus_pubkey"] == "0x" + live.view.chain.consensus_keys[0].public_key.raw.hex()
    seed = (Path(live.home) / "keys" / "node_key").read_bytes()
    assert keys["peer_id"] == peer_id_from_seed(seed)


def test_encrypted_keystore_uses_the_passphrase(live: LiveNode, tmp_path: Path, capsys, monkeypatch) -> None:
    home = NodeHome.at(tmp_path)
    home.make_dirs()
    save_keystore(home.account_key_file, live.view.chain.account_keys[3], "correct horse")
    to = encode_address(live.view.chain.account_keys[1].address())
    monkeypatch.setenv("CSTAKE_PASSPHRASE", "wrong")
    capsys.readouterr()
    assert cli("tx", "send", to, "1", "--home", str(tmp_path), "--rpc", live.url) == 1
    assert "wrong passphrase" in capsys.readouterr().err
    monkeypatch.setenv("CSTAKE_PASSPHRASE", "correct horse")
    res = cli_json(capsys, "tx", "send", to, "1", "--home", str(tmp_path), "--rpc", live.url)
    assert res["code"] == 0


def test_load_counts_committed_from_blocks(live: LiveNode, capsys) -> None:
    report = cli_json(capsys, "load", "--home", str(live.home), "--rpc", live.url, "--rate", "100",
                      "--duration", "2", "--accounts", "5", "--progress-every", "0.5", "--drain", "10")
    assert report["sent"] >= 150
    assert report["accepted"] == report["sent"], report["rejected"]
    assert report["committed"] == report["accepted"] == report["committed_accepted"]
    assert report["duplicates"] == 0
    assert report["latency_ms"]["observed"]["p50"] is not None
    assert report["latency_ms"]["block_time"]["p99"] >= report["latency_ms"]["block_time"]["p50"]


def test_render_is_readable() -> None:
    text = render({"a": 1, "b": [{"c": None}, 2], "d": {}, "e": True})
    assert text.splitlines() == ["a: 1", "b:", "  - c: -", "  - 2", "d: {}", "e: yes"]


def test_tx_submit_job_reports_the_chain_answer(live: LiveNode, capsys) -> None:
    capsys.readouterr()
    code = cli("tx", "submit-job", "--kind", "matmul", "--rows", "8", "--n", "16", "--bid-per-unit", "2",
               "--input-seed", "ab" * 32, "--home", str(live.home), "--wait")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "committed in block" in out and "job 0x" in out
    assert cli("tx", "submit-job", "--kind", "matmul", "--rows", "8", "--n", "16", "--bid-per-unit", "2",
               "--escrow", "20", "--home", str(live.home)) == 1
    assert "input-seed" in capsys.readouterr().err


def test_tx_create_validator_from_a_funded_account(live: LiveNode, tmp_path: Path, capsys) -> None:
    """A funded account with its own consensus key becomes a validator record (joins the set at an epoch)."""
    home = NodeHome.at(tmp_path / "joiner")
    home.make_dirs()
    joiner = live.view.chain.account_keys[3]
    consensus = PrivateKey.generate()
    save_keystore(home.account_key_file, joiner, None)
    save_keystore(home.consensus_key_file, consensus, None)
    write_config(home.config_file, default_config("joiner-moniker", rpc_listen=live.url.removeprefix("http://")))
    stake = str(live.view.chain.view().get_params().min_self_bond)
    res = cli_json(capsys, "tx", "create-validator", "--stake", stake, "--commission", "700",
                   "--home", str(home.root), "--wait")
    assert res["code"] == 0, res
    found = cli_json(capsys, "query", "validators", "--home", str(home.root))
    rows = [v for v in found["validators"] + found["inactive"] if v["address"] == encode_address(joiner.address())]
    assert len(rows) == 1 and rows[0]["moniker"] == "joiner-moniker"
    capsys.readouterr()
    assert cli("tx", "create-validator", "--stake", stake, "--commission", "20000", "--home", str(home.root)) == 1
    assert "basis points" in capsys.readouterr().err


def test_tx_retire_nft(live: LiveNode, capsys) -> None:
    res = cli_json(capsys, "tx", "register-compute", "--units", "40", "--collateral", "1000",
                   "--model", "retiring-cpu", "--cores", "2", "--memory-mb", "2048",
                   "--home", str(live.home), "--wait")
    assert res["code"] == 0
    nfts = cli_json(capsys, "query", "nfts", "--owner", encode_address(live.key.address()), "--home", str(live.home))
    nft_id = max(n["id"] for n in nfts["nfts"] if n["spec"]["model"] == "retiring-cpu")
    res = cli_json(capsys, "tx", "retire-nft", str(nft_id), "--home", str(live.home), "--wait")
    assert res["code"] == 0, res
    assert cli_json(capsys, "query", "nft", str(nft_id), "--home", str(live.home))["status"] == "retired"


def test_tx_send_beyond_the_balance_is_refused_before_signing(live: LiveNode, capsys) -> None:
    to = encode_address(live.view.chain.account_keys[2].address())
    balance = cli_json(capsys, "query", "account", encode_address(live.key.address()), "--home", str(live.home))["balance"]
    nonce_before = live.view.chain.view().get_account(live.key.address()).nonce
    size_before = live.view.mempool.size
    capsys.readouterr()
    assert cli("tx", "send", to, str(balance), "--home", str(live.home)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: insufficient balance") and "nothing was sent" in err
    assert live.view.mempool.size == size_before
    assert live.view.chain.view().get_account(live.key.address()).nonce == nonce_before
