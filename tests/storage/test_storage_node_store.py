"""NodeStore conformance on both backends: commits, block store, state reads, snapshots, proofs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from consensus.hashing import ZERO_HASH
from consensus.state_proof import EMPTY_ROOT, compute_state_root, is_valid_state_proof
from storage import CommitError, NodeStore, StorageError, TxLocation

Open = Callable[[], NodeStore]


def h32(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def commit_block(
    store: NodeStore, height: int, changes: dict[bytes, bytes | None], n_txs: int = 2
) -> bytes:
    txs = {h32(b"tx%d/%d" % (height, i)): (height, i, 0, f"ok {i}") for i in range(n_txs)}
    return store.commit_height(
        height, h32(b"block%d" % height), b"block%d" % height, b"commit%d" % height, txs, changes
    )


GENESIS = {b"acct/" + bytes([i]) * 20: b"balance-%d" % i for i in range(20)}


def test_fresh_store_is_empty(open_store: Open) -> None:
    store = open_store()
    assert store.head is None
    assert store.latest_height is None
    assert store.state_root == EMPTY_ROOT
    assert store.blocks.latest_height() is None
    assert store.blocks.earliest_height() is None
    assert store.get(b"acct/x") is None


def test_genesis_then_heights_advance_head_and_roots(open_store: Open) -> None:
    store = open_store()
    root0 = store.commit_genesis(GENESIS)
    assert root0 == compute_state_root(GENESIS)
    assert store.head is not None and store.head.height == 0
    assert store.head.block_hash == ZERO_HASH
    model = dict(GENESIS)
    roots = [root0]
    for height in range(1, 6):
        changes: dict[bytes, bytes | None] = {
            b"acct/" + bytes([height]) * 20: b"new-%d" % height,
            b"acct/" + bytes([height + 10]) * 20: None,
            b"param/h": b"%d" % height,
        }
        root = commit_block(store, height, changes)
        for k, v in changes.items():
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        assert root == compute_state_root(model) == store.state_root
        roots.append(root)
    assert store.latest_height == 5
    for height, root in enumerate(roots):
        assert store.state_root_at(height) == root
    assert store.state_root_at(6) is None


def test_block_store_reads_by_height_hash_and_tx(open_store: Open) -> None:
    store = open_store()
    store.commit_genesis(GENESIS)
    for height in range(1, 4):
        commit_block(store, height, {b"k%d" % height: b"v"}, n_txs=3)
    blocks = store.blocks
    assert blocks.load_block(2) == b"block2"
    assert blocks.load_commit(2) == b"commit2"
    assert blocks.load_block_hash(2) == h32(b"block2")
    assert blocks.get_height(h32(b"block3")) == 3
    assert blocks.load_block_by_hash(h32(b"block1")) == b"block1"
    assert blocks.load_block(4) is None
    assert blocks.load_block_by_hash(h32(b"nope")) is None
    assert blocks.load_tx(h32(b"tx3/2")) == TxLocation(3, 2, 0, "ok 2")
    assert blocks.load_tx(h32(b"tx9/9")) is None
    assert (blocks.earliest_height(), blocks.latest_height()) == (1, 3)
    assert [h for h, _ in blocks.iter_blocks(2, 10)] == [2, 3]


def test_state_survives_reopen(open_store: Open) -> None:
    store = open_store()
    store.commit_genesis(GENESIS)
    root = commit_block(store, 1, {b"acct/new": b"x", b"acct/" + bytes([3]) * 20: None})
    store = open_store()
    assert store.head is not None and store.head.height == 1
    assert store.state_root == root
    assert store.get(b"acct/new") == b"x"
    assert store.get(b"acct/" + bytes([3]) * 20) is None
    assert store.blocks.load_block(1) == b"block1"
    root2 = commit_block(store, 2, {b"acct/new": b"y"})
    assert store.state_root_at(2) == root2


def test_iter_prefix_is_ascending_and_bounded(open_store: Open) -> None:
    store = open_store()
    store.commit_genesis({b"acct/b": b"2", b"acct/a": b"1", b"acct\xff": b"x", b"nft/1": b"n", b"acc": b"z"})
    assert list(store.iter_prefix(b"acct/")) == [(b"acct/a", b"1"), (b"acct/b", b"2")]
    assert [k for k, _ in store.iter_prefix(b"")] == sorted(
        [b"acct/b", b"acct/a", b"acct\xff", b"nft/1", b"acc"]
    )
    assert list(store.state.iter_prefix(b"zzz")) == []


def test_snapshot_is_frozen_while_the_next_height_commits(open_store: Open) -> None:
    store = open_store()
    store.commit_genesis(GENESIS)
    root1 = commit_block(store, 1, {b"acct/a": b"1", b"acct/b": b"1"})
    with store.snapshot() as snap:
        prepared = store.prepare_height(
            2, h32(b"block2"), b"block2", b"c2", {}, {b"acct/a": b"2", b"acct/b": None}
        )
        store.commit(prepared)
        assert snap.height == 1
        assert snap.state_root == root1
        assert snap.get(b"acct/a") == b"1"
        assert snap.get(b"acct/b") == b"1"
        assert [k for k, _ in snap.iter_prefix(b"acct/a")] == [b"acct/a"]
        assert [k for k, _ in snap.iter_prefix(b"acct/b")] == [b"acct/b"]
        assert snap.blocks.load_block(2) is None
        proof = snap.prove(b"acct/a")
        assert is_valid_state_proof(root1, b"acct/a", b"1", proof)
    assert store.get(b"acct/a") == b"2"
    assert store.get(b"acct/b") is None


def test_prove_present_and_absent_keys(open_store: Open) -> None:
    store = open_store()
    state = {b"k%d" % i: b"v%d" % i for i in range(300)}
    store.commit_genesis(state)
    root = store.state_root
    for i in range(0, 400, 7):
        key = b"k%d" % i
        proof = store.prove(key)
        assert is_valid_state_proof(root, key, state.get(key), proof)
        assert not is_valid_state_proof(root, key, b"wrong", proof)
        if key in state:
            assert not is_valid_state_proof(root, key, None, proof)


def test_proofs_of_empty_and_single_key_states(open_store: Open) -> None:
    store = open_store()
    store.commit_genesis({})
    assert store.state_root == EMPTY_ROOT
    assert is_valid_state_proof(EMPTY_ROOT, b"a", None, store.prove(b"a"))
    commit_block(store, 1, {b"only": b"one"})
    root = store.state_root
    assert is_valid_state_proof(root, b"only", b"one", store.prove(b"only"))
    absent = store.prove(b"other")
    assert absent.other_leaf is not None
    assert is_valid_state_proof(root, b"other", None, absent)
    commit_block(store, 2, {b"only": None})
    assert store.state_root == EMPTY_ROOT


def test_same_history_gives_same_roots_on_both_backends(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    stores = [NodeStore.open(tmp_path / "ldb"), NodeStore.open_memory()]
    try:
        for store in stores:
            store.commit_genesis(GENESIS)
        for height in range(1, 30):
            changes: dict[bytes, bytes | None] = {
                b"k%d" % ((height * 7 + i) % 50): (None if i % 4 == 0 else b"%d-%d" % (height, i))
                for i in range(12)
            }
            roots = {commit_block(store, height, changes) for store in stores}
            assert len(roots) == 1
    finally:
        stores[0].close()


def test_invalid_commit_before_genesis(open_store: Open) -> None:
    store = open_store()
    with pytest.raises(CommitError, match="genesis"):
        commit_block(store, 1, {})


def test_invalid_commit_at_wrong_height(open_store: Open) -> None:
    store = open_store()
    store.commit_genesis({})
    with pytest.raises(CommitError, match="next height must be 1"):
        commit_block(store, 2, {})
    commit_block(store, 1, {})
    with pytest.raises(CommitError):
        commit_block(store, 1, {})
    with pytest.raises(CommitError):
        store.commit_genesis({})


def test_invalid_stale_or_repeated_prepared_height(open_store: Open) -> None:
    store = open_store()
    store.commit_genesis({})
    first = store.prepare_height(1, h32(b"a"), b"a", b"c", {}, {b"k": b"a"})
    second = store.prepare_height(1, h32(b"b"), b"b", b"c", {}, {b"k": b"b"})
    assert first.state_root != second.state_root
    store.commit(second)
    with pytest.raises(CommitError, match="different head"):
        store.commit(first)
    with pytest.raises(CommitError, match="already committed"):
        store.commit(second)
    assert store.get(b"k") == b"b"


def test_prepare_writes_nothing_until_commit(open_store: Open) -> None:
    store = open_store()
    store.commit_genesis({b"k": b"0"})
    root0 = store.state_root
    prepared = store.prepare_height(1, h32(b"a"), b"a", b"c", {}, {b"k": b"1", b"j": b"2"})
    assert store.get(b"k") == b"0"
    assert store.get(b"j") is None
    assert store.blocks.load_block(1) is None
    assert store.state_root == root0
    assert store.prove(b"k") == store.prove(b"k")  # the trie is untouched too
    assert is_valid_state_proof(root0, b"k", b"0", store.prove(b"k"))
    assert prepared.state_root == compute_state_root({b"k": b"1", b"j": b"2"})


@pytest.mark.parametrize(
    "changes",
    [{b"": b"v"}, {"str": b"v"}, {b"k": "v"}, {b"k" * 2000: b"v"}],
    ids=["empty-key", "str-key", "str-value", "long-key"],
)
def test_invalid_state_changes_are_refused(open_store: Open, changes: dict) -> None:  # type: ignore[type-arg]
    store = open_store()
    store.commit_genesis({})
    with pytest.raises(CommitError):
        commit_block(store, 1, changes)
    assert store.latest_height == 0


@pytest.mark.parametrize(
    ("block_hash", "txs"),
    [
        (b"short", {}),
        (h32(b"x"), {b"short": (1, 0, 0, "")}),
        (h32(b"x"), {h32(b"t"): (2, 0, 0, "")}),
        (h32(b"x"), {h32(b"t"): (1, 0, 0, 5)}),
    ],
    ids=["short-hash", "short-tx-hash", "tx-wrong-height", "tx-log-not-str"],
)
def test_invalid_block_arguments_are_refused(
    open_store: Open, block_hash: bytes, txs: dict  # type: ignore[type-arg]
) -> None:
    store = open_store()
    store.commit_genesis({})
    with pytest.raises(CommitError):
        store.commit_height(1, block_hash, b"b", b"c", txs, {})
    assert store.latest_height == 0


def test_prune_blocks_keeps_head_and_moves_earliest(open_store: Open) -> None:
    store = open_store()
    store.commit_genesis({})
    for height in range(1, 8):
        commit_block(store, height, {b"k": b"%d" % height})
    assert store.prune_blocks(5) == 4
    blocks = store.blocks
    assert (blocks.earliest_height(), blocks.latest_height()) == (5, 7)
    assert blocks.load_block(4) is None
    assert blocks.get_height(h32(b"block2")) is None
    assert blocks.load_tx(h32(b"tx3/0")) is None
    assert blocks.load_tx(h32(b"tx5/0")) == TxLocation(5, 0, 0, "ok 0")
    assert store.state_root_at(3) is not None
    assert store.prune_blocks(100) == 2  # the head block always stays
    assert blocks.earliest_height() == 7
    store = open_store()  # still opens: the head's block is there
    assert store.latest_height == 7


def test_store_used_after_close_raises(open_store: Open) -> None:
    store = open_store()
    store.commit_genesis({})
    store.close()
    with pytest.raises(StorageError):
        store.get(b"k")


def test_snapshots_taken_during_concurrent_commits_are_consistent(open_store: Open) -> None:
    """A reader thread snapshots while the writer commits: every snapshot is one whole height."""
    import threading
    import time

    store = open_store()
    store.commit_genesis({b"k%d" % i: b"0" for i in range(64)})
    done = threading.Event()
    failures: list[str] = []
    seen_heights: set[int] = set()

    def read_loop() -> None:
        while not done.is_set():
            with store.snapshot() as snap:
                height = snap.height
                assert height is not None
                values = dict(snap.iter_prefix(b""))
                # Every value of a height carries that height: no mix of two heights.
                stamps = {v for v in values.values()}
                if stamps != {b"%d" % height}:
                    failures.append(f"height {height} shows values {sorted(stamps)[:3]}")
                if compute_state_root(values) != snap.state_root:
                    failures.append(f"height {height}: values do not match the snapshot root")
                if not is_valid_state_proof(snap.state_root, b"k7", values.get(b"k7"), snap.prove(b"k7")):
                    failures.append(f"height {height}: proof does not verify")
                seen_heights.add(height)

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        for height in range(1, 40):
            commit_block(store, height, {b"k%d" % i: b"%d" % height for i in range(64)})
            time.sleep(0.002)  # let the reader run between commits, not only during them
    finally:
        done.set()
        reader.join(timeout=30)
    assert not reader.is_alive()
    assert failures == []
    assert len(seen_heights) >= 2, seen_heights
