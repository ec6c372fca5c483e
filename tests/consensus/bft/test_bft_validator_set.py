"""Validator sets: canonical form, weighted round-robin proposer selection, epoch updates."""

from __future__ import annotations

import pytest

from consensus.crypto import PrivateKey
from consensus.errors import DecodeError
from consensus.hashing import hash32
from consensus.validator_set import (
    MAX_TOTAL_VOTING_POWER,
    ValidatorInfo,
    ValidatorSet,
    ValidatorSetError,
    compute_genesis_validator_set,
    compute_next_validator_set,
)

KEYS = [PrivateKey.from_seed(hash32(b"valset-unit-%d" % i)) for i in range(4)]


def make_valset(powers: tuple[int, ...]) -> ValidatorSet:
    return compute_genesis_validator_set(
        [(k.address(), k.public_key.raw, p) for k, p in zip(KEYS, powers, strict=False)]
    )


def test_genesis_set_is_sorted_by_address_with_priorities_equal_to_power() -> None:
    entries = [(k.address(), k.public_key.raw, p) for k, p in zip(KEYS, (5, 1, 9, 3), strict=False)]
    vs = compute_genesis_validator_set(reversed(entries))
    addresses = [v.address for v in vs.validators]
    assert addresses == sorted(addresses)
    assert all(v.proposer_priority == v.power for v in vs.validators)
    assert vs.total_power == 18
    assert vs.get_proposer().power == 9


def test_proposer_tie_goes_to_the_lowest_address() -> None:
    vs = make_valset((7, 7, 7, 7))
    assert vs.get_proposer().address == min(v.address for v in vs.validators)


def test_each_window_of_total_power_heights_gives_each_its_power() -> None:
    vs = make_valset((1, 2, 3, 4))
    counts: dict[bytes, int] = {}
    for _ in range(vs.total_power):
        a = vs.get_proposer().address
        counts[a] = counts.get(a, 0) + 1
        vs = compute_next_validator_set(vs, [])
    assert {vs.get_by_address(a).power: c for a, c in counts.items()} == {1: 1, 2: 2, 3: 3, 4: 4}  # type: ignore[union-attr]


def test_round_r_proposer_is_r_steps_ahead() -> None:
    vs = make_valset((3, 1, 4, 1, 5))
    for r in range(12):
        assert (
            vs.compute_proposer(r).address
            == vs.increment_proposer_priority(r).get_proposer().address
        )
    # The next height's round 0 is one step on, like this height's round 1.
    nxt = compute_next_validator_set(vs, [])
    assert nxt.get_proposer().address == vs.compute_proposer(1).address
    assert nxt == vs.increment_proposer_priority(1)


def test_priority_spread_stays_bounded_with_extreme_powers() -> None:
    vs = make_valset((1, 10**9, 3, 10**6))
    for _ in range(500):
        vs = compute_next_validator_set(vs, [])
        prios = [v.proposer_priority for v in vs.validators]
        # Bounded to the window (2 x total) before the powers are added.
        assert max(prios) - min(prios) <= 3 * vs.total_power


def test_hash_covers_members_and_power_not_priorities() -> None:
    vs = make_valset((1, 2, 3, 4))
    assert vs.hash() == vs.increment_proposer_priority(3).hash()
    assert vs.hash() != make_valset((1, 2, 3, 5)).hash()
    assert len(vs.hash()) == 32


def test_encoding_round_trips() -> None:
    vs = make_valset((1, 2, 3, 4)).increment_proposer_priority(5)
    assert ValidatorSet.decode(vs.encode()) == vs
    assert ValidatorSet.decode(vs.encode()).get_proposer() == vs.get_proposer()


def test_update_keeps_priorities_changes_power_and_removes() -> None:
    vs = make_valset((10, 20, 30, 40))
    a, b = vs.validators[0], vs.validators[1]
    nxt = compute_next_validator_set(vs, [(a.address, a.pubkey, 50), (b.address, b.pubkey, 0)])
    assert nxt.get_by_address(b.address) is None
    assert nxt.get_by_address(a.address).power == 50  # type: ignore[union-attr]
    assert nxt.total_power == 50 + 30 + 40


def test_newcomer_starts_at_minus_one_and_an_eighth_total_before_the_step() -> None:
    vs = make_valset((10, 10, 10, 10))
    newcomer = (hash32(b"n")[:20], hash32(b"nk"), 10)
    nxt = compute_next_validator_set(vs, [newcomer])
    joined = nxt.get_by_address(newcomer[0])
    assert joined is not None
    others = [v.proposer_priority for v in nxt.validators if v.address != newcomer[0]]
    assert joined.proposer_priority < min(others)
    # It proposes only after every incumbent had its turn, but then within two cycles.
    seen = []
    for _ in range(10):
        seen.append(nxt.get_proposer().address)
        nxt = compute_next_validator_set(nxt, [])
    first = seen.index(newcomer[0])
    assert first >= 4
    assert {v.address for v in vs.validators} <= set(seen[:first])


@pytest.mark.parametrize(
    "validators",
    [
        (),
        (ValidatorInfo(b"\x02" * 20, b"k" * 32, 1), ValidatorInfo(b"\x01" * 20, b"k" * 32, 1)),
        (ValidatorInfo(b"\x01" * 20, b"k" * 32, 1), ValidatorInfo(b"\x01" * 20, b"k" * 32, 1)),
        (ValidatorInfo(b"\x01" * 20, b"k" * 32, 0),),
        (ValidatorInfo(b"\x01" * 19, b"k" * 32, 1),),
        (ValidatorInfo(b"\x01" * 20, b"k" * 32, MAX_TOTAL_VOTING_POWER + 1),),
    ],
    ids=["empty", "unsorted", "duplicate", "zero-power", "short-address", "too-much-power"],
)
def test_invalid_sets_are_refused(validators: tuple[ValidatorInfo, ...]) -> None:
    with pytest.raises(ValidatorSetError):
        ValidatorSet(validators)


def test_invalid_decode_of_a_malformed_set_raises_decode_error() -> None:
    bad = (
        ValidatorSet((ValidatorInfo(b"\x01" * 20, b"k" * 32, 1),))
        .encode()
        .replace(b"\x01" * 20, b"\x01" * 19 + b"\x02")
    )
    assert ValidatorSet.decode(bad).validators[0].address.endswith(b"\x02")
    with pytest.raises(DecodeError):
        ValidatorSet.decode(b"\x91\x90")  # no validators


@pytest.mark.parametrize(
    "update",
    [
        [(hash32(b"unknown")[:20], hash32(b"k"), 0)],
        [
            (KEYS[0].address(), KEYS[0].public_key.raw, 5),
            (KEYS[0].address(), KEYS[0].public_key.raw, 6),
        ],
        [(KEYS[0].address(), KEYS[0].public_key.raw, -1)],
        [(k.address(), k.public_key.raw, 0) for k in KEYS[:4]],
    ],
    ids=["remove-unknown", "listed-twice", "negative", "remove-all"],
)
def test_invalid_updates_are_refused(update: list[tuple[bytes, bytes, int]]) -> None:
    with pytest.raises(ValidatorSetError):
        compute_next_validator_set(make_valset((1, 2, 3, 4)), update)


def test_proposer_of_far_rounds_is_bounded_and_remembered() -> None:
    from consensus.validator_set import MAX_ROUND

    vs = make_valset((3, 5, 7, 11))
    walked = [vs.compute_proposer(r).address for r in range(50)]
    assert walked == [vs.increment_proposer_priority(r).get_proposer().address for r in range(50)]
    far = vs.increment_proposer_priority(MAX_ROUND).get_proposer()
    assert vs.compute_proposer(MAX_ROUND).address == far.address
    with pytest.raises(ValidatorSetError):
        vs.compute_proposer(MAX_ROUND + 1)
    with pytest.raises(ValidatorSetError):
        vs.compute_proposer(-1)
