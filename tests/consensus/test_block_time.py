"""BFT time: the weighted median of a commit's timestamps, its bound under byzantine signers, and the rule."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.block_time import compute_block_time, compute_median_time, compute_vote_time
from consensus.blocks import MAX_BLOCK_TIME_MS, Block
from consensus.errors import InvalidBlock
from consensus.state import State
from consensus.transition import state_transition, validate_block
from consensus.validator_set import compute_genesis_validator_set
from consensus.votes import Commit, CommitSig
from tests.kit.chain import TestChain

HOUR_MS = 3_600_000


def _set(powers: list[int]):  # type: ignore[no-untyped-def]
    return compute_genesis_validator_set(
        (bytes([i + 1]) * 20, bytes([i + 1]) * 32, p) for i, p in enumerate(powers)
    )


def _commit(times: dict[int, int]) -> Commit:
    sigs = tuple(CommitSig(bytes([i + 1]) * 20, t, bytes(64)) for i, t in sorted(times.items()))
    return Commit(5, 0, b"\x01" * 32, sigs)


def test_compute_median_time_weights_by_power() -> None:
    vset = _set([1, 1, 1, 10])
    # The heavy validator alone holds more than half: its time is the median.
    assert compute_median_time(_commit({0: 100, 1: 200, 2: 300, 3: 50}), vset) == 50
    vset = _set([1, 1, 1, 1])
    assert compute_median_time(_commit({0: 100, 1: 200, 2: 300, 3: 400}), vset) in (200, 300)


def test_compute_median_time_ignores_unknown_signers() -> None:
    vset = _set([1, 1, 1])
    commit = Commit(5, 0, b"\x01" * 32, (
        CommitSig(bytes([1]) * 20, 100, bytes(64)),
        CommitSig(bytes([2]) * 20, 110, bytes(64)),
        CommitSig(bytes([9]) * 20, 10**12, bytes(64)),
    ))
    assert compute_median_time(commit, vset) in (100, 110)


def test_invalid_median_time_without_power() -> None:
    with pytest.raises(InvalidBlock, match="no voting power"):
        compute_median_time(_commit({5: 100}), _set([1, 1]))


def test_compute_block_time_first_block_follows_genesis() -> None:
    assert compute_block_time(None, None, 1_000) == 1_001
    with pytest.raises(InvalidBlock):
        compute_block_time(_commit({0: 5}), None, 1_000)


def test_compute_vote_time_is_after_the_block() -> None:
    assert compute_vote_time(500, 1_000) == 1_001
    assert compute_vote_time(5_000, 1_000) == 5_000


@settings(max_examples=300, deadline=None)
@given(
    honest=st.lists(st.tuples(st.integers(1, 100), st.integers(0, 10**6)), min_size=1, max_size=12),
    byzantine=st.lists(st.tuples(st.integers(1, 100), st.integers(0, 2**62 - 1)), max_size=12),
)
def test_median_time_stays_within_honest_clocks(
    honest: list[tuple[int, int]], byzantine: list[tuple[int, int]]
) -> None:
    """Byzantine signers under 1/3 of the power cannot move the time outside the honest range."""
    honest_power = sum(p for p, _ in honest)
    byz_power = sum(p for p, _ in byzantine)
    if 3 * byz_power >= honest_power + byz_power:
        byzantine = []  # outside the model (f < 1/3): no claim is made
    powers = [p for p, _ in honest] + [p for p, _ in byzantine]
    times = [t for _, t in honest] + [t for _, t in byzantine]
    vset = _set(powers)
    median = compute_median_time(_commit(dict(enumerate(times))), vset)
    honest_times = [t for _, t in honest]
    assert min(honest_times) <= median <= max(honest_times)


# -- the rule: validate_block ----------------------------------------------------------


def _redated(block: Block, time_ms: int) -> Block:
    return dataclasses.replace(block, header=dataclasses.replace(block.header, time_ms=time_ms))


def _validate(chain: TestChain, block: Block) -> None:
    validate_block(State(chain.state), block, chain.chain_id)


@pytest.fixture
def chain() -> TestChain:
    # Powers 1000, 1414, 1732, 2000 of 6146: validator 3 alone holds less than 1/3.
    c = TestChain(n_validators=4)
    c.next_block()
    c.next_block(time_step_ms=2_500)
    return c


def test_test_chain_blocks_carry_the_bft_time(chain: TestChain) -> None:
    assert chain.blocks[0].header.time_ms == chain.genesis_time_ms + 1
    assert chain.blocks[1].header.time_ms == chain.blocks[0].header.time_ms + 2_500
    block = chain.build_block(time_step_ms=7_000)
    assert block.header.time_ms == chain.time_ms + 7_000
    _validate(chain, block)


def test_invalid_block_time_other_than_the_median(chain: TestChain) -> None:
    """A proposer cannot pick the time: one millisecond either way is invalid, an hour ahead too."""
    block = chain.build_block()
    for time_ms in (block.header.time_ms - 1, block.header.time_ms + 1, block.header.time_ms + HOUR_MS):
        with pytest.raises(InvalidBlock, match="not the BFT time"):
            _validate(chain, _redated(block, time_ms))


def test_invalid_block_time_past_year_9999(chain: TestChain) -> None:
    block = chain.build_block()
    for time_ms in (MAX_BLOCK_TIME_MS + 1, 2**64 - 1):
        with pytest.raises(InvalidBlock, match="last representable"):
            _validate(chain, _redated(block, time_ms))


def test_warped_blocks_are_never_committed(chain: TestChain) -> None:
    """A block dated an hour ahead, or at 2^64-1, does not execute; the honest one after it does."""
    block = chain.build_block()
    head = chain.view().get_head()
    for time_ms in (block.header.time_ms + HOUR_MS, 2**64 - 1):
        with pytest.raises(InvalidBlock):
            chain.apply(_redated(block, time_ms))
        assert chain.view().get_head() == head
    chain.apply(block)
    assert chain.view().get_head().time_ms == block.header.time_ms


def test_invalid_first_block_not_dated_genesis_plus_one() -> None:
    chain = TestChain(n_validators=4)
    block = chain.build_block(time_step_ms=5_000)
    assert block.header.time_ms == chain.genesis_time_ms + 1
    _validate(chain, block)
    with pytest.raises(InvalidBlock, match="not the BFT time"):
        _validate(chain, _redated(block, chain.genesis_time_ms + 5_000))


def test_block_time_is_the_power_weighted_median_of_the_last_commit(chain: TestChain) -> None:
    t = chain.time_ms
    # Sorted by time: powers 1000, 1414 (2414 <= 3073, half of 6146), then 1732 reaches past half.
    chain.last_commit = chain.sign_commit(chain.blocks[-1], times={0: t + 10, 1: t + 20, 2: t + 30, 3: t + 40})
    block = chain.build_block()
    assert block.header.time_ms == t + 30
    _validate(chain, block)
    with pytest.raises(InvalidBlock, match="not the BFT time"):
        _validate(chain, _redated(block, t + 40))


@pytest.mark.parametrize("byzantine_ms", [0, 2**62 - 1])
def test_byzantine_precommit_time_cannot_move_the_block_time(chain: TestChain, byzantine_ms: int) -> None:
    """Validator 3 (under 1/3) stamps its precommit at 0 or at the last timestamp: the median stays honest.

    Such a precommit is not refused: the commit stays valid (see consensus/block_time.py for why).
    """
    t = chain.time_ms
    honest = {0: t + 1_000, 1: t + 1_100, 2: t + 1_200}
    chain.last_commit = chain.sign_commit(chain.blocks[-1], times={**honest, 3: byzantine_ms})
    block = chain.build_block()
    assert min(honest.values()) <= block.header.time_ms <= max(honest.values())
    chain.apply(block)


def test_invalid_block_when_the_commit_median_is_not_after_the_parent(chain: TestChain) -> None:
    """Only signers holding half of a commit (1/3 of the power or more) can date it at or before the parent."""
    t = chain.time_ms
    chain.last_commit = chain.sign_commit(chain.blocks[-1], times={0: t + 5, 1: t, 2: t - 7, 3: t - 9})
    block = chain.build_block()
    assert block.header.time_ms <= t
    with pytest.raises(InvalidBlock, match="not after the head"):
        state_transition(chain.state, block)
