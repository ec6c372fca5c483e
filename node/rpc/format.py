"""JSON forms of chain objects, as interface.md states them.

Bytes are ``0x``-hex strings, amounts and heights JSON integers, addresses the
bech32 ``cs1...`` form everywhere, block times integer milliseconds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from consensus.blocks import Block, Header
from consensus.codec import Encodable
from consensus.crypto import encode_address
from consensus.errors import ConsensusError
from consensus.hashing import hash32
from consensus.records import (
    ComputeNFT,
    DeviceKind,
    Fault,
    HardwareSpec,
    NFTStatus,
    SlashingRecord,
    TxResult,
)
from consensus.txs import SignedTx, TxKind
from consensus.votes import Commit

#: Body fields that hold an address (shown in bech32); other bytes are hex.
ADDRESS_FIELDS = frozenset({"to", "validator", "sender", "owner", "delegator", "proposer"})


def hex0x(data: bytes) -> str:
    return "0x" + data.hex()


def addr(data: bytes) -> str | None:
    """Return the bech32 form of a 20-byte address (None for the empty 'no address')."""
    return encode_address(data) if data else None


def format_header(h: Header) -> dict[str, Any]:
    return {
        "chain_id": h.chain_id,
        "height": h.height,
        "round": h.round,
        "time": h.time_ms,
        "proposer": addr(h.proposer),
        "parent_hash": hex0x(h.parent_hash),
        "last_commit_hash": hex0x(h.last_commit_hash),
        "txs_hash": hex0x(h.txs_hash),
        "attestations_hash": hex0x(h.attestations_hash),
        "evidence_hash": hex0x(h.evidence_hash),
        "state_root": hex0x(h.state_root),
        "validators_hash": hex0x(h.validators_hash),
    }


def format_commit(commit: Commit | None) -> dict[str, Any] | None:
    if commit is None:
        return None
    return {
        "height": commit.height,
        "round": commit.round,
        "block_hash": hex0x(commit.block_hash),
        "signatures": [
            {
                "validator": addr(s.validator),
                "timestamp": s.timestamp_ms,
                "signature": hex0x(s.signature),
            }
            for s in commit.signatures
        ],
    }


def format_value(name: str, value: Any) -> Any:
    """Return the JSON form of one field value (addresses by field name)."""
    if isinstance(value, bytes):
        if name in ADDRESS_FIELDS and len(value) == 20:
            return encode_address(value)
        if name in ADDRESS_FIELDS and not value:
            return None
        return hex0x(value)
    if isinstance(value, HardwareSpec):
        return format_spec(value)
    if isinstance(value, Encodable) and dataclasses.is_dataclass(value):
        return {f.name: format_value(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [format_value(name, v) for v in value]
    return value


def format_tx_summary(tx: SignedTx) -> dict[str, Any]:
    p = tx.payload
    return {
        "hash": hex0x(tx.tx_hash),
        "kind": TxKind.NAMES.get(p.kind, str(p.kind)),
        "sender": encode_address(p.sender),
        "nonce": p.nonce,
        "fee": p.fee,
    }


def format_tx(tx: SignedTx) -> dict[str, Any]:
    """The ``tx`` object of interface.md: kind, sender, nonce, fee, body (decoded)."""
    p = tx.payload
    try:
        body: Any = format_value("body", p.decode_body())
    except ConsensusError:
        body = {"raw": hex0x(p.body)}
    return {
        "kind": TxKind.NAMES.get(p.kind, str(p.kind)),
        "chain_id": p.chain_id,
        "sender": encode_address(p.sender),
        "pubkey": hex0x(p.pubkey),
        "nonce": p.nonce,
        "fee": p.fee,
        "body": body,
        "signature": hex0x(tx.signature),
    }


def format_result(result: TxResult) -> dict[str, Any]:
    return {"code": result.code, "log": result.log}


def format_block(
    block: Block, block_hash: bytes, commit: Commit | None, *, txs: str = "full",
    results: list[TxResult | None] | None = None,
) -> dict[str, Any]:
    """The ``block`` result: hash, header, txs, attestations, evidence, last_commit, commit.

    ``txs="hashes"`` lists only the transaction ids (cheap for large blocks); with
    ``results`` (one per tx, in order) each full tx carries its execution result.
    """
    items: list[Any] = []
    for i, raw in enumerate(block.txs):
        if txs == "hashes":
            items.append(hex0x(hash32(raw)))
            continue
        try:
            tx = SignedTx.decode(raw, max_bytes=len(raw))
        except ConsensusError:
            items.append({"raw": hex0x(raw)})
            continue
        item = format_tx_summary(tx)
        item["raw"] = hex0x(raw)
        result = results[i] if results is not None and i < len(results) else None
        if result is not None:
            item["result"] = format_result(result)
        items.append(item)
    return {
        "hash": hex0x(block_hash),
        "header": format_header(block.header),
        "num_txs": len(block.txs),
        "txs": items,
        "attestations": [hex0x(a) for a in block.attestations],
        "evidence": [
            {"kind": e.kind, "hash": hex0x(e.hash()), "data": hex0x(e.data)} for e in block.evidence
        ],
        "last_commit": format_commit(block.last_commit) or {"signatures": []},
        "commit": format_commit(commit),
    }


def format_spec(spec: HardwareSpec) -> dict[str, Any]:
    return {
        "device": DeviceKind.NAMES.get(spec.device_kind, str(spec.device_kind)),
        "model": spec.model,
        "cores": spec.cores,
        "memory_mb": spec.memory_mb,
    }


def format_nft(nft: ComputeNFT) -> dict[str, Any]:
    return {
        "id": nft.id,
        "owner": encode_address(nft.owner),
        "bound_validator": addr(nft.bound_validator),
        # A binding request awaiting the validator's accept_nft (null when none).
        "pending_validator": addr(nft.pending_validator),
        "spec": format_spec(nft.spec),
        "claimed_units": nft.claimed_units,
        "verified_units": nft.verified_units,
        "collateral": nft.collateral,
        "status": NFTStatus.NAMES.get(nft.status, str(nft.status)),
        "last_verified_height": nft.last_verified_height,
        "registered_height": nft.registered_height,
    }


def format_slashing_record(r: SlashingRecord) -> dict[str, Any]:
    return {
        "height": r.height,
        "validator": encode_address(r.validator),
        "fault": Fault.NAMES.get(r.fault, str(r.fault)),
        "amount": r.amount,
        "evidence_hash": hex0x(r.evidence_hash),
        "whistleblower": addr(r.whistleblower),
        "whistleblower_reward": r.whistleblower_reward,
    }
