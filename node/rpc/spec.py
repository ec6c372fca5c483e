"""The RPC's description: one entry per method of node.rpc.methods.METHODS.

From it come the OpenRPC document that ``rpc.discover`` serves and
``docs/rpc.md`` (``python -m node.rpc markdown > docs/rpc.md``). Each
entry names its parameters (in positional order, as ``METHODS`` binds them),
their schemas, the result's schema, the application errors it may return and
one example call. tests/node/rpc/test_rpc_spec.py fails when a method has no
entry, when an example does not validate against its schemas, when a live
result does not, or when docs/rpc.md is stale.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from node.rpc import errors as E
from node.rpc.schema import (
    ADDRESS,
    ATTESTATION,
    BLOCK,
    BOOL,
    CHALLENGE,
    HASH,
    HEIGHT,
    HEX,
    INT,
    JOB,
    NFT,
    SLASHING_RECORD,
    STR,
    TIME_MS,
    TX,
    TX_RESULT,
    TX_SUMMARY,
    UINT,
    Schema,
    array,
    enum,
    nullable,
    obj,
    unavailable_or,
)

OPENRPC_VERSION = "1.2.6"
API_VERSION = "1.0.0"

#: Application error codes, as documented (JSON-RPC's own codes apply to every method).
ERRORS: dict[int, str] = {
    E.INVALID_PARAMS: "invalid params: a parameter is missing, unknown, of the wrong type or out of range",
    E.SERVER_TIMEOUT: "the request ran past its deadline",
    E.NOT_FOUND: "the block, transaction, NFT or job asked for does not exist",
    E.HEIGHT_NOT_AVAILABLE: "the height is above the head or not kept by this node (data.latest_height)",
    E.COMMIT_TIMEOUT: "broadcast_tx mode=commit: not included within the node's commit timeout (data.hash)",
    E.UNAVAILABLE: "the node cannot serve this now (starting, shutting down, or the feature is off)",
}


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class MethodSpec:
    name: str
    summary: str
    params: tuple[Param, ...]
    result: Schema
    result_description: str
    example_params: dict[str, Any]
    example_result: Any
    errors: tuple[int, ...] = (E.INVALID_PARAMS,)


_A0 = "cs1qypqxpqpqgpsgqgzqvzqzqsrqsqsyqcyk46ssg"  # an example address (bytes 01 02 03 04 ...)
_H = "0x" + "ab" * 32
_H2 = "0x" + "cd" * 32
_SIG = "0x" + "11" * 64

_HEADER_EX = {
    "chain_id": "cstake-devnet", "height": 42, "round": 0, "time": 1796400000000, "proposer": _A0,
    "parent_hash": _H2, "last_commit_hash": _H2, "txs_hash": _H2, "attestations_hash": _H2,
    "evidence_hash": _H2, "state_root": _H2, "validators_hash": _H2,
}
_COMMIT_EX = {"height": 42, "round": 0, "block_hash": _H,
              "signatures": [{"validator": _A0, "timestamp": 1796400000412, "signature": _SIG}]}
_TX_EX = {"kind": "transfer", "chain_id": "cstake-devnet", "sender": _A0, "pubkey": "0x" + "22" * 32,
          "nonce": 3, "fee": 10, "body": {"to": _A0, "amount": 1000}, "signature": _SIG}
_NFT_EX = {"id": 1, "owner": _A0, "bound_validator": _A0, "pending_validator": None,
           "spec": {"device": "cpu", "model": "x86_64", "cores": 8, "memory_mb": 16384},
           "claimed_units": 2000, "verified_units": 1950, "collateral": 10000, "status": "active",
           "last_verified_height": 40, "registered_height": 5}


METHOD_SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "status", "Node identity and the chain head.", (),
        obj({
            "chain_id": STR, "node_id": STR, "moniker": STR, "latest_height": UINT,
            "latest_block_hash": nullable(HASH), "latest_state_root": HASH, "latest_block_time": nullable(TIME_MS),
            "earliest_height": UINT, "catching_up": BOOL, "validator_address": nullable(ADDRESS),
            "listen_addrs": array(STR),
        }),
        "the head (height 0 and null hashes before the first block) and whether the node is catching up",
        {},
        {"chain_id": "cstake-devnet", "node_id": "12D3KooWExample", "moniker": "node0", "latest_height": 42,
         "latest_block_hash": _H, "latest_state_root": _H2, "latest_block_time": 1796400000000,
         "earliest_height": 1, "catching_up": False, "validator_address": _A0,
         "listen_addrs": ["/ip4/127.0.0.1/tcp/26656"]},
        errors=(),
    ),
    MethodSpec(
        "net_info", "This node's listen addresses and connected peers.", (),
        obj({"listen_addrs": array(STR), "n_peers": UINT,
             "peers": array(obj({"node_id": STR, "addrs": array(STR)}))}),
        "the peers as the p2p layer knows them",
        {},
        {"listen_addrs": ["/ip4/127.0.0.1/tcp/26656"], "n_peers": 1,
         "peers": [{"node_id": "12D3KooWPeer", "addrs": ["/ip4/127.0.0.1/tcp/26666"]}]},
        errors=(),
    ),
    MethodSpec(
        "block", "A committed block with its commit, by height or hash (the latest by default).",
        (
            Param("height", HEIGHT, "the block's height (give height or hash, not both)"),
            Param("hash", HASH, "the block's hash"),
            Param("txs", enum("full", "hashes"), "full (default): tx summaries, raw bytes and results; hashes: ids"),
        ),
        BLOCK,
        "the block: hash, header, txs (with each tx's result when txs=full), attestations, evidence, "
        "last_commit (the previous block's) and commit (this block's, null until the next block)",
        {"height": 42, "txs": "full"},
        {"hash": _H, "header": _HEADER_EX, "num_txs": 1,
         "txs": [{"hash": _H2, "kind": "transfer", "sender": _A0, "nonce": 3, "fee": 10, "raw": "0x0102",
                  "result": {"code": 0, "log": ""}}],
         "attestations": [], "evidence": [], "last_commit": {**_COMMIT_EX, "height": 41}, "commit": _COMMIT_EX},
        errors=(E.INVALID_PARAMS, E.NOT_FOUND, E.HEIGHT_NOT_AVAILABLE),
    ),
    MethodSpec(
        "tx", "A transaction by hash: committed (with its height and result), pending in the mempool, or unknown.",
        (Param("hash", HASH, "the transaction id (sha256 of its signed bytes)", required=True),),
        {"anyOf": [
            obj({"hash": HASH, "status": {"const": "committed"}, "height": HEIGHT, "index": UINT, "tx": TX,
                 "result": TX_RESULT}),
            obj({"hash": HASH, "status": {"const": "pending"}, "tx": TX}),
        ]},
        "status committed: where and how it executed (result.code 0 is success); status pending: "
        "accepted into this node's mempool, not yet in a block. An unknown hash is a NOT_FOUND error "
        "with data.status = unknown",
        {"hash": _H2},
        {"hash": _H2, "status": "committed", "height": 42, "index": 0, "tx": _TX_EX,
         "result": {"code": 0, "log": ""}},
        errors=(E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    MethodSpec(
        "tx_search", "Committed transactions concerning an address (sender, or in the body), paginated.",
        (
            Param("address", ADDRESS, "the address searched for", required=True),
            Param("min_height", HEIGHT, "lowest height included (default 1)"),
            Param("max_height", HEIGHT, "highest height included (default: the head)"),
            Param("after", {"type": "string", "pattern": "^[0-9]+:[0-9]+$"},
                  "the 'next' cursor of the previous page"),
            Param("order", enum("asc", "desc"), "asc (default): oldest first; desc: newest first"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "most txs per page (default 30)"),
        ),
        obj({
            "txs": array(obj({"hash": HASH, "height": HEIGHT, "index": UINT, "tx": TX_SUMMARY,
                              "result": TX_RESULT}, optional=("tx", "result"))),
            "next": nullable({"type": "string", "pattern": "^[0-9]+:[0-9]+$"}),
            "indexed_height": UINT,
        }),
        "one page of matches (tx and result left out where the block is pruned); next is the cursor of "
        "the following page, null on the last; indexed_height is how far the address index has got",
        {"address": _A0, "order": "desc", "limit": 2},
        {"txs": [{"hash": _H2, "height": 42, "index": 0,
                  "tx": {"hash": _H2, "kind": "transfer", "sender": _A0, "nonce": 3, "fee": 10},
                  "result": {"code": 0, "log": ""}}],
         "next": None, "indexed_height": 42},
        errors=(E.INVALID_PARAMS, E.UNAVAILABLE),
    ),
    MethodSpec(
        "account", "Balance, nonce, delegations, pending rewards and unbonding of an address; "
                   "or, with prove, balance and nonce with a Merkle proof.",
        (
            Param("address", ADDRESS, "the account's address", required=True),
            Param("prove", BOOL, "return balance and nonce with a proof of the account record against the "
                                 "state root of the latest committed height (default false)"),
            Param("height", HEIGHT, "the height whose state to read (default: the latest); a height whose "
                                    "state this node does not keep is HEIGHT_NOT_AVAILABLE"),
        ),
        {"anyOf": [
            obj({
                "address": ADDRESS, "balance": UINT, "nonce": UINT, "next_nonce": UINT, "bonded": UINT,
                "delegations": array(obj({"validator": ADDRESS, "amount": UINT, "rewards": UINT})),
                "pending_rewards": UINT,
                "unbonding": array(obj({"validator": ADDRESS, "amount": UINT, "creation_height": UINT,
                                        "completion_height": UINT})),
                "is_validator": BOOL,
            }),
            obj({
                "address": ADDRESS, "balance": UINT, "nonce": UINT,
                "proof": obj({"height": UINT, "state_root": HASH, "key": HEX, "value": nullable(HEX),
                              "proof": HEX}),
            }),
        ]},
        "the committed state at the head; next_nonce also counts this node's pending txs. With prove: "
        "proof.value is the account record (null: no record, a zero account), proof.proof the encoded "
        "StateProof against proof.state_root, the root after proof.height, which the header of block "
        "proof.height + 1 carries (node.client.verify_account_proof checks all of it)",
        {"address": _A0},
        {"address": _A0, "balance": 1000000, "nonce": 3, "next_nonce": 4, "bonded": 5000,
         "delegations": [{"validator": _A0, "amount": 5000, "rewards": 12}], "pending_rewards": 12,
         "unbonding": [], "is_validator": True},
        errors=(E.INVALID_PARAMS, E.HEIGHT_NOT_AVAILABLE),
    ),
    MethodSpec(
        "validators", "The validator set of a height (the next height's by default), with stake and compute.",
        (Param("height", HEIGHT, "the height whose set to show (at most the head + 1)"),),
        obj({
            "height": HEIGHT, "total_power": UINT,
            "validators": array(obj({
                "address": ADDRESS, "consensus_pubkey": HEX, "voting_power": UINT, "proposer_priority": INT,
                "stake": nullable(UINT), "self_bond": nullable(UINT), "compute_units": UINT,
                "reputation": nullable(UINT), "jailed": nullable(BOOL), "jailed_until": nullable(UINT),
                "tombstoned": nullable(BOOL), "moniker": nullable(STR), "commission_bps": nullable(UINT),
            })),
            "inactive": array(obj({"address": ADDRESS, "stake": UINT, "jailed": BOOL, "jailed_until": UINT,
                                   "tombstoned": BOOL, "moniker": STR})),
            "records_height": UINT,
        }),
        "the set with each member's record as of records_height, and validator records outside the set",
        {"height": 43},
        {"height": 43, "total_power": 100,
         "validators": [{"address": _A0, "consensus_pubkey": "0x" + "33" * 32, "voting_power": 100,
                         "proposer_priority": 0, "stake": 5000, "self_bond": 5000, "compute_units": 1950,
                         "reputation": 10000, "jailed": False, "jailed_until": 0, "tombstoned": False,
                         "moniker": "node0", "commission_bps": 500}],
         "inactive": [], "records_height": 42},
        errors=(E.INVALID_PARAMS, E.HEIGHT_NOT_AVAILABLE),
    ),
    MethodSpec(
        "nft", "A compute NFT by id.",
        (Param("id", UINT, "the NFT id", required=True),),
        NFT, "the NFT: owner, binding (bound or pending the validator's acceptance), claim, verification",
        {"id": 1}, _NFT_EX,
        errors=(E.INVALID_PARAMS, E.NOT_FOUND),
    ),
    MethodSpec(
        "nfts", "Compute NFTs, filtered by owner and/or bound validator.",
        (
            Param("owner", ADDRESS, "only NFTs of this owner"),
            Param("validator", ADDRESS, "only NFTs bound to this validator"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "most NFTs returned (1000)"),
        ),
        obj({"nfts": array(NFT), "count": UINT, "limit": UINT}), "the matching NFTs, in id order",
        {"owner": _A0, "limit": 10}, {"nfts": [_NFT_EX], "count": 1, "limit": 10},
    ),
    MethodSpec(
        "attestations", "The freshest compute attestation per NFT (on chain, or newer in this node's pool).",
        (Param("validator", ADDRESS, "only attestations of this validator's NFTs"),),
        unavailable_or("attestations", ATTESTATION),
        "available is false on a node that does not run the compute service",
        {},
        {"available": True, "attestations": [{
            "nft_id": 1, "validator": _A0, "spec": _NFT_EX["spec"], "measured_units": 1950, "height": 40,
            "signature": _SIG, "source": "chain"}]},
    ),
    MethodSpec(
        "challenges", "Proof-of-compute challenges of an epoch boundary height, or an NFT's latest.",
        (
            Param("height", HEIGHT, "the challenge height (default: the latest epoch boundary)"),
            Param("nft_id", UINT, "only this NFT's challenges (alone: its latest challenge)"),
        ),
        unavailable_or("challenges", CHALLENGE),
        "each challenge's size, deadlines, status and the validator liable for its answer",
        {"nft_id": 1},
        {"available": True, "challenges": [{
            "id": _H, "nft_id": 1, "height": 40, "n": 256, "rows": 8, "claimed_units": 2000,
            "status": "passed", "commit_deadline": 44, "root": _H2, "commit_height": 41, "sample_height": 42,
            "openings_deadline": 46, "pending_units": 0, "opened_rows": 8, "resolved_height": 43, "liable_validator": _A0}]},
        errors=(E.INVALID_PARAMS, E.HEIGHT_NOT_AVAILABLE),
    ),
    MethodSpec(
        "slashing_records", "Slashing records (double signing, downtime, faulty compute), by validator.",
        (Param("validator", ADDRESS, "only this validator's records"),),
        array(SLASHING_RECORD), "every record kept, oldest first",
        {"validator": _A0},
        [{"height": 30, "validator": _A0, "fault": "downtime", "amount": 50, "evidence_hash": "0x",
          "whistleblower": None, "whistleblower_reward": 0}],
    ),
    MethodSpec(
        "jobs", "Compute-marketplace jobs, by status.",
        (Param("status", enum("open", "submitted", "assigned", "committed", "challenged", "settled", "failed",
                              "cancelled"), "only jobs in this status (open: any status before the end)"),),
        unavailable_or("jobs", JOB), "the jobs with their slots",
        {"status": "open"}, {"available": True, "jobs": []},
    ),
    MethodSpec(
        "job", "One job by id, with the opened leaves of each slot.",
        (Param("id", HASH, "the job id", required=True),),
        JOB, "the job, its slots, payments and dispute state",
        {"id": _H},
        {"id": _H, "seq": 1, "submitter": _A0, "kind": "matmul", "spec": {"m": 16, "n": 256, "p": 16},
         "status": "settled", "work_units": 65536, "escrow": 0, "slots": []},
        errors=(E.INVALID_PARAMS, E.NOT_FOUND, E.UNAVAILABLE),
    ),
    MethodSpec(
        "params", "The chain's protocol parameters in force at the head.", (),
        {"type": "object", "additionalProperties": INT, "description": "parameter name -> integer value"},
        "every parameter (docs/protocol.md explains each)",
        {}, {"epoch_blocks": 20, "max_block_bytes": 1048576},
        errors=(),
    ),
    MethodSpec(
        "mempool", "This node's pending transactions.",
        (Param("limit", {"type": "integer", "minimum": 0, "maximum": 1000}, "most txs listed (default 100)"),),
        obj({"size": UINT, "bytes": UINT, "limit": UINT, "txs": array(TX_SUMMARY)}),
        "the pool's size and the first txs in block order",
        {"limit": 10},
        {"size": 1, "bytes": 190, "limit": 10,
         "txs": [{"hash": _H2, "kind": "transfer", "sender": _A0, "nonce": 4, "fee": 10}]},
    ),
    MethodSpec(
        "broadcast_tx", "Submit a signed transaction (hex of its canonical bytes).",
        (
            Param("tx", HEX, "the signed transaction", required=True),
            Param("mode", enum("sync", "commit"), "sync (default): after mempool admission; commit: after "
                                                  "its block"),
        ),
        {"anyOf": [
            obj({"hash": HASH, "code": UINT, "log": STR}),
            obj({"hash": HASH, "code": UINT, "log": STR, "height": HEIGHT, "index": UINT}),
        ]},
        "code 0 and empty log when admitted (mode=commit: the execution result and where); otherwise the "
        "refusal's code and reason (nothing was charged)",
        {"tx": "0x0102", "mode": "sync"}, {"hash": _H2, "code": 0, "log": ""},
        errors=(E.INVALID_PARAMS, E.COMMIT_TIMEOUT, E.UNAVAILABLE),
    ),
    MethodSpec(
        "rpc.discover", "This description, as an OpenRPC document.", (),
        {"type": "object", "required": ["openrpc", "info", "methods"]},
        "the OpenRPC document (docs/rpc.md is the same, as text)",
        {}, {"openrpc": OPENRPC_VERSION, "info": {"title": "cstake node JSON-RPC", "version": API_VERSION},
             "methods": []},
        errors=(),
    ),
)

SPECS: dict[str, MethodSpec] = {m.name: m for m in METHOD_SPECS}


def _error_objects(codes: tuple[int, ...]) -> list[dict[str, Any]]:
    return [{"code": c, "message": ERRORS[c]} for c in codes]


def get_openrpc() -> dict[str, Any]:
    """The OpenRPC document of every method (params by name; positional order as listed)."""
    methods = []
    for m in METHOD_SPECS:
        methods.append({
            "name": m.name,
            "summary": m.summary,
            "paramStructure": "either",
            "params": [
                {"name": p.name, "description": p.description, "required": p.required, "schema": p.schema}
                for p in m.params
            ],
            "result": {"name": "result", "description": m.result_description, "schema": m.result},
            "errors": _error_objects(m.errors),
            "examples": [{
                "name": f"{m.name} example",
                "params": [{"name": k, "value": v} for k, v in m.example_params.items()],
                "result": {"name": "result", "value": m.example_result},
            }],
        })
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "cstake node JSON-RPC",
            "version": API_VERSION,
            "description": "JSON-RPC 2.0 over HTTP POST / (batches allowed) and WebSocket /ws; "
                           "GET /health and GET /metrics beside it.",
        },
        "methods": methods,
    }


def _md_schema(schema: Schema) -> str:
    text = json.dumps(schema, separators=(", ", ": "))
    return text if len(text) <= 100 else text[:97] + "..."


def render_markdown() -> str:
    """docs/rpc.md: every method with its parameters, result, errors and example."""
    out = [
        "# JSON-RPC reference",
        "",
        "Generated from `node/rpc/spec.py` by `python -m node.rpc markdown > docs/rpc.md`; a test fails",
        "when this file is stale. The same description is served by the `rpc.discover` method as an",
        f"[OpenRPC](https://spec.open-rpc.org) {OPENRPC_VERSION} document.",
        "",
        "JSON-RPC 2.0 over `POST /` on the RPC address (default `127.0.0.1:26657`); batches of up to the",
        "configured `max_batch` calls. Parameters go by name (an object) or by position (an array, in the",
        "order listed). Bytes are `0x`-hex, addresses bech32 `cs1...`, amounts and heights integers, times",
        "Unix milliseconds (UTC). Beside it: `GET /health` (200 when the node is up), `GET /metrics`",
        "(Prometheus), WebSocket `/ws` (subscriptions, see below).",
        "",
        "## Errors",
        "",
        "JSON-RPC's own codes: -32700 parse error, -32600 invalid request, -32601 method not found,",
        "-32602 invalid params, -32603 internal error. Application codes:",
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    out += [f"| {code} | {text} |" for code, text in sorted(ERRORS.items(), reverse=True)]
    out += ["", "## Methods", ""]
    out += [f"- [`{m.name}`](#{m.name.replace('.', '')}): {m.summary}" for m in METHOD_SPECS]
    for m in METHOD_SPECS:
        out += ["", f"### {m.name}", "", m.summary, ""]
        if m.params:
            out += ["| parameter | required | schema | description |", "|---|---|---|---|"]
            out += [f"| `{p.name}` | {'yes' if p.required else 'no'} | `{_md_schema(p.schema)}` | {p.description} |"
                    for p in m.params]
        else:
            out.append("No parameters.")
        out += ["", f"**Result**: {m.result_description}.", ""]
        if m.errors:
            out.append("**Errors**: " + ", ".join(f"{c} ({ERRORS[c].split(':')[0]})" for c in m.errors) + ".")
            out.append("")
        request = {"jsonrpc": "2.0", "id": 1, "method": m.name}
        if m.example_params:
            request["params"] = m.example_params
        out += ["Example:", "", "```json", json.dumps(request), "```", "", "```json",
                json.dumps({"jsonrpc": "2.0", "id": 1, "result": m.example_result}, indent=2), "```"]
    out += ["", "## WebSocket subscriptions", "", _WS_TEXT]
    return "\n".join(out) + "\n"


_WS_TEXT = """Connect to `/ws` and send `{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"event": KIND}}`,
optionally with `"address": "cs1..."` to receive only the events that concern that address (`unsubscribe`
with the same params stops it; each (kind, address) pair counts against the per-connection limit).
Events arrive as notifications `{"jsonrpc": "2.0", "method": "event", "params": {"event": KIND, "data": {...}}}`.

| kind | data | address filter matches |
|---|---|---|
| `new_block` | height, hash, time, round, proposer, num_txs | (no filter) |
| `tx` | the tx summary with height, index, code, log, block_time | sender, or an address in the body |
| `slashing` | name validator_slashed, the slashing record (validator, fault, amount, whistleblower...) | validator, whistleblower |
| `jailing` | name validator_jailed, validator, missed, amount | validator |
| `challenge` | name challenge_issued / challenge_sampled / challenge_resolved, challenge_id, nft_id, status... | (none: use no filter) |
| `attestation` | name attestation_included, nft_id, validator, measured_units, spec | validator |
| `job` | name job_assigned / job_deadline_missed / job_fault_proven / job_dispute_dismissed / job_settled, job_id... | challenger (job_fault_proven) |
| `epoch` | name epoch_ended, validators_hash, total_power | (none) |

Every chain event's data also has `name` and `height`. A subscriber that falls behind its bounded queue
is disconnected with close code 1008."""


def main(argv: list[str]) -> int:
    if argv == ["markdown"]:
        sys.stdout.write(render_markdown())
        return 0
    if argv == ["openrpc"]:
        sys.stdout.write(json.dumps(get_openrpc(), indent=2) + "\n")
        return 0
    sys.stderr.write("usage: python -m node.rpc markdown|openrpc\n")
    return 2
