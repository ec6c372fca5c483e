"""The mempool and the cost rules (consensus/costs.py): the price at admission, the budget at reaping."""

from __future__ import annotations

from consensus.costs import compute_block_cost, get_min_fee, is_heavy
from consensus.txs import SignedTx, Transfer, TxKind, build_tx
from node.mempool.pool import Mempool
from tests.kit.chain import TestChain
from tests.kit.jobs import matmul_body

#: The largest seeded matrix job the devnet accepts (about 30 ms to regenerate its inputs).
MAX_SEEDED = matmul_body(m=3072, n=1024, bid=1, escrow=10_000)
#: A smaller heavy one (about 2 ms).
HEAVY = matmul_body(m=256, n=256, bid=1, escrow=10_000)


def test_add_refuses_a_heavy_transaction_below_its_cost_price() -> None:
    chain = TestChain(n_accounts=2)
    mp = Mempool(state=chain.view())
    key = chain.account_keys[0]
    params = chain.view().get_params()
    need = get_min_fee(MAX_SEEDED, params)
    assert need > params.min_fee
    res = mp.add(build_tx(key, chain.chain_id, 0, params.min_fee, MAX_SEEDED))
    assert (res.accepted, res.code, res.reason) == (False, 4, "fee_too_low")
    assert f"below {need}" in res.log and "cost of" in res.log and "submit_job" in res.log
    assert len(mp) == 0
    assert mp.add(build_tx(key, chain.chain_id, 0, need, MAX_SEEDED)).accepted
    # An ordinary transaction at min_fee still gets in.
    other = chain.account_keys[1]
    assert mp.add(build_tx(other, chain.chain_id, 0, params.min_fee, Transfer(key.address(), 1))).accepted


def test_reap_stops_at_the_block_cost_budget() -> None:
    chain = TestChain(n_accounts=8)
    chain.next_block()
    mp = Mempool(state=chain.view())
    params = chain.view().get_params()
    txs: list[SignedTx] = []
    for i, key in enumerate(chain.account_keys):
        for nonce in range(3):
            txs.append(build_tx(key, chain.chain_id, nonce, 100 + i, MAX_SEEDED))
    for t in txs:
        assert mp.add(t).accepted, t
    total = compute_block_cost(txs, params)
    assert total.total > params.max_block_cost
    reaped = mp.reap(10_000, 1 << 30, state=chain.view())
    cost = compute_block_cost(reaped, params)
    assert 0 < len(reaped) < len(txs)
    assert cost.total <= params.max_block_cost and cost.heavy <= params.max_heavy_txs_per_block
    # Full: the next heavy transaction would not have fitted.
    assert cost.total + (total.total // len(txs)) > params.max_block_cost
    chain.next_block(reaped)


def test_reap_keeps_the_heavy_cap_and_fills_with_light_transactions() -> None:
    chain = TestChain(n_accounts=8, params={"max_heavy_txs_per_block": 2})
    chain.next_block()
    mp = Mempool(state=chain.view())
    params = chain.view().get_params()
    assert is_heavy(TxKind.SUBMIT_JOB, HEAVY.encode(), params)
    keys = chain.account_keys
    for i, key in enumerate(keys[:4]):
        assert mp.add(build_tx(key, chain.chain_id, 0, 1_000 + i, HEAVY)).accepted
    for key in keys[4:]:
        assert mp.add(build_tx(key, chain.chain_id, 0, 1, Transfer(keys[0].address(), 1))).accepted
    reaped = mp.reap(10_000, 1 << 30, state=chain.view())
    kinds = [t.payload.kind for t in reaped]
    assert kinds.count(TxKind.SUBMIT_JOB) == 2 and kinds.count(TxKind.TRANSFER) == 4
    result = chain.next_block(reaped)
    assert all(r.code == 0 for r in result.tx_results)
