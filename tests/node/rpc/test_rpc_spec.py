"""The RPC description (node.rpc.spec) is complete, its examples valid, live results conform, docs current."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from consensus.crypto import encode_address
from consensus.records import HardwareSpec
from consensus.txs import RegisterCompute, Transfer, build_tx
from node.rpc import errors as E
from node.rpc.methods import METHODS
from node.rpc.server import RPCServer
from node.rpc.spec import ERRORS, SPECS, get_openrpc, render_markdown
from tests.kit.memview import MemoryNodeView

DOCS = Path(__file__).resolve().parents[3] / "docs" / "rpc.md"


def _validate(schema: dict[str, Any], value: Any, what: str) -> None:
    Draft202012Validator.check_schema(schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=str)
    assert not errors, f"{what}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_every_method_is_documented_with_its_parameters_in_order() -> None:
    assert set(SPECS) == set(METHODS), "methods without a description, or descriptions without a method"
    for name, (_, names) in METHODS.items():
        assert tuple(p.name for p in SPECS[name].params) == names, name
        assert SPECS[name].summary and SPECS[name].result_description
        assert all(code in ERRORS for code in SPECS[name].errors)


def test_every_example_validates_against_its_schemas() -> None:
    for spec in SPECS.values():
        params = {p.name: p for p in spec.params}
        assert set(spec.example_params) <= set(params), spec.name
        for p in spec.params:
            if p.required:
                assert p.name in spec.example_params, f"{spec.name}: example lacks required {p.name}"
        for key, value in spec.example_params.items():
            _validate(params[key].schema, value, f"{spec.name} example param {key}")
        _validate(spec.result, spec.example_result, f"{spec.name} example result")


def test_a_wrong_example_fails_validation() -> None:
    """The check above can fail: a result missing a field or with a malformed hash is refused."""
    spec = SPECS["status"]
    broken = dict(spec.example_result)
    del broken["chain_id"]
    with pytest.raises(AssertionError):
        _validate(spec.result, broken, "status")
    with pytest.raises(AssertionError):
        _validate(spec.result, {**spec.example_result, "latest_block_hash": "0x12"}, "status")


def test_openrpc_document_is_well_formed() -> None:
    doc = get_openrpc()
    assert doc["openrpc"].startswith("1.") and doc["info"]["title"]
    assert [m["name"] for m in doc["methods"]] == list(SPECS)
    for m in doc["methods"]:
        for p in m["params"]:
            Draft202012Validator.check_schema(p["schema"])
        Draft202012Validator.check_schema(m["result"]["schema"])
        assert m["examples"] and m["examples"][0]["result"]["name"] == "result"
    json.dumps(doc)  # JSON-ready


def test_docs_rpc_md_is_current() -> None:
    assert DOCS.read_text() == render_markdown(), (
        "docs/rpc.md is stale: run `python -m node.rpc markdown > docs/rpc.md`"
    )


async def _call(http: aiohttp.ClientSession, server: RPCServer, method: str, params: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    async with http.post(server.url + "/", json=body) as r:
        assert r.status == 200
        doc: dict[str, Any] = await r.json()
    return doc


def _populate(view: MemoryNodeView) -> tuple[bytes, bytes]:
    """Blocks with a transfer and an NFT registration; return (a committed tx hash, the sender)."""
    c = view.chain
    key = c.account_keys[0]
    nonce = c.view().get_account(key.address()).nonce
    t1 = build_tx(key, c.chain_id, nonce, 10, Transfer(c.account_keys[1].address(), 5))
    spec = HardwareSpec(device_kind=0, model="test", cores=2, memory_mb=1024)
    t2 = build_tx(key, c.chain_id, nonce + 1, 1_000, RegisterCompute(spec, 1, 1_000))
    for tx in (t1, t2):
        assert view.mempool.add(tx).code == 0
    view.produce_block()
    view.produce_block()
    return t1.tx_hash, key.address()


async def test_live_results_of_every_method_conform(server: RPCServer, view: MemoryNodeView, http) -> None:
    tx_hash, sender = _populate(view)
    addr = encode_address(sender)
    live_params: dict[str, dict[str, Any]] = {
        "status": {}, "net_info": {}, "block": {"height": 1}, "tx": {"hash": "0x" + tx_hash.hex()},
        "account": {"address": addr}, "validators": {}, "nft": {"id": 1}, "nfts": {"owner": addr},
        "attestations": {}, "challenges": {}, "slashing_records": {}, "jobs": {},
        "job": {"id": "0x" + "00" * 32}, "params": {}, "mempool": {}, "rpc.discover": {},
        "tx_search": {"address": addr, "order": "desc"},
        "broadcast_tx": {"tx": "0x" + build_tx(view.chain.account_keys[2], view.chain.chain_id, 0, 10,
                                                  Transfer(sender, 1)).raw.hex()},
    }
    assert set(live_params) == set(SPECS), "add the new method's live call here"
    results = 0
    for name, params in live_params.items():
        doc = await _call(http, server, name, params)
        if "error" in doc:
            assert doc["error"]["code"] in SPECS[name].errors, f"{name}: undocumented error {doc['error']}"
            continue
        _validate(SPECS[name].result, doc["result"], f"live {name}")
        results += 1
    assert results >= len(live_params) - 2  # at most job (none exists) and one optional feature answer errors
    # Both block forms conform, and the block at height 1 carries the tx's result.
    for mode in ("full", "hashes"):
        doc = await _call(http, server, "block", {"height": 1, "txs": mode})
        _validate(SPECS["block"].result, doc["result"], f"block txs={mode}")
    full = (await _call(http, server, "block", {"height": 1}))["result"]
    assert [t["result"] for t in full["txs"]] == [{"code": 0, "log": ""}] * 2


async def test_rpc_discover_serves_the_document(server: RPCServer, http) -> None:
    doc = await _call(http, server, "rpc.discover", [])
    assert doc["result"] == json.loads(json.dumps(get_openrpc()))


async def test_tx_tells_pending_committed_and_unknown_apart(server: RPCServer, view: MemoryNodeView, http) -> None:
    c = view.chain
    key = c.account_keys[0]
    tx = build_tx(key, c.chain_id, c.view().get_account(key.address()).nonce, 10,
                  Transfer(c.account_keys[1].address(), 9))
    h = "0x" + tx.tx_hash.hex()
    unknown = await _call(http, server, "tx", {"hash": h})
    assert unknown["error"]["code"] == E.NOT_FOUND and unknown["error"]["data"] == {"status": "unknown"}
    sub = await _call(http, server, "broadcast_tx", {"tx": "0x" + tx.raw.hex()})
    assert sub["result"]["code"] == 0
    pending = (await _call(http, server, "tx", {"hash": h}))["result"]
    assert pending["status"] == "pending" and pending["hash"] == h and pending["tx"]["body"]["amount"] == 9
    assert "height" not in pending
    view.produce_block()
    done = (await _call(http, server, "tx", {"hash": h}))["result"]
    assert done["status"] == "committed" and done["height"] == view.latest_height()
    assert done["result"] == {"code": 0, "log": ""}
