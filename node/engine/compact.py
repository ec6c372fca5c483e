"""Compact proposal blocks: a large block travels as its transaction ids, rebuilt from the mempool.

Every transaction of a proposal block has already crossed the network once,
in transaction gossip, and sits in the receivers' mempools. Sending it again
inside the block doubled the bytes per committed transaction and, under load,
made a 2,000-transaction proposal miss its propose timeout round after round.
So a block above the inline size is announced as ``[2, proposal, compact]``,
where ``compact`` is the block with each transaction replaced by its id
(``hash32`` of its wire bytes).

A compact block is checked whole before it is accepted or relayed
(``check_compact``): its header is the signed one (the header's hash is the
proposal's block hash), the ids' Merkle root is the header's ``txs_hash``, and
every other field matches its hash in the header. No forwarder can alter any
of it, so a mismatch is the sender's fault. A receiver then takes each
transaction from its mempool by id (``rebuild``); it asks the sender for the
ones it lacks, by index, over the ``block-txs`` request protocol (each answer
checked against its id), and fetches the whole block by hash when that fails.
A rebuilt block hashes to the proposal by construction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from consensus.blocks import Block
from consensus.codec import Raw, pack_raw, unpack_raw
from consensus.errors import ConsensusError
from consensus.hashing import HASH_LEN, hash32, merkle_root
from consensus.votes import Proposal

#: A compact block message carries at most this many bytes (ids, commit, attestations, evidence).
COMPACT_MAX_BYTES = 1 << 20
#: The most transaction indices one ``block-txs`` request may ask for.
MAX_REQUESTED_TXS = 1 << 16

#: Looks up a transaction's wire bytes by its id (the mempool); None when absent.
TxLookup = Callable[[bytes], bytes | None]


def block_txs_protocol(chain_id: str) -> str:
    return f"/cstake/{chain_id}/block-txs/1"


def encode_compact(block: Block) -> bytes:
    """The compact form of ``block``: its transactions replaced by their ids."""
    return dataclasses.replace(block, txs=tuple(hash32(t) for t in block.txs)).encode()


def decode_compact(data: bytes) -> Block:
    """Decode a compact block (a Block whose transactions are 32-byte ids); raise ConsensusError."""
    return Block.decode(data, max_bytes=COMPACT_MAX_BYTES)


def check_compact(compact: Block, proposal: Proposal) -> str | None:
    """Return why ``compact`` is not the proposed block, or None when it is (all but the transaction bytes)."""
    h = compact.header
    if h.hash() != proposal.block_hash or h.height != proposal.height:
        return "the compact block's header is not the proposed one"
    if any(len(tx_id) != HASH_LEN for tx_id in compact.txs):
        return "a transaction id is not 32 bytes"
    if merkle_root(list(compact.txs)) != h.txs_hash:
        return "the transaction ids are not the header's"
    # Everything else as the full block is checked: a header whose txs_hash is that of no
    # transactions, with none, passes or fails exactly as the block's other fields do.
    rest = dataclasses.replace(compact, header=dataclasses.replace(h, txs_hash=merkle_root([])), txs=())
    try:
        rest.validate_basic()
    except ConsensusError as exc:
        return f"the compact block does not match its header: {exc}"
    return None


def rebuild(compact: Block, lookup: TxLookup) -> tuple[list[bytes | None], list[int]]:
    """The block's transactions as far as ``lookup`` has them, and the indices it lacks."""
    txs: list[bytes | None] = [lookup(tx_id) for tx_id in compact.txs]
    return txs, [i for i, tx in enumerate(txs) if tx is None]


def fill(compact: Block, txs: list[bytes | None], indices: list[int], found: list[bytes]) -> Block | None:
    """The full block, with ``found`` (the answers for ``indices``) put in; None if any answer is wrong."""
    if len(found) != len(indices):
        return None
    for i, raw in zip(indices, found, strict=True):
        if type(raw) is not bytes or hash32(raw) != compact.txs[i]:
            return None
        txs[i] = raw
    if any(tx is None for tx in txs):
        return None
    return dataclasses.replace(compact, txs=tuple(t for t in txs if t is not None))


def encode_txs_request(block_hash: bytes, indices: list[int]) -> bytes:
    asked: list[Raw] = list(indices)
    return pack_raw([block_hash, asked])


def decode_txs_request(request: bytes) -> tuple[bytes, list[int]]:
    """Parse a ``block-txs`` request; raise ConsensusError when malformed."""
    # Small integers take a byte each: the default object budget (made for byte strings) is too tight.
    raw = unpack_raw(request, max_bytes=48 + 5 * MAX_REQUESTED_TXS, max_array=MAX_REQUESTED_TXS,
                     max_objects=len(request) + 4)
    if type(raw) is not list or len(raw) != 2 or type(raw[0]) is not bytes or len(raw[0]) != HASH_LEN:
        raise ConsensusError("a block-txs request is [block_hash, [index, ...]]")
    indices = raw[1]
    if type(indices) is not list or len(indices) > MAX_REQUESTED_TXS or any(type(i) is not int for i in indices):
        raise ConsensusError("a block-txs request asks for a list of transaction indices")
    asked = [i for i in indices if type(i) is int]
    # Strictly ascending: each transaction at most once, so an answer is never larger than the block.
    if any(b <= a for a, b in zip(asked, asked[1:], strict=False)) or (asked and asked[0] < 0):
        raise ConsensusError("a block-txs request lists distinct indices in ascending order")
    return raw[0], asked


def serve_txs(block: Block, indices: list[int]) -> list[bytes]:
    """The answer to a ``block-txs`` request for ``block``: one frame, the asked transactions in order."""
    if any(not 0 <= i < len(block.txs) for i in indices):
        return [b""]
    return [pack_raw([block.txs[i] for i in indices])]


def decode_txs_answer(frames: list[bytes], max_bytes: int) -> list[bytes] | None:
    """The transactions of a ``block-txs`` answer, or None when it is empty or malformed."""
    if len(frames) != 1 or not frames[0]:
        return None
    try:
        raw = unpack_raw(frames[0], max_bytes=max_bytes)
    except ConsensusError:
        return None
    if type(raw) is not list:
        return None
    txs = [t for t in raw if type(t) is bytes]
    return txs if len(txs) == len(raw) else None
