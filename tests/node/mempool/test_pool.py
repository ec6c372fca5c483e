"""Mempool: admission, ordering, nonce rules, replacement, bounds, eviction, recheck, signature cache."""

from __future__ import annotations

import time

import pytest

import consensus.transition as transition
from consensus.crypto import PrivateKey
from consensus.txs import SignedTx, Transfer, build_tx
from node.mempool import pool as mp_mod
from node.mempool.pool import (
    CODE_DUPLICATE,
    CODE_FULL,
    CODE_NONCE_GAP,
    CODE_SENDER_LIMIT,
    CODE_UNDERPRICED,
    Mempool,
)
from node.mempool.sigcache import SignatureCache
from tests.kit.chain import TestChain


def tx(chain: TestChain, key: PrivateKey, nonce: int, fee: int = 10, amount: int = 1, to: int = 0) -> SignedTx:
    return build_tx(key, chain.chain_id, nonce, fee, Transfer(chain.account_keys[to].address(), amount))


@pytest.fixture
def chain() -> TestChain:
    return TestChain(n_validators=4, n_accounts=8)


def test_add_checks_against_the_head_state(chain: TestChain) -> None:
    mp = Mempool(state=chain.view())
    a = chain.account_keys[1]
    assert mp.add(tx(chain, a, 0)).accepted
    assert mp.add(tx(chain, a, 0)).code == CODE_DUPLICATE
    bad = mp.add(tx(chain, a, 5))
    assert (bad.accepted, bad.code, bad.reason) == (False, CODE_NONCE_GAP, "nonce_gap")
    assert "next nonce of this sender is 1" in bad.log
    assert mp.add(tx(chain, a, 1)).accepted
    assert mp.add(tx(chain, a, 2, fee=0)).code == 4  # FeeTooLow, a consensus code
    other = build_tx(a, "other-chain", 2, 10, Transfer(a.address(), 1))
    assert mp.add(other).code == 2  # WrongChainId
    forged = SignedTx(tx(chain, a, 2).payload_bytes, bytes(64), tx(chain, a, 2).payload, b"\x01" * 32, b"x")
    assert mp.add(forged).code == 6  # BadTxSignature
    assert len(mp) == 2 and mp.stats.added == 2
    assert mp.stats.rejected == {
        "duplicate": 1, "nonce_gap": 1, "fee_too_low": 1, "wrong_chain_id": 1, "bad_signature": 1
    }
    assert mp.next_nonce(a.address(), 0) == 2


def test_stale_nonce_is_refused(chain: TestChain) -> None:
    a = chain.account_keys[1]
    chain.next_block([tx(chain, a, 0)])
    mp = Mempool(state=chain.view())
    res = mp.add(tx(chain, a, 0, fee=11))
    assert res.code == 3 and res.reason == "bad_nonce"


def test_balance_must_cover_queued_spends(chain: TestChain) -> None:
    poor = PrivateKey.from_seed(b"\x07" * 32)
    rich = chain.account_keys[1]
    chain.next_block([build_tx(rich, chain.chain_id, 0, 10, Transfer(poor.address(), 35))])
    mp = Mempool(state=chain.view())
    # 35 tokens: a transfer of 10 + fee 10, then fee 10 + transfer 5 leaves nothing for a third fee.
    assert mp.add(build_tx(poor, chain.chain_id, 0, 10, Transfer(rich.address(), 10))).accepted
    assert mp.add(build_tx(poor, chain.chain_id, 1, 10, Transfer(rich.address(), 5))).accepted
    res = mp.add(build_tx(poor, chain.chain_id, 2, 10, Transfer(rich.address(), 1)))
    assert res.code == 5 and res.reason == "cannot_pay_fee"


def test_reap_orders_by_fee_with_per_sender_nonce_order(chain: TestChain) -> None:
    mp = Mempool(state=chain.view())
    a, b, c = chain.account_keys[1:4]
    txs = [tx(chain, a, 0, fee=5), tx(chain, a, 1, fee=100), tx(chain, b, 0, fee=50), tx(chain, c, 0, fee=20)]
    for t in txs:
        assert mp.add(t).accepted
    order = mp.reap(10, 1 << 20)
    assert [(t.payload.sender, t.payload.nonce) for t in order] == [
        (b.address(), 0), (c.address(), 0), (a.address(), 0), (a.address(), 1)
    ]
    assert [t.tx_hash for t in mp.reap(2, 1 << 20)] == [txs[2].tx_hash, txs[3].tx_hash]
    size = len(txs[0].raw)
    assert len(mp.reap(10, 2 * size)) == 2
    # The reaped block is valid when executed.
    result = chain.next_block(order)
    assert [r.code for r in result.tx_results] == [0, 0, 0, 0]


def test_reap_with_state_skips_what_would_fail(chain: TestChain) -> None:
    a, b = chain.account_keys[1:3]
    mp = Mempool(state=chain.view())
    assert mp.add(tx(chain, a, 0)).accepted
    assert mp.add(tx(chain, a, 1)).accepted
    assert mp.add(tx(chain, b, 0)).accepted
    # Another node's block included a's nonce 0 with different bytes; the pool has not been updated.
    chain.next_block([tx(chain, a, 0, fee=99)])
    reaped = mp.reap(10, 1 << 20, state=chain.view())
    assert [(t.payload.sender, t.payload.nonce) for t in reaped] == [(b.address(), 0)]


def test_replace_by_fee_needs_ten_percent_more(chain: TestChain) -> None:
    mp = Mempool(state=chain.view())
    a = chain.account_keys[1]
    first = tx(chain, a, 0, fee=100)
    assert mp.add(first).accepted
    assert mp.add(tx(chain, a, 1, fee=100)).accepted
    low = mp.add(tx(chain, a, 0, fee=109))
    assert (low.code, low.reason) == (CODE_UNDERPRICED, "underpriced_replacement")
    assert "110" in low.log
    res = mp.add(tx(chain, a, 0, fee=110))
    assert res.accepted and res.replaced == first.tx_hash
    assert len(mp) == 2 and first.tx_hash not in mp and mp.stats.replaced == 1
    assert [t.payload.fee for t in mp.reap(5, 1 << 20)] == [110, 100]


def test_per_sender_limit(chain: TestChain) -> None:
    mp = Mempool(state=chain.view(), max_txs_per_sender=3)
    a = chain.account_keys[1]
    for n in range(3):
        assert mp.add(tx(chain, a, n)).accepted
    assert mp.add(tx(chain, a, 3)).code == CODE_SENDER_LIMIT


def test_full_pool_evicts_the_lowest_fee_sender_tail(chain: TestChain) -> None:
    mp = Mempool(state=chain.view(), max_txs=4)
    a, b, c, d = chain.account_keys[1:5]
    a0, a1 = tx(chain, a, 0, fee=100), tx(chain, a, 1, fee=1)
    b0, c0 = tx(chain, b, 0, fee=20), tx(chain, c, 0, fee=30)
    for t in (a0, a1, b0, c0):
        assert mp.add(t).accepted
    res = mp.add(tx(chain, d, 0, fee=25))
    # a's tail (fee 1) goes, not a's head (fee 100), and no queue gets a gap.
    assert res.accepted and res.evicted == (a1.tx_hash,)
    assert a0.tx_hash in mp and a1.tx_hash not in mp
    res = mp.add(tx(chain, d, 1, fee=21))
    assert res.evicted == (b0.tx_hash,)
    refused = mp.add(tx(chain, b, 0, fee=5))
    assert (refused.code, refused.reason) == (CODE_FULL, "full")
    assert len(mp) == 4 and mp.stats.evicted == {"full": 2}
    # Cannot evict itself to make room for its own next nonce.
    assert not mp.add(tx(chain, d, 2, fee=22)).accepted


def test_a_nearly_full_pool_keeps_its_last_tenth_for_peers_transactions(
    chain: TestChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    mp = Mempool(state=chain.view(), max_txs=10)
    keys = chain.account_keys[1:7]
    for i in range(9):  # 90%: from clients
        assert mp.add(tx(chain, keys[i % 3], i // 3, fee=10), from_client=True).accepted
    checked: list[bytes] = []
    real_check = mp_mod.check_tx
    monkeypatch.setattr(mp_mod, "check_tx", lambda *a, **kw: (checked.append(a[1].tx_hash), real_check(*a, **kw)))
    refused = mp.add(tx(chain, keys[3], 0, fee=10), from_client=True)
    assert (refused.code, refused.reason) == (CODE_FULL, "full") and "90% full" in refused.log
    assert checked == []  # refused before its signature or any state was checked
    # The same transaction from a peer still fits: the last tenth is theirs.
    assert mp.add(tx(chain, keys[3], 0, fee=10)).accepted and len(mp) == 10
    # A client's transaction that outbids a queued tail still gets in (fee priority holds).
    rich = mp.add(tx(chain, keys[4], 0, fee=50), from_client=True)
    assert rich.accepted and len(rich.evicted) == 2 and len(mp) == 9
    # The node's own (duty) transactions are not held to the client share.
    assert mp.add(tx(chain, keys[5], 0, fee=10)).accepted


def test_byte_bound(chain: TestChain) -> None:
    size = len(tx(chain, chain.account_keys[1], 0).raw)
    mp = Mempool(state=chain.view(), max_bytes=3 * size)
    for i in range(1, 4):
        assert mp.add(tx(chain, chain.account_keys[i], 0, fee=10 + i)).accepted
    assert mp.total_bytes == 3 * size
    assert mp.add(tx(chain, chain.account_keys[4], 0, fee=5)).code == CODE_FULL
    assert mp.add(tx(chain, chain.account_keys[4], 0, fee=50)).accepted
    assert mp.total_bytes == 3 * size


def test_update_removes_included_and_rechecks_the_rest(chain: TestChain) -> None:
    a, b = chain.account_keys[1:3]
    poor = PrivateKey.from_seed(b"\x09" * 32)
    chain.next_block([build_tx(a, chain.chain_id, 0, 10, Transfer(poor.address(), 100))])
    mp = Mempool(state=chain.view())
    p0 = build_tx(poor, chain.chain_id, 0, 10, Transfer(b.address(), 1))
    p1 = build_tx(poor, chain.chain_id, 1, 10, Transfer(b.address(), 1))
    a1, b0 = tx(chain, a, 1), tx(chain, b, 0)
    for t in (p0, p1, a1, b0):
        assert mp.add(t).accepted
    # A block from elsewhere: a1 and b0 as we have them, and a different nonce-0 tx from
    # `poor` that spends almost everything, so p0 is stale and p1 cannot pay its fee.
    drain = build_tx(poor, chain.chain_id, 0, 10, Transfer(b.address(), 85))
    result = chain.next_block([a1, b0, drain])
    evicted = mp.update(result.tx_hashes, chain.view())
    assert len(mp) == 0 and mp.total_bytes == 0
    assert evicted == 1 and mp.stats.evicted == {"invalid": 1} and mp.stats.committed == 2
    assert mp.add(tx(chain, a, 2)).accepted  # nonces continue from the new state


def test_signature_is_verified_once(chain: TestChain, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = transition.is_valid_signature

    def counting(pubkey: bytes, message: bytes, signature: bytes) -> bool:
        calls["n"] += 1
        return real(pubkey, message, signature)

    monkeypatch.setattr(transition, "is_valid_signature", counting)
    mp = Mempool(state=chain.view())
    txs = [tx(chain, chain.account_keys[i], 0) for i in range(1, 7)]
    for t in txs:
        assert mp.add(t).accepted
    assert calls["n"] == 6
    assert len(mp.sig_cache) == 6
    reaped = mp.reap(10, 1 << 20, state=chain.view())  # the dry run uses the cache too
    assert calls["n"] == 6
    result = chain.apply(chain.build_block(reaped), sig_cache=mp.sig_cache)
    assert [r.code for r in result.tx_results] == [0] * 6
    assert calls["n"] == 6  # block execution did not verify again
    assert mp.sig_cache.hits >= 6
    # Without the cache, execution verifies every transaction.
    more = [tx(chain, chain.account_keys[i], 1) for i in range(1, 4)]
    chain.next_block(more)
    assert calls["n"] == 9


def test_signature_cache_is_bounded() -> None:
    cache = SignatureCache(capacity=3)
    for i in range(5):
        cache.add(bytes([i]) * 32)
    assert len(cache) == 3
    assert bytes([0]) * 32 not in cache and cache(bytes([4]) * 32)


def test_add_rate_is_well_above_1000_per_second(chain: TestChain) -> None:
    keys = [PrivateKey.from_seed(bytes([i]) * 32) for i in range(1, 41)]
    funder = chain.account_keys[1]
    chain.next_block([build_tx(funder, chain.chain_id, i, 10, Transfer(k.address(), 10**6))
                      for i, k in enumerate(keys)])
    txs = [build_tx(k, chain.chain_id, n, 10, Transfer(funder.address(), 1)) for n in range(50) for k in keys]
    mp = Mempool(state=chain.view())
    start = time.perf_counter()
    for t in txs:
        assert mp.add(t).accepted
    rate = len(txs) / (time.perf_counter() - start)
    print(f"mempool add rate with signature verification: {rate:.0f} tx/s")
    assert rate > 1000
    cached = Mempool(state=chain.view(), sig_cache=mp.sig_cache)
    start = time.perf_counter()
    for t in txs:
        cached.add(t)
    cached_rate = len(txs) / (time.perf_counter() - start)
    print(f"mempool add rate with the signature cached: {cached_rate:.0f} tx/s")
    assert len(cached) == len(txs)


def test_compute_spend_counts_known_spends(chain: TestChain) -> None:
    t = tx(chain, chain.account_keys[1], 0, fee=7, amount=100)
    assert mp_mod.compute_spend(t) == 107


def test_state_as_reader_sees_base_and_overlay(chain: TestChain) -> None:
    from consensus.records import Account
    from consensus.state import Keys, State

    state = chain.view()
    addr = PrivateKey.from_seed(b"\x05" * 32).address()
    state.set_account(addr, Account(5, 0))
    reader = mp_mod.StateAsReader(state)
    accounts = dict(reader.iter_prefix(Keys.ACCOUNT))
    assert accounts[Keys.account(addr)] == Account(5, 0).encode()
    assert len(accounts) == len(list(chain.state.iter_prefix(Keys.ACCOUNT))) + 1
    assert list(accounts) == sorted(accounts)
    assert reader.get(Keys.account(addr)) == Account(5, 0).encode()
    # An overlay on top iterates validators as the chain state has them.
    assert len(list(State(reader).iter_validators())) == 4


def test_from_config(chain: TestChain) -> None:
    from node.config import MempoolSection

    mp = Mempool.from_config(MempoolSection(max_txs=2, sig_cache_size=5, replace_bump_percent=50), chain.view())
    assert (mp.max_txs, mp.sig_cache.capacity, mp.replace_bump_percent) == (2, 5, 50)
    assert mp.add(tx(chain, chain.account_keys[1], 0)).accepted


def test_a_live_proof_of_compute_answer_gets_in_and_out_first_under_a_flood() -> None:
    """A prover is slashed when its answer is late: a flood of transfers must not delay it.

    Seen in the saturation bench: with the pools full of transfers at the minimum
    fee, a validator's openings waited behind thousands of them and missed their
    deadline. A duty-kind transaction that no challenge waits for gets nothing.
    """
    from consensus.poc import PocCommitment
    from tests.consensus.test_poc_state import EPOCH, Responder, make_chain, run_to

    chain = make_chain()
    run_to(chain, EPOCH)  # every validator's NFT has a challenge waiting for its commitment
    (answer,) = Responder(chain, {0: 0.0}).txs()
    fee = answer.payload.fee
    keys = chain.account_keys
    flood = [tx(chain, keys[i % len(keys)], i // len(keys), fee=fee) for i in range(8)]
    bogus = chain.tx(chain.operator_keys[1], PocCommitment(bytes(32), bytes(32)), fee=fee)

    mp = Mempool(state=chain.view(), max_txs=len(flood))
    for t in flood:
        assert mp.add(t).accepted
    # Full, and nothing pays less: a transfer, and a commitment to no challenge, are refused.
    assert mp.add(tx(chain, chain.operator_keys[2], 0, fee=fee)).code == CODE_FULL
    assert mp.add(bogus).code == CODE_FULL
    res = mp.add(answer)
    assert res.accepted and len(res.evicted) == 1 and len(mp) == len(flood)
    # Another answer cannot push this one out at the same fee.
    assert mp._find_victims(fee, chain.operator_keys[3].address(), len(keys) + 1, 0, equal_fee=True) is None
    reaped = mp.reap(3, 1 << 30, state=chain.view())
    assert reaped[0] is answer and all(t in flood for t in reaped[1:])
    # Not full: a duty-kind transaction that is no live answer waits its turn by arrival.
    mp = Mempool(state=chain.view())
    for t in (*flood, bogus, answer):
        assert mp.add(t).accepted
    reaped = mp.reap(len(flood) + 2, 1 << 30, state=chain.view())
    assert reaped[0] is answer and reaped[1:] == [*flood, bogus]
