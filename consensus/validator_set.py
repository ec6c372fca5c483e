"""The validator set of a height and its weighted round-robin proposer selection.

Proposer selection follows CometBFT's proposer-priority algorithm, in integers
only. Each step: every validator's priority grows by its voting power, the one
with the highest priority proposes (ties go to the lowest address), and the
proposer's priority drops by the total power. Before each step the spread of
priorities is bounded (to twice the total power, by an integer division) and
re-centred on zero, so nobody accumulates an unbounded lead. Over many steps a
validator proposes in proportion to its power, and nobody can grind the order.

Representation: the priorities stored in a set are those *after* the step that
chose the round-0 proposer of its height and *before* that proposer is charged
the total power, so ``get_proposer()`` is simply the highest priority. Advancing
one step (to the next round, or to the next height) charges the current
proposer, bounds and re-centres, then adds every validator's power; the
sequence of proposers is exactly CometBFT's.

A validator joining at an epoch boundary starts behind: its priority is
``-(1.125 × total power)``, as in CometBFT, so joining (or leaving and
re-joining) can never jump the queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from consensus.codec import Encodable, Raw, pack_raw
from consensus.crypto import ADDRESS_LEN, PUBKEY_LEN
from consensus.errors import ConsensusError, DecodeError
from consensus.hashing import hash32

#: Bound on the total voting power, as in CometBFT (int64 max / 8): priorities
#: stay far from the 64-bit edge even after the 1.125 × total start-behind.
MAX_TOTAL_VOTING_POWER: Final = ((1 << 63) - 1) // 8
#: Priorities are bounded to within this many times the total power of each other.
PRIORITY_WINDOW_SIZE_FACTOR: Final = 2
#: Highest round of a height. Finding a round's proposer costs one step per round,
#: so rounds are capped to keep a forged "round 2^31" message from costing hours.
#: With timeouts growing each round, a height stalled for 10,000 rounds has been
#: stuck for months (devnet timeouts: about 290 days).
MAX_ROUND: Final = 10_000
INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1


class ValidatorSetError(ConsensusError):
    """A validator set or a change to it is malformed."""


@dataclass(frozen=True, slots=True)
class ValidatorInfo(Encodable):
    """One member of a validator set."""

    address: bytes
    """20-byte address the validator signs votes under."""
    pubkey: bytes
    """32-byte Ed25519 consensus public key."""
    power: int
    """Voting power (positive; derived from stake and verified compute by the state)."""
    proposer_priority: int = 0
    """Proposer priority (see the module docstring for when it is sampled)."""


def _div_trunc(a: int, b: int) -> int:
    """Integer division rounding toward zero (Go's, which CometBFT's rescaling uses)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _clip64(value: int) -> int:
    return INT64_MIN if value < INT64_MIN else INT64_MAX if value > INT64_MAX else value


def _argmax(priorities: Sequence[int]) -> int:
    """Index of the highest priority; on a tie, the lowest index (= lowest address)."""
    best = 0
    for i in range(1, len(priorities)):
        if priorities[i] > priorities[best]:
            best = i
    return best


def _rescale_and_centre(priorities: list[int], total: int) -> None:
    """Bound the spread of priorities to the window, then shift their mean to zero."""
    diff_max = PRIORITY_WINDOW_SIZE_FACTOR * total
    diff = max(priorities) - min(priorities)
    if diff > diff_max:
        ratio = (diff + diff_max - 1) // diff_max
        for i, p in enumerate(priorities):
            priorities[i] = _div_trunc(p, ratio)
    # Floor division, as CometBFT's big.Int average (Euclidean, positive divisor).
    avg = sum(priorities) // len(priorities)
    for i, p in enumerate(priorities):
        priorities[i] = _clip64(p - avg)


def _step(priorities: list[int], powers: Sequence[int], total: int) -> None:
    """Advance one proposer step in place: charge the proposer, bound, add powers."""
    chosen = _argmax(priorities)
    priorities[chosen] = _clip64(priorities[chosen] - total)
    _rescale_and_centre(priorities, total)
    for i, p in enumerate(powers):
        priorities[i] = _clip64(priorities[i] + p)


# Not slots: the address index and total power are cached on the instance, since
# quorum checks ask for them on every vote. They are derived, never encoded.
@dataclass(frozen=True)
class ValidatorSet(Encodable):
    """The validators of one height, sorted by address, with proposer priorities."""

    validators: tuple[ValidatorInfo, ...]
    """Members in ascending address order; every power positive."""
    _index: dict[bytes, int] = field(init=False, repr=False, compare=False)
    _total: int = field(init=False, repr=False, compare=False)
    # Proposer index of each round computed so far, and the priorities after the last one.
    _round_proposers: list[int] = field(init=False, repr=False, compare=False)
    _round_priorities: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.validators:
            raise ValidatorSetError("a validator set needs at least one validator")
        index: dict[bytes, int] = {}
        total = 0
        previous = b""
        for i, v in enumerate(self.validators):
            if len(v.address) != ADDRESS_LEN or len(v.pubkey) != PUBKEY_LEN:
                raise ValidatorSetError(
                    f"validator {v.address.hex()}: address must be {ADDRESS_LEN} bytes "
                    f"and public key {PUBKEY_LEN} bytes"
                )
            if v.address <= previous:
                raise ValidatorSetError("validators must be sorted by address without duplicates")
            if v.power <= 0:
                raise ValidatorSetError(f"validator {v.address.hex()}: power must be positive")
            if not INT64_MIN <= v.proposer_priority <= INT64_MAX:
                raise ValidatorSetError(f"validator {v.address.hex()}: priority out of range")
            previous = v.address
            index[v.address] = i
            total += v.power
        if total > MAX_TOTAL_VOTING_POWER:
            raise ValidatorSetError(
                f"total voting power {total} exceeds the maximum {MAX_TOTAL_VOTING_POWER}"
            )
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_total", total)
        priorities = [v.proposer_priority for v in self.validators]
        object.__setattr__(self, "_round_proposers", [_argmax(priorities)])
        object.__setattr__(self, "_round_priorities", priorities)

    # Encodable walks dataclass fields; only ``validators`` is part of the encoding.
    def to_raw(self) -> Raw:
        """Return the raw array form (the validators only)."""
        return [[v.to_raw() for v in self.validators]]

    @classmethod
    def from_raw(cls, raw: Raw) -> ValidatorSet:
        """Build a set from its raw array form."""
        if type(raw) is not list or len(raw) != 1 or type(raw[0]) is not list:
            raise DecodeError("ValidatorSet: expected an array holding the validators array")
        try:
            return cls(tuple(ValidatorInfo.from_raw(v) for v in raw[0]))
        except ValidatorSetError as exc:
            raise DecodeError(f"ValidatorSet: {exc}") from exc

    @property
    def total_power(self) -> int:
        """Sum of all voting powers."""
        return self._total

    def __len__(self) -> int:
        return len(self.validators)

    def get_by_address(self, address: bytes) -> ValidatorInfo | None:
        """Return the member with ``address``, or None."""
        i = self._index.get(address)
        return None if i is None else self.validators[i]

    def has_two_thirds(self, power: int) -> bool:
        """Return True when ``power`` is more than two thirds of the total."""
        return power * 3 > self._total * 2

    def has_one_third(self, power: int) -> bool:
        """Return True when ``power`` is more than one third of the total (one honest at least)."""
        return power * 3 > self._total

    def get_proposer(self) -> ValidatorInfo:
        """Return the proposer of round 0 at this set's height."""
        return self.validators[_argmax([v.proposer_priority for v in self.validators])]

    def increment_proposer_priority(self, times: int = 1) -> ValidatorSet:
        """Return the set advanced ``times`` proposer steps (rounds, or heights)."""
        if times < 0:
            raise ValidatorSetError("cannot move proposer priorities backwards")
        if times == 0:
            return self
        priorities = [v.proposer_priority for v in self.validators]
        powers = [v.power for v in self.validators]
        for _ in range(times):
            _step(priorities, powers, self._total)
        return ValidatorSet(
            tuple(
                ValidatorInfo(v.address, v.pubkey, v.power, p)
                for v, p in zip(self.validators, priorities, strict=True)
            )
        )

    def compute_proposer(self, round_: int) -> ValidatorInfo:
        """Return the proposer of ``round_`` (0 to MAX_ROUND) at this set's height.

        The entry returned is the member as listed in this set (round-0 priority). Rounds already asked for are remembered, so walking a height's rounds
        one by one costs one step each.
        """
        if not 0 <= round_ <= MAX_ROUND:
            raise ValidatorSetError(f"round {round_} is outside [0, {MAX_ROUND}]")
        proposers = self._round_proposers
        if round_ >= len(proposers):
            priorities = self._round_priorities
            powers = [v.power for v in self.validators]
            while len(proposers) <= round_:
                _step(priorities, powers, self._total)
                proposers.append(_argmax(priorities))
        return self.validators[proposers[round_]]

    def hash(self) -> bytes:
        """Return SHA-256 of the canonical encoding of (address, pubkey, power) per member.

        Priorities are left out, as in CometBFT: they are derived from the
        history of the set, change every height, and are not what a block commits to.
        """
        return hash32(pack_raw([[v.address, v.pubkey, v.power] for v in self.validators]))


def compute_genesis_validator_set(entries: Iterable[tuple[bytes, bytes, int]]) -> ValidatorSet:
    """Return the set of height 1 from ``(address, pubkey, power)`` entries (power > 0)."""
    rows = sorted(entries, key=lambda e: e[0])
    for a, b in zip(rows, rows[1:], strict=False):
        if a[0] == b[0]:
            raise ValidatorSetError(f"duplicate validator {a[0].hex()} in genesis")
    # From all-zero priorities, the first step only adds each validator's power.
    return ValidatorSet(tuple(ValidatorInfo(a, pk, p, p) for a, pk, p in rows))


def compute_next_validator_set(
    current: ValidatorSet, new_entries: Sequence[tuple[bytes, bytes, int]]
) -> ValidatorSet:
    """Return the set of the next height: apply ``new_entries``, then advance one step.

    ``new_entries`` is a change set of ``(address, pubkey, power)``: a listed
    validator already in the set takes the new power (and key) and keeps its
    priority; power 0 removes it; an unlisted member stays as it is; a new
    address joins behind everyone (priority ``-(1.125 × total)``). Call it once
    per committed height, with an empty list between epoch boundaries (it then
    only advances the priorities).
    """
    seen: set[bytes] = set()
    for address, pubkey, power in new_entries:
        if address in seen:
            raise ValidatorSetError(f"validator {address.hex()} listed twice in one update")
        seen.add(address)
        if power < 0:
            raise ValidatorSetError(f"validator {address.hex()}: negative power {power}")
        if power == 0 and current.get_by_address(address) is None:
            raise ValidatorSetError(f"cannot remove {address.hex()}: not in the validator set")
        if len(address) != ADDRESS_LEN or len(pubkey) != PUBKEY_LEN:
            raise ValidatorSetError(f"validator {address.hex()}: malformed address or key")
    # Charge the proposer of the finished height its total, as CometBFT did when choosing it.
    priorities = [v.proposer_priority for v in current.validators]
    chosen = _argmax(priorities)
    priorities[chosen] = _clip64(priorities[chosen] - current.total_power)
    # address -> (pubkey, power, priority)
    rows: dict[bytes, tuple[bytes, int, int]] = {
        v.address: (v.pubkey, v.power, p)
        for v, p in zip(current.validators, priorities, strict=True)
    }
    updates = {a: (pk, p) for a, pk, p in new_entries}
    # CometBFT sizes the start-behind penalty by the total after updates, before removals.
    tvp_before_removals = 0
    for address, (_, power, _) in rows.items():
        upd = updates.get(address)
        tvp_before_removals += power if upd is None or upd[1] == 0 else upd[1]
    for address, (_, p) in updates.items():
        if address not in rows:
            tvp_before_removals += p
    start_behind = _clip64(-(tvp_before_removals + (tvp_before_removals >> 3)))
    for address in sorted(updates):
        pk, p = updates[address]
        if p == 0:
            del rows[address]
        elif address in rows:
            rows[address] = (pk, p, rows[address][2])
        else:
            rows[address] = (pk, p, start_behind)
    if not rows:
        raise ValidatorSetError("the update would leave the validator set empty")
    ordered = sorted(rows)
    powers = [rows[a][1] for a in ordered]
    total = sum(powers)
    if total > MAX_TOTAL_VOTING_POWER:
        raise ValidatorSetError(f"total voting power {total} exceeds the maximum")
    new_priorities = [rows[a][2] for a in ordered]
    _rescale_and_centre(new_priorities, total)
    for i, p in enumerate(powers):
        new_priorities[i] = _clip64(new_priorities[i] + p)
    return ValidatorSet(
        tuple(
            ValidatorInfo(a, rows[a][0], powers[i], new_priorities[i])
            for i, a in enumerate(ordered)
        )
    )
