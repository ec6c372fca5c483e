"""Decoded transaction bodies are shared: same result as decoding, bounded, never for bad bytes."""

from __future__ import annotations

import pytest

from consensus.errors import ValidationError
from consensus.txs import BODY_TYPES, Transfer, TxKind, _BodyMemo, decode_tx_body


def test_a_body_decodes_to_the_same_value_once_and_is_then_shared() -> None:
    body = Transfer(b"\x07" * 20, 12345).encode()
    first = decode_tx_body(TxKind.TRANSFER, body)
    assert first == BODY_TYPES[TxKind.TRANSFER].decode(body)
    assert decode_tx_body(TxKind.TRANSFER, bytes(bytearray(body))) is first  # equal bytes, another object


def test_bad_bytes_and_unknown_kinds_raise_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValidationError, match="bad transfer body"):
            decode_tx_body(TxKind.TRANSFER, b"\xc1")
        with pytest.raises(ValidationError, match="unknown transaction kind"):
            decode_tx_body(250, Transfer(b"\x07" * 20, 1).encode())


def test_the_memo_is_bounded_in_entries_and_bytes_oldest_first() -> None:
    memo = _BodyMemo()
    memo.MAX_ENTRIES = 4
    memo.MAX_BYTES = 400
    bodies = [bytes([i]) * 30 for i in range(10)]
    for i, b in enumerate(bodies):
        memo.put(1, b, Transfer(b"\x01" * 20, i + 1))
    assert [memo.get(1, b) is not None for b in bodies] == [False] * 6 + [True] * 4
    memo.put(1, b"\xff" * 120, Transfer(b"\x01" * 20, 99))  # over a quarter of the bytes: not kept
    assert memo.get(1, b"\xff" * 120) is None
    for i in range(10, 14):
        memo.put(1, bytes([i]) * 95, Transfer(b"\x01" * 20, i))
    assert sum(memo.get(1, bytes([i]) * 95) is not None for i in range(10, 14)) == 4
    assert memo._bytes <= memo.MAX_BYTES
