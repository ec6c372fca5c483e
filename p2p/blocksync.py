"""Block sync over request/response: status exchange and blocks-with-commits by range.

The server side answers ``/cstake/<chain>/status/1`` with a ``StatusMessage``
and ``/cstake/<chain>/blocks/1`` with one ``BlockFrame`` per height, bounded
by ``max_request_blocks`` and ``max_request_bytes``. The node supplies the
data through a ``BlockProvider``.

The client asks peers for their status, then fetches a range in chunks; each
chunk goes to a peer whose status covers it, with a timeout, and is retried
on the next peer when a request fails or the answer is wrong. The node's
``verify`` callback checks each block and commit (it raises ``ConsensusError``
or ``BadPeerData`` on bad data); a peer that served bad data is penalised and
disconnected, and the chunk is fetched elsewhere.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, cast

from consensus.errors import ConsensusError, DecodeError
from p2p.config import blocks_protocol, status_protocol
from p2p.envelope import BlockFrame, BlocksRequest, StatusMessage
from p2p.errors import BadPeerData, MalformedMessage, NoPeersAvailable, RequestFailed
from p2p.interface import Transport

log = logging.getLogger("p2p.blocksync")

_STATUS_MAX_BYTES = 1024
_REQUEST_MAX_BYTES = 64


class BlockProvider(Protocol):
    """What the node gives the sync server (plain or async methods)."""

    def get_status(self) -> tuple[int, bytes, int] | Awaitable[tuple[int, bytes, int]]:
        """Return (latest height, its block hash, earliest stored height)."""

    def get_blocks(self, start: int, end: int) -> Sequence[tuple[bytes, bytes]] | Awaitable[Sequence[tuple[bytes, bytes]]]:
        """Return (block bytes, commit bytes) for heights start..end that are stored, in order."""


async def _maybe_await(value: object) -> object:
    return await value if inspect.isawaitable(value) else value


class BlockSyncServer:
    """Serves status and block ranges from the node's provider."""

    def __init__(self, transport: Transport, provider: BlockProvider) -> None:
        self._provider = provider
        cfg = transport.config
        self.max_blocks = cfg.max_request_blocks
        self.max_bytes = cfg.max_request_bytes
        self.max_frame = cfg.max_frame_bytes
        transport.set_request_handler(status_protocol(cfg.chain_id), self._on_status)
        transport.set_request_handler(blocks_protocol(cfg.chain_id), self._on_blocks)

    async def _on_status(self, peer_id: str, data: bytes) -> list[bytes]:
        status = cast(tuple[int, bytes, int], await _maybe_await(self._provider.get_status()))
        return [StatusMessage(*status).encode()]

    async def _on_blocks(self, peer_id: str, data: bytes) -> list[bytes]:
        try:
            req = BlocksRequest.decode(data, max_bytes=_REQUEST_MAX_BYTES)
        except DecodeError as exc:
            raise MalformedMessage(f"blocks request from {peer_id}: {exc}") from exc
        if req.start < 1 or req.end < req.start:
            raise MalformedMessage(f"blocks request range {req.start}..{req.end} is invalid")
        end = min(req.end, req.start + self.max_blocks - 1)
        rows = cast(Sequence[tuple[bytes, bytes]], await _maybe_await(self._provider.get_blocks(req.start, end)))
        frames: list[bytes] = []
        total = 0
        for offset, (block, commit) in enumerate(rows):
            frame = BlockFrame(req.start + offset, block, commit).encode()
            if len(frame) > self.max_frame:
                log.warning("block %d is %d bytes, over the frame cap; not served", req.start + offset, len(frame))
                break
            if frames and total + len(frame) > self.max_bytes:
                break
            frames.append(frame)
            total += len(frame)
        return frames


#: ``verify(frame)`` raises ConsensusError or BadPeerData when a block or commit is bad.
Verifier = Callable[[BlockFrame], "None | Awaitable[None]"]


class BlockSyncClient:
    """Asks peers for status and block ranges, with timeouts, retries and penalties."""

    def __init__(self, transport: Transport, *, blocks_per_request: int | None = None, timeout: float | None = None) -> None:
        self._t = transport
        cfg = transport.config
        self._status_proto = status_protocol(cfg.chain_id)
        self._blocks_proto = blocks_protocol(cfg.chain_id)
        self.blocks_per_request = blocks_per_request or cfg.max_request_blocks
        self.timeout = timeout or cfg.request_timeout
        self.max_frame = cfg.max_frame_bytes

    async def fetch_status(self, peer_id: str) -> StatusMessage:
        """Ask one peer for its status."""
        frames = await self._t.request(peer_id, self._status_proto, b"", timeout=self.timeout, max_frame_bytes=_STATUS_MAX_BYTES)
        if len(frames) != 1:
            raise BadPeerData(f"{peer_id} answered status with {len(frames)} frames")
        try:
            st = StatusMessage.decode(frames[0], max_bytes=_STATUS_MAX_BYTES)
        except DecodeError as exc:
            raise BadPeerData(f"{peer_id} sent a malformed status: {exc}") from exc
        if st.earliest_height > st.height + 1 or st.height < 0 or st.earliest_height < 0:
            raise BadPeerData(f"{peer_id} sent an inconsistent status {st}")
        return st

    async def fetch_statuses(self, peers: Sequence[str] | None = None) -> dict[str, StatusMessage]:
        """Ask every (given or connected) peer concurrently; peers that fail are left out."""
        targets = list(peers) if peers is not None else self._t.peers()
        results = await asyncio.gather(*(self.fetch_status(p) for p in targets), return_exceptions=True)
        out: dict[str, StatusMessage] = {}
        for peer, res in zip(targets, results, strict=True):
            if isinstance(res, StatusMessage):
                out[peer] = res
            elif isinstance(res, BadPeerData):
                self._t.report_peer(peer, "bad_data")
            elif isinstance(res, BaseException) and not isinstance(res, Exception):
                raise res
        return out

    async def fetch_blocks(self, peer_id: str, start: int, end: int) -> list[BlockFrame]:
        """Fetch ``start..end`` (at most ``blocks_per_request``) from one peer; checks heights only."""
        end = min(end, start + self.blocks_per_request - 1)
        frames = await self._t.request(
            peer_id,
            self._blocks_proto,
            BlocksRequest(start, end).encode(),
            timeout=self.timeout,
            max_frames=end - start + 1,
            max_frame_bytes=self.max_frame,
        )
        if not frames:
            raise BadPeerData(f"{peer_id} returned no blocks for {start}..{end}")
        out = []
        for i, raw in enumerate(frames):
            try:
                frame = BlockFrame.decode(raw, max_bytes=self.max_frame)
            except DecodeError as exc:
                raise BadPeerData(f"{peer_id} sent a malformed block frame: {exc}") from exc
            if frame.height != start + i:
                raise BadPeerData(f"{peer_id} sent height {frame.height} where {start + i} was due")
            out.append(frame)
        return out

    async def fetch_range(
        self,
        start: int,
        end: int,
        verify: Verifier | None = None,
        statuses: dict[str, StatusMessage] | None = None,
        attempts: int = 4,
    ) -> list[BlockFrame]:
        """Fetch and verify every block ``start..end`` from the peers that have them.

        Each chunk is tried on up to ``attempts`` peers; a peer that serves bad
        data is penalised and disconnected. Raises NoPeersAvailable when a chunk
        cannot be had from anyone.
        """
        if statuses is None:
            statuses = await self.fetch_statuses()
        out: list[BlockFrame] = []
        next_height = start
        turn = 0
        refreshed = False
        while next_height <= end:
            chunk_end = min(end, next_height + self.blocks_per_request - 1)
            holders = sorted(
                p for p, s in statuses.items() if s.earliest_height <= next_height <= s.height and p in self._t.peers()
            )
            if not holders and not refreshed:
                # Statuses go stale (peers come and go, heads move): ask again once.
                statuses.update(await self.fetch_statuses())
                refreshed = True
                continue
            if not holders:
                raise NoPeersAvailable(f"no connected peer has block {next_height}")
            frames: list[BlockFrame] | None = None
            errors: list[str] = []
            for k in range(min(attempts, len(holders))):
                peer = holders[(turn + k) % len(holders)]
                try:
                    got = await self.fetch_blocks(peer, next_height, min(chunk_end, statuses[peer].height))
                    if verify is not None:
                        for frame in got:
                            await _maybe_await(verify(frame))
                except (BadPeerData, ConsensusError) as exc:
                    errors.append(f"{peer}: {exc}")
                    log.warning("peer %s served bad blocks: %s", peer, exc)
                    self._t.report_peer(peer, "bad_data", disconnect=True)
                    statuses.pop(peer, None)
                    continue
                except RequestFailed as exc:
                    errors.append(f"{peer}: {exc}")
                    continue
                frames = got
                turn += 1
                break
            if frames is None:
                raise NoPeersAvailable(f"blocks from {next_height} could not be fetched: {'; '.join(errors)}")
            out.extend(frames)
            next_height = frames[-1].height + 1
            refreshed = False
        return out
