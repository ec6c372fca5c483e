"""Strict decoding of proof-of-compute transaction bodies: round trips, and no crash on junk."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.codec import pack_raw
from consensus.errors import DecodeError
from consensus.hashing import hash32
from consensus.poc import Challenge, PocCommitment, PocFraudProof, PocOpenings, RowOpening
from tests.kit.poc import make_challenge

hashes = st.binary(min_size=32, max_size=32)
openings_st = st.builds(
    RowOpening,
    index=st.integers(0, 1 << 24),
    row=st.binary(max_size=64),
    path=st.lists(hashes, max_size=4).map(tuple),
)


@given(challenge_id=hashes, root=hashes)
def test_poc_commitment_roundtrip(challenge_id: bytes, root: bytes) -> None:
    c = PocCommitment(challenge_id=challenge_id, root=root)
    assert PocCommitment.decode(c.encode()) == c


@given(challenge_id=hashes, items=st.lists(openings_st, max_size=5))
def test_poc_openings_and_fraud_proof_roundtrip(challenge_id: bytes, items: list[RowOpening]) -> None:
    o = PocOpenings(challenge_id=challenge_id, openings=tuple(items))
    assert PocOpenings.decode(o.encode()) == o
    for item in items:
        f = PocFraudProof(challenge_id=challenge_id, opening=item)
        assert PocFraudProof.decode(f.encode()) == f


@settings(max_examples=300)
@given(data=st.binary(max_size=200))
def test_decode_junk_raises_only_decode_error(data: bytes) -> None:
    for cls in (Challenge, PocCommitment, PocOpenings, PocFraudProof, RowOpening):
        with contextlib.suppress(DecodeError):
            cls.decode(data)


@settings(max_examples=300)
@given(position=st.integers(0, 10_000), value=st.integers(0, 255))
def test_decode_mutated_challenge_raises_only_decode_error(position: int, value: int) -> None:
    encoded = bytearray(make_challenge(64, 64).encode())
    encoded[position % len(encoded)] = value
    try:
        decoded = Challenge.decode(bytes(encoded))
    except DecodeError:
        return
    # A mutation that still decodes yields a challenge that passed every field check.
    assert 1 <= decoded.n <= 2048 and decoded.deadline_height > decoded.height


def test_invalid_commitment_short_root_does_not_decode() -> None:
    raw = PocCommitment(challenge_id=hash32(b"a"), root=hash32(b"b")).to_raw()
    assert isinstance(raw, list)
    raw[1] = b"short"
    with pytest.raises(DecodeError, match="root"):
        PocCommitment.decode(pack_raw(raw))
