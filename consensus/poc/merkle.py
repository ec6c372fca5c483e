"""The commitment to C: a Merkle tree over its rows, and per-row inclusion proofs.

A row's leaf bytes are its n entries as little-endian int32 (4·n bytes): every
entry of a correct C has magnitude at most 49·n <= 100,352, so int32 holds it
with room to spare, at half the hashing cost of int64.

The tree is exactly ``consensus.hashing.merkle_root`` over those leaf bytes
(RFC 6962 style): a leaf hash is ``SHA-256(0x00 || leaf)``, an inner node is
``SHA-256(0x01 || left || right)``, and at each level an odd last node is promoted
unchanged to the next level. A proof for leaf ``i`` of ``size`` leaves is the
list of sibling hashes from the leaf level up, skipping the levels where the
node is the promoted odd one (it has no sibling there); the verifier walks the
same levels from ``i`` and ``size`` alone, so a proof has no direction bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from consensus.hashing import HASH_LEN, hash32

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
ROW_DTYPE = np.dtype("<i4")
ROW_ENTRY_BYTES = 4


def encode_row(row: npt.NDArray[np.integer]) -> bytes:
    """Return a row's canonical leaf bytes (entries as little-endian int32)."""
    return np.ascontiguousarray(row, dtype=ROW_DTYPE).tobytes()


def decode_row(data: bytes, n: int) -> npt.NDArray[np.int64]:
    """Return the n entries of a row's leaf bytes as int64 (length must be 4·n)."""
    if len(data) != ROW_ENTRY_BYTES * n:
        raise ValueError(f"a row of {n} entries is {ROW_ENTRY_BYTES * n} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=ROW_DTYPE).astype(np.int64)


def hash_leaf(leaf: bytes) -> bytes:
    """Return the leaf hash of one row's bytes."""
    return hash32(LEAF_PREFIX + leaf)


def hash_node(left: bytes, right: bytes) -> bytes:
    """Return the hash of an inner node."""
    return hash32(NODE_PREFIX + left + right)


def build_levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Return every level of the tree, leaf hashes first and the root level (one hash) last."""
    if not leaf_hashes:
        raise ValueError("a commitment needs at least one row")
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        nxt = [hash_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
    return levels


def compute_root(levels: Sequence[Sequence[bytes]]) -> bytes:
    """Return the root of a tree built by build_levels."""
    return levels[-1][0]


def compute_proof(levels: Sequence[Sequence[bytes]], index: int) -> tuple[bytes, ...]:
    """Return the sibling path of leaf ``index`` (leaf level first)."""
    size = len(levels[0])
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} out of range for {size} leaves")
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index //= 2
    return tuple(path)


def get_proof_length(index: int, size: int) -> int:
    """Return how many sibling hashes the proof of leaf ``index`` among ``size`` leaves has."""
    length = 0
    while size > 1:
        if index ^ 1 < size:
            length += 1
        index //= 2
        size = (size + 1) // 2
    return length


def is_valid_proof(root: bytes, leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bool:
    """Return whether ``leaf`` is leaf ``index`` of a ``size``-leaf tree with ``root``."""
    if not 0 <= index < size or len(root) != HASH_LEN:
        return False
    if len(path) != get_proof_length(index, size):
        return False
    node = hash_leaf(leaf)
    step = 0
    while size > 1:
        sibling = index ^ 1
        if sibling < size:
            other = path[step]
            if type(other) is not bytes or len(other) != HASH_LEN:
                return False
            node = hash_node(node, other) if index % 2 == 0 else hash_node(other, node)
            step += 1
        index //= 2
        size = (size + 1) // 2
    return node == root



def is_valid_batch(root: bytes, size: int, openings: Sequence[tuple[int, bytes, Sequence[bytes]]]) -> bool:
    """Return whether every (index, leaf, path) is in the ``size``-leaf tree with ``root``.

    Same answer as is_valid_proof on each, but every tree node is hashed once:
    sampled paths share most of their upper nodes. Each path element must equal
    the node it stands for, whether computed from an opened leaf or given by
    another path, so no element of any path goes unchecked.
    """
    if len(root) != HASH_LEN or not openings:
        return False
    known: dict[int, bytes] = {}
    positions: list[int] = []
    paths: list[Sequence[bytes]] = []
    for index, leaf, path in openings:
        if not 0 <= index < size or len(path) != get_proof_length(index, size):
            return False
        if any(type(p) is not bytes or len(p) != HASH_LEN for p in path):
            return False
        node = hash_leaf(leaf)
        if known.setdefault(index, node) != node:
            return False
        positions.append(index)
        paths.append(path)
    steps = [0] * len(positions)
    while size > 1:
        # Siblings given by the paths must agree with what is known at this level.
        for c, position in enumerate(positions):
            sibling = position ^ 1
            if sibling < size:
                given = paths[c][steps[c]]
                steps[c] += 1
                if known.setdefault(sibling, given) != given:
                    return False
        parents: dict[int, bytes] = {}
        for idx in sorted(known):
            parent = idx // 2
            if parent not in parents:
                left = 2 * parent
                right = left + 1
                parents[parent] = hash_node(known[left], known[right]) if right < size else known[left]
        known = parents
        positions = [p // 2 for p in positions]
        size = (size + 1) // 2
    return known.get(0) == root
