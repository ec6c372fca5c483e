"""The post-scenario checks on planted data: each one fails on the fault it exists to catch."""

from __future__ import annotations

from tests.faults.checks import (
    ChainBlock,
    check_no_block_lost,
    check_no_double_sign,
    check_no_fork,
    check_recovery,
    check_slashing,
    check_txs,
)
from tests.faults.faults import Restart
from tests.faults.load import TxRecord


def _chain(hashes: list[str], txs: dict[int, tuple[str, ...]] | None = None) -> list[ChainBlock]:
    return [ChainBlock(h + 1, x, (txs or {}).get(h + 1, ()), (), ("v0", "v1", "v2")) for h, x in enumerate(hashes)]


def _tx(h: str, fate: str, nonce: int = 0) -> TxRecord:
    return TxRecord(h, nonce, fate, "", "0x", 0.0)


def test_check_no_fork_passes_on_equal_chains_of_different_lengths() -> None:
    assert check_no_fork({"a": _chain(["h1", "h2", "h3"]), "b": _chain(["h1", "h2"])}).passed


def test_check_no_fork_fails_on_a_different_hash() -> None:
    c = check_no_fork({"a": _chain(["h1", "h2"]), "b": _chain(["h1", "X"])})
    assert not c.passed and "first 2" in c.detail


def test_check_no_block_lost() -> None:
    ok = Restart(0, "kill -9", 10, "h10", height_after=12, hash_after="h10")
    lower = Restart(1, "kill -9", 10, "h10", height_after=8)
    changed = Restart(2, "kill -9", 10, "h10", height_after=10, hash_after="other")
    silent = Restart(3, "kill -9", 10, "h10")
    stale = Restart(0, "stale", 10, "h10", height_after=3, expect_kept=False)
    assert check_no_block_lost([ok, stale]).passed
    for bad in (lower, changed, silent):
        assert not check_no_block_lost([ok, bad]).passed


def test_check_no_double_sign() -> None:
    assert check_no_double_sign(_chain(["h1"]), []).passed
    twice = [ChainBlock(1, "h1", (), (), ("v0", "v1", "v0"))]
    assert not check_no_double_sign(twice, []).passed
    evidence = [ChainBlock(1, "h1", (), (1,), ("v0",))]
    assert not check_no_double_sign(evidence, []).passed
    assert not check_no_double_sign(_chain(["h1"]), [{"fault": "double_sign"}]).passed


def test_check_txs_exactly_once() -> None:
    chain = _chain(["h1", "h2"], {1: ("t1", "t2"), 2: ("t3",)})
    assert check_txs([_tx("t1", "accepted"), _tx("t2", "unknown"), _tx("t9", "refused"),
                      _tx("t8", "unknown")], chain).passed
    assert not check_txs([_tx("t7", "accepted")], chain).passed  # accepted, never committed
    assert not check_txs([_tx("t3", "refused")], chain).passed  # refused, yet committed
    doubled = _chain(["h1", "h2"], {1: ("t1",), 2: ("t1",)})
    assert not check_txs([_tx("t1", "accepted")], doubled).passed
    assert not check_txs([_tx("t1", "unknown")], doubled).passed
    assert not check_txs([], chain).passed  # no load at all is a failure, not a pass


def test_check_recovery_and_slashing() -> None:
    assert check_recovery(4.0, 30).passed
    assert not check_recovery(40.0, 30).passed
    assert not check_recovery(None, 30).passed
    faulted = {"addrA": {"pause"}}
    assert check_slashing([{"fault": "downtime", "validator": "addrA", "height": 9}], faulted).passed
    assert not check_slashing([{"fault": "downtime", "validator": "addrB", "height": 9}], faulted).passed
    assert not check_slashing([{"fault": "faulty_compute", "validator": "addrA", "height": 9}], faulted).passed
