"""Property tests: supply, balances, bonded totals and power after random transaction sequences."""

from __future__ import annotations

from math import isqrt

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.crypto import Domain
from consensus.evidence import compute_duplicate_vote_evidence, encode_evidence
from consensus.hashing import hash32
from consensus.jobs.store import get_total_escrow
from consensus.records import (
    Account,
    ComputeNFT,
    Delegation,
    HardwareSpec,
    UnbondingEntry,
    ValidatorRewards,
)
from consensus.staking import compute_pending_rewards, compute_voting_power, get_validator_compute
from consensus.state import Keys, State
from consensus.txs import (
    AcceptNFT,
    BindNFT,
    Bond,
    CreateValidator,
    Delegate,
    RegisterCompute,
    SubmitEvidence,
    Transfer,
    TransferNFT,
    UnbindNFT,
    Unbond,
    Undelegate,
    Unjail,
)
from consensus.votes import Vote, VoteType
from tests.kit.chain import TestChain, derive_key

SPEC = HardwareSpec(device_kind=1, model="gpu", cores=80, memory_mb=16_000)

OPS = [
    "transfer",
    "create_validator",
    "bond",
    "unbond",
    "delegate",
    "undelegate",
    "register",
    "bind",
    "accept_nft",
    "unbind",
    "transfer_nft",
    "unjail",
    "evidence",
]

op_strategy = st.tuples(
    st.sampled_from(OPS),
    st.integers(0, 7),  # actor
    st.integers(0, 7),  # target
    st.integers(1, 5_000),  # amount
)


def check_invariants(chain: TestChain, genesis_supply: int) -> None:
    state = chain.view()
    meta = state.get_meta()
    data = chain.state.data
    balances = 0
    for k, v in data.items():
        if k.startswith(Keys.ACCOUNT):
            acct = Account.decode(v)
            assert acct.balance >= 0 and acct.nonce >= 0
            balances += acct.balance
    delegated: dict[bytes, int] = {}
    own: dict[bytes, int] = {}
    for k, v in data.items():
        if k.startswith(Keys.DELEGATION):
            d = Delegation.decode(v)
            assert d.amount > 0
            delegated[d.validator] = delegated.get(d.validator, 0) + d.amount
            if d.delegator == d.validator:
                own[d.validator] = d.amount
    unbonding = sum(UnbondingEntry.decode(v).amount for k, v in data.items() if k.startswith(Keys.UNBONDING))
    collateral = sum(ComputeNFT.decode(v).collateral for k, v in data.items() if k.startswith(Keys.NFT))
    # Job escrow is locked supply, like collateral (consensus/jobs).
    escrow = get_total_escrow(state)
    # Delegator rewards allocated and not yet withdrawn (lazy accounting) are supply too.
    outstanding = sum(
        ValidatorRewards.decode(v).outstanding for k, v in data.items() if k.startswith(Keys.VALIDATOR_REWARDS)
    )
    for v in state.iter_validators():
        # Bonded totals equal their sums.
        assert v.stake == delegated.get(v.address, 0)
        assert v.self_bond == own.get(v.address, 0)
        compute = get_validator_compute(state, v.address)
        power = compute_voting_power(v.stake, compute)
        assert (power == 0) == (v.stake == 0 or compute == 0)
        # The pool covers every delegation's pending rewards (rounding never overpays).
        pending = sum(compute_pending_rewards(state, d, v) for d in state.iter_delegations(v.address))
        assert pending <= state.get_validator_rewards(v.address).outstanding
    # Supply changes only by minting and burning, and every token is somewhere.
    assert meta.total_supply == genesis_supply + meta.minted - meta.burned
    assert balances + sum(delegated.values()) + unbonding + collateral + escrow + outstanding == meta.total_supply
    assert meta.minted == chain.height * state.get_params().block_reward
    # The validator set holds exactly the eligible validators' powers (after an epoch).


def run_op(chain: TestChain, op: tuple[str, int, int, int], evidence_used: set[int]) -> list:
    kind, actor_i, target_i, amount = op
    keys = chain.account_keys + chain.operator_keys
    actor = keys[actor_i % len(keys)]
    target = keys[target_i % len(keys)]
    state = chain.view()
    if kind == "transfer":
        return [chain.tx(actor, Transfer(target.address(), amount))]
    if kind == "create_validator":
        cons = derive_key(b"prop", f"cons-{actor_i}-{amount}")
        return [chain.tx(actor, CreateValidator(cons.public_key.raw, amount, 100, "v"))]
    if kind == "bond":
        return [chain.tx(actor, Bond(amount))]
    if kind == "unbond":
        return [chain.tx(actor, Unbond(amount))]
    if kind == "delegate":
        return [chain.tx(actor, Delegate(target.address(), amount))]
    if kind == "undelegate":
        return [chain.tx(actor, Undelegate(target.address(), amount))]
    if kind == "register":
        return [chain.tx(actor, RegisterCompute(SPEC, amount, 100 + amount))]
    nft_count = state.get_meta().next_nft_id
    nft_id = amount % max(nft_count, 1)
    if kind == "bind":
        return [chain.tx(actor, BindNFT(nft_id, target.address()))]
    if kind == "accept_nft":
        return [chain.tx(actor, AcceptNFT(nft_id))]
    if kind == "unbind":
        return [chain.tx(actor, UnbindNFT(nft_id))]
    if kind == "transfer_nft":
        return [chain.tx(actor, TransferNFT(nft_id, target.address()))]
    if kind == "unjail":
        return [chain.tx(actor, Unjail())]
    if kind == "evidence":
        vi = target_i % chain.n_validators
        if vi in evidence_used:
            return []
        evidence_used.add(vi)
        op_key, cons = chain.operator_keys[vi], chain.consensus_keys[vi]
        votes = []
        for tag in (b"x", b"y"):
            v = Vote(chain.height, 0, VoteType.PRECOMMIT, hash32(tag), op_key.address(), 5, b"")
            votes.append(v.with_signature(cons.sign(Domain.VOTE, chain.chain_id, v.sign_payload())))
        ev_kind, data = encode_evidence(compute_duplicate_vote_evidence(votes[0], votes[1]))
        return [chain.tx(actor, SubmitEvidence(ev_kind, data))]
    raise AssertionError(kind)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(op_strategy, max_size=6), min_size=3, max_size=12))
def test_invariants_hold_after_random_transactions(blocks: list[list[tuple[str, int, int, int]]]) -> None:
    chain = TestChain(params={"epoch_blocks": 3, "unbonding_blocks": 2}, n_accounts=4)
    genesis_supply = chain.view().get_meta().total_supply
    used: set[int] = set()
    chain.next_block()
    for ops in blocks:
        txs = []
        for op in ops:
            txs.extend(run_op(chain, op, used))
        chain.next_block(txs)
        check_invariants(chain, genesis_supply)
    # The active set only ever holds validators with both stake and verified compute.
    state = chain.view()
    for member in state.get_validator_set().validators:
        v = state.get_validator(member.address)
        assert v is not None and member.power > 0


@given(st.integers(0, 10**12), st.integers(0, 10**9))
def test_power_zero_when_stake_or_compute_zero(stake: int, compute: int) -> None:
    assert compute_voting_power(stake, 0) == 0
    assert compute_voting_power(0, compute) == 0
    if stake and compute:
        assert compute_voting_power(stake, compute) == isqrt(stake * compute) > 0


@given(
    st.integers(0, 10**15), st.integers(0, 10**15), st.integers(0, 10**9), st.integers(0, 10**9)
)
def test_splitting_never_increases_power(s1: int, s2: int, c1: int, c2: int) -> None:
    whole = compute_voting_power(s1 + s2, c1 + c2)
    assert compute_voting_power(s1, c1) + compute_voting_power(s2, c2) <= whole


def test_splitting_in_state_never_increases_power() -> None:
    """One validator vs the same stake and compute spread over two validators."""
    one = TestChain(n_validators=2, stakes=[40_000, 10_000], computes=[300, 100])
    two = TestChain(n_validators=3, stakes=[25_000, 15_000, 10_000], computes=[120, 180, 100])
    p_one = one.view().get_validator_set().validators
    p_two = two.view().get_validator_set().validators
    addr_one = one.operator_keys[0].address()
    whole = next(v.power for v in p_one if v.address == addr_one)
    split_addrs = {two.operator_keys[0].address(), two.operator_keys[1].address()}
    split = sum(v.power for v in p_two if v.address in split_addrs)
    assert split <= whole


def test_state_overlay_revert_restores_exactly() -> None:
    chain = TestChain()
    st_ = State(chain.state)
    a = chain.account_keys[0].address()
    before = st_.get_account(a)
    cp = st_.checkpoint()
    st_.set_account(a, Account(1, 2))
    st_.set_account(a, Account(3, 4))
    st_.revert(cp)
    assert st_.get_account(a) == before
    assert st_.changes() == {}
