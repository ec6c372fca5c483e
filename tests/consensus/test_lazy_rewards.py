"""Lazy (F1) delegator rewards against the per-block reference, slashing by the unbonding index.

The reference is the algorithm the chain ran before lazy rewards: every block
pays each delegation ``rest * amount // stake`` and the dust to the operator.
The lazy accounting pays on withdrawal or change instead. Bounds, with
``I_d`` the exact rational reward of delegation d, ``N_d`` the blocks that
rewarded it, ``K_d`` its settlements and ``K`` all settlements:

- per-block reference: ``I_d - N_d < R_d <= I_d`` (one floor per block);
- lazy: ``I_d - K_d - 1 <= L_d <= I_d + K + 1`` (one floor per settlement, the
  ratio's own floor below 1 unit in total while ``N_d * amount < 10^18``;
  the upper slack is the tracked dust a sole remaining delegation sweeps);
- conservation, exactly: paid + outstanding pool == allocated, and the pool
  always covers every pending reward;
- when every allocation divides evenly, lazy == reference to the unit.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.hashing import tagged_hash
from consensus.incentives import pay_validator_reward
from consensus.params import BPS
from consensus.records import NO_ADDRESS, Fault
from consensus.staking import (
    compute_pending_rewards,
    process_begin_unbonding,
    process_bond,
    process_matured_unbondings,
    process_settle_rewards,
    process_slash,
)
from consensus.state import DictStateReader, State
from consensus.txs import Delegate, Undelegate, WithdrawRewards
from tests.kit.chain import TestChain

DELEGATORS = [bytes([0xD0 + i]) * 20 for i in range(5)]


class Reference:
    """Today's per-block payment: each block pays every delegation pro rata."""

    def __init__(self) -> None:
        self.amounts: dict[tuple[bytes, bytes], int] = {}
        self.paid: dict[bytes, int] = {}
        self.exact: dict[bytes, Fraction] = {}
        self.blocks: dict[bytes, int] = {}
        self.entries: list[list[int | bytes]] = []  # [validator, creation, amount]

    def stake(self, validator: bytes) -> int:
        return sum(a for (v, _), a in self.amounts.items() if v == validator)

    def pay(self, validator: bytes, operator: bytes, amount: int, commission_bps: int) -> None:
        commission = amount * commission_bps // BPS
        rest = amount - commission
        stake = self.stake(validator)
        paid = 0
        for (v, d), a in sorted(self.amounts.items()):
            if v != validator or a == 0 or stake == 0:
                continue
            share = rest * a // stake
            self.paid[d] = self.paid.get(d, 0) + share
            self.exact[d] = self.exact.get(d, Fraction(0)) + Fraction(rest * a, stake)
            self.blocks[d] = self.blocks.get(d, 0) + 1
            paid += share
        self.paid[operator] = self.paid.get(operator, 0) + commission + rest - paid

    def slash(self, validator: bytes, bps: int, infraction: int) -> None:
        for key, a in self.amounts.items():
            if key[0] == validator:
                self.amounts[key] = a - a * bps // BPS
        for e in self.entries:
            if e[0] == validator and int(e[1]) > infraction:  # type: ignore[arg-type]
                e[2] = int(e[2]) - int(e[2]) * bps // BPS  # type: ignore[call-overload]


op_strategy = st.tuples(
    st.sampled_from(["block", "block", "block", "delegate", "undelegate", "withdraw", "slash"]),
    st.integers(0, 1),  # validator
    st.integers(0, len(DELEGATORS) - 1),  # delegator
    st.integers(1, 10**9),  # amount
)


def run_model(ops: list[tuple[str, int, int, int]], *, even: bool) -> None:
    chain = TestChain(n_validators=2, stakes=[30_000, 50_000], params={"unbonding_blocks": 5})
    state = State(DictStateReader(dict(chain.state.data)))
    params = state.get_params()
    operators = [k.address() for k in chain.operator_keys]
    ref = Reference()
    for op in operators:
        ref.amounts[(op, op)] = state.get_validator(op).stake  # type: ignore[union-attr]
    start = {a: state.get_account(a).balance for a in DELEGATORS + operators}
    returned = {a: 0 for a in DELEGATORS + operators}
    settlements = {a: 0 for a in DELEGATORS}
    allocated = 0
    commissions = {a: 0 for a in operators}
    height = 0
    for kind, vi, di, amount in ops:
        height += 1
        validator_address = operators[vi]
        v = state.get_validator(validator_address)
        assert v is not None
        delegator = DELEGATORS[di]
        key = (validator_address, delegator)
        if kind == "block":
            # Evenly: the delegators' part (95% after commission) is a multiple of the stake.
            reward = v.stake * BPS * (amount % 7 + 1) if even else amount
            pay_validator_reward(state, v, reward)
            ref.pay(validator_address, validator_address, reward, v.commission_bps)
            commission = reward * v.commission_bps // BPS
            commissions[validator_address] += commission
            if v.stake > 0:
                allocated += reward - commission
            else:
                commissions[validator_address] += reward - commission
        elif kind == "delegate":
            had = state.get_delegation(validator_address, delegator) is not None
            process_bond(state, v, delegator, amount)
            ref.amounts[key] = ref.amounts.get(key, 0) + amount
            settlements[delegator] += had
        elif kind == "undelegate":
            d = state.get_delegation(validator_address, delegator)
            if d is None:
                continue
            part = min(d.amount, amount)
            process_begin_unbonding(state, v, delegator, part, height, params)
            ref.amounts[key] -= part
            ref.entries.append([validator_address, height, part])
            settlements[delegator] += 1
        elif kind == "withdraw":
            if state.get_delegation(validator_address, delegator) is not None:
                process_settle_rewards(state, v, delegator)
                settlements[delegator] += 1
        elif kind == "slash":
            bps = amount % 2000 + 1
            infraction = max(0, height - amount % 6)
            process_slash(
                state,
                validator_address=validator_address,
                fault=Fault.DOWNTIME,
                slash_bps=bps,
                infraction_height=infraction,
                evidence_hash=tagged_hash(b"test", height.to_bytes(8, "big")),
                whistleblower=NO_ADDRESS,
                height=height,
                params=params,
            )
            ref.slash(validator_address, bps, infraction)
        for e in process_matured_unbondings(state, height - 5):
            returned[e.delegator] += e.amount
        # Delegations and unbonding entries follow the reference exactly.
        for (va, d), a in ref.amounts.items():
            got = state.get_delegation(va, d)
            assert (0 if got is None else got.amount) == a
        live = sorted((e.validator, e.creation_height, e.amount) for e in state.iter_unbonding())
        indexed = sorted(
            (e.validator, e.creation_height, e.amount) for va in operators for e in state.iter_validator_unbonding(va, -1)
        )
        assert live == indexed
        for va in operators:
            vv = state.get_validator(va)
            assert vv is not None
            pending = sum(compute_pending_rewards(state, d, vv) for d in state.iter_delegations(va))
            assert pending <= state.get_validator_rewards(va).outstanding
    # Withdraw everything; then paid + dust == allocated, exactly.
    for va in operators:
        for d in list(state.iter_delegations(va)):
            vv = state.get_validator(va)
            assert vv is not None
            process_settle_rewards(state, vv, d.delegator)
            if d.delegator in settlements:
                settlements[d.delegator] += 1
    lazy = {a: state.get_account(a).balance - start[a] - returned[a] for a in DELEGATORS}
    dust = sum(state.get_validator_rewards(va).outstanding for va in operators)
    total_settlements = sum(settlements.values()) + len(operators) * (len(ops) + 1)
    # Everything allocated to delegators (operators' own bonds included) was paid or is dust.
    paid_operators = sum(state.get_account(a).balance - start[a] - returned[a] - commissions[a] for a in operators)
    assert sum(lazy.values()) + paid_operators + dust == allocated
    assert 0 <= dust <= total_settlements + 1
    if even:
        assert dust == 0
    for d in DELEGATORS:
        exact = ref.exact.get(d, Fraction(0))
        reference = ref.paid.get(d, 0)
        assert exact - ref.blocks.get(d, 0) < reference <= exact or reference == exact == 0
        assert exact - settlements[d] - 1 <= lazy[d] <= exact + total_settlements + 1
        if even:
            assert lazy[d] == reference, (d.hex(), lazy[d], reference)


@settings(max_examples=60, deadline=None)
@given(st.lists(op_strategy, min_size=1, max_size=60))
def test_lazy_rewards_match_per_block_payment_within_bounds(ops: list[tuple[str, int, int, int]]) -> None:
    run_model(ops, even=False)


@settings(max_examples=30, deadline=None)
@given(st.lists(op_strategy, min_size=1, max_size=60))
def test_lazy_rewards_equal_per_block_payment_when_allocations_divide(ops: list[tuple[str, int, int, int]]) -> None:
    run_model(ops, even=True)


def test_withdraw_rewards_pays_pending_rewards() -> None:
    chain = TestChain(params={"epoch_blocks": 1000})
    chain.next_block()
    delegator = chain.account_keys[0]
    validator = chain.operator_keys[1].address()
    chain.next_block([chain.tx(delegator, Delegate(validator, 50_000))])
    for _ in range(5):
        chain.next_block()
    state = chain.view()
    d = state.get_delegation(validator, delegator.address())
    v = state.get_validator(validator)
    assert d is not None and v is not None
    pending = compute_pending_rewards(state, d, v)
    assert pending > 0
    before = state.get_account(delegator.address()).balance
    # Withdrawing from every validator pays exactly what was pending; the block's own reward accrues after.
    r = chain.next_block([chain.tx(delegator, WithdrawRewards(b""), fee=10)])
    assert r.tx_results[0].code == 0
    after = chain.view()
    assert after.get_account(delegator.address()).balance - before + 10 == pending
    d2 = after.get_delegation(validator, delegator.address())
    v2 = after.get_validator(validator)
    assert d2 is not None and v2 is not None
    assert 0 < compute_pending_rewards(after, d2, v2) < pending
    # One validator, by address; refused without a delegation or for an unknown validator.
    r = chain.next_block([
        chain.tx(delegator, WithdrawRewards(validator)),
        chain.tx(delegator, WithdrawRewards(chain.operator_keys[2].address())),
        chain.tx(delegator, WithdrawRewards(b"\x01" * 20)),
    ])
    assert [t.code for t in r.tx_results][0] == 0
    assert r.tx_results[1].log.startswith("InsufficientBond")
    assert r.tx_results[2].log.startswith("UnknownValidator")
    # Undelegating everything settles the rewards; the delegation and its index go away.
    chain.next_block([chain.tx(delegator, Undelegate(validator, 50_000))])
    final = chain.view()
    assert final.get_delegation(validator, delegator.address()) is None
    assert list(final.iter_delegated_validators(delegator.address())) == []


class CountingReader(DictStateReader):
    """Counts the records a block reads from committed state (gets and scanned keys)."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        super().__init__(data)
        self.reads = 0
        self.by_prefix: dict[bytes, list[bytes]] = {}

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)

    def iter_prefix(self, prefix: bytes):  # type: ignore[no-untyped-def]
        for item in super().iter_prefix(prefix):
            self.reads += 1
            yield item


def _block_reads(delegations: int, unbondings: int) -> tuple[int, int]:
    """Reads and writes of a few empty blocks and a downtime slash, with extra delegations and entries."""
    chain = TestChain(params={"epoch_blocks": 1000, "unbonding_blocks": 1000})
    state = State(chain.state)
    params = state.get_params()
    ops = [k.address() for k in chain.operator_keys]
    for i in range(delegations):
        v = state.get_validator(ops[i % 3])
        assert v is not None
        process_bond(state, v, (0xDE000000 + i).to_bytes(20, "big"), 1_000)
    for i in range(unbondings):
        v = state.get_validator(ops[i % 3])
        assert v is not None
        delegator = (0xDE000000 + i).to_bytes(20, "big")
        process_begin_unbonding(state, v, delegator, 500, 0, params)
    chain.state.apply(state.changes())
    counting = CountingReader(chain.state.data)
    chain.state = counting
    chain.next_block()
    counting.reads = 0
    writes = 0
    for _ in range(3):
        writes += len(chain.next_block().changes)
    # Slash validator 3 (no extra delegations or entries of its own).
    st = State(counting)
    process_slash(
        st, validator_address=ops[3], fault=Fault.DOWNTIME, slash_bps=100, infraction_height=0,
        evidence_hash=b"\x00" * 32, whistleblower=NO_ADDRESS, height=chain.height, params=params,
    )
    writes += len(st.changes())
    return counting.reads, writes


def test_block_and_slash_cost_independent_of_delegations() -> None:
    """Blocks and a slash of an uninvolved validator cost the same reads and writes with 1,000 or 4,000 delegations.

    (A few more than with none: the first unbonding entry the maturity check
    reads, and the like; a constant.)
    """
    none = _block_reads(0, 0)
    small = _block_reads(1_000, 1_000)
    big = _block_reads(4_000, 4_000)
    assert big == small, (small, big)
    assert small[0] <= none[0] + 10 and small[1] == none[1], (none, small)


def test_bench_empty_block_time_flat() -> None:
    """A small run of the bench figure: 5,000 delegations cost an empty block under 2x of none.

    Wall-clock on a shared machine: the median of 30 blocks, best of three tries.
    """
    from bench.incentives import time_empty_blocks

    def median(count: int) -> float:
        times = sorted(time_empty_blocks(count, 30))
        return times[len(times) // 2]

    ratios = []
    for _ in range(3):
        empty, loaded = median(0), median(5_000)
        ratios.append(loaded / empty)
        print(f"empty block median: {empty * 1e3:.2f} ms without, {loaded * 1e3:.2f} ms with 5,000 delegations")
        if loaded < 2 * empty:
            break
    assert min(ratios) < 2, ratios
