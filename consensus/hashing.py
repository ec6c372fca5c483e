"""The one hash function of the protocol (SHA-256) and the tagged forms built on it.

Every id, root and derived seed uses SHA-256. Tagged hashing prefixes a
length-delimited domain tag so a hash of one kind of object can never be
mistaken for a hash of another.
"""

from __future__ import annotations

import hashlib

HASH_LEN = 32
ZERO_HASH = bytes(HASH_LEN)


def hash32(data: bytes) -> bytes:
    """Return SHA-256 of ``data``."""
    return hashlib.sha256(data).digest()


def tagged_hash(tag: bytes, data: bytes) -> bytes:
    """Return SHA-256 over ``len(tag) || tag || data`` (domain-separated hashing)."""
    return hashlib.sha256(bytes((len(tag),)) + tag + data).digest()


def merkle_root(leaves: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Return the binary Merkle root of ``leaves`` (RFC 6962 style).

    Leaves are hashed with prefix 0x00 and inner nodes with 0x01, so a leaf can
    never be confused with an inner node; an odd node is promoted unchanged.
    The root of no leaves is SHA-256 of the empty string.
    """
    if not leaves:
        return hash32(b"")
    level = [hash32(b"\x00" + leaf) for leaf in leaves]
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            nxt.append(hash32(b"\x01" + level[i] + level[i + 1]))
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]
