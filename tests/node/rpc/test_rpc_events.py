"""Filtered WebSocket subscriptions: tx events by address, chain events (slashing, jailing, ...) by kind and address."""

from __future__ import annotations

from consensus.crypto import encode_address
from consensus.incentives import ValidatorJailed
from consensus.poc_state import ChallengeResolved, ChallengeStatus
from consensus.records import Fault, SlashingRecord
from consensus.txs import Transfer, build_tx
from node.rpc import errors as E
from node.rpc.chain_events import get_chain_events, get_tx_addresses
from node.rpc.server import RPCServer
from tests.kit.memview import MemoryNodeView


def _transfer(view: MemoryNodeView, sender: int, to: int, amount: int):
    c = view.chain
    key = c.account_keys[sender]
    nonce = view.mempool.next_nonce(key.address(), c.view().get_account(key.address()).nonce)
    return build_tx(key, c.chain_id, nonce, 10, Transfer(c.account_keys[to].address(), amount))


async def _subscribe(ws, id_: int, params) -> dict:
    await ws.send_json({"jsonrpc": "2.0", "id": id_, "method": "subscribe", "params": params})
    return await ws.receive_json(timeout=5)


async def test_tx_events_filtered_by_address(server: RPCServer, view: MemoryNodeView, http) -> None:
    keys = view.chain.account_keys
    recipient = encode_address(keys[1].address())
    async with http.ws_connect(server.url + "/ws") as ws:
        reply = await _subscribe(ws, 1, {"event": "tx", "address": recipient})
        assert reply["result"] == {"subscribed": "tx", "address": recipient}
        to_recipient = _transfer(view, 0, 1, 5)
        elsewhere = _transfer(view, 2, 3, 6)
        from_recipient = _transfer(view, 1, 3, 7)
        for tx in (elsewhere, to_recipient, from_recipient):
            assert (await view.submit_tx(tx)).code == 0
        view.produce_block()
        got = [(await ws.receive_json(timeout=5))["params"]["data"]["hash"] for _ in range(2)]
        assert sorted(got) == sorted("0x" + t.tx_hash.hex() for t in (to_recipient, from_recipient))
        await ws.send_json({"jsonrpc": "2.0", "id": 9, "method": "status"})
        assert (await ws.receive_json(timeout=5))["id"] == 9  # the unrelated transfer never came


async def test_chain_events_by_kind_and_address(server: RPCServer, view: MemoryNodeView, http) -> None:
    keys = view.chain.account_keys
    a, b = keys[0].address(), keys[1].address()
    async with http.ws_connect(server.url + "/ws") as ws:
        assert "result" in await _subscribe(ws, 1, {"event": "jailing", "address": encode_address(a)})
        assert "result" in await _subscribe(ws, 2, {"event": "slashing"})
        view.produce_block()
        block = view.get_block(1)[0]
        events = get_chain_events(
            block,
            [ValidatorJailed(b, 1, 30, 50), ValidatorJailed(a, 1, 31, 60),
             ChallengeResolved(b"\x07" * 32, 3, 1, ChallengeStatus.PASSED, 900)],
            [SlashingRecord(1, b, Fault.DOWNTIME, 50, b"", b"", 0)],
        )
        assert [e.kind for e in events] == ["jailing", "jailing", "challenge", "slashing"]
        view.events.publish_block(block, view.get_block(1)[1], [], [], events)
        first = (await ws.receive_json(timeout=5))["params"]
        second = (await ws.receive_json(timeout=5))["params"]
        assert first["event"] == "jailing" and first["data"]["validator"] == encode_address(a)
        assert first["data"]["missed"] == 31 and first["data"]["name"] == "validator_jailed"
        assert second["event"] == "slashing" and second["data"]["validator"] == encode_address(b)
        assert second["data"]["fault"] == "downtime"
        await ws.send_json({"jsonrpc": "2.0", "id": 9, "method": "status"})
        assert (await ws.receive_json(timeout=5))["id"] == 9  # b's jailing and the challenge were filtered out


async def test_bad_filters_are_refused(server: RPCServer, view: MemoryNodeView, http) -> None:
    async with http.ws_connect(server.url + "/ws") as ws:
        addr = encode_address(view.chain.account_keys[0].address())
        reply = await _subscribe(ws, 1, {"event": "new_block", "address": addr})
        assert reply["error"]["code"] == E.INVALID_PARAMS
        reply = await _subscribe(ws, 2, {"event": "tx", "address": "cs1bogus"})
        assert reply["error"]["code"] == E.INVALID_PARAMS
        reply = await _subscribe(ws, 3, {"event": "tx", "address": addr, "extra": 1})
        assert reply["error"]["code"] == E.INVALID_PARAMS


def test_tx_addresses_are_sender_and_body_addresses(view: MemoryNodeView) -> None:
    keys = view.chain.account_keys
    tx = build_tx(keys[0], view.chain.chain_id, 0, 10, Transfer(keys[1].address(), 1))
    assert get_tx_addresses(tx) == (keys[0].address(), keys[1].address())
