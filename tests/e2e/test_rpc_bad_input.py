"""Bad input against a live 4-validator devnet: each gets a JSON-RPC error, and the chain goes on.

Malformed and oversized bodies, huge batches, out-of-range heights, bad
addresses and bad transactions are sent to real nodes over HTTP; after each
group every node must still answer and keep committing blocks.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from consensus.codec import pack_raw
from consensus.costs import get_min_fee
from consensus.crypto import PrivateKey, encode_address
from consensus.errors import BadNonce
from consensus.params import Params
from consensus.txs import SignedTx, Transfer, build_tx
from node.keyfiles import load_keystore
from tests.kit.devnet import (
    Devnet,
    Node,
    RPCFailure,
    cstake,
    height,
    post,
    rpc,
    rpc_raw,
    wait_height,
)

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

INT64_MAX = (1 << 63) - 1


def keeps_committing(devnet: Devnet, blocks: int = 2) -> None:
    """Every node answers and commits ``blocks`` more blocks (bounded wait)."""
    targets = {n.name: height(n.url) + blocks for n in devnet.nodes}
    for n in devnet.nodes:
        wait_height(n.url, targets[n.name], timeout=30)


def error_of(doc: Any) -> dict[str, Any]:
    assert isinstance(doc, dict) and "error" in doc, f"expected a JSON-RPC error, got {doc!r}"
    assert "result" not in doc
    return dict(doc["error"])


MALFORMED = [
    (b"{bad", -32700),
    (b"", -32700),
    (b"\xff\xfe\x00\x01 not json", -32700),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "status"', -32700),
    (b"[" * 100_000, -32700),
    (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, -32700),
    (b'"just a string"', -32600),
    (b"42", -32600),
    (b"[]", -32600),
    (b'{"jsonrpc": "1.0", "id": 1, "method": "status"}', -32600),
    (b'{"jsonrpc": "2.0", "id": 1, "method": 7}', -32600),
    (b'{"jsonrpc": "2.0", "id": {"x": 1}, "method": "status"}', -32600),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "status", "params": "x"}', -32600),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": 1, "bogus": 2}}', -32602),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "tx", "params": [1, 2, 3]}', -32602),
]


def test_malformed_bodies_get_standard_errors(shared_devnet: Devnet) -> None:
    url = shared_devnet.node("node1").url
    for body, code in MALFORMED:
        status, doc = post(url, body)
        assert error_of(doc)["code"] == code, f"body {body[:40]!r}: {doc}"
        assert status in (200, 400)
    keeps_committing(shared_devnet)


def _raw_http(url: str, head: bytes, chunks: int = 0, chunk_size: int = 64 << 10) -> tuple[int, Any]:
    """Send a request by hand (for bodies urllib will not send); return (status, JSON body or None)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as s:
        s.sendall(head)
        try:
            for _ in range(chunks):
                s.sendall(b"%x\r\n" % chunk_size + b"a" * chunk_size + b"\r\n")
            if chunks:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading at the limit, as it should; its answer is waiting
        # Read the answer without half-closing: a client that hangs up is not answered at all.
        data = b""
        try:
            while piece := s.recv(65536):
                data += piece
                header, _, body = data.partition(b"\r\n\r\n")
                length = _content_length(header)
                if length is not None and len(body) >= length:
                    break
        except ConnectionResetError:
            pass
    header, _, body = data.partition(b"\r\n\r\n")
    assert header.startswith(b"HTTP/1.1 "), f"no HTTP answer: {data[:200]!r}"
    status = int(header.split(b" ", 2)[1])
    return status, (json.loads(body) if body.strip() else None)


def _content_length(header: bytes) -> int | None:
    for line in header.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def test_oversized_bodies_are_refused(shared_devnet: Devnet) -> None:
    url = shared_devnet.node("node2").url
    limit = 1 << 20
    status, doc = post(url, b" " * (2 * limit))
    assert status == 413
    err = error_of(doc)
    assert err["code"] == -32600 and str(limit) in err["message"]
    # A chunked body gives no length up front: the server must stop at the limit.
    head = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    status, doc = _raw_http(url, head, chunks=64)
    assert status == 413
    assert error_of(doc)["code"] == -32600
    # A huge declared length is refused from the header alone, without waiting for the body.
    head = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000000\r\nConnection: close\r\n\r\n{}")
    status, doc = _raw_http(url, head)
    assert status == 413
    assert error_of(doc)["code"] == -32600
    assert rpc(url, "status")["latest_height"] >= 1
    keeps_committing(shared_devnet)


def _batch(n: int, method: str = "status") -> bytes:
    calls = [{"jsonrpc": "2.0", "id": i, "method": method} for i in range(n)]
    return json.dumps(calls, separators=(",", ":")).encode()


def test_huge_batches_are_refused_and_bounded_batches_answered(shared_devnet: Devnet) -> None:
    url = shared_devnet.node("node3").url
    for n in (101, 5_000, 20_000):
        body = _batch(n)
        assert len(body) < 1 << 20  # under the body limit: the batch bound itself must refuse it
        _, doc = post(url, body)
        err = error_of(doc)
        assert err["code"] == -32600 and "batch" in err["message"] and "100" in err["message"], err
    _, doc = post(url, _batch(100))
    assert sorted(d["id"] for d in doc) == list(range(100))
    assert all(d["result"]["chain_id"] == shared_devnet.chain_id for d in doc)
    _, doc = post(url, _batch(100, "no_such_method"))
    assert len(doc) == 100 and {d["error"]["code"] for d in doc} == {-32601}
    mixed = [{"jsonrpc": "2.0", "id": 1, "method": "status"}, 17,
             {"jsonrpc": "2.0", "id": 3, "method": "block", "params": {"height": 0}}]
    _, doc = post(url, json.dumps(mixed).encode())
    assert doc[0]["id"] == 1 and "result" in doc[0]
    assert error_of(doc[1])["code"] == -32600
    assert doc[2]["id"] == 3 and error_of(doc[2])["code"] == -32602
    keeps_committing(shared_devnet)


def test_out_of_range_heights(shared_devnet: Devnet) -> None:
    url = shared_devnet.node("node0").url
    for method in ("block", "validators"):
        for bad in (0, -1, 1 << 63, 1 << 64, "1", 1.5, True, None, [1]):
            if bad is None:
                continue  # an absent height is the latest; covered below
            err = error_of(rpc_raw(url, method, {"height": bad}))
            assert err["code"] == -32602, (method, bad, err)
        latest = height(url)
        for far in (latest + 1000, INT64_MAX):
            err = error_of(rpc_raw(url, method, {"height": far}))
            assert err["code"] == -32002, (method, far, err)
            assert err["data"]["latest_height"] >= latest
    # The edges that exist still answer.
    assert rpc(url, "block", {"height": 1})["header"]["height"] == 1
    assert rpc(url, "block")["header"]["height"] >= 1
    assert rpc(url, "validators", {"height": 1})["height"] == 1
    keeps_committing(shared_devnet)


def test_bad_addresses(shared_devnet: Devnet) -> None:
    url = shared_devnet.node("node1").url
    good = shared_devnet.address_of("node1")
    typo = good[:-1] + ("q" if good[-1] != "q" else "p")
    # Mixed case: upper case but for one letter left lower. (Upper-casing all but the last
    # character is no mixed case when that character is a digit: bech32 allows all upper case.)
    last_letter = max(i for i, c in enumerate(good) if c.isalpha() and i >= len("cs1"))
    mixed = good[:last_letter].upper() + good[last_letter] + good[last_letter + 1:].upper()
    assert mixed.lower() == good and mixed != mixed.upper() and mixed != mixed.lower()
    bad_values: list[Any] = [typo, good[:-3], mixed, "bc1" + good[3:], "", "cs1", 7, None]
    for bad in bad_values:
        err = error_of(rpc_raw(url, "account", {"address": bad}))
        assert err["code"] == -32602, (bad, err)
    assert "checksum" in error_of(rpc_raw(url, "account", {"address": typo}))["message"]
    for method, name in (("slashing_records", "validator"), ("nfts", "owner")):
        assert error_of(rpc_raw(url, method, {name: typo}))["code"] == -32602
    assert rpc(url, "account", {"address": good})["address"] == good
    # The CLI refuses the typo too, with one line on stderr.
    proc = cstake("query", "account", typo, "--rpc", url, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    keeps_committing(shared_devnet)


def _refused(url: str, raw: bytes) -> str:
    """Broadcast ``raw``; it must be refused (an error, or a result with a non-zero code). Return why."""
    doc = rpc_raw(url, "broadcast_tx", {"tx": "0x" + raw.hex()})
    if "error" in doc:
        return str(doc["error"]["message"])
    result = doc["result"]
    assert result["code"] != 0, f"a bad transaction was accepted: {result}"
    return str(result["log"])


def _funded_key(devnet: Devnet, node: Node, amount: int) -> PrivateKey:
    """A fresh account, funded with ``amount`` from ``node``'s own account; nothing else signs for it.

    (The node's own account also pays its compute service's challenge transactions, which may
    take a nonce between reading it and using it: a transfer refused for its nonce is signed again.)
    """
    funder = load_keystore(node.home / "keys" / "account.json", None)
    fresh = PrivateKey.generate()
    body = Transfer(fresh.address(), amount)
    fee = get_min_fee(body, Params.from_json(rpc(node.url, "params")))
    for _ in range(5):
        nonce = int(rpc(node.url, "account", {"address": encode_address(funder.address())})["next_nonce"])
        tx = build_tx(funder, devnet.chain_id, nonce, fee, body)
        done = rpc(node.url, "broadcast_tx", {"tx": "0x" + tx.raw.hex(), "mode": "commit"}, timeout=60)
        if done["code"] != BadNonce.code:
            break
    assert done["code"] == 0, done
    return fresh


def test_bad_transactions_are_refused_and_never_committed(shared_devnet: Devnet) -> None:
    node: Node = shared_devnet.node("node3")
    url = node.url
    fee = int(rpc(url, "params")["min_fee"])
    max_tx = int(rpc(url, "params")["max_tx_bytes"])
    key = _funded_key(shared_devnet, node, 10 * fee)
    nonce = int(rpc(url, "account", {"address": encode_address(key.address())})["next_nonce"])
    to = key.address()
    # Within the body limit: zeros are no transaction; a hex string beyond max_tx_bytes (or beyond
    # the body limit, whichever is smaller) is refused without being decoded.
    zeros = "0x" + "00" * 300_000
    too_long = "0x" + "00" * (max_tx + 1)
    for text in ("0xzz", "0xabc", "0x", "0xdeadbeef", zeros, "not hex at all"):
        err = error_of(rpc_raw(url, "broadcast_tx", {"tx": text}))
        assert err["code"] == -32602, (text[:20], err)
    assert error_of(rpc_raw(url, "broadcast_tx", {"tx": too_long}))["code"] in (-32600, -32602)
    assert error_of(rpc_raw(url, "broadcast_tx", {"tx": 5}))["code"] == -32602
    good = build_tx(key, shared_devnet.chain_id, nonce, fee, Transfer(to, 1))
    bad_sig = bytes([good.signature[0] ^ 0x01]) + good.signature[1:]
    forged = SignedTx.decode(pack_raw([good.payload_bytes, bad_sig]))
    wrong_chain = build_tx(key, "some-other-chain", nonce, fee, Transfer(to, 1))
    gap = build_tx(key, shared_devnet.chain_id, nonce + 1000, fee, Transfer(to, 1))
    reasons = {
        "bad signature": _refused(url, forged.raw),
        "wrong chain": _refused(url, wrong_chain.raw),
        "nonce gap": _refused(url, gap.raw),
        "truncated": _refused(url, good.raw[:-5]),
    }
    assert "signature" in reasons["bad signature"].lower(), reasons
    assert "chain" in reasons["wrong chain"].lower(), reasons
    assert "nonce" in reasons["nonce gap"].lower(), reasons
    # The node keeps committing, and none of them is ever included anywhere.
    keeps_committing(shared_devnet)
    for n in shared_devnet.nodes:
        pending = rpc(n.url, "mempool", {"limit": 1000})["txs"]
        for tx in (forged, wrong_chain, gap):
            with pytest.raises(RPCFailure) as info:
                rpc(n.url, "tx", {"hash": "0x" + tx.tx_hash.hex()})
            assert info.value.code == -32001
            assert "0x" + tx.tx_hash.hex() not in json.dumps(pending)
    # The account is not poisoned: the genuine transaction with the same nonce commits.
    done = rpc(url, "broadcast_tx", {"tx": "0x" + good.raw.hex(), "mode": "commit"}, timeout=60)
    assert done["code"] == 0 and done["height"] >= 1
    for n in shared_devnet.nodes:
        wait_height(n.url, done["height"], timeout=30)
        assert rpc(n.url, "tx", {"hash": "0x" + good.tx_hash.hex()})["height"] == done["height"]
