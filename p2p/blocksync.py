"""Block sync over request/response: status exchange and blocks-with-commits by range.

The server side answers ``/cstake/<chain>/status/1`` with a ``StatusMessage``
and ``/cstake/<chain>/blocks/1`` with one ``BlockFrame`` per height, bounded
by ``max_request_blocks`` and ``max_request_bytes``. The node supplies the
data through a ``BlockProvider``, and the frame cap derived from its chain's
``max_block_bytes`` (``compute_max_frame_bytes``), so that every valid block
can be served.

The client asks peers for their status, then fetches a range in requests,
each to a holder picked at random (a seeded ``random.Random`` the client
owns: a fixed order would let one peer be asked first every time). Every
frame is checked as it arrives: its size (one frame within the frame cap,
one response within ``max_response``), its height, and the node's ``verify``
callback (block, chain link and commit; it raises ``ConsensusError`` or
``BadPeerData`` on bad data). The server of a bad frame is penalised and
disconnected, the frames before it are kept, and the rest is fetched from
another holder. An empty answer is no fault (the peer may have pruned the
range since its status): statuses are asked again and another holder tried.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
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
#: A BlockFrame's bytes beyond its block and commit: the msgpack array, height and two bin headers.
FRAME_OVERHEAD_BYTES = 64


class BlockProvider(Protocol):
    """What the node gives the sync server (plain or async methods)."""

    def get_status(self) -> tuple[int, bytes, int] | Awaitable[tuple[int, bytes, int]]:
        """Return (latest height, its block hash, earliest stored height)."""

    def get_blocks(self, start: int, end: int) -> Sequence[tuple[bytes, bytes]] | Awaitable[Sequence[tuple[bytes, bytes]]]:
        """Return (block bytes, commit bytes) for heights start..end that are stored, in order."""


def compute_max_frame_bytes(max_block_bytes: int, max_commit_bytes: int) -> int:
    """Return the largest block frame of a chain: its largest block, a commit, the frame's own fields."""
    return max_block_bytes + max_commit_bytes + FRAME_OVERHEAD_BYTES


async def _maybe_await(value: object) -> object:
    return await value if inspect.isawaitable(value) else value


class BlockSyncServer:
    """Serves status and block ranges from the node's provider."""

    def __init__(self, transport: Transport, provider: BlockProvider, *, max_frame_bytes: int | None = None) -> None:
        self._provider = provider
        cfg = transport.config
        self.max_blocks = cfg.max_request_blocks
        #: Largest frame served: the node passes the chain's largest block with its commit
        #: (``compute_max_frame_bytes``), so no valid block is ever held back by the cap.
        self.max_frame = max(cfg.max_frame_bytes, max_frame_bytes or 0)
        self.max_bytes = max(cfg.max_request_bytes, self.max_frame)
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

    def __init__(
        self,
        transport: Transport,
        *,
        blocks_per_request: int | None = None,
        timeout: float | None = None,
        max_frame_bytes: int | None = None,
        max_response_bytes: int | None = None,
        seed: int | None = None,
    ) -> None:
        self._t = transport
        cfg = transport.config
        self._status_proto = status_protocol(cfg.chain_id)
        self._blocks_proto = blocks_protocol(cfg.chain_id)
        self.blocks_per_request = blocks_per_request or cfg.max_request_blocks
        self.timeout = timeout or cfg.request_timeout
        #: Largest frame accepted: the chain's largest block with its commit (the node passes it).
        self.max_frame = max_frame_bytes or cfg.max_frame_bytes
        #: Most bytes one response may carry, all frames together.
        self.max_response = max(max_response_bytes or cfg.max_request_bytes, self.max_frame)
        #: Picks the holder each request goes to: never a fixed order, which one peer
        #: with a low id could exploit to be asked first every time. Seeded by tests.
        self.rng = random.Random(seed)
        # Frames asked per request: shrinks after large blocks so that frames x the
        # per-frame cap stays within the response cap (see fetch_blocks).
        self._window = self.blocks_per_request

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
        """Fetch ``start..end`` (at most ``blocks_per_request``) from one peer; checks heights and sizes only.

        An empty list means the peer holds none of them (it may have pruned).
        Raises BadPeerData on malformed or oversized answers.
        """
        count = min(end - start + 1, self._window)
        # The transports cap frames one by one; the response as a whole stays within
        # max_response because each of ``count`` frames is capped at its share.
        share = min(self.max_frame, self.max_response // count)
        try:
            frames = await self._request_blocks(peer_id, start, count, share)
        except BadPeerData:
            if share >= self.max_frame:
                raise
            # A frame may have been over its share yet within the chain's limit (a large
            # block): ask for that one block alone, under the full frame cap.
            self._window = 1
            frames = await self._request_blocks(peer_id, start, 1, self.max_frame)
        total = sum(len(f) for f in frames)
        if total > self.max_response:
            raise BadPeerData(f"{peer_id} answered {total} bytes, more than the {self.max_response} a response may carry")
        out = []
        for i, raw in enumerate(frames):
            try:
                frame = BlockFrame.decode(raw, max_bytes=self.max_frame)
            except DecodeError as exc:
                raise BadPeerData(f"{peer_id} sent a malformed block frame: {exc}") from exc
            if frame.height != start + i:
                raise BadPeerData(f"{peer_id} sent height {frame.height} where {start + i} was due")
            out.append(frame)
        if frames:
            # Next request: as many frames as fit the response cap at twice this answer's
            # largest frame, so a run of large blocks costs no failed request each.
            largest = max(len(f) for f in frames)
            self._window = max(1, min(self.blocks_per_request, self.max_response // (2 * largest)))
        return out

    async def _request_blocks(self, peer_id: str, start: int, count: int, frame_cap: int) -> list[bytes]:
        return await self._t.request(
            peer_id,
            self._blocks_proto,
            BlocksRequest(start, start + count - 1).encode(),
            timeout=self.timeout,
            max_frames=count,
            max_frame_bytes=frame_cap,
        )

    def _holders(self, statuses: dict[str, StatusMessage], height: int, tried: set[str]) -> list[str]:
        """Connected peers whose status covers ``height`` and not yet tried, in random order."""
        connected = set(self._t.peers())
        holders = sorted(
            p
            for p, s in statuses.items()
            if s.earliest_height <= height <= s.height and p in connected and p not in tried
        )
        self.rng.shuffle(holders)
        return holders

    def _penalise(self, peer: str, statuses: dict[str, StatusMessage], why: Exception) -> None:
        log.warning("peer %s served bad blocks: %s", peer, why)
        self._t.report_peer(peer, "bad_data", disconnect=True)
        statuses.pop(peer, None)

    async def fetch_range(
        self,
        start: int,
        end: int,
        verify: Verifier | None = None,
        statuses: dict[str, StatusMessage] | None = None,
        attempts: int = 4,
        sources: dict[int, str] | None = None,
        max_bytes: int | None = None,
    ) -> list[BlockFrame]:
        """Fetch and verify every block ``start..end`` from the peers that have them.

        Each request goes to a holder picked at random. Every frame is verified
        as it arrives, in height order: the frames before a bad one are kept,
        the server of the bad one is penalised and disconnected, and the rest
        is fetched from another holder. A peer that answers nothing (it pruned
        the range since its status) is not penalised: statuses are asked again
        and another holder tried. Up to ``attempts`` peers are tried per height;
        NoPeersAvailable when a height cannot be had from anyone. ``sources``,
        when given, is filled with the peer that served each height. With
        ``max_bytes`` the fetch stops early, after the answer that brings the
        frames kept to that many bytes: the caller applies them and asks again
        for the rest, so a range of large blocks is never held at once.
        """
        if statuses is None:
            statuses = await self.fetch_statuses()
        out: list[BlockFrame] = []
        kept_bytes = 0
        next_height = start
        tried: set[str] = set()
        errors: list[str] = []
        refreshed = False
        while next_height <= end:
            holders = self._holders(statuses, next_height, tried) if len(tried) < attempts else []
            if not holders and not refreshed and len(tried) < attempts:
                # Statuses go stale (peers come and go, heads move, ranges are pruned): ask again once.
                statuses.update(await self.fetch_statuses())
                refreshed = True
                continue
            if not holders:
                detail = "; ".join(errors) if errors else "no connected peer has it"
                raise NoPeersAvailable(f"block {next_height} could not be fetched: {detail}")
            peer = holders[0]
            tried.add(peer)
            chunk_end = min(end, next_height + self.blocks_per_request - 1, statuses[peer].height)
            try:
                got = await self.fetch_blocks(peer, next_height, chunk_end)
            except BadPeerData as exc:
                errors.append(f"{peer}: {exc}")
                self._penalise(peer, statuses, exc)
                continue
            except RequestFailed as exc:
                errors.append(f"{peer}: {exc}")
                continue
            if not got:
                # Not a fault: the peer may have pruned these heights after telling its status.
                errors.append(f"{peer}: holds no block from {next_height}")
                statuses.pop(peer, None)
                refreshed = False
                continue
            kept = 0
            for frame in got:
                if verify is not None:
                    try:
                        await _maybe_await(verify(frame))
                    except (BadPeerData, ConsensusError) as exc:
                        errors.append(f"{peer}: {exc}")
                        self._penalise(peer, statuses, exc)
                        break
                out.append(frame)
                kept_bytes += len(frame.block) + len(frame.commit)
                if sources is not None:
                    sources[frame.height] = peer
                kept += 1
            if kept:
                next_height = got[kept - 1].height + 1
                tried.clear()
                errors.clear()
                refreshed = False
                if max_bytes is not None and kept_bytes >= max_bytes:
                    break
        return out
