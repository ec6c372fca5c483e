"""Fixtures for the p2p tests: a launcher of harness processes that always cleans up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.kit.p2p_node import HarnessProcess

Launcher = Callable[..., Awaitable[HarnessProcess]]


@pytest.fixture
async def launch(tmp_path) -> AsyncIterator[Launcher]:
    """Start harness processes on 127.0.0.1; every one is stopped (by pid) at teardown."""
    started: list[HarnessProcess] = []

    async def start(name: str, *, bootstrap: list[str] | None = None, extra: list[str] | None = None, chain: str = "testnet") -> HarnessProcess:
        proc = HarnessProcess(str(tmp_path / "keys" / name), chain=chain, bootstrap=bootstrap, extra=extra)
        started.append(proc)
        return await proc.start()

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()
        await asyncio.gather(*(p.wait_exit(10) for p in started), return_exceptions=True)
