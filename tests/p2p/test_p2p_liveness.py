"""Keep-alive, dead-connection detection and redial backoff (p2p/host/liveness.py, p2p/host/service.py).

Unit level, under trio with fake hosts: a peer that misses ``keepalive_misses``
pings in a row while nothing is read from it is declared dead; one whose link
still carries bytes is not; persistent peers back off at most
``persistent_reconnect_max``; a new connection resets every persistent peer's
backoff. The real network cases (links down for 30 s, half-open connections)
are in tests/e2e/test_partition.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from p2p.config import P2PConfig, ping_protocol
from p2p.errors import ConfigError
from p2p.host.liveness import KeepAlive, serve_ping
from p2p.host.liveness import ping as ping_once
from p2p.host.service import HostService
from p2p.stats import P2PStats


def _peer(n: int) -> ID:
    return ID.from_pubkey(create_new_key_pair(bytes([n]) * 32).public_key)


class _DeadHost:
    """new_stream never answers (a half-open connection)."""

    async def new_stream(self, peer: ID, protocols: list[str]) -> Any:
        await trio.sleep_forever()


class _Pipe:
    """An in-memory stream pair end: what one side writes, the other reads."""

    def __init__(self, send: trio.MemorySendChannel[bytes], recv: trio.MemoryReceiveChannel[bytes], peer: ID) -> None:
        self._send, self._recv = send, recv
        self.muxed_conn = type("Conn", (), {"peer_id": peer})()
        self._buf = b""

    async def write(self, data: bytes) -> None:
        await self._send.send(data)

    async def read(self, n: int = -1) -> bytes:
        if not self._buf:
            try:
                self._buf = await self._recv.receive()
            except trio.EndOfChannel:
                return b""
        out, self._buf = (self._buf, b"") if n < 0 else (self._buf[:n], self._buf[n:])
        return out

    async def close(self) -> None:
        await self._send.aclose()

    async def reset(self) -> None:
        await self._send.aclose()


class _EchoHost:
    """new_stream gives a stream served by ``serve_ping`` on the other end."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery

    async def new_stream(self, peer: ID, protocols: list[str]) -> Any:
        a_send, b_recv = trio.open_memory_channel[bytes](10)
        b_send, a_recv = trio.open_memory_channel[bytes](10)
        self.nursery.start_soon(serve_ping, _Pipe(b_send, b_recv, peer))
        return _Pipe(a_send, a_recv, peer)


def test_ping_round_trip_through_the_server() -> None:
    async def main() -> float:
        async with trio.open_nursery() as nursery:
            rtt = await ping_once(_EchoHost(nursery), _peer(1), "/x/ping/1", 2.0)
            nursery.cancel_scope.cancel()
        return rtt

    assert 0 <= trio.run(main) < 2.0


def test_a_silent_peer_is_declared_dead_after_the_misses() -> None:
    peer = _peer(2)
    dead: list[ID] = []

    async def on_dead(p: ID) -> None:
        dead.append(p)
        peers.discard(p)

    peers = {peer}

    async def main() -> None:
        ka = KeepAlive(_DeadHost(), "/x/ping/1", interval=0.05, timeout=0.05, misses=3,
                       peers=lambda: peers, on_dead=on_dead)
        with trio.move_on_after(1.0):
            await ka.run()
        assert ka.dead_total == 1

    trio.run(main)
    assert dead == [peer]


def test_invalid_miss_while_the_link_still_carries_bytes_is_not_counted() -> None:
    peer = _peer(3)
    dead: list[ID] = []
    peers = {peer}

    async def on_dead(p: ID) -> None:
        dead.append(p)

    async def main() -> None:
        ka = KeepAlive(_DeadHost(), "/x/ping/1", interval=0.05, timeout=0.1, misses=2,
                       peers=lambda: peers, on_dead=on_dead)

        async def traffic() -> None:
            while True:
                ka.last_read[peer] = trio.current_time()  # what KeepAlive.watch records on every read
                await trio.sleep(0.02)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(traffic)
            nursery.start_soon(ka.run)
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert dead == []


def _svc(tmp_path: Any, **changes: Any) -> HostService:
    boot = tuple(f"/ip4/10.0.0.{i}/tcp/26656/p2p/{_peer(10 + i).to_base58()}" for i in range(2))
    cfg = P2PConfig(chain_id="t", key_path=str(tmp_path / "k"), bootstrap=boot, **changes)
    cfg.validate()
    return HostService(cfg, bytes(32), P2PStats(), None, [])  # type: ignore[arg-type]


def test_persistent_peers_back_off_at_most_persistent_reconnect_max(tmp_path: Any) -> None:
    svc = _svc(tmp_path, persistent_reconnect_max=2.0, reconnect_max=30.0)

    async def main() -> list[float]:
        delays = []
        for target in svc.state.targets.values():
            assert target.keep
            for _ in range(10):
                svc._back_off(target)
            delays.append(target.delay)
        return delays

    assert trio.run(main) == [2.0, 2.0]


def test_a_new_connection_resets_the_persistent_backoff(tmp_path: Any) -> None:
    svc = _svc(tmp_path)

    async def main() -> None:
        for target in svc.state.targets.values():
            for _ in range(5):
                svc._back_off(target)
            assert target.next_try > trio.current_time()
        svc._links_are_back()
        now = trio.current_time()
        assert all(t.next_try <= now and t.delay == 0.0 for t in svc.state.targets.values())

    trio.run(main)


def test_ping_protocol_name_and_invalid_keepalive_settings(tmp_path: Any) -> None:
    assert ping_protocol("c1") == "/cstake/c1/ping/1"
    for bad in ({"keepalive_interval": 0}, {"keepalive_timeout": -1}, {"keepalive_misses": 0},
                {"persistent_reconnect_max": 0.1, "reconnect_min": 0.5}):
        with pytest.raises(ConfigError):
            P2PConfig(chain_id="t", key_path=str(tmp_path / "k"), **bad).validate()


def test_persistent_peers_are_redialled_even_when_full_exchanged_ones_only_into_free_slots(tmp_path: Any) -> None:
    # A node full of inbound peers must still redial its bootstrap peers (the slot manager
    # evicts an inbound peer when one connects); exchanged addresses wait for a free slot.
    svc = _svc(tmp_path, max_peers=2)
    persistent = sorted(svc.persistent)

    async def main() -> tuple[list[str], list[str]]:
        svc.book.learn("src", [("exchanged", ["/ip4/10.0.1.1/tcp/1/p2p/exchanged"])], trio.current_time(), lambda p: False)
        for n in (30, 31):
            svc.on_connected(_peer(n), outbound=False)
        assert len(svc.connected) == 2 and svc.slots.get_outbound_room() == 0  # full
        when_full = [pid for pid, _ in svc._due_dials(trio.current_time())]
        svc.on_disconnected(_peer(31))
        with_room = [pid for pid, _ in svc._due_dials(trio.current_time())]
        return when_full, with_room

    when_full, with_room = trio.run(main)
    assert sorted(when_full) == persistent
    assert sorted(with_room) == sorted([*persistent, "exchanged"])
