"""Request/response over libp2p streams (trio side): one request frame, response frames, EOF.

The client opens a stream, writes one framed request and reads frames until
the server closes, with a deadline and caps on frame size and count. The
server rate-limits each peer, reads the request under a deadline, runs the
node's handler on the asyncio loop and writes the frames in batches.

Both ends see the host service only through ``RequestHost``, the narrow part
of it they use; ``p2p.host.service.HostService`` provides it and calls in here,
never the other way round.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2p.config import P2PConfig
from p2p.errors import BadPeerData, MessageTooLarge, PeerUnavailable, RequestFailed, RequestTimeout
from p2p.host.bridge import TrioThread
from p2p.host.streams import FrameReader, frame, write_frames
from p2p.ratelimit import PeerRateLimiter
from p2p.stats import P2PStats


class RequestServer(Protocol):
    """The asyncio-side handler of inbound requests (runs on the asyncio loop)."""

    def serve(self, protocol: str, peer_id: str, data: bytes, done: Callable[[Any], None]) -> None: ...


class RequestHost(Protocol):
    """The part of the host service that request/response uses."""

    @property
    def config(self) -> P2PConfig: ...

    @property
    def stats(self) -> P2PStats: ...

    @property
    def host(self) -> Any: ...

    @property
    def connected(self) -> set[ID]: ...

    @property
    def bridge(self) -> TrioThread | None: ...

    @property
    def req_limiter(self) -> PeerRateLimiter: ...

    @property
    def side(self) -> RequestServer: ...

    def on_fault(self, peer: ID, reason: str) -> None: ...


log = logging.getLogger("p2p.host")

_REQUEST_MAX_BYTES = 64 * 1024


async def send_request(
    svc: RequestHost, peer_id: str, protocol: str, data: bytes, timeout: float, max_frames: int, max_frame: int
) -> list[bytes]:
    """Open a stream, send one request frame, read up to ``max_frames`` frames until EOF."""
    peer = ID.from_base58(peer_id)
    if peer not in svc.connected:
        raise PeerUnavailable(f"peer {peer_id} is not connected")
    svc.stats.requests_out += 1
    stream = None
    try:
        with trio.fail_after(timeout):
            try:
                stream = await svc.host.new_stream(peer, [TProtocol(protocol)])
            except Exception as exc:
                raise PeerUnavailable(f"{peer_id} does not serve {protocol}: {exc}") from exc
            await stream.write(frame(data))
            svc.stats.bytes_out += len(data)
            reader = FrameReader(stream, max_frame)
            frames: list[bytes] = []
            while True:
                try:
                    f = await reader.read_frame()
                except MessageTooLarge as exc:
                    raise BadPeerData(f"{peer_id}: {exc}") from exc
                if f is None:
                    break
                if len(frames) >= max_frames:
                    raise BadPeerData(f"{peer_id} sent more than the {max_frames} frames asked")
                frames.append(f)
            svc.stats.bytes_in += reader.bytes_read
            await stream.close()
            stream = None
            return frames
    except trio.TooSlowError as exc:
        svc.stats.requests_failed += 1
        raise RequestTimeout(f"{protocol} request to {peer_id} timed out after {timeout} s") from exc
    except RequestFailed:
        svc.stats.requests_failed += 1
        raise
    except Exception as exc:
        svc.stats.requests_failed += 1
        raise RequestFailed(f"{protocol} request to {peer_id} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if stream is not None:
            await reset_stream(stream)

async def serve_request(svc: RequestHost, protocol: str, stream: Any) -> None:
    """Serve one inbound request stream: read the request, run the node's handler, write frames."""
    peer = stream.muxed_conn.peer_id
    pid = peer.to_base58()
    if svc.bridge is None or not svc.req_limiter.allow(pid, "request", time.monotonic()):
        svc.stats.drop("rate")
        svc.on_fault(peer, "rate")
        await reset_stream(stream)
        return
    svc.stats.requests_in += 1
    try:
        with trio.fail_after(svc.config.request_timeout):
            data = await FrameReader(stream, _REQUEST_MAX_BYTES).read_frame()
            if data is None:
                raise BadPeerData("empty request")
        result = await svc.bridge.to_asyncio(svc.side.serve, protocol, pid, data, timeout=svc.config.request_timeout)
        if isinstance(result, BaseException):
            raise result
        with trio.fail_after(svc.config.request_timeout * 3):
            svc.stats.bytes_out += await write_frames(stream, result)
            await stream.close()
    except Exception as exc:
        log.debug("serving %s to %s failed: %s", protocol, pid, exc)
        await reset_stream(stream)


async def reset_stream(stream: Any) -> None:
    """Reset a stream, ignoring errors (it may already be closed)."""
    try:
        await stream.reset()
    except Exception as exc:
        log.debug("stream reset: %s", exc)
