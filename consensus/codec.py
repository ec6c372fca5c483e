"""Canonical encoding: the one msgpack form of every hashed or signed object.

A value on the wire is built from three shapes only: unsigned or signed
integers (64-bit range), byte strings, and arrays. Containers are frozen
dataclasses that encode as an array of their fields in declaration order; an
optional field is an array of zero or one element; text is UTF-8 bytes. No
maps, floats, strings, nil, booleans or extension types ever appear.

Decoding is strict and bounded: the input length is capped before anything is
parsed, every declared length is capped by msgpack before allocation, nesting
depth is capped, trailing bytes are refused, and the result is re-encoded and
compared byte for byte, which refuses every non-minimal form (an integer or
length written wider than needed). Exactly one byte string encodes each value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, get_args, get_origin, get_type_hints

import msgpack

from consensus.errors import DecodeError, EncodeError

#: Largest encoded object accepted by default (a block may state a larger cap).
DEFAULT_MAX_BYTES = 1 << 20
#: Deepest array nesting accepted.
MAX_DEPTH = 12
#: Largest array accepted by default.
DEFAULT_MAX_ARRAY = 1 << 16

INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1

Raw = int | bytes | list["Raw"]

T = TypeVar("T", bound="Encodable")


def _check_raw(value: object, depth: int) -> None:
    """Refuse anything but ints, bytes and arrays, and nesting beyond MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise DecodeError(f"nesting deeper than {MAX_DEPTH}")
    t = type(value)
    if t is int or t is bytes:
        return
    if t is list:
        for item in value:  # type: ignore[attr-defined]
            _check_raw(item, depth + 1)
        return
    raise DecodeError(f"type {t.__name__} is not allowed in canonical encoding")


def pack_raw(value: Raw) -> bytes:
    """Encode a raw tree (ints, bytes, lists) to canonical msgpack."""
    try:
        return msgpack.packb(value, use_bin_type=True, strict_types=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"cannot encode value: {exc}") from exc


def unpack_raw(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_array: int = DEFAULT_MAX_ARRAY,
) -> Raw:
    """Decode canonical msgpack into a raw tree, strictly and with bounds."""
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_bytes:
        raise DecodeError(f"encoded size {len(data)} exceeds the limit of {max_bytes} bytes")
    if not data:
        raise DecodeError("empty input")
    try:
        value = msgpack.unpackb(
            data,
            raw=True,
            use_list=True,
            strict_map_key=True,
            max_str_len=0,
            max_map_len=0,
            max_ext_len=0,
            max_bin_len=max_bytes,
            max_array_len=max_array,
        )
    except msgpack.ExtraData as exc:
        raise DecodeError("trailing bytes after the encoded value") from exc
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise DecodeError(f"malformed msgpack: {exc}") from exc
    _check_raw(value, 0)
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


class Encodable:
    """Mixin for frozen dataclasses with a canonical array encoding.

    Fields are encoded in declaration order. ``MAX_BYTES`` caps the encoded
    size accepted by ``decode``.
    """

    __slots__ = ()
    MAX_BYTES: ClassVar[int] = DEFAULT_MAX_BYTES
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
    def decode(cls: type[T], data: bytes, *, max_bytes: int | None = None) -> T:
        """Decode canonical bytes strictly into an instance of ``cls``."""
        limit = cls.MAX_BYTES if max_bytes is None else max_bytes
        return cls.from_raw(unpack_raw(data, max_bytes=limit))
