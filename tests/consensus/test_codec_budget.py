"""The decoder's object budget: a megabyte of one-byte objects is refused before it is built.

Every integer and empty array is one byte on the wire, so a 1 MiB payload can
ask the decoder for a million Python objects, then a Python walk and a
re-encode, before any shape check runs. These tests send such payloads to every
wire decoder and count what the decoder built (through msgpack's array hook)
and whether it reached the Python walk; they also check that valid messages of
the densest shapes still decode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest

import consensus.codec as codec
from consensus.blocks import Block, EvidenceItem, Header
from consensus.codec import Encodable, pack_raw, unpack_raw
from consensus.errors import DecodeError
from consensus.evidence import ConflictingProposalEvidence, DuplicateVoteEvidence
from consensus.txs import SignedTx, TxPayload
from consensus.votes import Commit, CommitSig, Proposal, Vote
from p2p.envelope import BlockFrame, Envelope, TxBatch

#: Objects in each flood payload (16 arrays of 65,530 one-byte objects: 1 MiB).
FLOOD_OBJECTS = 16 * 65_530 + 17


def _ints() -> bytes:
    return pack_raw([[0] * 65_530 for _ in range(16)])


def _empty_arrays() -> bytes:
    return pack_raw([[[] for _ in range(65_530)] for _ in range(16)])


FLOODS = {"ints": _ints(), "empty_arrays": _empty_arrays()}

#: Every decoder that reads bytes from a peer, as (name, call).
WIRE_DECODERS: dict[str, Callable[[bytes], object]] = {
    "envelope": lambda d: Envelope.decode(d, max_bytes=2 << 20),
    "tx_batch": lambda d: TxBatch.decode(d, max_bytes=2 << 20),
    "block_frame": lambda d: BlockFrame.decode(d, max_bytes=2 << 20),
    "block": lambda d: Block.decode(d),
    "commit": lambda d: Commit.decode(d, max_bytes=2 << 20),
    "vote": lambda d: Vote.decode(d, max_bytes=2 << 20),
    "proposal": lambda d: Proposal.decode(d, max_bytes=2 << 20),
    "duplicate_vote_evidence": lambda d: DuplicateVoteEvidence.decode(d, max_bytes=2 << 20),
    "conflicting_proposal_evidence": lambda d: ConflictingProposalEvidence.decode(d, max_bytes=2 << 20),
    "signed_tx": lambda d: SignedTx.decode(d, max_bytes=2 << 20),
    "tx_payload": lambda d: TxPayload.decode(d, max_bytes=2 << 20),
    "raw": lambda d: unpack_raw(d, max_bytes=2 << 20),
}


class Work:
    """What one decode did: objects msgpack built into arrays, and Python walks run."""

    def __init__(self) -> None:
        self.objects = 0
        self.walks = 0


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    """Count the objects msgpack builds and the decoder's Python walks (``_check_raw``)."""
    w = Work()
    real_unpackb = msgpack.unpackb
    real_check = codec._check_raw

    def unpackb(data: bytes, **kw: Any) -> Any:
        inner = kw.get("list_hook")

        def hook(items: list[Any]) -> Any:
            w.objects += len(items)
            return inner(items) if inner is not None else items

        kw["list_hook"] = hook
        return real_unpackb(data, **kw)

    def check(value: object, depth: int) -> int:
        if depth == 0:
            w.walks += 1
        return real_check(value, depth)

    monkeypatch.setattr(codec.msgpack, "unpackb", unpackb)
    monkeypatch.setattr(codec, "_check_raw", check)
    yield w


@pytest.mark.parametrize("flood", sorted(FLOODS))
@pytest.mark.parametrize("name", sorted(WIRE_DECODERS))
def test_invalid_flood_of_one_byte_objects_is_refused_before_it_is_built(name: str, flood: str, work: Work) -> None:
    data = FLOODS[flood]
    assert len(data) <= (1 << 20) + 64
    with pytest.raises(DecodeError):
        WIRE_DECODERS[name](data)
    # Refused inside msgpack, before the Python walk and the re-encode.
    assert work.walks == 0
    # At most about twice the budget built: a fraction of the payload's objects.
    assert work.objects < FLOOD_OBJECTS * 0.9


@pytest.mark.parametrize(
    ("cls", "most"),
    [
        (Envelope, 4), (BlockFrame, 4), (Vote, 8), (Proposal, 8), (TxPayload, 8),
        (DuplicateVoteEvidence, 17), (ConflictingProposalEvidence, 17), (Header, 13),
    ],
)
def test_fixed_shape_containers_have_a_constant_budget(cls: type[Encodable], most: int, work: Work) -> None:
    assert cls.compute_max_objects(1 << 20) == most
    with pytest.raises(DecodeError):
        cls.decode(FLOODS["ints"], max_bytes=2 << 20)
    assert work.objects <= 2 * most  # refused at the first array header or soon after


def test_explicit_budget_is_exact() -> None:
    data = pack_raw([1, [2, 3], b"x"])  # 6 objects: 2 arrays, 3 ints, 1 byte string
    assert unpack_raw(data, max_objects=6) == [1, [2, 3], b"x"]
    with pytest.raises(DecodeError, match="object budget"):
        unpack_raw(data, max_objects=5)
    with pytest.raises(DecodeError):
        unpack_raw(data, max_objects=0)
    assert TxBatch.decode(TxBatch((b"a", b"b")).encode(), max_objects=4) == TxBatch((b"a", b"b"))
    with pytest.raises(DecodeError):
        TxBatch.decode(TxBatch((b"a", b"b", b"c")).encode(), max_objects=4)


def test_tx_batch_budget_from_the_batch_limit_refuses_a_long_batch_at_its_header(work: Work) -> None:
    with pytest.raises(DecodeError, match="max_array_len"):
        TxBatch.decode(pack_raw([[b"t"] * 5000]), max_objects=802)
    assert work.objects == 0


def _header() -> Header:
    return Header(
        chain_id="c", height=2, round=0, time_ms=1, proposer=b"p" * 20, parent_hash=b"\x01" * 32,
        last_commit_hash=b"\x02" * 32, txs_hash=b"\x03" * 32, attestations_hash=b"\x04" * 32,
        evidence_hash=b"\x05" * 32, state_root=b"\x06" * 32, validators_hash=b"\x07" * 32,
    )


def test_densest_valid_messages_still_decode() -> None:
    # The densest shapes a valid block or commit can take: 20-byte signers with 64-byte
    # signatures and zero times, the smallest real transactions, attestations and evidence.
    commit = Commit(1, 0, b"h" * 32, tuple(CommitSig(b"v" * 20, 0, b"s" * 64) for _ in range(20_000)))
    block = Block(
        _header(),
        txs=tuple(b"t" * 100 for _ in range(20_000)),
        attestations=(b"a" * 100,) * 1000,
        evidence=tuple(EvidenceItem(0, b"e" * 100) for _ in range(2_000)),
        last_commit=commit,
    )
    for value in (commit, block, TxBatch((b"",) * 60_000)):
        data = value.encode()
        assert type(value).decode(data, max_bytes=64 << 20) == value
    raw = [0, b"proposal", b"block", 3]  # a proposal-topic message decoded untyped
    assert unpack_raw(pack_raw(raw)) == raw


def test_schema_dense_junk_blocks_and_commits_are_refused() -> None:
    """Empty signers and signatures fit the schema but no valid commit: refused before they are built."""
    commit = Commit(1, 0, b"h" * 32, tuple(CommitSig(b"", 0, b"") for _ in range(20_000)))
    with pytest.raises(DecodeError):
        Commit.decode(commit.encode(), max_bytes=64 << 20)
    block = Block(_header(), txs=tuple(b"" for _ in range(200_000)), attestations=(), evidence=(),
                  last_commit=Commit(1, 0, b"h" * 32, ()))
    with pytest.raises(DecodeError):
        Block.decode(block.encode(), max_bytes=64 << 20)


def test_real_messages_decode_with_their_budgets() -> None:
    from consensus.crypto import PrivateKey
    from consensus.txs import Transfer, build_tx

    key = PrivateKey.generate()
    txs = [build_tx(key, "c", n, 10, Transfer(b"r" * 20, 5)).raw for n in range(200)]
    assert SignedTx.decode(txs[0]).raw == txs[0]
    batch = TxBatch(tuple(txs)).encode()
    assert TxBatch.decode(batch).txs == tuple(txs)
    env = Envelope(1, "tx", batch).encode()
    assert Envelope.decode(env, max_bytes=2 << 20).payload == batch
    vote = Vote(3, 1, 1, b"h" * 32, b"v" * 20, 1_700_000_000_000, b"s" * 64)
    assert Vote.decode(vote.encode()) == vote
    block = Block(_header(), tuple(txs), (), (), Commit(1, 0, b"h" * 32, (CommitSig(b"v" * 20, 5, b"s" * 64),)))
    frame = BlockFrame(2, block.encode(), b"")
    assert Block.decode(BlockFrame.decode(frame.encode(), max_bytes=8 << 20).block) == block


@dataclasses.dataclass(frozen=True, slots=True)
class _Pieces(Encodable):
    """A container whose byte strings are known to be large (as a block's transactions are)."""

    OBJECT_BYTES = 16

    items: tuple[bytes, ...]


def test_object_bytes_tightens_a_schema_budget(work: Work) -> None:
    # The schema alone allows one object per 2 bytes; a class that knows better says 16.
    assert _Pieces.get_object_bound().compute_max_objects(1 << 20) == 2 + (1 << 19)
    assert _Pieces.compute_max_objects(1 << 20) == 64 + (1 << 16)
    with pytest.raises(DecodeError, match="object budget"):
        _Pieces.decode(FLOODS["ints"], max_bytes=2 << 20)
    assert work.objects <= 2 * (64 + (1 << 16))
    value = _Pieces(tuple(b"x" * 15 for _ in range(4000)))  # 17 bytes per item
    assert _Pieces.decode(value.encode()) == value
