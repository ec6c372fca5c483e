"""Wire envelopes: the canonical msgpack forms of everything p2p puts on the wire.

Every gossip message is an ``Envelope``: a version, the gossip kind (which must
match the topic it arrived on) and the node's payload as opaque bytes. A
transaction batch is the payload of a ``tx`` envelope. The request/response
messages (status, blocks by range, peer exchange) are defined here too, so
that one module holds every p2p wire shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.codec import Encodable
from consensus.errors import DecodeError
from p2p.config import GOSSIP_KINDS
from p2p.errors import MalformedMessage

ENVELOPE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Envelope(Encodable):
    """One gossip message."""

    version: int
    """Envelope format version (``ENVELOPE_VERSION``)."""
    kind: str
    """Gossip kind (``tx``, ``proposal``, ...); must match the topic."""
    payload: bytes
    """The node's bytes, opaque to p2p."""


@dataclass(frozen=True, slots=True)
class TxBatch(Encodable):
    """Several encoded transactions gossiped as one message."""

    txs: tuple[bytes, ...]
    """Each element is one canonical encoded transaction."""


@dataclass(frozen=True, slots=True)
class StatusMessage(Encodable):
    """Answer to a status request: what range of blocks the peer can serve."""

    height: int
    """Latest committed height (0 before the first block)."""
    block_hash: bytes
    """Hash of the block at ``height`` (empty before the first block)."""
    earliest_height: int
    """Lowest height the peer still stores (pruned below)."""


@dataclass(frozen=True, slots=True)
class BlocksRequest(Encodable):
    """Ask for blocks ``start..end`` inclusive, with their commits."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class BlockFrame(Encodable):
    """One block with the commit that finalised it (one response frame)."""

    height: int
    block: bytes
    commit: bytes


@dataclass(frozen=True, slots=True)
class PeerRecord(Encodable):
    """A peer and the addresses it listens on."""

    peer_id: str
    addrs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PeerExchange(Encodable):
    """Peer exchange: the sender's own record and the peers it knows."""

    sender: PeerRecord
    peers: tuple[PeerRecord, ...]


def encode_envelope(kind: str, payload: bytes) -> bytes:
    """Return the canonical bytes of a gossip envelope."""
    return Envelope(ENVELOPE_VERSION, kind, payload).encode()


def decode_envelope(data: bytes, expected_kind: str, max_bytes: int) -> bytes:
    """Return the payload of an envelope of ``expected_kind``, or raise MalformedMessage."""
    try:
        env = Envelope.decode(data, max_bytes=max_bytes)
    except DecodeError as exc:
        raise MalformedMessage(f"gossip envelope: {exc}") from exc
    if env.version != ENVELOPE_VERSION:
        raise MalformedMessage(f"gossip envelope version {env.version} is not {ENVELOPE_VERSION}")
    if env.kind != expected_kind or env.kind not in GOSSIP_KINDS:
        raise MalformedMessage(f"gossip envelope of kind {env.kind!r} on the {expected_kind!r} topic")
    return env.payload


def encode_tx_batch(txs: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Return the payload of a ``tx`` envelope carrying ``txs``."""
    return TxBatch(tuple(txs)).encode()


def decode_tx_batch(payload: bytes, max_bytes: int, max_txs: int) -> tuple[bytes, ...]:
    """Return the transactions of a batch, or raise MalformedMessage (empty batches too)."""
    try:
        batch = TxBatch.decode(payload, max_bytes=max_bytes)
    except DecodeError as exc:
        raise MalformedMessage(f"tx batch: {exc}") from exc
    if not batch.txs:
        raise MalformedMessage("tx batch is empty")
    if len(batch.txs) > max_txs:
        raise MalformedMessage(f"tx batch holds {len(batch.txs)} transactions, more than {max_txs}")
    if any(not tx for tx in batch.txs):
        raise MalformedMessage("tx batch holds an empty transaction")
    return batch.txs
