"""Canonical encoding: the one msgpack form of every hashed or signed object.

A value on the wire is built from three shapes only: unsigned or signed
integers (64-bit range), byte strings, and arrays. Containers are frozen
dataclasses that encode as an array of their fields in declaration order; an
optional field is an array of zero or one element; text is UTF-8 bytes. No
maps, floats, strings, nil, booleans or extension types ever appear.

Decoding is strict and bounded: the input length is capped before anything is
parsed, every declared length is capped by msgpack before allocation, the
number of objects built is capped (an object budget), nesting depth is capped,
trailing bytes are refused, and the result is re-encoded and compared byte for
byte, which refuses every non-minimal form (an integer or length written wider
than needed). Exactly one byte string encodes each value.

The object budget exists because every integer and empty array is one byte on
the wire: a megabyte of them is a million Python objects, then a Python walk
and a re-encode, before the shape is even looked at. The budget is counted
while msgpack builds the arrays, so an input over it is refused with a
DecodeError after building at most about twice the budget. A container's
budget comes from its schema (``compute_object_bound``): a fixed-shape
container (a vote, an envelope) has a constant budget, one with variable
arrays a constant plus a rate per input byte that no well-shaped encoding
exceeds. An untyped decode (``unpack_raw`` without ``max_objects``) gets
``DEFAULT_OBJECTS_BASE`` plus one object per ``DEFAULT_OBJECT_BYTES`` bytes,
since every raw wire form here carries its bulk in byte strings.
"""

from __future__ import annotations

import dataclasses
import fractions
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, get_args, get_origin, get_type_hints

import msgpack

from consensus.errors import DecodeError, EncodeError

#: Largest encoded object accepted by default (a block may state a larger cap).
DEFAULT_MAX_BYTES = 1 << 20
#: Deepest array nesting accepted.
MAX_DEPTH = 12
#: Largest array accepted by default.
DEFAULT_MAX_ARRAY = 1 << 16
#: Objects an untyped decode may build regardless of size (small fixed arrays).
DEFAULT_OBJECTS_BASE = 64
#: ...plus one object per this many input bytes (raw wire forms carry byte strings).
DEFAULT_OBJECT_BYTES = 16
#: Inputs shorter than this (so with fewer objects) are counted by the walk after
#: parsing instead of while msgpack builds them: the same budget, without a Python
#: call per array on every small message.
_COUNT_WHILE_PARSING = 4096

INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1

Raw = int | bytes | list["Raw"]

T = TypeVar("T", bound="Encodable")


def _check_raw(value: object, depth: int) -> int:
    """Refuse anything but ints, bytes and arrays, and nesting beyond MAX_DEPTH; return the object count."""
    if depth > MAX_DEPTH:
        raise DecodeError(f"nesting deeper than {MAX_DEPTH}")
    t = type(value)
    if t is int or t is bytes:
        return 1
    if t is list:
        count = 1
        for item in value:  # type: ignore[attr-defined]
            count += _check_raw(item, depth + 1)
        return count
    raise DecodeError(f"type {t.__name__} is not allowed in canonical encoding")


def pack_raw(value: Raw) -> bytes:
    """Encode a raw tree (ints, bytes, lists) to canonical msgpack."""
    try:
        return msgpack.packb(value, use_bin_type=True, strict_types=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"cannot encode value: {exc}") from exc


def compute_default_max_objects(n_bytes: int) -> int:
    """Return the object budget of an untyped decode of ``n_bytes`` bytes."""
    return DEFAULT_OBJECTS_BASE + n_bytes // DEFAULT_OBJECT_BYTES


def _object_counter(budget: int) -> Callable[[list[Raw]], list[Raw]]:
    """Return a msgpack ``list_hook`` that refuses the input once ``budget`` objects are built.

    msgpack calls the hook as each array is completed (innermost first); the
    root counts as one object and every array adds its elements.
    """
    built = 1

    def hook(items: list[Raw]) -> list[Raw]:
        nonlocal built
        built += len(items)
        if built > budget:
            raise DecodeError(f"more than {budget} encoded objects (the object budget of this input)")
        return items

    return hook


def unpack_raw(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_array: int = DEFAULT_MAX_ARRAY,
    max_objects: int | None = None,
) -> Raw:
    """Decode canonical msgpack into a raw tree, strictly and with bounds.

    ``max_objects`` caps the integers, byte strings and arrays built (default
    ``compute_default_max_objects(len(data))``); past it the decode stops with
    a DecodeError.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_bytes:
        raise DecodeError(f"encoded size {len(data)} exceeds the limit of {max_bytes} bytes")
    if not data:
        raise DecodeError("empty input")
    budget = compute_default_max_objects(len(data)) if max_objects is None else max_objects
    if budget < 1:
        raise DecodeError(f"an object budget of {budget} admits no value")
    # No array may hold more elements than the whole budget: refused at its header.
    max_array = min(max_array, budget)
    try:
        if len(data) < _COUNT_WHILE_PARSING:
            value = msgpack.unpackb(
                data, raw=True, use_list=True, strict_map_key=True, max_str_len=0, max_map_len=0,
                max_ext_len=0, max_bin_len=max_bytes, max_array_len=max_array,
            )
        else:
            value = msgpack.unpackb(
                data, raw=True, use_list=True, strict_map_key=True, max_str_len=0, max_map_len=0,
                max_ext_len=0, max_bin_len=max_bytes, max_array_len=max_array,
                list_hook=_object_counter(budget),
            )
    except msgpack.ExtraData as exc:
        raise DecodeError("trailing bytes after the encoded value") from exc
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise DecodeError(f"malformed msgpack: {exc}") from exc
    if _check_raw(value, 0) > budget:
        raise DecodeError(f"more than {budget} encoded objects (the object budget of this input)")
    if pack_raw(value) != data:
        raise DecodeError("non-canonical encoding (a value is not in its shortest form)")
    return typing.cast(Raw, value)


# --- typed containers -----------------------------------------------------

Encoder = Callable[[Any], Raw]
Decoder = Callable[[Raw], Any]


def _int_codec() -> tuple[Encoder, Decoder]:
    def enc(v: Any) -> Raw:
        if type(v) is not int:
            raise EncodeError(f"expected int, got {type(v).__name__}")
        if not INT_MIN <= v <= INT_MAX:
            raise EncodeError(f"integer {v} out of the 64-bit range")
        return v

    def dec(r: Raw) -> Any:
        if type(r) is not int:
            raise DecodeError(f"expected int, got {type(r).__name__}")
        return r

    return enc, dec


def _bytes_codec() -> tuple[Encoder, Decoder]:
    def enc(v: Any) -> Raw:
        if type(v) is not bytes:
            raise EncodeError(f"expected bytes, got {type(v).__name__}")
        return v

    def dec(r: Raw) -> Any:
        if type(r) is not bytes:
            raise DecodeError(f"expected bytes, got {type(r).__name__}")
        return r

    return enc, dec


def _str_codec() -> tuple[Encoder, Decoder]:
    def enc(v: Any) -> Raw:
        if type(v) is not str:
            raise EncodeError(f"expected str, got {type(v).__name__}")
        return v.encode("utf-8")

    def dec(r: Raw) -> Any:
        if type(r) is not bytes:
            raise DecodeError(f"expected text bytes, got {type(r).__name__}")
        try:
            return r.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("text is not valid UTF-8") from exc

    return enc, dec


def _tuple_codec(item: tuple[Encoder, Decoder]) -> tuple[Encoder, Decoder]:
    ienc, idec = item

    def enc(v: Any) -> Raw:
        if type(v) is not tuple:
            raise EncodeError(f"expected tuple, got {type(v).__name__}")
        return [ienc(x) for x in v]

    def dec(r: Raw) -> Any:
        if type(r) is not list:
            raise DecodeError(f"expected array, got {type(r).__name__}")
        return tuple(idec(x) for x in r)

    return enc, dec


def _optional_codec(item: tuple[Encoder, Decoder]) -> tuple[Encoder, Decoder]:
    ienc, idec = item

    def enc(v: Any) -> Raw:
        return [] if v is None else [ienc(v)]

    def dec(r: Raw) -> Any:
        if type(r) is not list or len(r) > 1:
            raise DecodeError("expected an optional (array of 0 or 1 element)")
        return idec(r[0]) if r else None

    return enc, dec


def _class_codec(cls: type[Encodable]) -> tuple[Encoder, Decoder]:
    def enc(v: Any) -> Raw:
        if not isinstance(v, cls):
            raise EncodeError(f"expected {cls.__name__}, got {type(v).__name__}")
        return v.to_raw()

    def dec(r: Raw) -> Any:
        return cls.from_raw(r)

    return enc, dec


def _codec_for(tp: Any) -> tuple[Encoder, Decoder]:
    if tp is int:
        return _int_codec()
    if tp is bytes:
        return _bytes_codec()
    if tp is str:
        return _str_codec()
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple_codec(_codec_for(args[0]))
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = args[0] if args[1] is type(None) else args[1]
        return _optional_codec(_codec_for(inner))
    if isinstance(tp, type) and issubclass(tp, Encodable):
        return _class_codec(tp)
    raise TypeError(f"type {tp!r} has no canonical encoding")


# --- object budgets from the schema ---------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectBound:
    """Any well-shaped encoding of ``n`` bytes holds at most ``base + ceil(per_byte * n)`` objects.

    Sound because every object takes at least one byte (a byte string two) and
    each element of a variable array takes at least ``min_bytes`` of its type.
    """

    base: int
    """Objects of the fixed skeleton (every optional present)."""
    per_byte: fractions.Fraction
    """Most objects the variable arrays add per input byte."""
    min_bytes: int
    """Fewest bytes one value of the type encodes to."""

    def compute_max_objects(self, n_bytes: int) -> int:
        """Return the object budget of an ``n_bytes``-byte input (never above ``n_bytes``)."""
        extra = -(-(self.per_byte.numerator * n_bytes) // self.per_byte.denominator)
        return min(self.base + extra, max(n_bytes, 1))


#: Each container's bound as integers (base, numerator, denominator), filled on first decode.
_OBJECT_RATES: dict[type, tuple[int, int, int]] = {}
#: The bound of a type whose encoding the schema does not describe: one object per byte.
_UNBOUNDED = ObjectBound(1, fractions.Fraction(1), 1)
_INT_BOUND = ObjectBound(1, fractions.Fraction(0), 1)
_BYTES_BOUND = ObjectBound(1, fractions.Fraction(0), 2)


def compute_object_bound(tp: Any) -> ObjectBound:
    """Return the object bound of a field type (mirrors ``_codec_for``)."""
    if tp is int:
        return _INT_BOUND
    if tp is bytes or tp is str:
        return _BYTES_BOUND
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = compute_object_bound(args[0])
        return ObjectBound(1, fractions.Fraction(item.base, item.min_bytes) + item.per_byte, 1)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        item = compute_object_bound(args[0] if args[1] is type(None) else args[1])
        return ObjectBound(1 + item.base, item.per_byte, 1)
    if isinstance(tp, type) and issubclass(tp, Encodable):
        return tp.get_object_bound()
    return _UNBOUNDED


class Encodable:
    """Mixin for frozen dataclasses with a canonical array encoding.

    Fields are encoded in declaration order. ``MAX_BYTES`` caps the encoded
    size accepted by ``decode``; the object budget of ``decode`` comes from the
    fields (``get_object_bound``), tightened to ``DEFAULT_OBJECTS_BASE`` plus
    one object per ``OBJECT_BYTES`` bytes where a class sets it (a class whose
    byte strings are known to be large, which the schema cannot tell).
    """

    __slots__ = ()
    MAX_BYTES: ClassVar[int] = DEFAULT_MAX_BYTES
    #: Fewest input bytes per decoded object in any valid value; 0: derived from the fields only.
    OBJECT_BYTES: ClassVar[int] = 0
    _codecs: ClassVar[tuple[tuple[str, Encoder, Decoder], ...] | None] = None

    @classmethod
    def _field_codecs(cls) -> tuple[tuple[str, Encoder, Decoder], ...]:
        codecs = cls.__dict__.get("_codecs_cache")
        if codecs is None:
            hints = get_type_hints(cls)
            codecs = tuple(
                (f.name, *_codec_for(hints[f.name])) for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            )
            type.__setattr__(cls, "_codecs_cache", codecs)
        return codecs

    @classmethod
    def get_object_bound(cls) -> ObjectBound:
        """Return the object bound of this container's encoding, from its fields (cached)."""
        bound = cls.__dict__.get("_object_bound_cache")
        if bound is not None:
            return bound  # type: ignore[no-any-return]
        # A class with its own raw form is not described by its fields; so is one being
        # computed (a recursive type): both get the one-object-per-byte bound.
        type.__setattr__(cls, "_object_bound_cache", _UNBOUNDED)
        custom = cls.to_raw is not Encodable.to_raw or cls.from_raw.__func__ is not Encodable.from_raw.__func__  # type: ignore[attr-defined]
        if custom or not dataclasses.is_dataclass(cls):
            return _UNBOUNDED
        hints = get_type_hints(cls)
        fields = [compute_object_bound(hints[f.name]) for f in dataclasses.fields(cls)]
        bound = ObjectBound(
            1 + sum(f.base for f in fields),
            max((f.per_byte for f in fields), default=fractions.Fraction(0)),
            1 + sum(f.min_bytes for f in fields),
        )
        type.__setattr__(cls, "_object_bound_cache", bound)
        return bound

    @classmethod
    def compute_max_objects(cls, n_bytes: int) -> int:
        """Return the object budget of decoding ``n_bytes`` bytes as this class."""
        rate = _OBJECT_RATES.get(cls)
        if rate is None:
            bound = cls.get_object_bound()
            rate = _OBJECT_RATES[cls] = (bound.base, bound.per_byte.numerator, bound.per_byte.denominator)
        base, num, den = rate  # the bound as integers: this runs on every decode
        budget = base if num == 0 else base - (-(num * n_bytes) // den)
        if budget > n_bytes:
            budget = max(n_bytes, 1)
        if cls.OBJECT_BYTES > 0:
            budget = min(budget, DEFAULT_OBJECTS_BASE + n_bytes // cls.OBJECT_BYTES)
        return budget

    def to_raw(self) -> Raw:
        """Return the raw array form of this object."""
        return [enc(getattr(self, name)) for name, enc, _ in self._field_codecs()]

    @classmethod
    def from_raw(cls: type[T], raw: Raw) -> T:
        """Build an object from its raw array form, checking every field's type."""
        codecs = cls._field_codecs()
        if type(raw) is not list:
            raise DecodeError(f"{cls.__name__}: expected an array, got {type(raw).__name__}")
        if len(raw) != len(codecs):
            raise DecodeError(f"{cls.__name__}: expected {len(codecs)} fields, got {len(raw)}")
        kwargs = {}
        for (name, _, dec), item in zip(codecs, raw, strict=True):
            try:
                kwargs[name] = dec(item)
            except DecodeError as exc:
                raise DecodeError(f"{cls.__name__}.{name}: {exc}") from None
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"{cls.__name__}: {exc}") from exc

    def encode(self) -> bytes:
        """Return the canonical bytes of this object."""
        return pack_raw(self.to_raw())

    @classmethod
    def decode(cls: type[T], data: bytes, *, max_bytes: int | None = None, max_objects: int | None = None) -> T:
        """Decode canonical bytes strictly into an instance of ``cls``.

        ``max_objects`` defaults to ``compute_max_objects(len(data))``.
        """
        limit = cls.MAX_BYTES if max_bytes is None else max_bytes
        budget = cls.compute_max_objects(len(data)) if max_objects is None else max_objects
        return cls.from_raw(unpack_raw(data, max_bytes=limit, max_objects=budget))
