"""tx_search over RPC: by sender or recipient, both orders, pages, height ranges; the indexer catches up."""

from __future__ import annotations

from typing import Any

import pytest

from consensus.crypto import encode_address
from consensus.records import Account
from consensus.txs import Transfer, build_tx
from node.rpc import errors as E
from node.rpc.indexer import TxIndexer
from node.rpc.server import RPCServer
from storage.tx_index import AddressTxIndex
from tests.kit.memview import MemoryNodeView


async def _call(http, server: RPCServer, params: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tx_search", "params": params}
    async with http.post(server.url + "/", json=body) as r:
        return await r.json()


def _send(view: MemoryNodeView, sender: int, to: int, amount: int):
    c = view.chain
    key = c.account_keys[sender]
    nonce = view.mempool.next_nonce(key.address(), c.view().get_account(key.address()).nonce)
    tx = build_tx(key, c.chain_id, nonce, 10, Transfer(c.account_keys[to].address(), amount))
    assert view.mempool.add(tx).code == 0
    return tx


async def test_search_by_sender_and_recipient_with_pages(server: RPCServer, view: MemoryNodeView, http) -> None:
    keys = view.chain.account_keys
    t1 = _send(view, 0, 1, 1)
    view.produce_block()
    t2 = _send(view, 2, 0, 2)
    _send(view, 2, 3, 3)  # concerns neither 0 nor 1
    view.produce_block()
    t3 = _send(view, 0, 3, 4)
    view.produce_block()
    a0 = encode_address(keys[0].address())
    doc = (await _call(http, server, {"address": a0}))["result"]
    assert [t["hash"] for t in doc["txs"]] == ["0x" + t.tx_hash.hex() for t in (t1, t2, t3)]
    assert doc["next"] is None and doc["indexed_height"] == 3
    assert doc["txs"][1]["result"] == {"code": 0, "log": ""} and doc["txs"][1]["tx"]["sender"] == encode_address(
        keys[2].address())
    page1 = (await _call(http, server, {"address": a0, "order": "desc", "limit": 2}))["result"]
    assert [t["hash"] for t in page1["txs"]] == ["0x" + t.tx_hash.hex() for t in (t3, t2)]
    page2 = (await _call(http, server, {"address": a0, "order": "desc", "limit": 2, "after": page1["next"]}))["result"]
    assert [t["hash"] for t in page2["txs"]] == ["0x" + t1.tx_hash.hex()] and page2["next"] is None
    ranged = (await _call(http, server, {"address": a0, "min_height": 2, "max_height": 2}))["result"]
    assert [t["hash"] for t in ranged["txs"]] == ["0x" + t2.tx_hash.hex()]
    recipient = (await _call(http, server, {"address": encode_address(keys[1].address())}))["result"]
    assert [t["hash"] for t in recipient["txs"]] == ["0x" + t1.tx_hash.hex()]


async def test_bad_search_params(server: RPCServer, view: MemoryNodeView, http) -> None:
    a0 = encode_address(view.chain.account_keys[0].address())
    for params in ({}, {"address": "cs1x"}, {"address": a0, "after": "7"}, {"address": a0, "order": "up"},
                   {"address": a0, "limit": 0}, {"address": a0, "limit": 101},
                   {"address": a0, "min_height": 5, "max_height": 2}, {"address": a0, "after": "1:x"}):
        doc = await _call(http, server, params)
        assert doc["error"]["code"] == E.INVALID_PARAMS, params


def test_indexer_catches_up_from_stored_blocks(view: MemoryNodeView) -> None:
    """A fresh (or lagging) index is rebuilt from the block store, and continues with new commits."""
    for i in range(3):
        _send(view, 0, 1, i + 1)
        view.produce_block()
    fresh = TxIndexer(AddressTxIndex.open_memory(), view._load_block, lambda: 1)
    assert fresh.catch_up(view.latest_height()) == 3
    sender = view.chain.account_keys[0].address()
    assert [e.height for e in fresh.index.search(sender)] == [1, 2, 3]
    assert fresh.catch_up(view.latest_height()) == 0
    # A commit after a gap fills the gap from the store first.
    _send(view, 0, 1, 9)
    block, txs = view.produce_block()
    lagging = TxIndexer(AddressTxIndex.open_memory(), view._load_block, lambda: 1)
    lagging.on_committed(block.header.height, txs)
    assert [e.height for e in lagging.index.search(sender)] == [1, 2, 3, 4]


async def test_account_proof_verifies_against_the_next_header(server: RPCServer, view: MemoryNodeView, http) -> None:
    from node.client import verify_account_proof
    from node.errors import ProofError

    keys = view.chain.account_keys
    _send(view, 0, 1, 5)
    view.produce_block()
    body = {"jsonrpc": "2.0", "id": 1, "method": "account",
            "params": {"address": encode_address(keys[1].address()), "prove": True}}
    async with http.post(server.url + "/", json=body) as r:
        answer = (await r.json())["result"]
    height = answer["proof"]["height"]
    assert height == 1 and answer["balance"] > 0
    view.produce_block()  # the header of height + 1 carries the root after height
    header_root = view.get_block(height + 1)[0].header.state_root
    verify_account_proof(keys[1].address(), answer, header_root)
    # Each lie is caught: a balance, a root, another key's proof, a tampered proof.
    for field, value in (("balance", answer["balance"] + 1), ("nonce", 99)):
        with pytest.raises(ProofError, match="differs"):
            verify_account_proof(keys[1].address(), {**answer, field: value}, header_root)
    with pytest.raises(ProofError, match="state root"):
        verify_account_proof(keys[1].address(), answer, b"\x00" * 32)
    with pytest.raises(ProofError, match="another key"):
        verify_account_proof(keys[2].address(), answer, header_root)
    forged = dict(answer["proof"])
    forged["value"] = "0x" + Account(10**18, answer["nonce"]).encode().hex()
    with pytest.raises(ProofError):
        verify_account_proof(keys[1].address(), {**answer, "balance": 10**18, "proof": forged}, header_root)
    # An address with no record proves its absence (a zero account).
    stranger = b"\x77" * 20
    body["params"] = {"address": encode_address(stranger), "prove": True}
    async with http.post(server.url + "/", json=body) as r:
        empty = (await r.json())["result"]
    assert empty["balance"] == 0 and empty["proof"]["value"] is None
    view.produce_block()
    verify_account_proof(stranger, empty, view.get_block(empty["proof"]["height"] + 1)[0].header.state_root)


async def test_account_at_a_height_this_node_does_not_keep(server: RPCServer, view: MemoryNodeView, http) -> None:
    view.produce_block()
    view.produce_block()
    addr = encode_address(view.chain.account_keys[0].address())

    async def call(params):
        body = {"jsonrpc": "2.0", "id": 1, "method": "account", "params": params}
        async with http.post(server.url + "/", json=body) as r:
            return await r.json()

    latest = (await call({"address": addr, "height": 2}))["result"]
    assert latest == (await call({"address": addr}))["result"]
    old = await call({"address": addr, "height": 1})
    assert old["error"]["code"] == E.HEIGHT_NOT_AVAILABLE and "latest committed state" in old["error"]["message"]
    assert old["error"]["data"] == {"latest_height": 2}
    ahead = await call({"address": addr, "height": 9})
    assert ahead["error"]["code"] == E.HEIGHT_NOT_AVAILABLE
