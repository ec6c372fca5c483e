"""Retiring a compute NFT: unbound at once, its collateral back after ``unbonding_blocks``, no escape from a fault."""

from __future__ import annotations

import dataclasses

from consensus.errors import NFTRetireRefused, NotNFTOwner
from consensus.poc_state import ChallengeRef, ChallengeStatus, get_challenge
from consensus.records import NFTStatus
from consensus.state import Keys, State
from consensus.txs import RetireNFT, TransferNFT
from tests.kit.chain import TestChain, put_committed_challenge

UNBONDING = 6


def _chain() -> TestChain:
    chain = TestChain(params={"unbonding_blocks": UNBONDING, "epoch_blocks": 4})
    chain.next_block()
    return chain


def _nft_of(chain: TestChain, i: int) -> int:
    return next(iter(chain.view().iter_validator_nft_ids(chain.operator_keys[i].address())))


def _base_supply(chain: TestChain) -> int:
    """Total supply less what was ever minted, plus what was burned: constant unless tokens vanish."""
    meta = chain.view().get_meta()
    return meta.total_supply - meta.minted + meta.burned


def test_retire_nft_unbinds_now_and_returns_the_collateral_after_unbonding() -> None:
    chain = _chain()
    operator = chain.operator_keys[0]
    nft_id = _nft_of(chain, 0)
    # Owned by a plain account (an operator's balance moves with every block reward).
    owner = chain.account_keys[1]
    assert chain.next_block([chain.tx(operator, TransferNFT(nft_id, owner.address()))]).tx_results[0].code == 0
    collateral = chain.view().get_nft(nft_id).collateral  # type: ignore[union-attr]
    assert collateral > 0
    stranger = chain.next_block([chain.tx(chain.account_keys[0], RetireNFT(nft_id))]).tx_results[0]
    assert stranger.code == NotNFTOwner.code
    result = chain.next_block([chain.tx(owner, RetireNFT(nft_id), fee=10)])
    assert result.tx_results[0].code == 0, result.tx_results[0].log
    retired_at = chain.height
    nft = chain.view().get_nft(nft_id)
    assert nft is not None
    assert (nft.status, nft.bound_validator, nft.verified_units, nft.collateral) == (
        NFTStatus.RETIRED, b"", 0, collateral)
    assert nft_id not in set(chain.view().iter_validator_nft_ids(operator.address()))
    again = chain.next_block([chain.tx(owner, RetireNFT(nft_id))]).tx_results[0]
    assert again.code == NFTRetireRefused.code and "retired" in again.log
    base = _base_supply(chain)
    balance = chain.view().get_account(owner.address()).balance
    while chain.height < retired_at + UNBONDING - 1:
        chain.next_block()
    assert chain.view().get_nft(nft_id).collateral == collateral  # type: ignore[union-attr]
    assert chain.view().get_account(owner.address()).balance == balance
    chain.next_block()  # height retired_at + unbonding_blocks: paid out at its end
    assert chain.view().get_nft(nft_id).collateral == 0  # type: ignore[union-attr]
    assert chain.view().get_account(owner.address()).balance == balance + collateral
    assert _base_supply(chain) == base  # the collateral moved to the balance: nothing created or lost
    assert not list(chain.view().iter_records(Keys.NFT_RELEASE, object))  # type: ignore[arg-type]
    # Its validator has no compute left: it leaves the set at the next epoch.
    while chain.height % 4:
        chain.next_block()
    chain.next_block()
    assert chain.view().get_validator_set().get_by_address(operator.address()) is None


def test_retire_nft_is_refused_with_an_open_challenge() -> None:
    chain = _chain()
    owner = chain.operator_keys[1]
    nft_id = _nft_of(chain, 1)
    ch, _, _ = put_committed_challenge(chain, 64, 256)
    st = State(chain.state)
    rec = get_challenge(st, ch.id)
    assert rec is not None and rec.status == ChallengeStatus.COMMITTED
    st.put_record(Keys.challenge(ch.id), dataclasses.replace(rec, nft_id=nft_id))
    st.put_record(Keys.challenge_by_nft(nft_id), ChallengeRef(ch.id))
    chain.state.apply(st.changes())
    r = chain.next_block([chain.tx(owner, RetireNFT(nft_id))]).tx_results[0]
    assert r.code == NFTRetireRefused.code and "open challenge" in r.log
    assert chain.view().get_nft(nft_id).status != NFTStatus.RETIRED  # type: ignore[union-attr]
