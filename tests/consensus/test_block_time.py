"""BFT time: the weighted median of a commit's timestamps, and its bound under byzantine signers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.block_time import compute_block_time, compute_median_time, compute_vote_time
from consensus.errors import InvalidBlock
from consensus.validator_set import compute_genesis_validator_set
from consensus.votes import Commit, CommitSig


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
