"""The driver's input/WAL model: records round-trip, damage is refused, and a WAL folds into the driver's state."""

from __future__ import annotations

import pytest

from consensus.bft.config import TimeoutConfig
from consensus.bft.effects import Step
from consensus.bft.machine import MachineContext
from consensus.bft.state import new_round_state
from consensus.votes import Proposal, Vote, VoteType
from node.engine.inputs import (
    WAL_START,
    InBuilt,
    InProposal,
    InStart,
    InTimeout,
    InVote,
    WalEntry,
    apply_input,
    decode_input,
    encode_input,
    fold_wal,
    get_height_inputs,
    is_durable,
)
from node.errors import WalCorrupt
from tests.kit.chain import TestChain


@pytest.fixture
def chain() -> TestChain:
    return TestChain(n_validators=4)


def _inputs(chain: TestChain) -> list[InStart | InProposal | InVote | InTimeout | InBuilt]:
    block = chain.build_block()
    proposer = block.header.proposer
    proposal = Proposal(1, 0, -1, block.hash(), proposer, 1_000, b"\x01" * 64)
    vote = Vote(1, 0, VoteType.PREVOTE, block.hash(), proposer, 1_001, b"\x02" * 64)
    return [
        InStart(1, 999),
        InBuilt(1, 0, block, 1_000),
        InProposal(proposal, block, True, 1_000, own=True),
        InProposal(proposal, block, False, 1_002),
        InVote(vote, 1_003, own=True),
        InVote(vote, 1_004),
        InTimeout(1, 0, Step.PROPOSE, 1_300),
    ]


def test_encode_input_round_trips_every_kind(chain: TestChain) -> None:
    for inp in _inputs(chain):
        assert decode_input(encode_input(inp)) == inp


def test_is_durable_only_for_starts_and_own_messages(chain: TestChain) -> None:
    assert [is_durable(i) for i in _inputs(chain)] == [True, False, True, False, True, False, False]


def test_invalid_record_is_wal_corruption() -> None:
    with pytest.raises(WalCorrupt):
        decode_input(b"\x93not a record")
    with pytest.raises(WalCorrupt, match="unknown kind"):
        decode_input(WalEntry(99, 0, 1, 0, 0, b"", b"", 0).encode())


def test_get_height_inputs_starts_at_the_last_start_of_the_height() -> None:
    inputs = [InStart(1, 0), InTimeout(1, 0, 1, 5), InStart(2, 10), InTimeout(2, 0, 1, 20), InStart(2, 30)]
    assert get_height_inputs(inputs, 2) == [InStart(2, 30)]
    assert get_height_inputs(inputs, 3) == []
    assert WAL_START == 1


def test_fold_wal_gives_the_state_of_applying_the_inputs_one_by_one(chain: TestChain) -> None:
    vset = chain.view().get_validator_set()
    ctx = MachineContext(chain.chain_id, None, TimeoutConfig())
    inputs = [InStart(1, 0), InTimeout(1, 0, Step.PROPOSE, 5_000)]
    state = new_round_state(1, vset)
    for inp in inputs:
        state, _ = apply_input(state, ctx, inp, vset)
    assert state.step == Step.PREVOTE
    assert fold_wal([encode_input(i) for i in inputs], 1, ctx, vset) == state
    assert fold_wal([encode_input(i) for i in inputs], 2, ctx, vset) is None
