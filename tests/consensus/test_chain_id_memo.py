"""Chain ids found well formed are remembered (bounded); a bad one is refused every time."""

from __future__ import annotations

import pytest

from consensus import txs
from consensus.errors import ValidationError
from consensus.txs import validate_chain_id


@pytest.mark.parametrize("bad", ["", "Upper", "has space", "x" * 51, "dévnet", "a_b"])
def test_a_malformed_chain_id_is_refused_each_time_and_never_remembered(bad: str) -> None:
    validate_chain_id("cstake-devnet")
    for _ in range(2):
        with pytest.raises(ValidationError):
            validate_chain_id(bad)
    assert bad not in txs._VALID_CHAIN_IDS


def test_the_memo_of_valid_chain_ids_is_bounded() -> None:
    for i in range(3 * txs._VALID_CHAIN_IDS_MAX):
        validate_chain_id(f"chain-{i}")
    assert len(txs._VALID_CHAIN_IDS) == txs._VALID_CHAIN_IDS_MAX
    assert f"chain-{3 * txs._VALID_CHAIN_IDS_MAX - 1}" in txs._VALID_CHAIN_IDS
    validate_chain_id("chain-0")  # forgotten, checked again: still valid
