"""Merkle commitment over rows: proofs verify, tampered ones fail, root matches hashing.merkle_root."""

from __future__ import annotations

import numpy as np
import pytest

from consensus.hashing import hash32, merkle_root
from consensus.poc.merkle import (
    build_levels,
    compute_proof,
    compute_root,
    decode_row,
    encode_row,
    get_proof_length,
    hash_leaf,
    is_valid_proof,
)
from node.compute.prover import build_level_blobs, compute_path


def leaves_for(size: int) -> list[bytes]:
    return [encode_row(np.arange(4, dtype=np.int64) * (i + 1) - 3) for i in range(size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 32, 33, 100])
def test_proofs_verify_for_every_leaf(size: int) -> None:
    leaves = leaves_for(size)
    levels = build_levels([hash_leaf(x) for x in leaves])
    root = compute_root(levels)
    assert root == merkle_root(leaves)
    blobs = build_level_blobs(b"".join(hash_leaf(x) for x in leaves))
    assert blobs[-1] == root
    for i, leaf in enumerate(leaves):
        path = compute_proof(levels, i)
        assert path == compute_path(blobs, i)
        assert len(path) == get_proof_length(i, size)
        assert is_valid_proof(root, leaf, i, size, path)


@pytest.mark.parametrize("size", [2, 7, 33])
def test_invalid_tampered_proofs_fail(size: int) -> None:
    leaves = leaves_for(size)
    levels = build_levels([hash_leaf(x) for x in leaves])
    root = compute_root(levels)
    i = size // 2
    path = compute_proof(levels, i)
    leaf = leaves[i]
    tampered_leaf = leaf[:-1] + bytes([leaf[-1] ^ 1])
    assert not is_valid_proof(root, tampered_leaf, i, size, path)
    for j in range(len(path)):
        bad = list(path)
        bad[j] = hash32(bad[j])
        assert not is_valid_proof(root, leaf, i, size, tuple(bad))
    assert not is_valid_proof(root, leaf, (i + 1) % size, size, path)
    assert not is_valid_proof(root, leaf, i, size, path[:-1])
    assert not is_valid_proof(root, leaf, i, size, (*path, root))
    assert not is_valid_proof(hash32(root), leaf, i, size, path)
    assert not is_valid_proof(root, leaf, size, size, path)
    assert not is_valid_proof(root, leaf, -1, size, path)
    assert not is_valid_proof(root, leaf, i, size, (*path[:-1], b"short"))


def test_invalid_inner_node_is_not_a_leaf() -> None:
    # Domain separation: the two children of the root, concatenated, do not prove as a leaf.
    leaves = leaves_for(2)
    left, right = hash_leaf(leaves[0]), hash_leaf(leaves[1])
    root = merkle_root(leaves)
    assert not is_valid_proof(root, left + right, 0, 1, ())


def test_encode_row_roundtrip_and_layout() -> None:
    row = np.array([1, -1, 100352, -100352], dtype=np.int64)
    data = encode_row(row)
    assert data == b"\x01\x00\x00\x00\xff\xff\xff\xff\x00\x88\x01\x00\x00\x78\xfe\xff"
    assert decode_row(data, 4).tolist() == row.tolist()
    with pytest.raises(ValueError):
        decode_row(data, 3)


@pytest.mark.parametrize("size", [1, 2, 3, 33, 100, 257])
def test_is_valid_batch_accepts_exactly_what_single_proofs_accept(size: int) -> None:
    from consensus.poc.merkle import is_valid_batch

    leaves = leaves_for(size)
    levels = build_levels([hash_leaf(x) for x in leaves])
    root = compute_root(levels)
    rng = np.random.default_rng(size)
    chosen = sorted(rng.choice(size, size=max(1, size // 3), replace=False).tolist())
    batch = [(i, leaves[i], compute_proof(levels, i)) for i in chosen]
    assert is_valid_batch(root, size, batch)
    assert not is_valid_batch(hash32(root), size, batch)
    # Tamper with every path element in turn, even ones another opened leaf could supply.
    for b, (i, leaf, path) in enumerate(batch):
        for j in range(len(path)):
            bad_path = list(path)
            bad_path[j] = hash32(bad_path[j])
            tampered = [*batch[:b], (i, leaf, tuple(bad_path)), *batch[b + 1:]]
            assert not is_valid_batch(root, size, tampered)
        flipped = leaf[:-1] + bytes([leaf[-1] ^ 1])
        assert not is_valid_batch(root, size, [*batch[:b], (i, flipped, path), *batch[b + 1:]])
    assert not is_valid_batch(root, size, [])
