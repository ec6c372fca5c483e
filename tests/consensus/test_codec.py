"""Canonical encoding: round trips for every type, and a strict, bounded decoder."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import consensus
from consensus.codec import INT_MAX, INT_MIN, MAX_DEPTH, Encodable, pack_raw, unpack_raw
from consensus.errors import ConsensusError, DecodeError, EncodeError
from consensus.validator_set import ValidatorInfo, ValidatorSet

for mod in pkgutil.walk_packages(consensus.__path__, "consensus."):
    importlib.import_module(mod.name)


def all_encodables() -> list[type[Encodable]]:
    out: list[type[Encodable]] = []
    todo = list(Encodable.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if dataclasses.is_dataclass(cls) and cls.__module__.startswith("consensus."):
            out.append(cls)
    return sorted(out, key=lambda c: (c.__module__, c.__name__))


def _try_build(cls: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except (ConsensusError, ValueError):
        return None


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    if tp is int:
        return st.integers(0, 2048) | st.integers(INT_MIN, INT_MAX)
    if tp is bytes:
        return (
            st.binary(min_size=32, max_size=32)
            | st.binary(min_size=20, max_size=20)
            | st.binary(min_size=64, max_size=64)
            | st.binary(max_size=40)
        )
    if tp is str:
        return st.text(max_size=12)
    origin, args = get_origin(tp), get_args(tp)
    if origin is tuple:
        return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
    if origin in (typing.Union, types.UnionType):
        inner = args[0] if args[1] is type(None) else args[1]
        return st.none() | strategy_for(inner)
    if tp is ValidatorSet:
        return st.lists(
            st.tuples(st.binary(min_size=20, max_size=20), st.integers(1, 10**9), st.integers(-(10**9), 10**9)),
            min_size=1,
            max_size=5,
            unique_by=lambda t: t[0],
        ).map(lambda rows: ValidatorSet(tuple(ValidatorInfo(a, b"\x01" * 32, p, q) for a, p, q in sorted(rows))))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = get_type_hints(tp)
        fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(tp) if f.init}
        # Some containers validate in their constructor: draw until one builds,
        # mostly from small positive integers and hash-sized byte strings.
        plain = {
            f.name: (
                st.integers(1, 2048)
                if hints[f.name] is int
                else st.binary(min_size=32, max_size=32)
                if hints[f.name] is bytes
                else strategy_for(hints[f.name])
            )
            for f in dataclasses.fields(tp)
            if f.init
        }
        return (st.fixed_dictionaries(fields) | st.fixed_dictionaries(plain)).map(
            lambda kw: _try_build(tp, kw)
        ).filter(lambda v: v is not None)
    raise TypeError(tp)


ENCODABLES = all_encodables()


def test_every_consensus_type_is_covered() -> None:
    names = {c.__name__ for c in ENCODABLES}
    for expected in ("Transfer", "TxPayload", "Header", "Block", "Vote", "Proposal", "Commit",
                     "Validator", "ComputeNFT", "UnbondingEntry", "SlashingRecord", "Params", "Genesis"):
        assert expected in names


@pytest.mark.parametrize("cls", ENCODABLES, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_decode_encode_roundtrip(cls: type[Encodable], data: st.DataObject) -> None:
    strategy = strategy_for(ValidatorSet if cls is ValidatorSet else cls)
    value = data.draw(strategy)
    encoded = value.encode()
    assert cls.decode(encoded) == value
    assert cls.decode(encoded).encode() == encoded


@given(st.binary(max_size=200))
@settings(max_examples=500, deadline=None)
def test_decoder_never_crashes_on_random_bytes(data: bytes) -> None:
    try:
        value = unpack_raw(data)
    except DecodeError:
        return
    # Anything accepted is canonical: it re-encodes to the same bytes.
    assert pack_raw(value) == data


raw_trees = st.recursive(
    st.integers(INT_MIN, INT_MAX) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4),
    max_leaves=20,
)


@given(raw_trees)
@settings(max_examples=300, deadline=None)
def test_raw_roundtrip(tree: Any) -> None:
    assert unpack_raw(pack_raw(tree)) == tree


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("non-minimal uint8", b"\xcc\x05"),
        ("non-minimal uint16", b"\xcd\x00\x10"),
        ("non-minimal bin8 length", b"\xc5\x00\x01a"),
        ("trailing bytes", b"\x01\x02"),
        ("float32", b"\xca\x00\x00\x00\x00"),
        ("float64", b"\xcb" + b"\x00" * 8),
        ("map", b"\x81\x01\x02"),
        ("empty map", b"\x80"),
        ("str", b"\xa1a"),
        ("nil", b"\xc0"),
        ("true", b"\xc3"),
        ("ext", b"\xd4\x01\x00"),
        ("huge array header", b"\xdd\xff\xff\xff\xff"),
        ("huge bin header", b"\xc6\xff\xff\xff\xff"),
        ("truncated bin", b"\xc4\x10abc"),
        ("truncated array", b"\x93\x01"),
        ("too deep", b"\x91" * (MAX_DEPTH + 2) + b"\x01"),
        ("empty", b""),
    ],
)
def test_invalid_encodings_are_refused(name: str, data: bytes) -> None:
    with pytest.raises(DecodeError):
        unpack_raw(data)


def test_invalid_oversize_input_refused_before_parsing() -> None:
    with pytest.raises(DecodeError, match="exceeds the limit"):
        unpack_raw(b"\xc4\x05hello", max_bytes=4)


def test_invalid_field_count_and_types() -> None:
    from consensus.txs import Transfer

    with pytest.raises(DecodeError, match="expected 2 fields"):
        Transfer.decode(msgpack.packb([b"x" * 20]))
    with pytest.raises(DecodeError, match="expected int"):
        Transfer.decode(msgpack.packb([b"x" * 20, b"1"]))


def test_encode_refuses_out_of_range_and_wrong_types() -> None:
    from consensus.txs import Transfer

    with pytest.raises(EncodeError):
        Transfer(b"x" * 20, 1 << 64).encode()
    with pytest.raises(EncodeError):
        Transfer("not bytes", 1).encode()  # type: ignore[arg-type]


def test_invalid_chain_id_cannot_be_signed_over() -> None:
    """A chain id that is not ASCII or is over 255 bytes gets a ConsensusError, not a Python error."""
    from consensus.crypto import Domain, sign_bytes
    from consensus.errors import CryptoError

    assert sign_bytes(Domain.VOTE, "cstake-devnet", b"x").endswith(b"cstake-devnetx")
    with pytest.raises(CryptoError, match="ASCII"):
        sign_bytes(Domain.VOTE, "chäin", b"x")
    with pytest.raises(CryptoError, match="255"):
        sign_bytes(Domain.VOTE, "c" * 256, b"x")
