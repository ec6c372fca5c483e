"""The address index: filing by (address, height, index), searching both ways with cursors, heights in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.errors import CommitError
from storage.tx_index import AddressTxIndex

A, B, C = b"\x0a" * 20, b"\x0b" * 20, b"\x0c" * 20


def _h(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _fill(ix: AddressTxIndex) -> None:
    ix.index_height(1, [(0, _h(10), [A, B]), (1, _h(11), [B])])
    ix.index_height(2, [])
    ix.index_height(3, [(0, _h(30), [A]), (1, _h(31), [A, C]), (2, _h(32), [A, A])])


def test_search_in_both_orders_with_cursor_and_heights() -> None:
    ix = AddressTxIndex.open_memory()
    _fill(ix)
    assert ix.indexed_height() == 3
    assert [e.tx_hash for e in ix.search(A)] == [_h(10), _h(30), _h(31), _h(32)]
    assert [e.tx_hash for e in ix.search(A, descending=True)] == [_h(32), _h(31), _h(30), _h(10)]
    assert [(e.height, e.index) for e in ix.search(B)] == [(1, 0), (1, 1)]
    assert ix.search(b"\x0d" * 20) == []
    first = ix.search(A, limit=2)
    rest = ix.search(A, after=(first[-1].height, first[-1].index), limit=10)
    assert [e.tx_hash for e in first + rest] == [e.tx_hash for e in ix.search(A)]
    down = ix.search(A, descending=True, limit=1)
    assert [e.tx_hash for e in ix.search(A, descending=True, after=(down[0].height, down[0].index))] == [
        _h(31), _h(30), _h(10)]
    assert [e.height for e in ix.search(A, min_height=2, max_height=3)] == [3, 3, 3]
    assert [e.height for e in ix.search(A, max_height=2, descending=True)] == [1]
    assert ix.search(C, min_height=1, max_height=2) == []


def test_heights_go_in_order_and_the_index_is_durable(tmp_path: Path) -> None:
    ix = AddressTxIndex.open(tmp_path / "txindex")
    _fill(ix)
    with pytest.raises(CommitError, match="at height 3"):
        ix.index_height(5, [])
    with pytest.raises(CommitError, match="at height 3"):
        ix.index_height(3, [])
    ix.mark_indexed(10)
    with pytest.raises(CommitError, match="go back"):
        ix.mark_indexed(4)
    ix.close()
    again = AddressTxIndex.open(tmp_path / "txindex")
    assert again.indexed_height() == 10 and len(again.search(A)) == 4
    again.close()


def test_limit_is_bounded() -> None:
    ix = AddressTxIndex.open_memory()
    for bad in (0, 1001):
        with pytest.raises(ValueError):
            ix.search(A, limit=bad)
