"""Execution cost (consensus/costs.py): the price of a transaction, the block's budget, cheap checks first.

The attacks of issue 16 are written as tests: a block of 100 seeded job
submissions, a block of 100 fraud proofs of correct rows at n = 2048, the
same correct row proven again and again, and heavy work done before a cheap
refusal. Each was seen to pass through (and take seconds) before the cost
rules existed.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from consensus.costs import (
    COST_TABLE,
    HEAVY_COST,
    compute_block_cost,
    compute_cost,
    get_min_fee,
    get_tx_cost,
    is_heavy,
    validate_block_cost,
)
from consensus.crypto import PrivateKey
from consensus.errors import InsufficientFunds, InvalidBlock, JobError
from consensus.jobs.kinds import JobInput
from consensus.jobs.registry import get_kind
from consensus.jobs.types import ChallengeAction, JobChallenge, LeafOpening, SubmitJob
from consensus.params import DEVNET, MAINNET
from consensus.poc import Challenge, PocFraudProof, RowOpening
from consensus.poc.merkle import compute_proof
from consensus.records import HardwareSpec
from consensus.state import Keys
from consensus.txs import (
    AcceptNFT,
    BindNFT,
    Bond,
    CreateValidator,
    Delegate,
    RegisterCompute,
    RetireNFT,
    SetPrice,
    Transfer,
    TransferNFT,
    TxKind,
    UnbindNFT,
    Unbond,
    Undelegate,
    Unjail,
    WithdrawRewards,
    build_tx,
)
from tests.kit.chain import TestChain, put_committed_challenge
from tests.kit.jobs import matmul_body

#: The largest seeded matrix job the devnet accepts: m·n + n² = 4 x job_max_input_bytes entries.
MAX_SEEDED = (3072, 1024)


def _max_seeded_job() -> SubmitJob:
    return matmul_body(m=MAX_SEEDED[0], n=MAX_SEEDED[1], bid=1, escrow=10_000)


def _ordinary_bodies() -> list[object]:
    addr = b"\x11" * 20
    spec = HardwareSpec(1, "m" * 128, 1 << 19, 1 << 39)
    return [
        Transfer(addr, 10**15), CreateValidator(b"\x22" * 32, 10**15, 500, "m" * 64), Bond(10**15),
        Unbond(10**15), Delegate(addr, 10**15), Undelegate(addr, 10**15), RegisterCompute(spec, 10**9, 10**15),
        TransferNFT(10**9, addr), BindNFT(10**9, addr), UnbindNFT(10**9), AcceptNFT(10**9), Unjail(),
        WithdrawRewards(addr), WithdrawRewards(b""), SetPrice(10**9, 10**9, 1), RetireNFT(10**9),
    ]


# --- the price ------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [DEVNET, MAINNET], ids=["devnet", "mainnet"])
def test_get_min_fee_of_ordinary_transactions_is_min_fee(params: object) -> None:
    # The CLI, the load generator and the devnet pay min_fee for these: it must stay enough.
    for body in _ordinary_bodies():
        assert get_min_fee(body, params) == params.min_fee, type(body).__name__  # type: ignore[attr-defined]


def test_get_min_fee_of_heavy_transactions_follows_their_cost() -> None:
    small = matmul_body(m=16, n=64)
    big = _max_seeded_job()
    assert get_min_fee(small, DEVNET) == DEVNET.min_fee
    cost = compute_cost(TxKind.SUBMIT_JOB, big.encode(), DEVNET)
    assert cost > 30_000  # regenerating 4 Mi entries takes tens of milliseconds
    assert get_min_fee(big, DEVNET) == -(-cost * DEVNET.min_fee_per_cost // 10_000) > DEVNET.min_fee
    assert get_min_fee(big, MAINNET) == cost * MAINNET.min_fee_per_cost // 10_000


def test_compute_cost_grows_with_size_and_heavy_work() -> None:
    spec = MAINNET
    row = lambda n: PocFraudProof(b"\x01" * 32, RowOpening(0, b"\x00" * 4 * n, (b"\x02" * 32,) * 10))  # noqa: E731
    costs = [compute_cost(TxKind.FRAUD_PROOF, row(n).encode(), spec) for n in (64, 256, 1024, 2048)]
    assert costs == sorted(costs) and costs[-1] > 50_000
    assert is_heavy(TxKind.FRAUD_PROOF, row(2048).encode(), spec)
    assert not is_heavy(TxKind.FRAUD_PROOF, row(64).encode(), spec)
    # Inline job inputs are paid by the byte, not as regeneration.
    inline = dataclasses.replace(matmul_body(m=16, n=64), inputs=b"\x01" * (16 * 64 + 64 * 64), input_seed=b"")
    assert compute_cost(TxKind.SUBMIT_JOB, inline.encode(), spec) < HEAVY_COST
    # A job leaf of p entries is checked against at most the largest B such a job can have.
    leaf = JobChallenge(b"\x01" * 32, 0, ChallengeAction.FRAUD, 0, (LeafOpening(0, b"\x00" * 4 * 2048, ()),))
    assert compute_cost(TxKind.JOB_CHALLENGE, leaf.encode(), spec) > 50_000
    start = dataclasses.replace(leaf, action=ChallengeAction.START, openings=())
    assert compute_cost(TxKind.JOB_CHALLENGE, start.encode(), spec) == COST_TABLE[TxKind.JOB_CHALLENGE].base + 3


def test_prover_duties_pay_min_fee_and_are_not_heavy() -> None:
    from consensus.poc import PocOpenings

    openings = PocOpenings(b"\x01" * 32, tuple(RowOpening(i, b"\x00" * 1024, (b"\x02" * 32,) * 15) for i in range(800)))
    body = openings.encode()
    assert compute_cost(TxKind.POC_OPEN, body, DEVNET) > 10_000
    assert get_min_fee(openings, DEVNET) == DEVNET.min_fee
    assert not is_heavy(TxKind.POC_OPEN, body, DEVNET)


def test_malformed_body_costs_its_envelope_only() -> None:
    assert compute_cost(TxKind.FRAUD_PROOF, b"\xc0", DEVNET) == COST_TABLE[TxKind.FRAUD_PROOF].base + 3
    assert compute_cost(99, b"", DEVNET) > 0


# --- the attacks as blocks ---------------------------------------------------------------------


def _spread(chain: TestChain, bodies: list[object], fee: int) -> list[object]:
    keys = chain.account_keys + chain.operator_keys
    return [chain.tx(keys[i % len(keys)], body, fee=fee) for i, body in enumerate(bodies)]  # type: ignore[arg-type]


def test_invalid_block_of_100_seeded_submit_jobs_over_the_cost_budget() -> None:
    chain = TestChain()
    chain.next_block()
    txs = _spread(chain, [_max_seeded_job()] * 100, fee=1_000)
    block = chain.build_block(txs)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    with pytest.raises(InvalidBlock, match="max_block_cost"):
        chain.apply(block)
    # Refused on its cost before any input was regenerated (100 of them take seconds).
    assert time.perf_counter() - t0 < 2.0
    assert chain.height == 1


def test_invalid_block_over_the_heavy_cap_though_within_the_budget() -> None:
    chain = TestChain(params={"max_block_cost": 10**9, "max_heavy_txs_per_block": 3})
    chain.next_block()
    body = matmul_body(m=256, n=256, bid=1, escrow=10_000)
    assert is_heavy(TxKind.SUBMIT_JOB, body.encode(), DEVNET)
    with pytest.raises(InvalidBlock, match="max_heavy_txs_per_block"):
        chain.apply(chain.build_block(_spread(chain, [body] * 4, fee=100)))  # type: ignore[arg-type]
    chain.nonces.clear()
    result = chain.next_block(_spread(chain, [body] * 3, fee=100))  # type: ignore[arg-type]
    assert [r.code for r in result.tx_results] == [0, 0, 0]


def _correct_rows_challenge(chain: TestChain, n: int, rows: int) -> tuple[Challenge, list[list[bytes]], list[bytes]]:
    """A committed n-wide challenge with honest rows, written into the chain's state."""
    return put_committed_challenge(chain, n, rows)


def test_invalid_block_of_100_fraud_proofs_of_correct_rows_at_n_2048() -> None:
    chain = TestChain()
    chain.next_block()
    ch, levels, leaves = _correct_rows_challenge(chain, 2048, 100)
    proofs = [PocFraudProof(ch.id, RowOpening(i, leaves[i], tuple(compute_proof(levels, i)))) for i in range(100)]
    block = chain.build_block(_spread(chain, proofs, fee=1_000))  # type: ignore[arg-type]
    t0 = time.perf_counter()
    with pytest.raises(InvalidBlock, match="max_block_cost"):
        chain.apply(block)
    assert time.perf_counter() - t0 < 2.0


def test_fraud_proof_of_a_row_already_tried_is_refused_without_recomputation() -> None:
    chain = TestChain()
    chain.next_block()
    ch, levels, leaves = _correct_rows_challenge(chain, 256, 64)
    proof = PocFraudProof(ch.id, RowOpening(5, leaves[5], tuple(compute_proof(levels, 5))))
    senders = chain.account_keys
    result = chain.next_block([chain.tx(k, proof, fee=5) for k in senders])
    logs = [r.log for r in result.tx_results]
    assert logs[0].startswith("RejectedFraudProof") and "is correct" in logs[0]
    for log in logs[1:]:
        assert log.startswith("RejectedFraudProof") and "already tried" in log, log
    # The mark outlives the block, and a bogus path never marks a row (it could block a real proof).
    again = chain.next_block([chain.tx(senders[0], proof, fee=5)])
    assert "already tried" in again.tx_results[0].log
    bogus = PocFraudProof(ch.id, RowOpening(6, leaves[6], tuple(compute_proof(levels, 7))))
    r = chain.next_block([chain.tx(senders[1], bogus, fee=5)]).tx_results[0]
    assert "Merkle path fails" in r.log
    assert chain.view().get_record(Keys.fraud_row(ch.id, 6), object) is None  # type: ignore[arg-type]


def test_submit_job_checks_open_jobs_before_regenerating_inputs() -> None:
    chain = TestChain(params={"job_max_open": 1})
    chain.next_block()
    user = chain.account_keys[0]
    assert chain.next_block([chain.tx(user, matmul_body(m=16, n=64))]).tx_results[0].code == 0
    # A wrong input hash is found only by regenerating the inputs: the full chain refuses first.
    wrong = dataclasses.replace(_max_seeded_job(), input_hash=b"\x05" * 32)
    r = chain.next_block([chain.tx(user, wrong, fee=1_000)]).tx_results[0]
    assert r.code == JobError.code and "jobs are open" in r.log, r.log


def test_submit_job_checks_the_balance_before_regenerating_inputs() -> None:
    chain = TestChain(balance=5_000)
    chain.next_block()
    wrong = dataclasses.replace(_max_seeded_job(), input_hash=b"\x05" * 32, escrow=4_000_000)
    r = chain.next_block([chain.tx(chain.account_keys[0], wrong, fee=100)]).tx_results[0]
    assert r.code == InsufficientFunds.code, r.log


def test_invalid_block_with_an_underpriced_heavy_transaction() -> None:
    chain = TestChain()
    chain.next_block()
    body = _max_seeded_job()
    need = get_min_fee(body, DEVNET)
    with pytest.raises(InvalidBlock, match="min_fee_per_cost"):
        chain.apply(chain.build_block([chain.tx(chain.account_keys[0], body, fee=need - 1)]))
    chain.nonces.clear()
    assert chain.next_block([chain.tx(chain.account_keys[0], body, fee=need)]).tx_results[0].code == 0


def test_validate_block_cost_counts_each_transaction() -> None:
    key = PrivateKey.from_seed(b"\x01" * 32)
    txs = [build_tx(key, "c", i, 1, Transfer(b"\x02" * 20, 1)) for i in range(10)]
    total = compute_block_cost(txs, DEVNET)
    assert total.total == sum(get_tx_cost(t, DEVNET) for t in txs) and total.heavy == 0
    validate_block_cost(txs, DEVNET)
    with pytest.raises(InvalidBlock):
        validate_block_cost(txs, dataclasses.replace(DEVNET, max_block_cost=total.total - 1))


def test_kind_of_every_transaction_has_a_schedule() -> None:
    assert set(COST_TABLE) == set(TxKind.NAMES)


def test_iterate_job_input_is_not_heavy() -> None:
    from tests.kit.jobs import iterate_body

    body = iterate_body(steps=1000, width=512)
    kind = get_kind(2)
    assert kind is not None and kind.compute_input_hash(JobInput(body.spec, b"", body.input_seed)) == body.input_hash
    assert not is_heavy(TxKind.SUBMIT_JOB, body.encode(), DEVNET)
