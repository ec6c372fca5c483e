"""The authenticated state: a compressed hexary sparse Merkle trie, and its proofs.

Structure. Each state entry ``(key, value)`` sits at the path given by the 64
nibbles (4-bit digits, high nibble first) of ``key_hash = SHA-256(key)``. Its
*leaf entry* is ``key_hash || SHA-256(value)`` (64 bytes). The content at a
nibble prefix ``p`` is:

- empty, when no key hash starts with ``p``;
- the leaf entry itself, when exactly one does (leaves shortcut: there is no
  chain of single-child nodes above a lone leaf);
- a branch, when two or more do; its 16 slots hold the contents at ``p+0`` ..
  ``p+f``.

The shape is a function of the key set alone, so the same state gives the same
root whatever order it was built in, and whichever backend stores it.

A branch is written as its *record*: ``bitmap (u16 BE) || leafmask (u16 BE) ||
slot entries``, where ``bitmap`` marks the non-empty slots, ``leafmask`` the
slots holding a leaf, and the entries follow in nibble order: 64 bytes (the leaf
entry) for a leaf slot, 32 bytes (the child branch's hash) for a branch slot.
Hashes are domain-separated with ``tagged_hash``:

- branch hash = ``H("cstake/state/branch", record)``;
- root = ``EMPTY_ROOT = H("cstake/state/empty", "")`` for the empty state,
  ``H("cstake/state/leaf", entry)`` for a one-key state, the root branch's hash
  otherwise.

Storage keeps exactly these records, so an update rehashes only the branches on
the changed keys' paths: cost grows with (keys changed) x log16(state size).

Proofs. A ``StateProof`` lists the branches on the key's path from the root down,
each with the entries of its other slots; the verifier rebuilds the path bottom
up and compares with the root. Inclusion ends at a leaf slot holding the key's
own entry; absence ends at an empty slot, or at a leaf slot holding a different
key's entry (given as ``other_leaf``), or at an empty or one-leaf state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from consensus.codec import Encodable
from consensus.errors import ConsensusError
from consensus.hashing import hash32, tagged_hash

#: Nibbles in a key hash, hence the deepest possible branch.
MAX_DEPTH = 64
#: Size of a leaf entry (key hash and value hash) and of a branch hash.
ENTRY_LEN = 64
HASH_LEN = 32
RECORD_HEADER_LEN = 4

BRANCH_TAG = b"cstake/state/branch"
LEAF_TAG = b"cstake/state/leaf"
EMPTY_TAG = b"cstake/state/empty"

#: The root of the empty state.
EMPTY_ROOT = tagged_hash(EMPTY_TAG, b"")


class InvalidStateProof(ConsensusError):
    """A state proof is malformed or does not lead to the expected root."""


@dataclass(frozen=True, slots=True)
class ProofBranch(Encodable):
    """One branch on the proven key's path."""

    bitmap: int
    """Non-empty slots of the branch (bit i set: slot i holds something)."""
    leafmask: int
    """Slots of the branch that hold a leaf entry (a subset of ``bitmap``)."""
    siblings: bytes
    """Entries of every non-empty slot except the path's own, in slot order."""


@dataclass(frozen=True, slots=True)
class StateProof(Encodable):
    """Inclusion or absence proof of one key against a state root."""

    branches: tuple[ProofBranch, ...]
    """Branches on the key's nibble path, root first."""
    other_leaf: bytes | None
    """For an absence proof ending at another key's leaf: that leaf's entry."""


# --- the trie's building blocks (shared with storage) ---------------------


def get_nibble(key_hash: bytes, depth: int) -> int:
    """Return the nibble of ``key_hash`` at ``depth`` (0 = high nibble of byte 0)."""
    byte = key_hash[depth >> 1]
    return byte & 0x0F if depth & 1 else byte >> 4


def compute_leaf_entry(key: bytes, value: bytes) -> bytes:
    """Return the 64-byte leaf entry ``SHA-256(key) || SHA-256(value)``."""
    return hash32(key) + hash32(value)


def compute_leaf_root(entry: bytes) -> bytes:
    """Return the root of a state holding exactly the leaf ``entry``."""
    return tagged_hash(LEAF_TAG, entry)


#: ``tagged_hash(BRANCH_TAG, x) == hash32(_BRANCH_PREFIX + x)``; precomputed
#: because branch hashing is the hot loop of every state update.
_BRANCH_PREFIX = bytes((len(BRANCH_TAG),)) + BRANCH_TAG


def compute_branch_hash(record: bytes) -> bytes:
    """Return the hash of a branch given its record bytes: ``tagged_hash(BRANCH_TAG, record)``."""
    return hash32(_BRANCH_PREFIX + record)


def get_slot_offset(bitmap: int, leafmask: int, nibble: int) -> int:
    """Return where slot ``nibble``'s entry starts inside a branch record."""
    below = (1 << nibble) - 1
    return RECORD_HEADER_LEN + HASH_LEN * (
        (bitmap & below).bit_count() + (leafmask & below).bit_count()
    )


def compute_record_len(bitmap: int, leafmask: int) -> int:
    """Return the exact length of a branch record with these masks."""
    return RECORD_HEADER_LEN + HASH_LEN * (bitmap.bit_count() + leafmask.bit_count())


def compute_content_root(content: bytes | None) -> bytes:
    """Return the root hash of a subtree given its slot content (None, entry or hash)."""
    if content is None:
        return EMPTY_ROOT
    if len(content) == ENTRY_LEN:
        return compute_leaf_root(content)
    return content


# --- reference construction ------------------------------------------------


def compute_state_root(items: Mapping[bytes, bytes]) -> bytes:
    """Return the state root of ``items`` computed from scratch (the reference)."""
    entries = sorted(compute_leaf_entry(k, v) for k, v in items.items())
    return compute_content_root(_build_content(entries, 0))


def _build_content(entries: list[bytes], depth: int) -> bytes | None:
    """Return the slot content for sorted leaf entries sharing a prefix of ``depth`` nibbles."""
    if not entries:
        return None
    if len(entries) == 1:
        return entries[0]
    bitmap = 0
    leafmask = 0
    parts: list[bytes] = []
    start = 0
    while start < len(entries):
        nib = get_nibble(entries[start], depth)
        end = start + 1
        while end < len(entries) and get_nibble(entries[end], depth) == nib:
            end += 1
        child = _build_content(entries[start:end], depth + 1)
        if child is not None:
            bitmap |= 1 << nib
            if len(child) == ENTRY_LEN:
                leafmask |= 1 << nib
            parts.append(child)
        start = end
    record = bitmap.to_bytes(2, "big") + leafmask.to_bytes(2, "big") + b"".join(parts)
    return compute_branch_hash(record)


# --- verification ------------------------------------------------------------


def compute_proof_root(key: bytes, value: bytes | None, proof: StateProof) -> bytes:
    """Return the root that ``proof`` implies for ``key`` holding ``value`` (None: absent).

    Raises InvalidStateProof when the proof is malformed for that claim.
    """
    key_hash = hash32(key)
    depth_count = len(proof.branches)
    if depth_count > MAX_DEPTH:
        raise InvalidStateProof(f"proof has {depth_count} branches; at most {MAX_DEPTH} exist")
    terminal: bytes | None
    if value is not None:
        if proof.other_leaf is not None:
            raise InvalidStateProof("an inclusion proof must not carry another key's leaf")
        terminal = key_hash + hash32(value)
    elif proof.other_leaf is None:
        terminal = None
    else:
        other = proof.other_leaf
        if len(other) != ENTRY_LEN:
            raise InvalidStateProof(f"other_leaf is {len(other)} bytes, expected {ENTRY_LEN}")
        if other[:HASH_LEN] == key_hash:
            raise InvalidStateProof("absence witness is the key's own leaf")
        for depth in range(depth_count):
            if get_nibble(other, depth) != get_nibble(key_hash, depth):
                raise InvalidStateProof("absence witness leaf does not lie on the key's path")
        terminal = other
    if depth_count == 0:
        return compute_content_root(terminal)
    current = terminal
    for depth in range(depth_count - 1, -1, -1):
        branch = proof.branches[depth]
        current = _compute_branch_on_path(
            branch, get_nibble(key_hash, depth), current, is_last=depth == depth_count - 1
        )
    if current is None:  # unreachable: a branch always yields a hash
        raise InvalidStateProof("proof yields no root")
    return current


def _compute_branch_on_path(
    branch: ProofBranch, nibble: int, child: bytes | None, *, is_last: bool
) -> bytes:
    """Return the hash of ``branch`` with the path's slot filled by ``child``."""
    bitmap, leafmask = branch.bitmap, branch.leafmask
    if not 0 <= bitmap <= 0xFFFF or not 0 <= leafmask <= 0xFFFF or leafmask & ~bitmap:
        raise InvalidStateProof("branch masks are out of range or inconsistent")
    bit = 1 << nibble
    if child is None:
        if bitmap & bit:
            raise InvalidStateProof("absence claimed but the path's slot is not empty")
    elif is_last:
        if not bitmap & bit or not leafmask & bit:
            raise InvalidStateProof("the path's last slot does not hold a leaf")
    elif not bitmap & bit or leafmask & bit:
        raise InvalidStateProof("the path's slot does not hold a branch")
    child_len = 0 if child is None else len(child)
    expected = compute_record_len(bitmap, leafmask) - RECORD_HEADER_LEN - child_len
    if len(branch.siblings) != expected:
        raise InvalidStateProof(
            f"branch siblings are {len(branch.siblings)} bytes, expected {expected}"
        )
    offset = get_slot_offset(bitmap, leafmask, nibble) - RECORD_HEADER_LEN
    record = (
        bitmap.to_bytes(2, "big")
        + leafmask.to_bytes(2, "big")
        + branch.siblings[:offset]
        + (child or b"")
        + branch.siblings[offset:]
    )
    return compute_branch_hash(record)


def validate_state_proof(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> None:
    """Raise InvalidStateProof unless ``proof`` shows ``key`` holds ``value`` (None: absent) under ``root``."""
    if len(root) != HASH_LEN:
        raise InvalidStateProof(f"root is {len(root)} bytes, expected {HASH_LEN}")
    implied = compute_proof_root(key, value, proof)
    if implied != root:
        raise InvalidStateProof("proof does not lead to the given state root")


def is_valid_state_proof(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> bool:
    """Return whether ``proof`` shows ``key`` holds ``value`` (None: absent) under ``root``."""
    try:
        validate_state_proof(root, key, value, proof)
    except InvalidStateProof:
        return False
    return True
