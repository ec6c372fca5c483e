"""Seed inputs for every target: valid encodings built from a TestChain.

``build_seeds()`` returns, per target, a list of inputs that the target
accepts (or that reach deep into it); ``python -m tests.fuzz seed`` writes
them under ``tests/fuzz/corpus/TARGET/``. Everything is deterministic: the
same code writes the same files.
"""

from __future__ import annotations

import dataclasses
import json
import random
import struct
import zlib
from pathlib import Path

from consensus.blocks import Block
from consensus.codec import pack_raw
from consensus.crypto import Domain, encode_address
from consensus.errors import ConsensusError
from consensus.evidence import (
    compute_conflicting_proposal_evidence,
    compute_duplicate_vote_evidence,
)
from consensus.txs import BODY_TYPES, Transfer, build_tx
from consensus.votes import Proposal, Vote, VoteType
from node.engine.gossip import (
    MSG_PART,
    encode_evidence_message,
    encode_proposal_messages,
    part_sign_payload,
)
from node.engine.inputs import InBuilt, InProposal, InStart, InTimeout, InVote, encode_input
from node.rpc.methods import METHODS
from p2p.envelope import (
    BlockFrame,
    BlocksRequest,
    PeerExchange,
    PeerRecord,
    StatusMessage,
    encode_envelope,
    encode_tx_batch,
)
from tests.fuzz import targets as T
from tests.fuzz.data import FuzzInput
from tests.kit.chain import TestChain

CORPUS_DIR = Path(__file__).parent / "corpus"


def _index(chain: TestChain, address: bytes) -> int:
    return [k.address() for k in chain.operator_keys].index(address)


def _vote(chain: TestChain, i: int, height: int, round_: int, vote_type: int, block_hash: bytes) -> Vote:
    v = Vote(height, round_, vote_type, block_hash, chain.operator_keys[i].address(), chain.genesis_time_ms + 5)
    return v.with_signature(chain.consensus_keys[i].sign(Domain.VOTE, chain.chain_id, v.sign_payload()))


def _proposal(chain: TestChain, block: Block, round_: int = 0) -> Proposal:
    i = _index(chain, block.header.proposer)
    p = Proposal(block.header.height, round_, -1, block.hash(), block.header.proposer, block.header.time_ms)
    return p.with_signature(chain.consensus_keys[i].sign(Domain.PROPOSAL, chain.chain_id, p.sign_payload()))


def _frame_wal(records: list[bytes]) -> bytes:
    return b"".join(struct.pack(">II", len(r), zlib.crc32(r)) + r for r in records)


def _random_bodies(fx: T._ChainFixture, rnd: random.Random) -> list[object]:
    """One body of every transaction kind, built from random choices (some may fail to build)."""
    out = []
    for kind in sorted(BODY_TYPES):
        for _ in range(8):
            try:
                body = T._fuzz_value(FuzzInput(rnd.randbytes(256)), BODY_TYPES[kind], fx)
                body.encode()
            except (ConsensusError, ValueError, TypeError, OverflowError):
                continue
            out.append(body)
            break
    return out


def build_seeds() -> dict[str, list[bytes]]:
    """Return the seed inputs of every target."""
    rnd = random.Random(20261205)
    T._setup_codec()
    if not T._CHAIN:
        T._setup_chain()
    fx = T._CHAIN[0]
    seeds: dict[str, list[bytes]] = {name: [] for name in T.TARGETS}

    chain = TestChain(n_validators=4)
    a, b = chain.account_keys[0], chain.account_keys[1]
    bodies = _random_bodies(fx, rnd)
    txs = [chain.tx(a, Transfer(to=b.address(), amount=5)) for _ in range(2)]
    txs += [build_tx(chain.account_keys[2], chain.chain_id, i, 10, body) for i, body in enumerate(bodies)]
    block1 = chain.build_block(txs[:2])
    chain.apply(block1)
    block2 = chain.build_block([chain.tx(b, Transfer(to=a.address(), amount=7))])
    commit1 = block2.last_commit
    assert commit1 is not None
    vote = _vote(chain, 1, 1, 0, VoteType.PREVOTE, block1.hash())
    other = _vote(chain, 1, 1, 0, VoteType.PREVOTE, b"\x11" * 32)
    nil_vote = _vote(chain, 2, 1, 0, VoteType.PRECOMMIT, b"")
    prop1 = _proposal(chain, block1)
    prop2 = _proposal(chain, dataclasses.replace(block1, header=dataclasses.replace(block1.header, time_ms=block1.header.time_ms + 1)))
    dup = compute_duplicate_vote_evidence(vote, other)
    conflicting = compute_conflicting_proposal_evidence(prop1, prop2)

    # codec: a container index, then its encoding; every container gets a random value too.
    objects: list[object] = [block1, block2, block1.header, vote, nil_vote, prop1, commit1, *commit1.signatures,
                             dup, conflicting, *(t.payload for t in txs), *bodies]
    objects += [BlocksRequest(1, 8), StatusMessage(3, b"\x01" * 32, 1), BlockFrame(1, block1.encode(), commit1.encode()),
                PeerExchange(PeerRecord("12D3KooWA", ("/ip4/127.0.0.1/tcp/1",)), ())]
    for cls in T.ENCODABLES:
        for _ in range(4):
            try:
                obj = T._fuzz_value(FuzzInput(rnd.randbytes(512)), cls, fx)
                obj.encode()
            except (ConsensusError, ValueError, TypeError, OverflowError):
                continue
            objects.append(obj)
            break
    for obj in objects:
        if type(obj) in T.ENCODABLES:
            seeds["codec"].append(T.codec_name(type(obj)) + b":" + obj.encode())  # type: ignore[attr-defined]
    seeds["codec"] += [pack_raw([1, b"x", [2, [3]]]), pack_raw(-(1 << 63)), pack_raw((1 << 64) - 1)]

    seeds["tx"] = [t.raw for t in txs]
    seeds["block"] = [block1.encode(), block2.encode()]
    seeds["vote"] = [vote.encode(), nil_vote.encode(), commit1.encode()]
    seeds["proposal"] = [prop1.encode(), prop2.encode()]
    (inline,) = encode_proposal_messages(chain.chain_id, prop1, block1, None)
    data = block1.encode()
    half = len(data) // 2
    key = chain.consensus_keys[_index(chain, block1.header.proposer)]
    parts = [pack_raw([0, prop1.encode(), b"", 2])]
    for i, chunk in enumerate((data[:half], data[half:])):
        sig = key.sign(Domain.PROPOSAL_PART, chain.chain_id, part_sign_payload(1, 0, block1.hash(), i, 2, chunk))
        parts.append(pack_raw([MSG_PART, 1, 0, block1.hash(), i, 2, chunk, sig]))
    seeds["parts"] = [inline, *parts]
    seeds["evidence"] = [encode_evidence_message(dup), encode_evidence_message(conflicting)]
    batch = encode_tx_batch([t.raw for t in txs[:3]])
    seeds["envelope"] = [
        encode_envelope("tx", batch), encode_envelope("vote", vote.encode()), encode_envelope("proposal", inline),
        encode_envelope("evidence", encode_evidence_message(dup)), encode_envelope("attestation", b"\x90"),
        PeerExchange(PeerRecord("12D3KooWA", ("/ip4/127.0.0.1/tcp/1",)), (PeerRecord("12D3KooWB", ()),)).encode(),
    ]
    frames = [BlockFrame(1, block1.encode(), commit1.encode()).encode(), BlockFrame(2, block2.encode(), b"").encode()]
    seeds["sync"] = [
        b"\x00" + BlocksRequest(1, 8).encode(),
        b"\x00" + BlocksRequest(2, 2).encode(),
        b"\x01" + StatusMessage(3, b"\x01" * 32, 1).encode(),
        b"\x01" + StatusMessage(0, b"", 1).encode(),
        b"\x02" + b"".join(len(f).to_bytes(2, "big") + f for f in frames),
    ]
    inputs = [
        InStart(1, 5), InVote(vote, 6), InVote(nil_vote, 7, own=True), InTimeout(1, 0, 1, 8),
        InProposal(prop1, block1, True, 9), InProposal(prop1, block1, False, 10, own=True), InBuilt(1, 0, block1, 11),
    ]
    records = [encode_input(i) for i in inputs]
    seeds["wal"] = [b"\x00" + r for r in records] + [b"\x01" + _frame_wal(records), b"\x01" + _frame_wal(records[:3]) + b"\0" * 8]

    # transition: [op < 200: a tx: key, kind, body choices, nonce/fee mode] ... [op >= 200: end the block]
    kinds = sorted(BODY_TYPES)
    for k in range(len(kinds)):
        for variant in range(2):
            body = rnd.randbytes(40)
            seeds["transition"].append(bytes([0, k % 8, k]) + body + bytes([variant * 0x10, 201]))
    seeds["transition"].append(bytes([0, 0, kinds.index(1) if 1 in kinds else 0, 0, 0, 0, 0, 201]) * 3)

    # gossip: a mode byte, then the message.
    gchain = TestChain(n_validators=4)
    gblock = gchain.build_block()
    gprop = _proposal(gchain, gblock)
    gvote = _vote(gchain, 1, 1, 0, VoteType.PREVOTE, gblock.hash())
    gother = _vote(gchain, 1, 1, 0, VoteType.PREVOTE, b"\x22" * 32)
    (ginline,) = encode_proposal_messages(gchain.chain_id, gprop, gblock, None)
    gtx = gchain.tx(gchain.account_keys[0], Transfer(to=gchain.account_keys[1].address(), amount=3))
    seeds["gossip"] = [
        b"\x00" + gvote.encode(),
        b"\x01" + ginline,
        b"\x02" + encode_evidence_message(compute_duplicate_vote_evidence(gvote, gother)),
        b"\x03" + gtx.raw,
        b"\x04\x01" + gvote.encode(),
        b"\x05\x00" + gtx.payload_bytes,
        *(b"\x05\x02" + build_tx(gchain.account_keys[2], gchain.chain_id, 0, 10, body).payload_bytes for body in bodies),
    ]

    # rpc: one call of every method with plausible parameters, a batch, a notification, bad calls.
    addr = encode_address(chain.account_keys[0].address())
    plausible = {
        "height": 1, "hash": "0x" + block1.hash().hex(), "txs": "hashes", "address": addr, "id": 1,
        "owner": addr, "validator": encode_address(chain.operator_keys[0].address()), "limit": 5,
        "nft_id": 1, "status": "open", "tx": "0x" + gtx.raw.hex(), "mode": "sync",
    }
    for i, (method, (_, names)) in enumerate(sorted(METHODS.items())):
        params = {n: plausible[n] for n in names if n in plausible}
        seeds["rpc"].append(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}).encode())
        seeds["rpc"].append(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": list(params.values())}).encode())
    seeds["rpc"] += [
        json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "status"}, {"jsonrpc": "2.0", "method": "params"}]).encode(),
        b'{"jsonrpc":"2.0","id":"x","method":"block","params":{"height":9223372036854775807}}',
        b'{"jsonrpc":"2.0","id":null,"method":"nope"}',
        b"[]",
    ]
    return seeds


def write_seeds(corpus_dir: Path = CORPUS_DIR) -> dict[str, int]:
    """Write every target's seeds into ``corpus_dir/TARGET/seed-<id>``; return how many per target."""
    counts = {}
    for name, inputs in build_seeds().items():
        folder = corpus_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (folder / f"seed-{T.input_id(data)}").write_bytes(data)
        counts[name] = len(inputs)
    return counts
