"""Fixtures of the node tests: an in-memory node behind a real RPC server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from node.config import RPCSection
from node.metrics import NodeMetrics
from node.rpc.server import RPCServer
from tests.kit.chain import TestChain
from tests.kit.memview import MemoryNodeView


@pytest.fixture
def chain() -> TestChain:
    return TestChain(n_validators=4, n_accounts=6)


@pytest.fixture
def view() -> MemoryNodeView:
    return MemoryNodeView()


@pytest.fixture
def rpc_config() -> RPCSection:
    return RPCSection(
        listen="127.0.0.1:0",
        max_body_bytes=64 << 10,
        max_batch=10,
        max_connections=20,
        request_timeout_s=5.0,
        broadcast_commit_timeout_s=3.0,
        ws_queue_size=8,
        health_stall_s=2.0,
    )


@pytest.fixture
async def server(view: MemoryNodeView, rpc_config: RPCSection) -> AsyncIterator[RPCServer]:
    metrics = NodeMetrics()
    metrics.watch_mempool(lambda: view.mempool.stats)
    srv = RPCServer(view, rpc_config, metrics=metrics, last_commit_monotonic=lambda: view.last_commit_monotonic,
                    max_tx_bytes=16 << 10)
    await srv.start()
    try:
        yield srv
    finally:
        await view.stop_blocks()
        await srv.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session
