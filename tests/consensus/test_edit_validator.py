"""Editing a validator: its operator changes the moniker and/or the commission, within the chain's maximum."""

from __future__ import annotations

import pytest

from consensus.costs import COST_TABLE, get_min_fee
from consensus.errors import CommissionTooHigh, UnknownValidator, ValidationError
from consensus.incentives import pay_validator_reward
from consensus.params import DEVNET
from consensus.txs import KEEP_COMMISSION, Delegate, EditValidator, SignedTx, TxKind, build_tx
from tests.kit.chain import TestChain


def _chain() -> TestChain:
    chain = TestChain()
    chain.next_block()
    return chain


def _edit(chain: TestChain, i: int, body: EditValidator) -> tuple[int, str]:
    result = chain.next_block([chain.tx(chain.operator_keys[i], body)]).tx_results[0]
    return result.code, result.log


def test_edit_validator_changes_moniker_and_commission() -> None:
    chain = _chain()
    op = chain.operator_keys[1].address()
    assert _edit(chain, 1, EditValidator("renamed", 1_200)) == (0, "")
    v = chain.view().get_validator(op)
    assert v is not None and (v.moniker, v.commission_bps) == ("renamed", 1_200)
    # Each field alone leaves the other as it is.
    assert _edit(chain, 1, EditValidator("", 0))[0] == 0
    v = chain.view().get_validator(op)
    assert v is not None and (v.moniker, v.commission_bps) == ("renamed", 0)
    assert _edit(chain, 1, EditValidator("again", KEEP_COMMISSION))[0] == 0
    v = chain.view().get_validator(op)
    assert v is not None and (v.moniker, v.commission_bps) == ("again", 0)
    # Other validators are untouched.
    other = chain.view().get_validator(chain.operator_keys[0].address())
    assert other is not None and (other.moniker, other.commission_bps) == ("val0", 500)


def test_edit_validator_commission_is_what_the_next_reward_pays() -> None:
    chain = _chain()
    op = chain.operator_keys[2]
    delegator = chain.account_keys[0]
    self_bond = chain.view().get_validator(op.address()).self_bond  # type: ignore[union-attr]
    # A delegation as large as the self-bond: the delegators' part is split half and half.
    delegated = chain.next_block([chain.tx(delegator, Delegate(op.address(), self_bond))]).tx_results[0]
    assert delegated.code == 0, delegated.log
    assert _edit(chain, 2, EditValidator("", 2_000))[0] == 0
    state = chain.view()
    v = state.get_validator(op.address())
    assert v is not None and v.stake == 2 * self_bond
    before = state.get_account(op.address()).balance
    pay_validator_reward(state, v, 10_000)
    # 20% commission (2,000), then half of the remaining 8,000 for the operator's own bond,
    # less at most one unit the reward ratio carries to the next allocation (the old 5% would give 5,250).
    assert 2_000 + 4_000 - 1 <= state.get_account(op.address()).balance - before <= 2_000 + 4_000


def test_invalid_edit_validator_from_an_account_without_a_validator() -> None:
    chain = _chain()
    stranger = chain.account_keys[0]
    result = chain.next_block([chain.tx(stranger, EditValidator("thief", 0))]).tx_results[0]
    assert result.code == UnknownValidator.code
    assert chain.view().get_validator(stranger.address()) is None


def test_invalid_edit_validator_commission_above_the_chain_maximum() -> None:
    chain = _chain()
    too_high = chain.view().get_params().max_commission_bps + 1
    code, log = _edit(chain, 0, EditValidator("greedy", too_high))
    assert code == CommissionTooHigh.code and str(too_high) in log
    # A failed transaction changes nothing but the fee and the nonce: the moniker stays too.
    v = chain.view().get_validator(chain.operator_keys[0].address())
    assert v is not None and (v.moniker, v.commission_bps) == ("val0", 500)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (EditValidator("", KEEP_COMMISSION), "changes nothing"),
        (EditValidator("x", 10_001), "commission_bps"),
        (EditValidator("m" * 65, KEEP_COMMISSION), "moniker"),
        (EditValidator("x", -1), "commission_bps"),
    ],
)
def test_invalid_edit_validator_body(body: EditValidator, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        body.validate_basic()


def test_edit_validator_round_trips_and_pays_min_fee() -> None:
    chain = _chain()
    body = EditValidator("zürich", 750)
    tx = build_tx(chain.operator_keys[0], chain.chain_id, 0, 10, body)
    decoded = SignedTx.decode(tx.encode())
    assert decoded.payload.kind == TxKind.EDIT_VALIDATOR == 24
    assert TxKind.NAMES[24] == "edit_validator"
    assert decoded.payload.decode_body() == body
    assert TxKind.EDIT_VALIDATOR in COST_TABLE
    assert get_min_fee(body, DEVNET) == DEVNET.min_fee
