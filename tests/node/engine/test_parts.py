"""The part assembler alone: states, bounds per peer and in all, eviction order, expiry.

Parts reach the assembler already authenticated (the gossip adapter checks
each signature through the driver), so these tests feed it unsigned parts and
proposals: what is checked here is what it keeps, for how long, and what it
reports when a block cannot be formed.
"""

from __future__ import annotations

import dataclasses

import pytest

from consensus.blocks import Block
from consensus.crypto import Domain
from consensus.errors import ConsensusError
from consensus.votes import Proposal
from node.engine.parts import (
    MAX_BLOCKS_PER_SLOT,
    MAX_PARTS,
    PART_BYTES,
    AssemblyState,
    Part,
    PartAssembler,
    compute_parts,
    compute_rank,
)
from tests.kit.chain import TestChain

MAX_BLOCK = 16 * PART_BYTES


@pytest.fixture(scope="module")
def template() -> Block:
    return TestChain(n_validators=4).build_block()


def _block(template: Block, height: int, round_: int, size: int, salt: int = 0) -> Block:
    """A block of about ``size`` bytes for (height, round), its hash made unique by ``salt``."""
    header = dataclasses.replace(template.header, height=height, round=round_, time_ms=template.header.time_ms + salt)
    return dataclasses.replace(template, header=header, txs=(bytes(size),))


def _proposal(block: Block) -> Proposal:
    h = block.header
    return Proposal(h.height, h.round, -1, block.hash(), h.proposer, h.time_ms)


def _split(block: Block, data: bytes | None = None) -> list[Part]:
    h, raw = block.header, block.encode() if data is None else data
    chunks = [raw[i : i + PART_BYTES] for i in range(0, len(raw), PART_BYTES)]
    return [Part(h.height, h.round, block.hash(), i, len(chunks), c, bytes(64)) for i, c in enumerate(chunks)]


def _feed(asm: PartAssembler, peer: str, parts: list[Part]) -> list[object]:
    return [asm.add_part(peer, p) for p in parts]


def test_add_part_forms_the_announced_block_once(template: Block) -> None:
    asm = PartAssembler(MAX_BLOCK)
    asm.advance(1, 0)
    block = _block(template, 1, 0, 3 * PART_BYTES)
    parts = _split(block)
    key = parts[0].key
    assert all(r is None for r in _feed(asm, "a", parts[:-1]))
    assert asm.get_state(key) is AssemblyState.PENDING and asm.held_bytes == sum(len(p.data) for p in parts[:-1])
    # Every part but the last, then the last before the announcement: kept, not yet formed.
    assert asm.add_part("b", parts[-1]) is None
    done = asm.add_proposal("a", _proposal(block), len(parts))
    assert done is not None and done.block == block and done.peer == "a" and done.size == len(block.encode())
    assert asm.get_state(key) is AssemblyState.COMPLETE
    assert asm.held_bytes == 0 and asm.get_peer_bytes("a") == 0 and asm.get_peer_bytes("b") == 0
    # Late copies of its parts are of no use: not admissible, not kept.
    assert not asm.is_admissible("c", parts[0]) and asm.add_part("c", parts[0]) is None
    assert asm.assembled == 1 and asm.held_bytes == 0


@pytest.mark.parametrize("how", ["not_a_block", "other_block", "too_big"])
def test_invalid_parts_end_failed_and_the_announced_proposal_is_handed_back(template: Block, how: str) -> None:
    asm = PartAssembler(MAX_BLOCK)
    asm.advance(1, 0)
    block = _block(template, 1, 0, 3 * PART_BYTES)
    proposal = _proposal(block)
    if how == "not_a_block":
        parts = _split(block, b"\x93" + bytes(len(block.encode())))
    elif how == "other_block":
        other = _block(template, 1, 0, 3 * PART_BYTES, salt=9)
        parts = [dataclasses.replace(p, block_hash=block.hash()) for p in _split(other)]
    else:
        parts = [dataclasses.replace(p, total=20) for p in _split(_block(template, 1, 0, 18 * PART_BYTES))]
    asm.add_proposal("a", proposal, parts[0].total)
    assert all(r is None for r in _feed(asm, "a", parts))
    key = (1, 0, block.hash())
    assert asm.get_state(key) is AssemblyState.FAILED
    assert asm.held_bytes == 0 and asm.get_peer_bytes("a") == 0
    (gone,) = asm.pop_abandoned()
    assert gone.proposal == proposal and gone.state is AssemblyState.FAILED
    assert asm.pop_abandoned() == []


def test_a_peer_holds_no_more_than_its_share(template: Block) -> None:
    asm = PartAssembler(MAX_BLOCK, peer_bytes=4 * PART_BYTES, max_bytes=64 * PART_BYTES)
    asm.advance(1, 0)
    parts = _split(_block(template, 1, 0, 10 * PART_BYTES))
    _feed(asm, "greedy", parts)
    assert asm.get_peer_bytes("greedy") <= 4 * PART_BYTES
    assert asm.held_bytes == asm.get_peer_bytes("greedy")
    # Another peer's parts of the same block still fit.
    assert asm.is_admissible("other", parts[6]) and asm.add_part("other", parts[6]) is None
    assert asm.get_peer_bytes("other") == len(parts[6].data)


def test_total_bytes_and_count_stay_bounded_and_the_round_in_progress_is_never_evicted(template: Block) -> None:
    bound = 3 * MAX_BLOCK
    asm = PartAssembler(MAX_BLOCK, max_bytes=bound, max_assemblies=4)
    asm.advance(5, 2)
    current = _block(template, 5, 2, 6 * PART_BYTES)
    cparts = _split(current)
    asm.add_proposal("honest", _proposal(current), len(cparts))
    _feed(asm, "honest", cparts[:3])
    # Floods of full blocks for rounds and heights ahead, from many peers.
    for salt in range(40):
        h, r = 5 + salt % 3, 3 + salt % 5
        _feed(asm, f"p{salt % 7}", _split(_block(template, h, r, MAX_BLOCK - 2048, salt=salt + 1)))
        assert asm.held_bytes <= bound and len(asm) <= 4
    assert asm.get_state(cparts[0].key) is AssemblyState.PENDING
    done = _feed(asm, "honest", cparts[3:])[-1]
    assert done is not None and done.block == current  # type: ignore[attr-defined]


def test_a_nearer_round_evicts_a_farther_one_and_the_eviction_is_reported(template: Block) -> None:
    asm = PartAssembler(MAX_BLOCK, max_assemblies=1)
    asm.advance(1, 0)
    ahead = _block(template, 1, 3, 3 * PART_BYTES)
    proposal = _proposal(ahead)
    asm.add_proposal("x", proposal, 3)
    asm.add_part("x", _split(ahead)[0])
    now = _split(_block(template, 1, 0, 3 * PART_BYTES, salt=1))
    assert asm.add_part("y", now[0]) is None
    assert asm.get_state(now[0].key) is AssemblyState.PENDING
    assert asm.get_state((1, 3, ahead.hash())) is AssemblyState.EVICTED
    (gone,) = asm.pop_abandoned()
    assert gone.proposal == proposal and gone.peer == "x" and gone.state is AssemblyState.EVICTED
    # The farther one cannot push the nearer one out in turn.
    later = _split(_block(template, 1, 4, 3 * PART_BYTES, salt=2))
    assert not asm.is_admissible("x", later[0]) and asm.add_part("x", later[0]) is None
    assert asm.get_state(later[0].key) is None


def test_a_round_holds_at_most_two_blocks(template: Block) -> None:
    asm = PartAssembler(MAX_BLOCK)
    asm.advance(1, 0)
    blocks = [_block(template, 1, 0, 2 * PART_BYTES, salt=s) for s in range(MAX_BLOCKS_PER_SLOT + 3)]
    for b in blocks:
        asm.add_part("eq", _split(b)[0])
    kept = [b for b in blocks if asm.get_state((1, 0, b.hash())) is AssemblyState.PENDING]
    assert kept == blocks[:MAX_BLOCKS_PER_SLOT]


def test_prune_drops_assemblies_below_the_height(template: Block) -> None:
    asm = PartAssembler(MAX_BLOCK)
    asm.advance(3, 0)
    old, now = _block(template, 3, 0, 3 * PART_BYTES), _block(template, 4, 1, 3 * PART_BYTES)
    asm.add_proposal("a", _proposal(old), 3)
    _feed(asm, "a", _split(old)[:2])
    _feed(asm, "a", _split(now)[:2])
    asm.advance(4, 0)
    assert asm.get_state((3, 0, old.hash())) is None  # forgotten with its height
    assert asm.get_state((4, 1, now.hash())) is AssemblyState.PENDING
    assert asm.held_bytes == sum(len(p.data) for p in _split(now)[:2])
    assert asm.pop_abandoned() == []  # a passed height is not worth fetching
    # Parts of a passed height are not kept; the driver never goes back.
    assert not asm.is_admissible("a", _split(old)[2])
    asm.advance(3, 5)
    assert asm.height == 4 and asm.round == 0


def test_is_admissible_changes_nothing(template: Block) -> None:
    asm = PartAssembler(MAX_BLOCK, max_assemblies=1)
    asm.advance(1, 0)
    far = _split(_block(template, 1, 2, 2 * PART_BYTES))
    asm.add_part("a", far[0])
    near = _split(_block(template, 1, 0, 2 * PART_BYTES, salt=1))
    assert asm.is_admissible("b", near[0])  # it would evict the farther one...
    assert asm.get_state(far[0].key) is AssemblyState.PENDING and len(asm) == 1  # ...but has not
    assert compute_rank(near[0].key, 1, 0) < compute_rank(far[0].key, 1, 0)


def test_compute_parts_signs_each_part_and_from_fields_reads_it_back(template: Block) -> None:
    chain = TestChain(n_validators=4)
    key = chain.consensus_keys[0]
    block = _block(template, 1, 0, 2 * PART_BYTES + 5)
    proposal = _proposal(block)
    parts = compute_parts(chain.chain_id, proposal, block.encode(), key)
    assert [len(p.data) for p in parts[:-1]] == [PART_BYTES] * (len(parts) - 1) and len(parts) == 3
    assert b"".join(p.data for p in parts) == block.encode()
    for p in parts:
        key.public_key.verify(Domain.PROPOSAL_PART, chain.chain_id, p.sign_payload(), p.signature)
        assert Part.from_fields(p.to_fields()) == p


@pytest.mark.parametrize("index_and_value", [(0, 0), (1, -1), (2, b"short"), (3, 3), (4, MAX_PARTS + 1),
                                             (5, b""), (5, bytes(PART_BYTES + 1)), (6, bytes(63)), (0, b"1")])
def test_invalid_part_fields_are_refused(index_and_value: tuple[int, object]) -> None:
    fields: list[object] = [1, 0, bytes(32), 1, 3, b"data", bytes(64)]
    assert Part.from_fields(fields) == Part(1, 0, bytes(32), 1, 3, b"data", bytes(64))  # type: ignore[arg-type]
    index, value = index_and_value
    fields[index] = value
    with pytest.raises(ConsensusError):
        Part.from_fields(fields)  # type: ignore[arg-type]
    with pytest.raises(ConsensusError):
        Part.from_fields(fields[:6])  # type: ignore[arg-type]
