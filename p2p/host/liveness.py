"""Connection liveness (trio side): keep-alive pings, dead-connection detection, hard closes.

A link that goes down sends no FIN or RST: both ends keep a half-open TCP
connection that only dies after many minutes of retransmissions, and gossip
written meanwhile waits in the kernel while the retransmission timer backs
off (seconds to a minute after the link is back). So every connected peer is
pinged on ``/cstake/<chain-id>/ping/1`` every ``keepalive_interval`` seconds:
a new stream, 8 random bytes, the same 8 bytes back, within
``keepalive_timeout``. Any successful ping resets the peer's count of misses,
and a failed ping counts as a miss only if nothing at all was read from the
peer during its timeout (a slow, lossy or saturated link still delivers bytes;
a dead one delivers none; ``watch`` counts the bytes at the secured
connection). After ``keepalive_misses`` misses in a row the connection is aborted:
its socket is closed first (so nothing waits on a dead peer), then the
connection is removed from the swarm, which tells pubsub and the node
(``PeerDisconnected``) and lets the dialer try again.

``abort_connection`` is also how a stale connection is replaced when the same
peer connects again (``HostService.on_new_connection``): the new connection
wins over an old one the peer has evidently given up on.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2p.host.streams import FrameReader, frame

log = logging.getLogger("p2p.host.liveness")

PING_BYTES = 8
#: Seconds a connection close may take before the socket is simply dropped.
CLOSE_GRACE = 2.0


async def serve_ping(stream: Any) -> None:
    """Echo one ping frame back and close the stream."""
    try:
        with trio.fail_after(5.0):
            data = await FrameReader(stream, PING_BYTES).read_frame()
            if data is None or len(data) != PING_BYTES:
                raise ValueError("bad ping")
            await stream.write(frame(data))
            await stream.close()
    except Exception as exc:
        log.debug("ping from %s: %s", stream.muxed_conn.peer_id, exc)
        with contextlib.suppress(Exception):
            await stream.reset()


async def ping(host: Any, peer: ID, protocol: str, timeout: float) -> float:
    """Ping ``peer`` once over a new stream; return the round trip in seconds; raise on failure or timeout."""
    nonce = os.urandom(PING_BYTES)
    start = trio.current_time()
    stream = None
    try:
        with trio.fail_after(timeout):
            stream = await host.new_stream(peer, [TProtocol(protocol)])
            await stream.write(frame(nonce))
            echo = await FrameReader(stream, PING_BYTES).read_frame()
            if echo != nonce:
                raise ValueError("ping answered with other bytes")
            await stream.close()
            stream = None
        return trio.current_time() - start
    finally:
        if stream is not None:
            with trio.move_on_after(0.5), contextlib.suppress(Exception):
                await stream.reset()


def _find_socket_stream(obj: Any, depth: int = 0) -> trio.SocketStream | None:
    """The trio socket stream under a (muxed, secured, raw) connection, wherever this library keeps it."""
    if isinstance(obj, trio.SocketStream):
        return obj
    if obj is None or depth > 8:
        return None
    for attr in ("muxed_conn", "secured_conn", "conn", "stream", "raw_conn", "read_writer", "_stream"):
        inner = getattr(obj, attr, None)
        if inner is not None and inner is not obj:
            found = _find_socket_stream(inner, depth + 1)
            if found is not None:
                return found
    return None


async def abort_connection(conn: Any) -> None:
    """Close a (possibly dead) swarm connection at once: socket first, then the library's clean-up.

    The library's own close writes to the muxer (GO_AWAY, stream resets); on a
    dead link with a full send buffer those writes would wait for minutes.
    Closing the socket first makes every pending read and write fail now.
    """
    sock = _find_socket_stream(conn)
    if sock is not None:
        with contextlib.suppress(Exception):
            sock.socket.close()
    with trio.move_on_after(CLOSE_GRACE) as scope:
        with contextlib.suppress(Exception):
            await conn.close()
    if scope.cancelled_caught:
        log.warning("closing a dead connection to %s took over %.0f s", conn.muxed_conn.peer_id, CLOSE_GRACE)
        # Make sure the swarm forgets it, even if its clean-up was cut short.
        with contextlib.suppress(Exception):
            conn.swarm.remove_conn(conn)


class KeepAlive:
    """Pings every connected peer; aborts a connection after ``misses`` pings in a row fail."""

    def __init__(
        self,
        host: Any,
        protocol: str,
        *,
        interval: float,
        timeout: float,
        misses: int,
        peers: Callable[[], set[ID]],
        on_dead: Callable[[ID], Any],
    ) -> None:
        self.host = host
        self.protocol = protocol
        self.interval = interval
        self.timeout = timeout
        self.max_misses = misses
        self._peers = peers
        self._on_dead = on_dead
        self.misses: dict[ID, int] = {}
        self.rtt: dict[ID, float] = {}
        #: trio time of the last read from each peer's connection.
        self.last_read: dict[ID, float] = {}
        self._busy: set[ID] = set()
        #: Connections closed as dead, and connections replaced by a newer one from the same peer.
        self.dead_total = 0
        self.replaced_total = 0

    def watch(self, conn: Any) -> None:
        """Note the time of every read from ``conn`` (a swarm connection) as a sign its peer is alive."""
        muxed: Any = getattr(conn, "muxed_conn", None)
        secured = getattr(muxed, "secured_conn", None)
        read = getattr(secured, "read", None)
        if secured is None or read is None:
            return
        peer: ID = muxed.peer_id
        last_read = self.last_read

        async def counted_read(*args: Any, **kwargs: Any) -> Any:
            data = await read(*args, **kwargs)
            last_read[peer] = trio.current_time()
            return data

        secured.read = counted_read
        last_read[peer] = trio.current_time()

    def alive(self, peer: ID) -> None:
        """Traffic was seen from ``peer`` (a new connection): forget its misses."""
        self.misses.pop(peer, None)

    def forget(self, peer: ID) -> None:
        self.misses.pop(peer, None)
        self.rtt.pop(peer, None)
        self.last_read.pop(peer, None)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(self.interval)
                for peer in list(self._peers()):
                    if peer not in self._busy:
                        self._busy.add(peer)
                        nursery.start_soon(self._probe, peer)

    async def _probe(self, peer: ID) -> None:
        try:
            self.rtt[peer] = await ping(self.host, peer, self.protocol, self.timeout)
            self.misses.pop(peer, None)
        except Exception as exc:
            if peer not in self._peers():
                return
            if trio.current_time() - self.last_read.get(peer, -1e9) < self.timeout:
                log.debug("ping %s failed but its connection is carrying data: %s", peer, exc)
                return
            n = self.misses[peer] = self.misses.get(peer, 0) + 1
            log.debug("ping %s failed (%d in a row): %s", peer, n, exc)
            if n >= self.max_misses:
                log.warning("peer %s missed %d pings in a row: closing its connection as dead", peer, n)
                self.dead_total += 1
                self.misses.pop(peer, None)
                await self._on_dead(peer)
        finally:
            self._busy.discard(peer)
