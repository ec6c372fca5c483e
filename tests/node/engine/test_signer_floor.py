"""The signer's floor: our own precommit seen in a commit above the stored state proves it stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from consensus.crypto import PrivateKey
from consensus.votes import NIL_HASH, Commit, CommitSig, Vote, VoteType
from node.engine.signer import (
    FLOOR_MARGIN,
    FileSignerStore,
    LastSignState,
    PersistentSigner,
    compute_floor_state,
    is_floor_state,
)
from node.errors import DoubleSignRefused

CHAIN = "floor-test"
KEY = PrivateKey.from_seed(b"\x07" * 32)
OTHER = b"\x22" * 20
BLOCK = b"\xab" * 32


def _signer(path: Path) -> PersistentSigner:
    return PersistentSigner(KEY, CHAIN, FileSignerStore(path))


def _prevote(signer: PersistentSigner, height: int, round_: int = 0) -> Vote:
    return Vote(height, round_, VoteType.PREVOTE, NIL_HASH, signer.address, 1_000 + height)


def _commit(height: int, *validators: bytes) -> Commit:
    """A commit as the driver sees it (verified by the executor; signatures are not checked here)."""
    sigs = tuple(CommitSig(v, 1_000, b"\x01" * 64) for v in sorted(validators))
    return Commit(height, 0, BLOCK, sigs)


def _close(signer: PersistentSigner) -> None:
    assert isinstance(signer.store, FileSignerStore)
    signer.store.close()


def test_observe_commit_persists_a_floor_that_refuses_up_to_h_plus_2(tmp_path: Path) -> None:
    path = tmp_path / "signer_state"
    signer = _signer(path)
    signer.sign_vote(_prevote(signer, 3))
    assert signer.observe_commit(_commit(10, signer.address, OTHER), "block 11") == 10 + FLOOR_MARGIN
    _close(signer)
    # A new signer on the same file (a restart) reads the floor.
    again = _signer(path)
    assert again.last == compute_floor_state(12) and is_floor_state(again.last)
    for height in (4, 10, 11, 12):
        for round_ in (0, 5, 9_999):
            with pytest.raises(DoubleSignRefused, match="found stale"):
                again.sign_vote(_prevote(again, height, round_))
    signed = again.sign_vote(_prevote(again, 13))
    assert signed.signature and again.last.height == 13
    _close(again)
    assert _signer(path).last.height == 13


def test_observe_commit_at_or_below_last_height_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "signer_state"
    signer = _signer(path)
    signer.sign_vote(_prevote(signer, 7))
    before = signer.last
    assert signer.observe_commit(_commit(7, signer.address, OTHER), "the commit of block 7") is None
    assert signer.observe_commit(_commit(6, signer.address), "block 7") is None
    assert signer.last == before
    _close(signer)
    assert _signer(path).last == before


def test_observe_commit_without_our_signature_changes_nothing(tmp_path: Path) -> None:
    signer = _signer(tmp_path / "signer_state")
    assert signer.observe_commit(_commit(50, OTHER), "block 51") is None
    assert signer.last.height == 0
    signer.sign_vote(_prevote(signer, 1))


def test_floor_rises_with_each_proven_height_and_never_falls(tmp_path: Path) -> None:
    signer = _signer(tmp_path / "signer_state")
    assert signer.observe_commit(_commit(3, signer.address), "block 4") == 5
    # Heights 4 and 5 were only guessed: a proof of them raises the floor.
    assert signer.observe_commit(_commit(4, signer.address), "block 5") == 6
    assert signer.observe_commit(_commit(6, signer.address), "block 7") == 8
    assert signer.observe_commit(_commit(5, signer.address), "block 6") is None
    assert signer.last == compute_floor_state(8)


def test_floor_is_an_ordinary_state_in_the_file(tmp_path: Path) -> None:
    """The existing loader reads a floor: the on-disk format is unchanged."""
    state = compute_floor_state(42)
    assert LastSignState.decode(state.encode()) == state
    store = FileSignerStore(tmp_path / "signer_state")
    store.save(state)
    assert store.load() == state
