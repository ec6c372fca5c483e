"""The pure proof verifier (consensus/state_proof.py) against proofs the store produces."""

from __future__ import annotations

import dataclasses

import pytest

from consensus.hashing import hash32, tagged_hash
from consensus.state_proof import (
    BRANCH_TAG,
    EMPTY_ROOT,
    InvalidStateProof,
    ProofBranch,
    StateProof,
    compute_branch_hash,
    compute_leaf_entry,
    compute_leaf_root,
    compute_proof_root,
    compute_state_root,
    is_valid_state_proof,
    validate_state_proof,
)
from storage import NodeStore

STATE = {b"acct/%04d" % i: b"value-%d" % i for i in range(500)}


@pytest.fixture(scope="module")
def store() -> NodeStore:
    store = NodeStore.open_memory()
    store.commit_genesis(STATE)
    return store


def test_empty_state_root_is_the_tagged_empty_hash() -> None:
    assert compute_state_root({}) == EMPTY_ROOT
    assert bytes(32) != EMPTY_ROOT
    assert is_valid_state_proof(EMPTY_ROOT, b"k", None, StateProof((), None))
    assert not is_valid_state_proof(EMPTY_ROOT, b"k", b"v", StateProof((), None))


def test_branch_hash_is_the_tagged_hash_of_the_record() -> None:
    record = b"\x00\x03\x00\x01" + b"\x11" * 64 + b"\x22" * 32
    assert compute_branch_hash(record) == tagged_hash(BRANCH_TAG, record)


def test_single_key_root_is_its_leaf_hash() -> None:
    root = compute_state_root({b"k": b"v"})
    assert root == compute_leaf_root(hash32(b"k") + hash32(b"v"))
    assert is_valid_state_proof(root, b"k", b"v", StateProof((), None))
    witness = StateProof((), compute_leaf_entry(b"k", b"v"))
    assert is_valid_state_proof(root, b"j", None, witness)
    assert not is_valid_state_proof(root, b"k", None, witness)


def test_root_does_not_depend_on_insertion_order() -> None:
    items = list(STATE.items())
    assert compute_state_root(dict(items)) == compute_state_root(dict(reversed(items)))


def test_inclusion_proofs_verify(store: NodeStore) -> None:
    root = store.state_root
    for key, value in list(STATE.items())[::17]:
        proof = store.prove(key)
        assert proof.other_leaf is None
        validate_state_proof(root, key, value, proof)
        assert proof == StateProof.decode(proof.encode())


def test_absence_proofs_verify_for_both_terminal_kinds(store: NodeStore) -> None:
    root = store.state_root
    kinds = set()
    for i in range(200):
        key = b"missing/%d" % i
        proof = store.prove(key)
        validate_state_proof(root, key, None, proof)
        kinds.add(proof.other_leaf is None)
    assert kinds == {True, False}  # both empty slots and other keys' leaves were seen


def test_invalid_proof_for_wrong_value_or_presence(store: NodeStore) -> None:
    root = store.state_root
    proof = store.prove(b"acct/0001")
    assert not is_valid_state_proof(root, b"acct/0001", b"value-2", proof)
    assert not is_valid_state_proof(root, b"acct/0001", None, proof)
    assert not is_valid_state_proof(root, b"acct/0002", b"value-1", proof)
    absent = store.prove(b"nope")
    assert not is_valid_state_proof(root, b"nope", b"anything", absent)


def test_invalid_proof_against_another_root(store: NodeStore) -> None:
    proof = store.prove(b"acct/0001")
    other_root = compute_state_root({**STATE, b"acct/0001": b"changed"})
    assert not is_valid_state_proof(other_root, b"acct/0001", b"value-1", proof)
    with pytest.raises(InvalidStateProof, match="expected 32"):
        validate_state_proof(b"short", b"acct/0001", b"value-1", proof)


def _tamper_branch(proof: StateProof, index: int, **changes: object) -> StateProof:
    branches = list(proof.branches)
    branches[index] = dataclasses.replace(branches[index], **changes)  # type: ignore[arg-type]
    return StateProof(tuple(branches), proof.other_leaf)


def test_invalid_tampered_sibling_bytes(store: NodeStore) -> None:
    root = store.state_root
    key = b"acct/0042"
    proof = store.prove(key)
    for index, branch in enumerate(proof.branches):
        for pos in (0, len(branch.siblings) // 2, len(branch.siblings) - 1):
            flipped = bytearray(branch.siblings)
            flipped[pos] ^= 0x01
            bad = _tamper_branch(proof, index, siblings=bytes(flipped))
            assert not is_valid_state_proof(root, key, STATE[key], bad)


def test_invalid_tampered_masks(store: NodeStore) -> None:
    root = store.state_root
    key = b"acct/0042"
    proof = store.prove(key)
    branch = proof.branches[0]
    cases = [
        {"bitmap": branch.bitmap ^ 0x8000},
        {"leafmask": branch.leafmask ^ 0x0001},
        {"bitmap": 0x1_0000},
        {"leafmask": -1},
        {"siblings": branch.siblings + b"\x00" * 32},
        {"siblings": branch.siblings[:-32]},
    ]
    for change in cases:
        assert not is_valid_state_proof(root, key, STATE[key], _tamper_branch(proof, 0, **change))


def test_invalid_truncated_or_extended_path(store: NodeStore) -> None:
    root = store.state_root
    key = b"acct/0042"
    proof = store.prove(key)
    short = StateProof(proof.branches[:-1], None)
    assert not is_valid_state_proof(root, key, STATE[key], short)
    longer = StateProof(proof.branches + proof.branches[-1:], None)
    assert not is_valid_state_proof(root, key, STATE[key], longer)
    too_deep = StateProof(tuple(proof.branches[:1]) * 65, None)
    with pytest.raises(InvalidStateProof, match="at most 64"):
        compute_proof_root(key, STATE[key], too_deep)


def test_invalid_absence_witnesses() -> None:
    state = {b"a": b"1", b"b": b"2", b"c": b"3"}
    store = NodeStore.open_memory()
    store.commit_genesis(state)
    root = store.state_root
    # Find a missing key whose proof ends at another key's leaf.
    for i in range(1000):
        key = b"missing%d" % i
        proof = store.prove(key)
        if proof.other_leaf is not None:
            break
    else:
        raise AssertionError("no absence proof with a witness leaf")
    assert is_valid_state_proof(root, key, None, proof)
    assert proof.other_leaf is not None
    forged = bytearray(proof.other_leaf)
    forged[40] ^= 1  # the witness's value hash
    assert not is_valid_state_proof(root, key, None, StateProof(proof.branches, bytes(forged)))
    assert not is_valid_state_proof(root, key, None, StateProof(proof.branches, proof.other_leaf[:63]))
    # The witness must not be the key itself, and an inclusion proof carries no witness.
    own = compute_leaf_entry(key, b"x")
    with pytest.raises(InvalidStateProof, match="own leaf"):
        compute_proof_root(key, None, StateProof(proof.branches, own))
    with pytest.raises(InvalidStateProof, match="must not carry"):
        compute_proof_root(key, b"x", proof)
    # A witness from elsewhere in the trie does not lie on the key's path.
    stranger = next(
        compute_leaf_entry(k, v)
        for k, v in state.items()
        if proof.branches and (hash32(k)[0] >> 4) != (hash32(key)[0] >> 4)
    )
    with pytest.raises(InvalidStateProof, match="path"):
        compute_proof_root(key, None, StateProof(proof.branches, stranger))


def test_proof_decode_rejects_garbage() -> None:
    from consensus.errors import DecodeError

    with pytest.raises(DecodeError):
        StateProof.decode(b"\x92\x91\x93\x01\x02")
    branch = ProofBranch(1, 1, b"")
    assert StateProof.decode(StateProof((branch,), None).encode()).branches == (branch,)
