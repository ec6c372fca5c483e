"""The transport interface node/ programs against: gossip, requests, peers, events.

Everything here is asyncio-facing. Two implementations exist: the libp2p
transport (``p2p.host.Libp2pTransport``: real processes, TCP, Noise, Yamux,
GossipSub) and the in-memory transport (``p2p.memory.MemoryTransport``:
many nodes in one process, with drop/delay hooks for simulations). Both
apply the same size caps, rate limits and verdict rules (``p2p.dispatch``).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from p2p.config import P2PConfig
from p2p.stats import P2PStats


class Verdict(enum.Enum):
    """A validator's answer for one gossip message."""

    ACCEPT = "accept"
    """Valid: deliver to the handler and relay to peers."""
    IGNORE = "ignore"
    """Not useful now (duplicate, stale, too far ahead): drop quietly, no penalty."""
    REJECT = "reject"
    """Invalid in a way an honest peer never sends: drop and penalise the sender."""


@dataclass(frozen=True, slots=True)
class Reject:
    """REJECT naming why: the forwarder is penalised under ``p2p.scoring.PENALTY[reason]``.

    A validator may answer ``Verdict.REJECT`` (penalised as ``"rejected"``) or a
    ``Reject`` with one of the table's names; an unknown name counts as ``"rejected"``.
    """

    reason: str = "rejected"


#: What a validator answers: ACCEPT, IGNORE, REJECT, or a named ``Reject``.
GossipVerdict = Verdict | Reject
#: ``(peer_id, payload) -> GossipVerdict``, plain or async; runs on the node's asyncio loop.
Validator = Callable[[str, bytes], "GossipVerdict | Awaitable[GossipVerdict]"]
#: ``(peer_id, payload) -> None``, plain or async; receives accepted messages in order.
Handler = Callable[[str, bytes], "None | Awaitable[None]"]
#: ``(peer_id, request) -> response frames``, plain or async; raise to refuse.
RequestHandler = Callable[[str, bytes], "Sequence[bytes] | Awaitable[Sequence[bytes]]"]


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """A connection to a peer was established."""

    peer_id: str


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    """The last connection to a peer was closed."""

    peer_id: str


@dataclass(frozen=True, slots=True)
class PeerPenalised:
    """A peer was penalised (rejected message, bad data, malformed frame, flooding)."""

    peer_id: str
    reason: str
    disconnected: bool


PeerEvent = PeerConnected | PeerDisconnected | PeerPenalised
EventHandler = Callable[[PeerEvent], None]


class Transport(abc.ABC):
    """What node/ needs from the network. All methods run on the node's asyncio loop."""

    config: P2PConfig
    stats: P2PStats

    @property
    @abc.abstractmethod
    def peer_id(self) -> str:
        """This node's peer id (stable across restarts for the same key file)."""

    @abc.abstractmethod
    def listen_addrs(self) -> list[str]:
        """Multiaddrs (with ``/p2p/<peer id>``) others can dial; empty before start."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Start listening, join the topics subscribed so far, dial the bootstrap peers."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close every connection and stop every thread and task this transport started."""

    @abc.abstractmethod
    def subscribe(self, kind: str, validator: Validator, handler: Handler) -> None:
        """Receive gossip of ``kind``: ``validator`` decides, ``handler`` gets accepted payloads."""

    @abc.abstractmethod
    async def publish(self, kind: str, payload: bytes) -> None:
        """Gossip ``payload`` on ``kind``'s topic (not delivered back to this node).

        Raises MessageTooLarge if the envelope exceeds ``max_message_bytes``.
        """

    @abc.abstractmethod
    def set_request_handler(self, protocol: str, handler: RequestHandler) -> None:
        """Serve ``protocol``: each request gets the handler's frames as the response."""

    @abc.abstractmethod
    async def request(
        self,
        peer_id: str,
        protocol: str,
        data: bytes,
        *,
        timeout: float | None = None,
        max_frames: int = 1,
        max_frame_bytes: int | None = None,
    ) -> list[bytes]:
        """Send one request and return the response frames (at most ``max_frames``).

        Raises RequestTimeout, PeerUnavailable, MessageTooLarge or RequestFailed.
        """

    @abc.abstractmethod
    def peers(self) -> list[str]:
        """Peer ids currently connected."""

    @abc.abstractmethod
    async def connect(self, addr: str) -> str:
        """Dial a multiaddr with ``/p2p/<peer id>``; return the peer id."""

    @abc.abstractmethod
    async def disconnect(self, peer_id: str) -> None:
        """Close the connection to ``peer_id`` (it may reconnect later)."""

    @abc.abstractmethod
    def report_peer(self, peer_id: str, reason: str, *, disconnect: bool = False) -> None:
        """Penalise a peer that served bad data; with ``disconnect``, also cut and ban it a while."""

    @abc.abstractmethod
    def add_event_handler(self, handler: EventHandler) -> None:
        """Call ``handler`` (on the asyncio loop) for every PeerConnected/Disconnected/Penalised."""

    @abc.abstractmethod
    def get_peer_score(self, peer_id: str) -> float:
        """The current score of a peer (0 for unknown peers; negative means misbehaving)."""
