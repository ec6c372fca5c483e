"""JSON Schema building blocks for the RPC description (node.rpc.spec).

The wire forms of node.rpc.format as schemas: ``0x``-hex bytes, bech32
``cs1...`` addresses, integer amounts and heights, millisecond times. Objects
are closed (``additionalProperties: false``) so that a field added to a result
without documenting it fails the documentation test.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

HEX: Schema = {"type": "string", "pattern": "^0x([0-9a-f]{2})*$", "description": "bytes as 0x-hex"}
HASH: Schema = {"type": "string", "pattern": "^0x[0-9a-f]{64}$", "description": "32-byte hash as 0x-hex"}
SIG: Schema = {"type": "string", "pattern": "^0x[0-9a-f]{128}$", "description": "Ed25519 signature as 0x-hex"}
ADDRESS: Schema = {
    "type": "string",
    "pattern": "^cs1[02-9ac-hj-np-z]{38}$",
    "description": "account address, bech32 with prefix cs",
}
UINT: Schema = {"type": "integer", "minimum": 0}
INT: Schema = {"type": "integer"}
HEIGHT: Schema = {"type": "integer", "minimum": 1, "description": "block height"}
TIME_MS: Schema = {"type": "integer", "minimum": 0, "description": "Unix time in milliseconds (UTC)"}
STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
NULL: Schema = {"type": "null"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null."""
    return {"anyOf": [schema, NULL]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """A closed object: every property required except those named in ``optional``."""
    return {
        "type": "object",
        "properties": properties,
        "required": [k for k in properties if k not in optional],
        "additionalProperties": False,
    }


def open_obj(properties: dict[str, Schema] | None = None) -> Schema:
    """An object whose listed properties are required and others allowed (decoded tx bodies)."""
    props = properties or {}
    return {"type": "object", "properties": props, "required": list(props)}


SPEC = obj({"device": STR, "model": STR, "cores": UINT, "memory_mb": UINT})

TX_SUMMARY = obj({"hash": HASH, "kind": STR, "sender": ADDRESS, "nonce": UINT, "fee": UINT})

TX = obj({
    "kind": STR, "chain_id": STR, "sender": ADDRESS, "pubkey": HEX, "nonce": UINT, "fee": UINT,
    "body": {"type": "object", "description": "the kind's fields, decoded (addresses in bech32, bytes in hex)"},
    "signature": SIG,
})

TX_RESULT = obj({"code": UINT, "log": STR})

HEADER = obj({
    "chain_id": STR, "height": HEIGHT, "round": UINT, "time": TIME_MS, "proposer": nullable(ADDRESS),
    "parent_hash": HASH, "last_commit_hash": HASH, "txs_hash": HASH, "attestations_hash": HASH,
    "evidence_hash": HASH, "state_root": HASH, "validators_hash": HASH,
})

COMMIT_SIG = obj({"validator": nullable(ADDRESS), "timestamp": TIME_MS, "signature": HEX})
COMMIT = obj({"height": HEIGHT, "round": UINT, "block_hash": HASH, "signatures": array(COMMIT_SIG)})
LAST_COMMIT = {"anyOf": [COMMIT, obj({"signatures": {"type": "array", "maxItems": 0}})]}

BLOCK_TX = {
    "anyOf": [
        HASH,
        obj({"hash": HASH, "kind": STR, "sender": ADDRESS, "nonce": UINT, "fee": UINT, "raw": HEX,
             "result": TX_RESULT}, optional=("result",)),
        obj({"raw": HEX}),
    ],
    "description": "a tx hash (txs=hashes), or its summary with raw bytes and result (txs=full)",
}

BLOCK = obj({
    "hash": HASH, "header": HEADER, "num_txs": UINT, "txs": array(BLOCK_TX), "attestations": array(HEX),
    "evidence": array(obj({"kind": UINT, "hash": HASH, "data": HEX})),
    "last_commit": LAST_COMMIT, "commit": nullable(COMMIT),
})

NFT = obj({
    "id": UINT, "owner": ADDRESS, "bound_validator": nullable(ADDRESS), "pending_validator": nullable(ADDRESS),
    "spec": SPEC, "claimed_units": UINT, "verified_units": UINT, "collateral": UINT, "status": STR,
    "last_verified_height": UINT, "registered_height": UINT,
})

SLASHING_RECORD = obj({
    "height": HEIGHT, "validator": ADDRESS, "fault": STR, "amount": UINT, "evidence_hash": HEX,
    "whistleblower": nullable(ADDRESS), "whistleblower_reward": UINT,
})

CHALLENGE = obj({
    "id": HASH, "nft_id": UINT, "height": UINT, "n": UINT, "rows": UINT, "claimed_units": UINT, "status": STR,
    "commit_deadline": UINT, "root": nullable(HASH), "commit_height": nullable(UINT),
    "sample_height": nullable(UINT), "openings_deadline": nullable(UINT), "pending_units": UINT,
    "opened_rows": UINT, "resolved_height": nullable(UINT), "liable_validator": nullable(ADDRESS),
})

ATTESTATION = obj({
    "nft_id": UINT, "validator": ADDRESS, "spec": SPEC, "measured_units": UINT, "height": UINT,
    "signature": SIG, "source": enum("chain", "pool"),
})

JOB = open_obj({
    "id": HASH, "seq": UINT, "submitter": nullable(ADDRESS), "kind": STR, "spec": {"type": "object"},
    "status": STR, "work_units": UINT, "escrow": UINT, "slots": array({"type": "object"}),
})


def unavailable_or(key: str, items: Schema) -> Schema:
    """``{available: true, key: [...]}``, or ``available: false`` with a note on a node that keeps none."""
    return {
        "anyOf": [
            obj({"available": {"const": True}, key: array(items)}),
            obj({"available": {"const": False}, key: {"type": "array", "maxItems": 0}, "note": STR}),
        ]
    }
