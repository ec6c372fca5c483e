"""The gossip adapter's topic validators: decode, bound, authenticate, and name the fault.

The adapter runs on a real driver; its transport is a stub that records
penalties (the validators' verdicts go to the transport, which penalises a
``Reject`` under its name; see tests/p2p for that half).
"""

from __future__ import annotations

import dataclasses

from consensus.blocks import Block
from consensus.codec import pack_raw
from consensus.crypto import Domain
from consensus.evidence import compute_duplicate_vote_evidence
from consensus.votes import VoteType
from node.engine.driver import ConsensusDriver
from node.engine.gossip import (
    MSG_PART,
    MSG_PROPOSAL,
    PART_BYTES,
    GossipAdapter,
    encode_evidence_message,
    encode_proposal_messages,
    part_sign_payload,
)
from p2p.interface import Reject, Verdict
from tests.kit.chain import TestChain
from tests.node.engine.conftest import Recorder
from tests.node.engine.test_auth import OTHER, _forged, _index, _proposal, _setup, _vote


class StubTransport:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str]] = []

    def report_peer(self, peer_id: str, reason: str, *, disconnect: bool = False) -> None:
        self.reports.append((peer_id, reason))

    def peers(self) -> list[str]:
        return []


def _adapter(recorder: Recorder) -> tuple[TestChain, ConsensusDriver, GossipAdapter, StubTransport]:
    chain = TestChain(n_validators=4)
    driver, _ = _setup(chain, recorder)
    driver.recover()
    transport = StubTransport()
    adapter = GossipAdapter(transport, chain.chain_id)  # type: ignore[arg-type]
    adapter.bind(driver)
    return chain, driver, adapter, transport


def _parts(chain: TestChain, block: Block, data: bytes, total: int | None = None, *, forged: bool = False) -> list[bytes]:
    proposal = _proposal(chain, block)
    key = chain.consensus_keys[_index(chain, block.header.proposer)]
    chunks = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    total = len(chunks) if total is None else total
    out = [pack_raw([MSG_PROPOSAL, proposal.encode(), b"", total])]
    for index, chunk in enumerate(chunks):
        payload = part_sign_payload(block.header.height, 0, block.hash(), index, total, chunk)
        sig = bytes(64) if forged else key.sign(Domain.PROPOSAL_PART, chain.chain_id, payload)
        out.append(pack_raw([MSG_PART, block.header.height, 0, block.hash(), index, total, chunk, sig]))
    return out


def test_votes_and_evidence_are_authenticated_before_they_are_accepted(recorder: Recorder) -> None:
    chain, _, adapter, _ = _adapter(recorder)
    real = _vote(chain, 1, 1, 0, VoteType.PREVOTE, OTHER)
    assert adapter.validate_vote("p", real.encode()) is Verdict.ACCEPT
    assert adapter.validate_vote("p", _forged(real).encode()) == Reject("bad_signature")
    assert adapter.validate_vote("p", b"\x93junk") == Reject("malformed")
    far = _forged(_vote(chain, 1, 40, 0, VoteType.PREVOTE, OTHER))
    assert adapter.validate_vote("p", far.encode()) is Verdict.IGNORE
    other = _vote(chain, 1, 1, 0, VoteType.PREVOTE, b"\x22" * 32)
    forged_evidence = compute_duplicate_vote_evidence(_forged(real), other)
    assert adapter.validate_evidence("p", encode_evidence_message(forged_evidence)) == Reject("bad_signature")
    evidence = compute_duplicate_vote_evidence(real, other)
    assert adapter.validate_evidence("p", encode_evidence_message(evidence)) is Verdict.ACCEPT
    assert adapter.validate_evidence("p", b"\x92\x01\xc4\x01x") == Reject("malformed")
    assert adapter.refused == {"bad_signature": 2, "": 1, "malformed": 2}


def test_proposals_are_authenticated_and_their_inline_block_must_be_the_signed_one(recorder: Recorder) -> None:
    chain, driver, adapter, _ = _adapter(recorder)
    block = chain.build_block(state_root=driver.executor.store.state_root)
    proposal = _proposal(chain, block)
    (inline,) = encode_proposal_messages(chain.chain_id, proposal, block, None)
    assert adapter.validate_proposal("p", inline) is Verdict.ACCEPT
    forged = proposal.with_signature(bytes(64))
    (bad,) = encode_proposal_messages(chain.chain_id, forged, block, None)
    assert adapter.validate_proposal("p", bad) == Reject("bad_signature")
    other = dataclasses.replace(block, header=dataclasses.replace(block.header, time_ms=block.header.time_ms + 1))
    mismatched = pack_raw([MSG_PROPOSAL, proposal.encode(), other.encode(), 0])
    assert adapter.validate_proposal("p", mismatched) == Reject("bad_block")
    assert adapter.validate_proposal("p", b"\x91\x05") == Reject("malformed")
    adapter.receive_proposal("p", inline)
    assert driver.process_inputs() == 1 and driver.state.proposals[0].proposal == proposal


def test_parts_must_be_signed_by_the_proposer_and_fit_the_block_size(recorder: Recorder) -> None:
    chain, driver, adapter, _ = _adapter(recorder)
    block = chain.build_block(state_root=driver.executor.store.state_root)
    data = block.encode()
    half = len(data) // 2 + 1
    # Two signed parts of the real block (parts are normally 32 KiB; any split works).
    proposal = _proposal(chain, block)
    key = chain.consensus_keys[_index(chain, block.header.proposer)]
    messages = [pack_raw([MSG_PROPOSAL, proposal.encode(), b"", 2])]
    for index, chunk in enumerate((data[:half], data[half:])):
        sig = key.sign(Domain.PROPOSAL_PART, chain.chain_id, part_sign_payload(1, 0, block.hash(), index, 2, chunk))
        messages.append(pack_raw([MSG_PART, 1, 0, block.hash(), index, 2, chunk, sig]))
    forged = _parts(chain, block, data, forged=True)[1]
    assert adapter.validate_proposal("p", forged) == Reject("bad_signature")
    for m in messages:
        assert adapter.validate_proposal("p", m) is Verdict.ACCEPT
    assert adapter.receive_proposal("p", messages[0]) == (proposal, 2)
    for m in messages[1:]:
        assert adapter.receive_proposal("p", m) is None
    assert adapter.blocks_assembled == 1
    assert driver.process_inputs() == 1 and driver.state.proposals[0].proposal == proposal
    # More parts than the chain's largest block needs: refused before anything is kept.
    too_many = adapter.max_parts + 1
    (announce, part, *_) = _parts(chain, block, data, total=too_many)
    assert adapter.validate_proposal("p", announce) == Reject("oversize")
    assert adapter.validate_proposal("p", part) == Reject("oversize")


def test_a_fetched_block_is_capped_and_checked(recorder: Recorder) -> None:
    chain, driver, adapter, transport = _adapter(recorder)
    block = chain.build_block(state_root=driver.executor.store.state_root)
    assert adapter.accept_fetched("good", block.hash(), [block.encode()]) == block
    assert adapter.accept_fetched("slow", block.hash(), [b""]) is None  # does not have it: no blame
    driver.max_block_bytes = len(block.encode()) - 1
    assert adapter.accept_fetched("big", block.hash(), [block.encode()]) is None
    driver.max_block_bytes = 1 << 20
    assert adapter.accept_fetched("junk", block.hash(), [b"\x93junk"]) is None
    assert adapter.accept_fetched("wrong", bytes(32), [block.encode()]) is None
    assert transport.reports == [("big", "oversize"), ("junk", "bad_data"), ("wrong", "bad_data")]
