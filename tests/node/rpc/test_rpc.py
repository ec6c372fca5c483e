"""JSON-RPC server against an in-memory node: every method, every error path, limits."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import aiohttp
import pytest

from consensus.crypto import encode_address
from consensus.txs import Transfer, build_tx
from node.rpc import errors as E
from node.rpc import methods as M
from node.rpc.server import RPCServer
from tests.kit.memview import MemoryNodeView


async def post(http: aiohttp.ClientSession, server: RPCServer, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(server.url + "/", data=data, headers={"Content-Type": "application/json"}) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None)


async def call(http: aiohttp.ClientSession, server: RPCServer, method: str, params: Any = None) -> Any:
    req: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        req["params"] = params
    status, doc = await post(http, server, req)
    assert status == 200
    assert doc["id"] == 1
    return doc


async def result(http: aiohttp.ClientSession, server: RPCServer, method: str, params: Any = None) -> Any:
    doc = await call(http, server, method, params)
    assert "error" not in doc, doc
    return doc["result"]


async def error_code(http: aiohttp.ClientSession, server: RPCServer, method: str, params: Any = None) -> int:
    doc = await call(http, server, method, params)
    assert "result" not in doc, doc
    assert doc["error"]["message"]
    return int(doc["error"]["code"])


def transfer(view: MemoryNodeView, sender: int = 0, to: int = 1, amount: int = 5, fee: int = 10, nonce: int | None = None):
    c = view.chain
    key = c.account_keys[sender]
    n = nonce if nonce is not None else view.mempool.next_nonce(key.address(), c.view().get_account(key.address()).nonce)
    return build_tx(key, c.chain_id, n, fee, Transfer(c.account_keys[to].address(), amount))


async def test_status_reports_documented_fields(server: RPCServer, view: MemoryNodeView, http) -> None:
    view.produce_block()
    view.produce_block()
    res = await result(http, server, "status")
    for key in ("chain_id", "node_id", "moniker", "latest_height", "latest_block_hash",
                "latest_state_root", "latest_block_time", "catching_up", "validator_address"):
        assert key in res
    assert res["latest_height"] == 2
    assert res["chain_id"] == view.chain_id
    assert res["validator_address"] == encode_address(view.chain.operator_keys[0].address())
    assert res["latest_block_hash"] == "0x" + view.get_block(2)[1].hex()
    assert res["latest_state_root"] == "0x" + view.store.state_root.hex()
    assert isinstance(res["latest_block_time"], int)


async def test_block_tx_and_account_after_a_transfer(server: RPCServer, view: MemoryNodeView, http) -> None:
    tx = transfer(view, amount=77)
    sub = await result(http, server, "broadcast_tx", {"tx": "0x" + tx.raw.hex(), "mode": "sync"})
    assert sub == {"hash": "0x" + tx.tx_hash.hex(), "code": 0, "log": ""}
    mp = await result(http, server, "mempool")
    assert mp["size"] == 1 and mp["bytes"] == len(tx.raw)
    assert mp["txs"][0]["hash"] == sub["hash"]
    block, _ = view.produce_block()

    b = await result(http, server, "block", {"height": 1})
    assert b["hash"] == "0x" + block.hash().hex()
    h = b["header"]
    assert h["height"] == 1 and h["time"] == block.header.time_ms
    assert h["proposer"].startswith("cs1")
    for key in ("round", "parent_hash", "state_root", "validators_hash"):
        assert key in h
    assert [t["hash"] for t in b["txs"]] == [sub["hash"]]
    assert b["attestations"] == [] and b["evidence"] == []
    assert b["last_commit"] == {"signatures": []}  # height 1 has no previous commit
    assert len(b["commit"]["signatures"]) == 4
    by_hash = await result(http, server, "block", {"hash": b["hash"]})
    assert by_hash["header"] == h
    latest = await result(http, server, "block")
    assert latest["hash"] == b["hash"]

    t = await result(http, server, "tx", [sub["hash"]])
    assert (t["height"], t["index"]) == (1, 0)
    assert t["result"] == {"code": 0, "log": ""}
    assert t["tx"]["kind"] == "transfer"
    assert t["tx"]["sender"] == encode_address(tx.payload.sender)
    assert t["tx"]["nonce"] == 0 and t["tx"]["fee"] == 10
    assert t["tx"]["body"] == {"to": encode_address(view.chain.account_keys[1].address()), "amount": 77}

    acct = await result(http, server, "account", {"address": encode_address(tx.payload.sender)})
    assert acct["nonce"] == 1
    assert acct["balance"] == view.chain.balance - 77 - 10
    for key in ("address", "bonded", "delegations", "unbonding"):
        assert key in acct
    fresh = await result(http, server, "account", {"address": encode_address(bytes(range(20)))})
    assert (fresh["balance"], fresh["nonce"], fresh["bonded"]) == (0, 0, 0)


async def test_validators_nfts_params_and_feature_methods(server: RPCServer, view: MemoryNodeView, http) -> None:
    view.produce_block()
    vals = await result(http, server, "validators")
    assert vals["height"] == 2
    assert len(vals["validators"]) == 4
    v0 = vals["validators"][0]
    for key in ("address", "consensus_pubkey", "stake", "compute_units", "voting_power",
                "proposer_priority", "reputation", "jailed", "jailed_until", "tombstoned"):
        assert key in v0
    assert v0["address"].startswith("cs1") and v0["compute_units"] == 100
    assert vals["total_power"] == sum(v["voting_power"] for v in vals["validators"])
    at1 = await result(http, server, "validators", {"height": 1})
    assert at1["height"] == 1 and len(at1["validators"]) == 4

    nft = await result(http, server, "nft", {"id": 0})
    for key in ("id", "owner", "bound_validator", "pending_validator", "spec", "claimed_units",
                "verified_units", "collateral", "status", "last_verified_height"):
        assert key in nft
    assert nft["owner"].startswith("cs1") and nft["status"] == "active"
    nfts = await result(http, server, "nfts", {"owner": nft["owner"]})
    assert [n["id"] for n in nfts["nfts"]] == [0]
    all_nfts = await result(http, server, "nfts")
    assert all_nfts["count"] == 4
    assert await error_code(http, server, "nft", {"id": 999}) == E.NOT_FOUND

    params = await result(http, server, "params")
    assert params["min_fee"] == 1 and params["epoch_blocks"] == 20
    assert await result(http, server, "slashing_records") == []
    att = await result(http, server, "attestations")
    assert att["available"] is False and att["attestations"] == []
    ch = await result(http, server, "challenges")
    assert ch["available"] is False
    jobs = await result(http, server, "jobs")
    assert jobs["available"] is False and jobs["jobs"] == []
    assert await error_code(http, server, "job", {"id": "0x" + "11" * 32}) == E.UNAVAILABLE
    net = await result(http, server, "net_info")
    assert net["n_peers"] == 0 and net["peers"] == []


async def test_broadcast_commit_waits_for_inclusion(server: RPCServer, view: MemoryNodeView, http) -> None:
    view.start_blocks(0.05)
    tx = transfer(view)
    res = await result(http, server, "broadcast_tx", {"tx": tx.raw.hex(), "mode": "commit"})
    assert res["code"] == 0 and res["height"] == 1 and res["index"] == 0
    assert view.get_tx(tx.tx_hash) is not None


async def test_broadcast_commit_times_out_with_an_application_error(server: RPCServer, view: MemoryNodeView, http) -> None:
    tx = transfer(view)  # no block producer running: never included
    doc = await call(http, server, "broadcast_tx", {"tx": tx.raw.hex(), "mode": "commit"})
    assert doc["error"]["code"] == E.COMMIT_TIMEOUT
    assert doc["error"]["data"]["hash"] == "0x" + tx.tx_hash.hex()


async def test_broadcast_refusals_are_results_with_codes(server: RPCServer, view: MemoryNodeView, http) -> None:
    stale = transfer(view, nonce=5)
    res = await result(http, server, "broadcast_tx", {"tx": stale.raw.hex()})
    assert res["code"] == 102 and "gap" in res["log"]
    poor = transfer(view, fee=0)
    res = await result(http, server, "broadcast_tx", {"tx": poor.raw.hex()})
    assert res["code"] == 4


@pytest.mark.parametrize(
    "params",
    [
        {"tx": "0xzz"},
        {"tx": "abc"},
        {"tx": ""},
        {"tx": "0x" + "00" * 40},
        {"tx": "0x" + "ab" * (20 << 10)},
        {"tx": 5},
        {"tx": "0x00", "mode": "async"},
        {},
    ],
)
async def test_invalid_broadcast_params(server: RPCServer, http, params: dict[str, Any]) -> None:
    assert await error_code(http, server, "broadcast_tx", params) == E.INVALID_PARAMS


@pytest.mark.parametrize("height", [0, -1, 2**63, 2**64, "1", 1.5, True])
async def test_invalid_heights(server: RPCServer, view: MemoryNodeView, http, height: Any) -> None:
    view.produce_block()
    assert await error_code(http, server, "block", {"height": height}) == E.INVALID_PARAMS
    assert await error_code(http, server, "validators", {"height": height}) == E.INVALID_PARAMS


async def test_heights_above_the_head_are_not_available(server: RPCServer, view: MemoryNodeView, http) -> None:
    view.produce_block()
    assert await error_code(http, server, "block", {"height": 2}) == E.HEIGHT_NOT_AVAILABLE
    assert await error_code(http, server, "block", {"height": 2**63 - 1}) == E.HEIGHT_NOT_AVAILABLE
    assert await error_code(http, server, "validators", {"height": 3}) == E.HEIGHT_NOT_AVAILABLE
    assert await error_code(http, server, "block", {"hash": "0x" + "00" * 32}) == E.NOT_FOUND
    assert await error_code(http, server, "tx", {"hash": "0x" + "00" * 32}) == E.NOT_FOUND


async def test_invalid_addresses_and_hashes(server: RPCServer, view: MemoryNodeView, http) -> None:
    good = encode_address(view.chain.account_keys[0].address())
    typo = good[:-1] + ("q" if good[-1] != "q" else "p")
    for bad in (typo, "cs1", "xx1qqqqqq", good.upper()[:-1] + "Q", 12, "0x" + "00" * 20):
        assert await error_code(http, server, "account", {"address": bad}) == E.INVALID_PARAMS
    assert await error_code(http, server, "account") == E.INVALID_PARAMS
    assert await error_code(http, server, "account", {"address": good, "extra": 1}) == E.INVALID_PARAMS
    assert await error_code(http, server, "account", [good, good]) == E.INVALID_PARAMS
    for bad_hash in ("0x1234", "zz" * 32, "0x" + "0" * 63, None):
        assert await error_code(http, server, "tx", {"hash": bad_hash}) == E.INVALID_PARAMS
    assert await error_code(http, server, "nfts", {"owner": typo}) == E.INVALID_PARAMS
    assert await error_code(http, server, "jobs", {"status": "sleeping"}) == E.INVALID_PARAMS


async def test_protocol_errors(server: RPCServer, http) -> None:
    status, doc = await post(http, server, b"{not json")
    assert status == 200 and doc["error"]["code"] == E.PARSE_ERROR and doc["id"] is None
    status, doc = await post(http, server, b"[" * 50_000)
    assert doc["error"]["code"] == E.PARSE_ERROR
    doc = await call(http, server, "no_such_method")
    assert doc["error"]["code"] == E.METHOD_NOT_FOUND
    for bad in ({"id": 1, "method": "status"}, {"jsonrpc": "2.0", "id": 1, "method": 7},
                {"jsonrpc": "2.0", "id": 1, "method": "status", "params": "x"},
                {"jsonrpc": "2.0", "id": {"a": 1}, "method": "status"}, 5, "status"):
        _, doc = await post(http, server, bad)
        assert doc["error"]["code"] == E.INVALID_REQUEST, bad
    status, doc = await post(http, server, b'{"jsonrpc": "2.0", "id": 1e400, "method": "status"}')
    assert status == 200 and doc["error"]["code"] == E.INVALID_REQUEST and doc["id"] is None
    _, doc = await post(http, server, [])
    assert doc["error"]["code"] == E.INVALID_REQUEST and "empty" in doc["error"]["message"]
    _, doc = await post(http, server, [1, {"jsonrpc": "2.0", "id": 7, "method": "status"}])
    assert doc[0]["error"]["code"] == E.INVALID_REQUEST and doc[1]["id"] == 7 and "result" in doc[1]
    # A notification gets no answer.
    status, doc = await post(http, server, {"jsonrpc": "2.0", "method": "status"})
    assert status == 204 and doc is None
    # The server still answers.
    assert (await result(http, server, "status"))["latest_height"] == 0


async def test_batches_are_bounded(server: RPCServer, http) -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "method": "status"} for i in range(10)]
    status, doc = await post(http, server, batch)
    assert status == 200 and sorted(d["id"] for d in doc) == list(range(10))
    status, doc = await post(http, server, batch + [{"jsonrpc": "2.0", "id": 10, "method": "status"}])
    assert doc["error"]["code"] == E.INVALID_REQUEST and "limit" in doc["error"]["message"]
    # A huge batch is refused by its size before it is parsed.
    status, doc = await post(http, server, [{"jsonrpc": "2.0", "id": 1, "method": "status"}] * 10_000)
    assert status == 413 and doc["error"]["code"] == E.INVALID_REQUEST


async def test_oversized_bodies_are_refused(server: RPCServer, http) -> None:
    big = b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"x":"' + b"a" * (100 << 10) + b'"}}'
    status, doc = await post(http, server, big)
    assert status == 413 and doc["error"]["code"] == E.INVALID_REQUEST

    async def chunks():
        for _ in range(100):
            yield b"a" * 1024

    async with http.post(server.url + "/", data=chunks()) as r:
        assert r.status == 413
    assert (await result(http, server, "status"))["latest_height"] == 0


async def test_method_timeout_and_internal_error(server: RPCServer, http, monkeypatch) -> None:
    async def slow(ctx, p):
        await asyncio.sleep(30)

    async def broken(ctx, p):
        raise ValueError("boom")

    monkeypatch.setitem(M.METHODS, "slow", (slow, ()))
    monkeypatch.setitem(M.METHODS, "broken", (broken, ()))
    server.config = dataclasses.replace(server.config, request_timeout_s=0.2, broadcast_commit_timeout_s=0.1)
    assert await error_code(http, server, "slow") == E.SERVER_TIMEOUT
    # A batch shares one deadline (0.3 s here), however many slow calls it holds.
    start = time.monotonic()
    _, doc = await post(http, server, [{"jsonrpc": "2.0", "id": i, "method": "slow"} for i in range(5)])
    assert [d["error"]["code"] for d in doc] == [E.SERVER_TIMEOUT] * 5
    assert time.monotonic() - start < 1.0
    assert await error_code(http, server, "broken") == E.INTERNAL_ERROR
    assert (await result(http, server, "status"))["latest_height"] == 0


async def test_connection_limit(server: RPCServer, http) -> None:
    conns = []
    try:
        for _ in range(20):
            conns.append(await asyncio.open_connection("127.0.0.1", server.port))
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        conns.append((reader, writer))
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed at once
        assert server.connections_refused >= 1
    finally:
        for _, w in conns:
            w.close()
    await asyncio.sleep(0.1)
    assert (await result(http, server, "status"))["latest_height"] == 0


async def test_health_and_metrics(server: RPCServer, view: MemoryNodeView, http) -> None:
    view.produce_block()
    async with http.get(server.url + "/health") as r:
        body = await r.json()
        assert r.status == 200 and body["status"] == "ok" and body["height"] == 1
    view.last_commit_monotonic = time.monotonic() - 60
    async with http.get(server.url + "/health") as r:
        assert r.status == 503 and (await r.json())["status"] == "stalled"
    await result(http, server, "status")
    async with http.get(server.url + "/metrics") as r:
        text = await r.text()
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert 'cstake_rpc_requests_total{method="status"} 1.0' in text
    assert "cstake_mempool_added_total 0.0" in text


async def test_ws_subscribe_receives_block_and_tx_events(server: RPCServer, view: MemoryNodeView, http) -> None:
    async with http.ws_connect(server.url + "/ws") as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"event": "new_block"}})
        assert (await ws.receive_json(timeout=5))["result"] == {"subscribed": "new_block"}
        await ws.send_json({"jsonrpc": "2.0", "id": 2, "method": "subscribe", "params": ["tx"]})
        assert (await ws.receive_json(timeout=5))["result"] == {"subscribed": "tx"}
        await ws.send_json({"jsonrpc": "2.0", "id": 3, "method": "subscribe", "params": {"event": "bogus"}})
        assert (await ws.receive_json(timeout=5))["error"]["code"] == E.INVALID_PARAMS
        tx = transfer(view)
        await view.submit_tx(tx)
        view.produce_block()
        first = await ws.receive_json(timeout=5)
        second = await ws.receive_json(timeout=5)
        assert first["params"]["event"] == "new_block" and first["params"]["data"]["height"] == 1
        assert second["params"]["event"] == "tx"
        assert second["params"]["data"]["hash"] == "0x" + tx.tx_hash.hex()
        # Plain RPC calls work over the socket too.
        await ws.send_json({"jsonrpc": "2.0", "id": 4, "method": "status"})
        assert (await ws.receive_json(timeout=5))["result"]["latest_height"] == 1
        await ws.send_json({"jsonrpc": "2.0", "id": 5, "method": "unsubscribe", "params": {"event": "tx"}})
        assert (await ws.receive_json(timeout=5))["result"] == {"unsubscribed": "tx"}
        await view.submit_tx(transfer(view))
        view.produce_block()
        event = await ws.receive_json(timeout=5)
        assert event["params"]["event"] == "new_block" and event["params"]["data"]["num_txs"] == 1
        await ws.send_json({"jsonrpc": "2.0", "id": 6, "method": "status"})
        assert (await ws.receive_json(timeout=5))["id"] == 6  # no tx event came in between


async def test_ws_slow_consumer_is_dropped(server: RPCServer, view: MemoryNodeView, http) -> None:
    async with http.ws_connect(server.url + "/ws") as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"event": "new_block"}})
        await ws.receive_json(timeout=5)
        for _ in range(20):  # faster than the pump can run: the 8-event queue overflows
            view.produce_block()
        closed = None
        for _ in range(30):
            msg = await ws.receive(timeout=5)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                closed = msg
                break
        assert closed is not None
        assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
        assert "slow consumer" in (closed.extra or "")
    assert view.events.subscriber_count == 0
