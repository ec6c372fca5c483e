"""Computing the vectors: every value derived from fixed seeds, so the same code gives the same files."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from consensus.codec import Encodable
from consensus.crypto import Domain, PrivateKey, encode_address
from consensus.genesis import compute_genesis_state
from consensus.hashing import tagged_hash
from consensus.state_proof import compute_state_root
from consensus.txs import BODY_TYPES, SignedTx, Transfer, build_tx
from consensus.votes import Proposal, Vote, VoteType
from tests.kit.chain import TestChain

CHAIN_ID = "cstake-vectors"
#: Field names holding a 20-byte address; every other bytes field gets 32 bytes.
ADDRESS_NAMES = ("address", "validator", "to", "owner", "sender", "delegator", "recipient", "provider",
                 "requester", "verifier", "whistleblower", "challenger", "new_owner")


def key(label: str) -> PrivateKey:
    return PrivateKey.from_seed(tagged_hash(b"cstake/vectors", label.encode()))


def to_json(value: Any) -> Any:
    """A JSON form that any implementation can read: bytes as 0x-hex, containers as objects."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if dataclasses.is_dataclass(value):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise TypeError(f"no JSON form for {type(value).__name__}")


def sample(tp: Any, name: str, depth: int = 0) -> Any:
    """A fixed value of type ``tp`` for a field called ``name`` (one element per list)."""
    if tp is bool:
        return True
    if tp is int:
        return 1_000 + len(name)
    if tp is bytes:
        size = 20 if name.endswith(ADDRESS_NAMES) else 32
        return tagged_hash(b"cstake/vectors/field", name.encode())[:size]
    if tp is str:
        return "vector"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        return () if depth > 2 else (sample(args[0], name, depth + 1),)
    if origin in (typing.Union, types.UnionType):
        return sample(next(a for a in args if a is not type(None)), name, depth + 1)
    if isinstance(tp, type) and issubclass(tp, Encodable):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: sample(hints[f.name], f.name, depth + 1)
                     for f in dataclasses.fields(tp)})  # type: ignore[arg-type]
    raise TypeError(f"no sample for {tp!r} ({name})")


def keys_vectors() -> dict[str, Any]:
    out = []
    for label in ("alice", "bob", "validator-0"):
        k = key(label)
        sigs = {name: "0x" + k.sign(getattr(Domain, name), CHAIN_ID, b"cstake vectors payload").hex()
                for name in ("TX", "PROPOSAL", "PROPOSAL_PART", "VOTE", "ATTESTATION", "POC", "P2P")}
        out.append({"label": label, "seed": "0x" + k.seed().hex(), "pubkey": "0x" + k.public_key.raw.hex(),
                    "address": "0x" + k.address().hex(), "address_text": encode_address(k.address()),
                    "chain_id": CHAIN_ID, "payload": "0x" + b"cstake vectors payload".hex(),
                    "domains": {name: "0x" + getattr(Domain, name).hex() for name in sigs},
                    "signatures": sigs})
    return {"about": "Ed25519 keys from seeds; signatures over (domain, chain id, payload)", "keys": out}


def txs_vectors() -> dict[str, Any]:
    signer = key("alice")
    out = []
    for i, kind in enumerate(sorted(BODY_TYPES)):
        cls = BODY_TYPES[kind]
        body = sample(cls, cls.__name__)
        tx = build_tx(signer, CHAIN_ID, i, 10 + i, body)
        again = SignedTx.decode(tx.raw)
        if again.raw != tx.raw:
            raise ValueError(f"{cls.__name__}: the signed encoding does not round-trip")
        out.append({"kind": kind, "body_type": cls.__name__, "body": to_json(body),
                    "body_encoding": "0x" + body.encode().hex(), "nonce": i, "fee": 10 + i,
                    "payload_encoding": "0x" + tx.payload.encode().hex(),
                    "signature": "0x" + tx.signature.hex(), "signed_encoding": "0x" + tx.raw.hex(),
                    "tx_hash": "0x" + tx.tx_hash.hex()})
    return {"about": "one transaction of every kind, signed by the 'alice' key of keys.json",
            "signer_seed": "0x" + signer.seed().hex(), "chain_id": CHAIN_ID, "txs": out}


def consensus_vectors() -> dict[str, Any]:
    val = key("validator-0")
    block_hash = tagged_hash(b"cstake/vectors", b"block")
    items: list[tuple[str, Vote | Proposal]] = [
        ("prevote", Vote(7, 1, VoteType.PREVOTE, block_hash, val.address(), 1_700_000_001_000)),
        ("precommit", Vote(7, 1, VoteType.PRECOMMIT, block_hash, val.address(), 1_700_000_001_500)),
        ("nil_precommit", Vote(7, 2, VoteType.PRECOMMIT, b"", val.address(), 1_700_000_002_000)),
        ("proposal", Proposal(7, 1, -1, block_hash, val.address(), 1_700_000_000_900)),
    ]
    out = []
    for name, msg in items:
        domain = Domain.VOTE if isinstance(msg, Vote) else Domain.PROPOSAL
        signed = msg.with_signature(val.sign(domain, CHAIN_ID, msg.sign_payload()))
        out.append({"name": name, "fields": to_json(signed), "sign_payload": "0x" + msg.sign_payload().hex(),
                    "signature": "0x" + signed.signature.hex(), "encoding": "0x" + signed.encode().hex()})
    return {"about": "votes and a proposal signed by the 'validator-0' key of keys.json", "chain_id": CHAIN_ID,
            "messages": out}


def chain_vectors() -> dict[str, Any]:
    chain = TestChain(n_validators=4, chain_id=CHAIN_ID)
    genesis_root = compute_state_root({k: v for k, v in compute_genesis_state(chain.genesis).items() if v is not None})
    a, b = chain.account_keys[0], chain.account_keys[1]
    root = compute_state_root(chain.state.data)
    blocks = []
    plans = [[Transfer(b.address(), 5), Transfer(b.address(), 6)], [], [Transfer(a.address(), 7)]]
    for n, plan in enumerate(plans):
        sender = a if n == 0 else b
        txs = [chain.tx(sender, body) for body in plan]
        block = chain.build_block(txs, state_root=root)
        result = chain.apply(block)
        root = compute_state_root(chain.state.data)
        blocks.append({"height": block.header.height, "encoding": "0x" + block.encode().hex(),
                       "header": to_json(block.header), "hash": "0x" + block.hash().hex(),
                       "tx_hashes": [to_json(h) for h in result.tx_hashes],
                       "tx_results": [to_json(r) for r in result.tx_results],
                       "state_root_after": "0x" + root.hex()})
    return {"about": "tests/kit/chain.py TestChain(n_validators=4): genesis and 3 blocks; each block's "
                     "state_root is the root after the previous block",
            "genesis": to_json(chain.genesis), "genesis_state_root": "0x" + genesis_root.hex(), "blocks": blocks}


def all_vectors() -> dict[str, dict[str, Any]]:
    """File name -> contents of every vector file."""
    return {"keys.json": keys_vectors(), "txs.json": txs_vectors(), "consensus.json": consensus_vectors(),
            "chain.json": chain_vectors()}
