"""Parsing of JSON-RPC parameters: every bad value becomes an InvalidParams error that says why."""

from __future__ import annotations

from typing import Any

from consensus.crypto import decode_address
from consensus.errors import InvalidAddress
from consensus.hashing import HASH_LEN
from node.rpc.errors import InvalidParams

INT64_MAX = (1 << 63) - 1


def bind_params(method: str, names: tuple[str, ...], params: Any) -> dict[str, Any]:
    """Return named parameters from a JSON-RPC ``params`` (object, array or absent)."""
    if params is None:
        return {}
    if isinstance(params, list):
        if len(params) > len(names):
            raise InvalidParams(f"{method} takes at most {len(names)} positional parameter(s)")
        return dict(zip(names, params, strict=False))
    if isinstance(params, dict):
        unknown = sorted(k for k in params if k not in names)
        if unknown:
            allowed = ", ".join(names) if names else "none"
            raise InvalidParams(f"{method}: unknown parameter '{unknown[0]}' (accepted: {allowed})")
        return params
    raise InvalidParams("params must be an object or an array")


def get_int(p: dict[str, Any], name: str, *, lo: int, hi: int, required: bool = False) -> int | None:
    """Return integer parameter ``name`` in [lo, hi] (None when absent and optional)."""
    value = p.get(name)
    if value is None:
        if required:
            raise InvalidParams(f"missing parameter '{name}'")
        return None
    if type(value) is not int:
        raise InvalidParams(f"'{name}' must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise InvalidParams(f"'{name}' must be in [{lo}, {hi}], got {value}")
    return value


def get_height(p: dict[str, Any], name: str = "height", *, required: bool = False) -> int | None:
    """Return a height parameter: an integer in [1, 2^63-1] (heights start at 1)."""
    return get_int(p, name, lo=1, hi=INT64_MAX, required=required)


def get_bool(p: dict[str, Any], name: str) -> bool:
    """Return boolean parameter ``name`` (false when absent)."""
    value = p.get(name)
    if value is None:
        return False
    if type(value) is not bool:
        raise InvalidParams(f"'{name}' must be true or false, got {type(value).__name__}")
    return value


def get_str(p: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = p.get(name)
    if value is None:
        if required:
            raise InvalidParams(f"missing parameter '{name}'")
        return None
    if type(value) is not str:
        raise InvalidParams(f"'{name}' must be a string, got {type(value).__name__}")
    return value


def parse_hex(text: str, name: str, *, max_bytes: int) -> bytes:
    """Return the bytes of a hex string (``0x`` prefix optional), at most ``max_bytes``."""
    body = text[2:] if text[:2] in ("0x", "0X") else text
    if len(body) > 2 * max_bytes:
        raise InvalidParams(f"'{name}' is longer than {max_bytes} bytes")
    if len(body) % 2:
        raise InvalidParams(f"'{name}' has an odd number of hex digits")
    try:
        return bytes.fromhex(body)
    except ValueError as exc:
        raise InvalidParams(f"'{name}' is not a hex string") from exc


def get_hash(p: dict[str, Any], name: str, *, required: bool = True) -> bytes | None:
    """Return a 32-byte hash parameter given as hex."""
    text = get_str(p, name, required=required)
    if text is None:
        return None
    data = parse_hex(text, name, max_bytes=HASH_LEN)
    if len(data) != HASH_LEN:
        raise InvalidParams(f"'{name}' must be a {HASH_LEN}-byte hash (64 hex digits), got {len(data)} bytes")
    return data


def get_address(p: dict[str, Any], name: str, *, required: bool = True) -> bytes | None:
    """Return a 20-byte address parameter given in bech32 (``cs1...``), checksum checked."""
    text = get_str(p, name, required=required)
    if text is None:
        return None
    try:
        return decode_address(text)
    except InvalidAddress as exc:
        raise InvalidParams(f"'{name}' is not a valid address: {exc}") from exc
