"""Human output: amounts with separators and UTC times, JSON unchanged."""

from __future__ import annotations

from node.cli.common import format_amount, format_time_ms
from node.cli.query import _human_account, _human_status


def test_amounts_and_times() -> None:
    assert format_amount(1250000) == "1,250,000" and format_amount(0) == "0"
    assert format_time_ms(1796400000123) == "2026-12-04T16:00:00.123Z"
    assert format_time_ms(None) == "-"


def test_status_and_account_render_for_people() -> None:
    status = {"chain_id": "c", "moniker": "m", "node_id": "n", "latest_height": 3, "latest_block_hash": "0xab",
              "latest_block_time": 1796400000000, "latest_state_root": "0xcd", "catching_up": False,
              "validator_address": None}
    text = _human_status(status)
    assert "2026-12-04T16:00:00.000Z" in text and "1796400000000" not in text
    account = {"address": "cs1x", "balance": 1234567, "nonce": 2, "next_nonce": 3, "bonded": 5000,
               "pending_rewards": 12, "is_validator": True,
               "delegations": [{"validator": "cs1v", "amount": 5000, "rewards": 12}],
               "unbonding": [{"validator": "cs1v", "amount": 100, "creation_height": 1, "completion_height": 50}]}
    text = _human_account(account)
    assert "1,234,567" in text and "(validator)" in text and "next 3" in text
    assert "delegated 5,000 to cs1v" in text and "until height 50" in text
