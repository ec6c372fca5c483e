"""Peer-to-peer configuration: one frozen dataclass, validated, plus the wire names.

The operator's config.toml fills ``P2PConfig`` (node/ loads the TOML); the
topic names and protocol ids derive from the chain id so two chains never
share a mesh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from p2p.errors import ConfigError

#: Default cap on one gossip message (the whole envelope), checked before decoding.
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
#: Default cap on one frame of a request/response stream (a block with its commit).
DEFAULT_MAX_FRAME_BYTES = 8 << 20

#: Gossip kinds; each is one topic ``/cstake/<chain-id>/<kind>/1``.
GOSSIP_KINDS = ("tx", "proposal", "vote", "attestation", "evidence")

_CHAIN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def topic_name(chain_id: str, kind: str) -> str:
    """Return the GossipSub topic of ``kind`` on ``chain_id``."""
    if kind not in GOSSIP_KINDS:
        raise ConfigError(f"unknown gossip kind {kind!r}; known: {', '.join(GOSSIP_KINDS)}")
    return f"/cstake/{chain_id}/{kind}/1"


def status_protocol(chain_id: str) -> str:
    """Return the status request/response protocol id."""
    return f"/cstake/{chain_id}/status/1"


def blocks_protocol(chain_id: str) -> str:
    """Return the blocks-by-range request/response protocol id."""
    return f"/cstake/{chain_id}/blocks/1"


def peers_protocol(chain_id: str) -> str:
    """Return the peer-exchange request/response protocol id."""
    return f"/cstake/{chain_id}/peers/1"


def ping_protocol(chain_id: str) -> str:
    """Return the keep-alive ping protocol id."""
    return f"/cstake/{chain_id}/ping/1"


#: A token bucket's unit: one token per message, or one per byte of the message.
RATE_UNITS = ("messages", "bytes")
#: The largest ``max_block_bytes`` of the chain presets (mainnet's 16 MiB): the default proposal
#: budget is sized for it; a node sizes it from its own genesis with ``compute_rate_limits``.
DEFAULT_MAX_BLOCK_BYTES = 16 << 20  # p2p knows no chain parameters: tests/p2p pins it to mainnet's
#: Full blocks of parts a peer may forward per second on the proposal topic (a round's block,
#: the proposer's re-broadcast while a height stalls, the next round's block)...
PROPOSAL_BLOCKS_PER_S = 2
#: ...and at once, after an idle spell.
PROPOSAL_BURST_BLOCKS = 3
#: Headroom on top of the blocks: announcements, inline proposals, a commit allowance.
PROPOSAL_HEADROOM_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    """Tokens added per second."""
    burst: float
    """Bucket capacity: the largest burst allowed after idling."""
    unit: str = "messages"
    """What a token is: one message, or one byte of a message (``RATE_UNITS``)."""
    penalise: bool = True
    """True: a message beyond the bucket is dropped at the gate and its forwarder penalised.

    False: the message still goes to its validator, and what the validator
    would accept is ignored instead (not relayed, not delivered, no penalty);
    only the validator's own ``Reject`` penalises. For a topic whose honest
    volume a forwarder cannot bound (it relays validly signed proposal parts
    as they come), so a full block is never held against the peer that
    relays it.
    """

    def validate(self, name: str) -> None:
        """Raise ConfigError unless both numbers are positive and the unit is known."""
        if not (self.rate > 0 and self.burst >= 1):
            raise ConfigError(f"{name}: rate must be > 0 and burst >= 1 (got {self.rate}, {self.burst})")
        if self.unit not in RATE_UNITS:
            raise ConfigError(f"{name}: unit must be one of {', '.join(RATE_UNITS)} (got {self.unit!r})")

    def get_cost(self, size: int) -> float:
        """Tokens one message of ``size`` bytes takes."""
        return float(size) if self.unit == "bytes" else 1.0


def compute_proposal_rate_limit(max_block_bytes: int) -> RateLimit:
    """The proposal topic's per-peer budget in bytes: a few full blocks of parts, never penalised."""
    if max_block_bytes < 1:
        raise ConfigError(f"max_block_bytes must be positive (got {max_block_bytes})")
    return RateLimit(
        rate=float(PROPOSAL_BLOCKS_PER_S * max_block_bytes),
        burst=float(PROPOSAL_BURST_BLOCKS * max_block_bytes + PROPOSAL_HEADROOM_BYTES),
        unit="bytes",
        penalise=False,
    )


def compute_rate_limits(max_block_bytes: int) -> dict[str, RateLimit]:
    """Per-peer token buckets by gossip kind, the proposal topic's sized from the chain's block size."""
    # Counted in gossip messages (a tx batch is one message) but for proposals, counted in
    # bytes: one full block is hundreds of 32 KiB parts. Generous for honest traffic of a
    # small validator set; a flooding peer is cut.
    return {
        "tx": RateLimit(rate=500.0, burst=2000.0),
        "proposal": compute_proposal_rate_limit(max_block_bytes),
        "vote": RateLimit(rate=2000.0, burst=5000.0),
        "attestation": RateLimit(rate=200.0, burst=1000.0),
        "evidence": RateLimit(rate=50.0, burst=200.0),
    }


def _default_rate_limits() -> dict[str, RateLimit]:
    return compute_rate_limits(DEFAULT_MAX_BLOCK_BYTES)


@dataclass(frozen=True, slots=True)
class P2PConfig:
    """Everything the p2p layer needs from the operator's configuration."""

    chain_id: str
    """Chain id; part of every topic and protocol id."""
    key_path: str
    """Peer key file (32-byte Ed25519 seed, mode 0600), created if absent."""
    listen_host: str = "127.0.0.1"
    """Address to listen on (IPv4)."""
    listen_port: int = 26656
    """TCP port to listen on; 0 picks a free port."""
    bootstrap: tuple[str, ...] = ()
    """Bootstrap peers as multiaddrs with ``/p2p/<peer id>``."""
    max_peers: int = 32
    """Most peers connected at once; inbound connections beyond it are closed."""
    outbound_slots: int | None = None
    """Connections kept free of inbound peers (None: a quarter of ``max_peers``, at most 8)."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Cap on one gossip message (envelope), checked before decoding or relaying."""
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    """Cap on one request/response frame (blocks may be larger than gossip allows)."""
    max_request_blocks: int = 500
    """Most blocks served for one blocks request."""
    max_request_bytes: int = 16 << 20
    """Most bytes served for one blocks request (the frame that crosses it is the last)."""
    request_timeout: float = 10.0
    """Seconds to wait for a whole response."""
    rate_limits: dict[str, RateLimit] = field(default_factory=_default_rate_limits)
    """Per-peer token buckets by gossip kind (``compute_rate_limits`` sizes them from the chain's block size)."""
    request_rate: RateLimit = RateLimit(rate=50.0, burst=100.0)
    """Per-peer token bucket on inbound requests (all protocols together)."""
    tx_batch_max_txs: int = 200
    """A tx batch is flushed at this many transactions..."""
    tx_batch_max_bytes: int = 32 * 1024
    """...or this many bytes (kept well under Yamux's 64 KiB frame)..."""
    tx_batch_delay: float = 0.005
    """...or this many seconds after its first transaction."""
    reconnect_min: float = 0.5
    """First redial delay for a lost bootstrap or exchanged peer (doubles each try)."""
    reconnect_max: float = 30.0
    """Longest redial delay for an exchanged peer."""
    persistent_reconnect_max: float = 3.0
    """Longest redial delay for a persistent (bootstrap) peer: they are always redialled, soon."""
    keepalive_interval: float = 1.0
    """Seconds between keep-alive pings to each connected peer."""
    keepalive_timeout: float = 2.5
    """Seconds a ping may take before it counts as missed."""
    keepalive_misses: int = 3
    """Missed pings in a row after which the connection is closed as dead (and redialled)."""
    peer_exchange_interval: float = 5.0
    """Seconds between peer-exchange rounds."""
    heartbeat_interval: int = 1
    """GossipSub heartbeat in seconds (whole seconds in py-libp2p 0.8.1)."""
    delivery_queue: int = 10_000
    """Accepted messages waiting for the node's handler, per topic; beyond it, dropped and counted."""
    gil_switch_interval: float | None = 0.0005
    """Seconds (``sys.setswitchinterval``) set by the libp2p transport at start; None leaves it.

    The libp2p thread and the node's loop share the GIL: with Python's default
    5 ms, every hand-off between them can stall both for up to 5 ms when both
    are busy (measured: 14-16 ms per hand-off under load, 2-4 ms at 0.2 ms).
    """

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent value."""
        if not _CHAIN_ID_RE.match(self.chain_id):
            raise ConfigError(f"chain_id {self.chain_id!r} must be 1-64 of [A-Za-z0-9._-]")
        if not self.key_path:
            raise ConfigError("key_path is required (the peer key file)")
        if not 0 <= self.listen_port <= 65535:
            raise ConfigError(f"listen_port {self.listen_port} is out of range")
        for addr in self.bootstrap:
            if "/p2p/" not in addr or not addr.startswith("/"):
                raise ConfigError(f"bootstrap address {addr!r} must be a multiaddr ending in /p2p/<peer id>")
        if self.max_peers < 1:
            raise ConfigError("max_peers must be at least 1")
        if self.outbound_slots is not None and not 0 <= self.outbound_slots < self.max_peers:
            raise ConfigError(f"outbound_slots must be in [0, max_peers) = [0, {self.max_peers}), "
                              f"got {self.outbound_slots}")
        if not 1024 <= self.max_message_bytes <= 4 << 20:
            raise ConfigError("max_message_bytes must be between 1 KiB and 4 MiB")
        if self.max_frame_bytes < self.max_message_bytes:
            raise ConfigError("max_frame_bytes must be at least max_message_bytes")
        if self.max_request_blocks < 1 or self.max_request_bytes < self.max_frame_bytes:
            raise ConfigError("max_request_blocks >= 1 and max_request_bytes >= max_frame_bytes")
        if self.request_timeout <= 0:
            raise ConfigError("request_timeout must be positive")
        for kind in GOSSIP_KINDS:
            if kind not in self.rate_limits:
                raise ConfigError(f"rate_limits has no entry for {kind!r}")
            self.rate_limits[kind].validate(f"rate_limits[{kind}]")
        self.request_rate.validate("request_rate")
        if self.tx_batch_max_txs < 1 or self.tx_batch_delay < 0:
            raise ConfigError("tx_batch_max_txs >= 1 and tx_batch_delay >= 0")
        if not 256 <= self.tx_batch_max_bytes < self.max_message_bytes:
            raise ConfigError("tx_batch_max_bytes must be >= 256 and below max_message_bytes")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ConfigError("need 0 < reconnect_min <= reconnect_max")
        if not self.reconnect_min <= self.persistent_reconnect_max:
            raise ConfigError("need reconnect_min <= persistent_reconnect_max")
        if not (self.keepalive_interval > 0 and self.keepalive_timeout > 0 and self.keepalive_misses >= 1):
            raise ConfigError("keepalive_interval > 0, keepalive_timeout > 0 and keepalive_misses >= 1")
        if self.peer_exchange_interval <= 0 or self.heartbeat_interval < 1:
            raise ConfigError("peer_exchange_interval > 0 and heartbeat_interval >= 1")
        if self.delivery_queue < 1:
            raise ConfigError("delivery_queue must be at least 1")
        if self.gil_switch_interval is not None and not 0.00001 <= self.gil_switch_interval <= 0.1:
            raise ConfigError("gil_switch_interval must be between 10 microseconds and 0.1 s (or None)")

    def topic(self, kind: str) -> str:
        """Return this chain's topic for ``kind``."""
        return topic_name(self.chain_id, kind)

    def with_changes(self, **changes: object) -> P2PConfig:
        """Return a copy with some fields replaced (validated)."""
        cfg = replace(self, **changes)  # type: ignore[arg-type]
        cfg.validate()
        return cfg
