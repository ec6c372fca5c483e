"""How the state trie's branches are laid out in key-value records (pages).

The page at an even depth ``d`` on a path is stored under ``schema.node_key(d,
path)`` and holds that path's branch record at depth ``d`` (its *top*),
followed, when the top has between 1 and ``EMBED_MAX_CHILDREN`` child branches,
by those children's records in slot order (each record self-delimits by its
header). Otherwise the child branches (depth ``d+1``) are stored on their own
under ``schema.node_key(d+1, path)``. A page with more bytes than its top
embeds its children; one without does not. See storage/state_tree.py for why.
"""

from __future__ import annotations

from consensus.state_proof import RECORD_HEADER_LEN, compute_record_len, get_nibble
from storage import schema
from storage.errors import CorruptStoreError
from storage.kv import KVReader

#: A page embeds its child branches only if its top has at most this many.
EMBED_MAX_CHILDREN = 8

#: A parsed page: the top branch record and its embedded child branch records
#: by slot, or None when its child branches are stored on their own.
Page = tuple[bytes, dict[int, bytes] | None]


def _record_len(key: bytes, data: bytes, at: int) -> int:
    """Return the length of the branch record starting at ``data[at:]`` (checked)."""
    if len(data) < at + RECORD_HEADER_LEN:
        raise CorruptStoreError(f"state trie page {key.hex()} is truncated")
    bitmap = int.from_bytes(data[at : at + 2], "big")
    leafmask = int.from_bytes(data[at + 2 : at + 4], "big")
    length = compute_record_len(bitmap, leafmask)
    if leafmask & ~bitmap or len(data) < at + length:
        raise CorruptStoreError(f"state trie page {key.hex()} holds a malformed branch")
    return length


def split_page(key: bytes, data: bytes | None) -> Page:
    """Parse a stored page into its top record and child records, or raise CorruptStoreError."""
    if data is None:
        raise CorruptStoreError(f"state trie page {key.hex()} is missing")
    top_len = _record_len(key, data, 0)
    branches = int.from_bytes(data[0:2], "big") & ~int.from_bytes(data[2:4], "big")
    if top_len == len(data):
        # No embedded children: either there are none, or they stand alone.
        return data, (None if branches else {})
    top = data[:top_len]
    children: dict[int, bytes] = {}
    at = top_len
    while branches:  # the set bits, lowest slot first
        low = branches & -branches
        branches ^= low
        length = _record_len(key, data, at)
        children[low.bit_length() - 1] = data[at : at + length]
        at += length
    if at != len(data):
        raise CorruptStoreError(f"state trie page {key.hex()} has trailing bytes")
    return top, children


def check_record(key: bytes, data: bytes | None) -> bytes:
    """Return a standalone branch record if it is well formed, else raise CorruptStoreError."""
    if data is None:
        raise CorruptStoreError(f"state trie branch {key.hex()} is missing")
    if _record_len(key, data, 0) != len(data):
        raise CorruptStoreError(f"state trie branch {key.hex()} has trailing bytes")
    return data


def read_branch(reader: KVReader, depth: int, kh: bytes) -> bytes:
    """Return the branch record at ``depth`` on ``kh``'s path, or raise CorruptStoreError."""
    key = schema.node_key(depth & ~1, kh)
    top, children = split_page(key, reader.get(key))
    if not depth & 1:
        return top
    if children is None:
        child_key = schema.node_key(depth, kh)
        return check_record(child_key, reader.get(child_key))
    record = children.get(get_nibble(kh, depth - 1))
    if record is None:
        raise CorruptStoreError(f"state trie page {key.hex()} lacks a child branch")
    return record


def with_nibble(path: bytes, depth: int, nib: int) -> bytes:
    """Return ``path`` with the nibble at ``depth`` set to ``nib``."""
    i = depth >> 1
    byte = path[i]
    byte = (byte & 0xF0) | nib if depth & 1 else (byte & 0x0F) | (nib << 4)
    return path[:i] + bytes((byte,)) + path[i + 1 :]
