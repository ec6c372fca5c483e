"""The vector files match what the code computes now; the comparison catches a changed byte."""

from __future__ import annotations

import json
from pathlib import Path

from consensus.crypto import sign_bytes, verify_signature
from consensus.txs import SignedTx
from tests.vectors.build import all_vectors
from tests.vectors.files import DATA_DIR, compare, render, write_all


def test_vectors_match_the_code() -> None:
    diffs = compare()
    assert not diffs, "vectors differ (after a deliberate change: python -m tests.vectors generate):\n" + "\n".join(
        diffs)


def test_vectors_are_deterministic() -> None:
    assert {k: render(v) for k, v in all_vectors().items()} == {k: render(v) for k, v in all_vectors().items()}


def test_compare_names_a_changed_value(tmp_path: Path) -> None:
    write_all(tmp_path)
    assert compare(tmp_path) == []
    doc = json.loads((tmp_path / "chain.json").read_text())
    doc["blocks"][2]["state_root_after"] = "0x" + "00" * 32
    (tmp_path / "chain.json").write_text(json.dumps(doc))
    diffs = compare(tmp_path)
    assert len(diffs) == 1 and diffs[0].startswith("chain.json.blocks[2].state_root_after: file has 0x0000")


def test_vector_signatures_verify_and_txs_decode() -> None:
    keys = json.loads((DATA_DIR / "keys.json").read_text())["keys"]
    for k in keys:
        for name, sig in k["signatures"].items():
            msg = sign_bytes(bytes.fromhex(k["domains"][name][2:]), k["chain_id"], bytes.fromhex(k["payload"][2:]))
            verify_signature(bytes.fromhex(k["pubkey"][2:]), msg, bytes.fromhex(sig[2:]))
    txs = json.loads((DATA_DIR / "txs.json").read_text())["txs"]
    kinds = [t["kind"] for t in txs]
    assert len(kinds) == len(set(kinds)) >= 10
    for t in txs:
        tx = SignedTx.decode(bytes.fromhex(t["signed_encoding"][2:]))
        assert "0x" + tx.tx_hash.hex() == t["tx_hash"]
