"""rpc.cors_origins (browser dapps) and rpc.metrics_listen (a scrape address apart from the RPC)."""

from __future__ import annotations

import dataclasses

import aiohttp

from node.config import RPCSection
from node.metrics import NodeMetrics
from node.rpc.server import RPCServer
from tests.kit.memview import MemoryNodeView

CALL = {"jsonrpc": "2.0", "id": 1, "method": "status"}


async def test_cors_for_allowed_origins_only(rpc_config: RPCSection) -> None:
    cfg = dataclasses.replace(rpc_config, cors_origins=("http://localhost:3000",))
    server = RPCServer(MemoryNodeView(), cfg)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/", json=CALL, headers={"Origin": "http://localhost:3000"}) as r:
                assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
            async with http.post(server.url + "/", json=CALL, headers={"Origin": "http://evil.example"}) as r:
                assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
            pre = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
            async with http.options(server.url + "/", headers=pre) as r:
                assert r.status == 204 and "POST" in r.headers["Access-Control-Allow-Methods"]
                assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
            async with http.options(server.url + "/", headers={**pre, "Origin": "http://evil.example"}) as r:
                assert r.status == 403
    finally:
        await server.stop()


async def test_no_cors_headers_by_default(server: RPCServer, http) -> None:
    async with http.post(server.url + "/", json=CALL, headers={"Origin": "http://localhost:3000"}) as r:
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers


async def test_metrics_on_their_own_address(rpc_config: RPCSection) -> None:
    cfg = dataclasses.replace(rpc_config, metrics_listen="127.0.0.1:0")
    metrics = NodeMetrics()
    metrics.on_block_committed(height=7, time_ms=1, n_txs=0)
    server = RPCServer(MemoryNodeView(), cfg, metrics=metrics)
    await server.start()
    try:
        assert server.metrics_port and server.metrics_port != server.port
        base = f"http://127.0.0.1:{server.metrics_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/metrics") as r:
                assert r.status == 200 and "cstake_height 7.0" in await r.text()
            async with http.post(base + "/", json=CALL) as r:
                assert r.status in (404, 405)  # no RPC (no broadcast_tx) on the scrape address
            async with http.get(server.url + "/metrics") as r:
                assert r.status == 200  # still on the RPC address too
    finally:
        await server.stop()
