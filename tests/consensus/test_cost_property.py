"""Property: whatever transactions arrive, a valid block stays within the cost budget.

Hypothesis draws sequences of transactions of every cost shape (transfers,
delegations, seeded and inline job submissions of random sizes, fraud proofs
of random widths, under- and over-priced fees) and checks two ways of making
blocks from them:

- **any block** (the transactions as drawn, in one block): executing it either
  refuses it as invalid or it is within ``max_block_cost`` and the heavy cap;
- **the mempool's block** (admission, then ``reap`` against the head, as a
  proposer builds it): always valid, always within the budget, and the
  refused transactions were refused for their price, never silently.

The wall-clock bound (a valid devnet block executes within a second) is not
asserted here, where other suites share the CPUs: ``python -m bench.incentives
cost`` measures the worst blocks the budget allows (docs/protocol.md, 3a).
"""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from consensus.costs import compute_block_cost, get_min_fee
from consensus.errors import InvalidBlock
from consensus.hashing import hash32
from consensus.poc import PocFraudProof, RowOpening
from consensus.txs import Delegate, SignedTx, Transfer, build_tx
from node.mempool.pool import Mempool
from tests.kit.chain import TestChain
from tests.kit.jobs import matmul_body

# Budget scaled down with the sizes below so that a few draws reach it (same rules, faster examples).
PARAMS = {"max_block_cost": 60_000, "max_heavy_txs_per_block": 4}

_SIZES = [(16, 64), (64, 128), (256, 256), (512, 256), (256, 512)]
_BODIES = {size: matmul_body(m=size[0], n=size[1], bid=1, escrow=10**6) for size in _SIZES}


@st.composite
def tx_shapes(draw: st.DrawFn) -> tuple[str, int, int]:
    """(kind, size index or width, fee choice) of one transaction."""
    kind = draw(st.sampled_from(["transfer", "delegate", "seeded_job", "inline_job", "fraud_proof"]))
    size = draw(st.integers(0, len(_SIZES) - 1))
    fee = draw(st.sampled_from([0, 1, 2]))  # 0: min_fee, 1: the cost price, 2: one below the cost price
    return kind, size, fee


def _body(chain: TestChain, kind: str, size: int, index: int) -> object:
    to = chain.account_keys[1].address()
    if kind == "transfer":
        return Transfer(to, 1 + index)
    if kind == "delegate":
        return Delegate(chain.operator_keys[index % 4].address(), 10 + index)
    if kind == "seeded_job":
        return _BODIES[_SIZES[size]]
    if kind == "inline_job":
        m, n = _SIZES[size]
        m, n = min(m, 128), min(n, 128)
        body = matmul_body(m=m, n=n, bid=1, escrow=10**6)
        inputs = bytes((i * 7) % 251 for i in range(m * n + n * n))
        return dataclasses.replace(body, inputs=inputs, input_seed=b"", input_hash=hash32(inputs))
    # A fraud proof naming no challenge: refused cheaply, but priced by its row's width.
    n = 64 << size
    return PocFraudProof(hash32(b"challenge" + bytes([size])), RowOpening(index, b"\x00" * 4 * n, ()))


def _sign(chain: TestChain, shapes: list[tuple[str, int, int]]) -> list[SignedTx]:
    params = chain.view().get_params()
    keys = chain.account_keys
    nonces = {k.address(): chain.view().get_account(k.address()).nonce for k in keys}
    out = []
    for i, (kind, size, fee_choice) in enumerate(shapes):
        key = keys[i % len(keys)]
        body = _body(chain, kind, size, i)
        price = get_min_fee(body, params)  # type: ignore[arg-type]
        fee = {0: params.min_fee, 1: price, 2: max(price - 1, params.min_fee)}[fee_choice]
        out.append(build_tx(key, chain.chain_id, nonces[key.address()], fee, body))  # type: ignore[arg-type]
        nonces[key.address()] += 1
    return out


def _chain() -> TestChain:
    chain = TestChain(n_accounts=6, params=PARAMS)
    chain.next_block()
    return chain


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tx_shapes(), min_size=1, max_size=30))
def test_valid_block_is_within_the_cost_budget(shapes: list[tuple[str, int, int]]) -> None:
    chain = _chain()
    params = chain.view().get_params()
    txs = _sign(chain, shapes)
    cost = compute_block_cost(txs, params)
    # Steer the search toward blocks at and over the budget.
    target(float(cost.total), label="block cost")
    try:
        chain.apply(chain.build_block(txs))
    except InvalidBlock as exc:
        event("over the budget" if "max_block_cost" in str(exc) or "heavy" in str(exc) else "invalid otherwise")
        return
    event("valid")
    assert cost.total <= params.max_block_cost
    assert cost.heavy <= params.max_heavy_txs_per_block


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tx_shapes(), min_size=1, max_size=30))
def test_mempool_block_is_valid_and_within_the_cost_budget(shapes: list[tuple[str, int, int]]) -> None:
    chain = _chain()
    params = chain.view().get_params()
    mp = Mempool(state=chain.view())
    admitted = []
    gapped: set[bytes] = set()
    for tx in _sign(chain, shapes):
        res = mp.add(tx)
        sender = tx.payload.sender
        if sender in gapped:
            # An earlier transaction of this sender was refused: its later nonces leave a gap.
            assert res.reason == "nonce_gap", res.log
        elif tx.payload.fee < get_min_fee(tx, params):
            assert res.reason == "fee_too_low" and "cost of" in res.log, res.log
            gapped.add(sender)
        else:
            assert res.accepted, res.log
            admitted.append(tx)
    reaped = mp.reap(params.max_block_txs, params.max_block_bytes, state=chain.view())
    cost = compute_block_cost(reaped, params)
    assert cost.total <= params.max_block_cost and cost.heavy <= params.max_heavy_txs_per_block
    chain.apply(chain.build_block(reaped))  # never invalid
    whole = compute_block_cost(admitted, params)
    if admitted and whole.total <= params.max_block_cost // 2 and whole.heavy <= params.max_heavy_txs_per_block:
        # Plenty of room: the budget alone never leaves an admitted transaction out.
        assert len(reaped) == len(admitted)
