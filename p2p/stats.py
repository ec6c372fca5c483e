"""Counters of the p2p layer, for logs and the node's Prometheus export.

One mutable object per transport. Writers are the transport's network side
(the libp2p thread or the in-memory hub); readers take ``snapshot()``, a
plain dict. Single integer updates are atomic under the GIL, so a snapshot
may be a moment stale but never torn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Reasons a message is dropped; each is a key of ``P2PStats.dropped``.
DROP_REASONS = (
    "oversize",  # larger than its cap, refused before decoding
    "malformed",  # not a valid envelope / batch / frame
    "rate",  # over the sender's token bucket
    "rejected",  # the node's validator said REJECT
    "score",  # the forwarder's score is below the publish threshold
    "ignored",  # the node's validator said IGNORE
    "queue_full",  # the node's handler queue was full
    "outbound_full",  # libp2p's per-peer outbound queue was full
    "validator_error",  # the validator raised or timed out
)


@dataclass(slots=True)
class P2PStats:
    """Live counters; ``snapshot()`` for a copy."""

    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    delivered: int = 0
    requests_in: int = 0
    requests_out: int = 0
    requests_failed: int = 0
    peers: int = 0
    peers_connected_total: int = 0
    peers_disconnected_total: int = 0
    peers_penalised: int = 0
    peers_refused: int = 0
    malformed_frames: int = 0
    #: IDONTWANT announcements sent for large messages as they arrived.
    idontwant_sent: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` messages dropped for ``reason``."""
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def snapshot(self) -> dict[str, object]:
        """Return the counters as a plain dict (``dropped`` as a nested dict)."""
        out: dict[str, object] = {
            name: getattr(self, name) for name in self.__slots__ if name != "dropped"
        }
        out["dropped"] = dict(self.dropped)
        return out
