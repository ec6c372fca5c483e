"""The state transition: every kind's happy path, table-driven invalid cases, block checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from consensus.blocks import EvidenceItem
from consensus.codec import Encodable
from consensus.costs import get_min_fee
from consensus.crypto import Domain, PrivateKey
from consensus.errors import (
    ChallengeClosed,
    CollateralTooLow,
    CommissionTooHigh,
    InsufficientBond,
    InsufficientFunds,
    InvalidBlock,
    InvalidEvidence,
    JobError,
    MalformedOpenings,
    NFTBindingError,
    NotChallengeProver,
    NotNFTOwner,
    RejectedFraudProof,
    UnjailRefused,
    UnknownChallenge,
    UnknownNFT,
    UnknownValidator,
    ValidatorExists,
)
from consensus.evidence import compute_duplicate_vote_evidence, encode_evidence
from consensus.hashing import hash32
from consensus.jobs.types import ChallengeAction, JobChallenge, JobResult
from consensus.poc import RowOpening
from consensus.poc_state import get_challenge, get_latest_challenge
from consensus.records import HardwareSpec, NFTStatus
from consensus.transition import state_transition
from consensus.txs import (
    AcceptNFT,
    BindNFT,
    Bond,
    CancelJob,
    CreateValidator,
    Delegate,
    FraudProof,
    PocCommit,
    PocOpen,
    RegisterCompute,
    SetPrice,
    SubmitEvidence,
    Transfer,
    TransferNFT,
    UnbindNFT,
    Unbond,
    Undelegate,
    Unjail,
    build_tx,
)
from consensus.votes import Vote, VoteType
from tests.kit.chain import TestChain, derive_key
from tests.kit.jobs import commit, honest_leaves, job_of, matmul_body, open_samples

SPEC = HardwareSpec(device_kind=0, model="test-cpu", cores=2, memory_mb=2048)


@pytest.fixture
def chain() -> TestChain:
    c = TestChain(params={"unbonding_blocks": 3, "epoch_blocks": 5})
    c.next_block()
    return c


def snapshot(chain: TestChain) -> dict[bytes, bytes]:
    return dict(chain.state.data)


def assert_only_fee_and_nonce(
    chain: TestChain, control: dict[bytes, bytes], sender: bytes, fee: int
) -> None:
    """Compared with the same block without the transaction, only the fee and nonce differ.

    ``control`` is the state after executing the same block (same proposer,
    time and commit) without the transaction. Every non-account record must be
    identical; every nonce but the sender's (+1) identical; the fee leaves the
    sender and is shared out as block rewards, so total balances plus the
    validators' outstanding reward pools are equal. The fee raises the
    validators' reward ratios (``vr/``), which the delegations' lazy-reward
    start points follow; their amounts are identical.
    """
    from consensus.records import Account, Delegation, ValidatorRewards
    from consensus.state import Keys

    after = chain.state.data
    for key in set(control) | set(after):
        # The head differs by the block hash only (the blocks differ by the transaction).
        if key.startswith(Keys.ACCOUNT) or key == Keys.HEAD or key.startswith(Keys.VALIDATOR_REWARDS):
            continue
        if key.startswith(Keys.DELEGATION) and key in control and key in after:
            c_d, a_d = Delegation.decode(control[key]), Delegation.decode(after[key])
            assert (c_d.delegator, c_d.validator, c_d.amount) == (a_d.delegator, a_d.validator, a_d.amount)
            continue
        assert control.get(key) == after.get(key), key[:12]

    def pools(data: dict[bytes, bytes]) -> int:
        return sum(ValidatorRewards.decode(v).outstanding for k, v in data.items() if k.startswith(Keys.VALIDATOR_REWARDS))

    def acct(data: dict[bytes, bytes], addr: bytes) -> Account:
        raw = data.get(Keys.account(addr))
        return Account(0, 0) if raw is None else Account.decode(raw)
    addrs = {k[len(Keys.ACCOUNT):] for k in set(control) | set(after) if k.startswith(Keys.ACCOUNT)}
    total_control = total_after = 0
    for addr in addrs:
        a, c = acct(after, addr), acct(control, addr)
        total_control += c.balance
        total_after += a.balance
        if addr == sender:
            assert a.nonce == c.nonce + 1
            assert -fee <= a.balance - c.balance < 0
        else:
            assert a.nonce == c.nonce
            assert a.balance >= c.balance
    assert total_after + pools(after) == total_control + pools(control)


class _Reader:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def iter_prefix(self, prefix: bytes) -> Any:
        for k in sorted(k for k in self.data if k.startswith(prefix)):
            yield k, self.data[k]


def make_double_sign(chain: TestChain, index: int, height: int) -> tuple[int, bytes]:
    op = chain.operator_keys[index]
    cons = chain.consensus_keys[index]
    votes = []
    for tag in (b"a", b"b"):
        v = Vote(height, 0, VoteType.PREVOTE, hash32(tag), op.address(), 1, b"")
        votes.append(v.with_signature(cons.sign(Domain.VOTE, chain.chain_id, v.sign_payload())))
    return encode_evidence(compute_duplicate_vote_evidence(votes[0], votes[1]))


# --- happy paths ---------------------------------------------------------------


def test_process_transfer_moves_tokens(chain: TestChain) -> None:
    a, b = chain.account_keys[0], chain.account_keys[1]
    before_b = chain.view().get_account(b.address()).balance
    result = chain.next_block([chain.tx(a, Transfer(b.address(), 123))])
    assert result.tx_results[0].code == 0
    assert chain.view().get_account(b.address()).balance == before_b + 123


def test_process_validator_lifecycle(chain: TestChain) -> None:
    user = chain.account_keys[0]
    cons = derive_key(b"x", "new-cons")
    r = chain.next_block([chain.tx(user, CreateValidator(cons.public_key.raw, 5_000, 100, "new"))])
    assert r.tx_results[0].code == 0, r.tx_results[0].log
    v = chain.view().get_validator(user.address())
    assert v is not None and v.stake == 5_000 and v.self_bond == 5_000
    delegator = chain.account_keys[1]
    chain.next_block(
        [
            chain.tx(user, Bond(1_000)),
            chain.tx(delegator, Delegate(user.address(), 2_000)),
            chain.tx(user, Unbond(500)),
            chain.tx(delegator, Undelegate(user.address(), 700)),
        ]
    )
    v = chain.view().get_validator(user.address())
    assert v is not None and (v.stake, v.self_bond) == (5_000 + 1_000 + 2_000 - 500 - 700, 5_500)
    entries = list(chain.view().iter_unbonding())
    assert sorted(e.amount for e in entries) == [500, 700]
    bal = chain.view().get_account(delegator.address()).balance
    for _ in range(3):
        chain.next_block()
    assert list(chain.view().iter_unbonding()) == []
    assert chain.view().get_account(delegator.address()).balance == bal + 700


def test_process_compute_nft_lifecycle(chain: TestChain) -> None:
    owner, other = chain.account_keys[0], chain.account_keys[1]
    validator = chain.operator_keys[0].address()
    r = chain.next_block([chain.tx(owner, RegisterCompute(SPEC, 50, 500))])
    assert r.tx_results[0].code == 0
    nft_id = chain.view().get_meta().next_nft_id - 1
    nft = chain.view().get_nft(nft_id)
    assert nft is not None and nft.status == NFTStatus.UNVERIFIED and nft.verified_units == 0
    r = chain.next_block(
        [
            chain.tx(owner, BindNFT(nft_id, validator)),  # a request: the validator must accept it
            chain.tx(chain.operator_keys[0], AcceptNFT(nft_id)),
            chain.tx(owner, TransferNFT(nft_id, other.address())),
        ]
    )
    assert [t.code for t in r.tx_results] == [0, 0, 0]
    nft = chain.view().get_nft(nft_id)
    assert nft is not None and nft.owner == other.address() and nft.bound_validator == validator
    assert nft_id in list(chain.view().iter_validator_nft_ids(validator))
    r = chain.next_block([chain.tx(other, UnbindNFT(nft_id))])
    assert r.tx_results[0].code == 0
    assert nft_id not in list(chain.view().iter_validator_nft_ids(validator))


def test_process_evidence_slashes_once_and_tombstones(chain: TestChain) -> None:
    kind, data = make_double_sign(chain, 1, 1)
    victim = chain.operator_keys[1].address()
    stake = chain.view().get_validator(victim).stake  # type: ignore[union-attr]
    whistle = chain.account_keys[2]
    bal = chain.view().get_account(whistle.address()).balance
    r = chain.next_block([chain.tx(whistle, SubmitEvidence(kind, data), fee=10)])
    assert r.tx_results[0].code == 0, r.tx_results[0].log
    v = chain.view().get_validator(victim)
    assert v is not None and v.tombstoned == 1 and v.jailed == 1
    slashed = stake * 500 // 10_000
    assert v.stake == stake - slashed
    records = list(chain.view().iter_slashing_records())
    assert len(records) == 1 and records[0].amount == slashed
    assert chain.view().get_account(whistle.address()).balance == bal - 10 + slashed // 10
    # The same fault again: refused, nothing slashed twice.
    r = chain.next_block([chain.tx(whistle, SubmitEvidence(kind, data))])
    assert r.tx_results[0].code == 32
    assert len(list(chain.view().iter_slashing_records())) == 1


def test_process_evidence_in_block_pays_proposer(chain: TestChain) -> None:
    kind, data = make_double_sign(chain, 2, 1)
    block = chain.build_block(evidence=(EvidenceItem(kind, data),))
    chain.apply(block)
    rec = list(chain.view().iter_slashing_records())
    assert len(rec) == 1 and rec[0].whistleblower == block.header.proposer


def test_slash_reaches_unbonding_created_after_fault_only() -> None:
    chain = TestChain(params={"unbonding_blocks": 4, "epoch_blocks": 50})
    chain.next_block()  # height 1
    victim_i = 0
    victim = chain.operator_keys[victim_i]
    r = chain.next_block([chain.tx(victim, Unbond(1_000))])  # height 2: before the fault
    assert r.tx_results[0].code == 0
    for _ in range(4):
        chain.next_block()  # height 6: the first entry matured at the end of height 6
    assert list(chain.view().iter_unbonding()) == []
    chain.next_block()  # height 7: the fault happens here
    chain.next_block([chain.tx(victim, Unbond(2_000))])  # height 8: after the fault
    kind, data = make_double_sign(chain, victim_i, 7)
    chain.next_block([chain.tx(chain.account_keys[0], SubmitEvidence(kind, data))])
    entries = list(chain.view().iter_unbonding())
    assert [e.amount for e in entries] == [2_000 - 2_000 * 500 // 10_000]


# --- the invalid table -------------------------------------------------------------

Case = tuple[str, Callable[[TestChain], tuple[PrivateKey, Encodable]], type[Exception]]


def _nft_of(chain: TestChain, i: int) -> int:
    validator = chain.operator_keys[i].address()
    return next(iter(chain.view().iter_validator_nft_ids(validator)))


def _fresh_nft(chain: TestChain) -> int:
    owner = chain.account_keys[3]
    r = chain.next_block([chain.tx(owner, RegisterCompute(SPEC, 5, 500))])
    assert r.tx_results[0].code == 0
    return chain.view().get_meta().next_nft_id - 1


def _poc_challenge(chain: TestChain) -> bytes:
    """Run to the first epoch boundary (5) and return validator 0's NFT challenge id."""
    while chain.height < 5:
        chain.next_block()
    rec = get_latest_challenge(chain.view(), _nft_of(chain, 0))
    assert rec is not None
    return rec.challenge.id


def _late_challenge(chain: TestChain) -> bytes:
    """Return a challenge whose commitment deadline is the current height (the next block is late)."""
    cid = _poc_challenge(chain)
    rec = get_challenge(chain.view(), cid)
    assert rec is not None
    while chain.height < rec.challenge.deadline_height:
        chain.next_block()
    return cid


def _committed_challenge(chain: TestChain) -> bytes:
    """Commit a (garbage) root for validator 0's challenge and run past its sample block."""
    cid = _poc_challenge(chain)
    r = chain.next_block([chain.tx(chain.operator_keys[0], PocCommit(cid, b"\x02" * 32))])
    assert r.tx_results[0].code == 0, r.tx_results[0].log
    chain.next_block()
    chain.next_block()  # the sample block (poc_sample_delay_blocks = 2)
    return cid


def _bad_openings(chain: TestChain) -> PocOpen:
    cid = _committed_challenge(chain)
    return PocOpen(cid, (RowOpening(0, bytes(4 * 2048), ()),))


def _bogus_fraud_proof(chain: TestChain) -> FraudProof:
    cid = _committed_challenge(chain)
    return FraudProof(cid, RowOpening(0, bytes(4 * 2048), ()))


def _assigned_job(chain: TestChain) -> bytes:
    """Submit a matrix job from account 1; it is assigned at the end of its block."""
    result = chain.next_block([chain.tx(chain.account_keys[1], matmul_body())])
    assert result.tx_results[0].code == 0
    from consensus.jobs.store import iter_open_job_ids

    (job_id,) = iter_open_job_ids(chain.view())
    return job_id


def _result_from_other_nft(chain: TestChain) -> tuple[PrivateKey, Encodable]:
    job = job_of(chain, _assigned_job(chain))
    other = next(i for i in range(chain.n_validators) if _nft_of(chain, i) != job.slots[0].nft_id)
    return chain.operator_keys[other], JobResult(job.id, _nft_of(chain, other), b"\x02" * 32, ())


def _challenge_after_window(chain: TestChain) -> tuple[PrivateKey, Encodable]:
    job = job_of(chain, _assigned_job(chain))
    nft = job.slots[0].nft_id
    c, _ = commit(chain, job.id, nft, honest_leaves(job))
    chain.next_block()
    chain.next_block()  # fixes the samples
    open_samples(chain, job.id, nft, c)
    for _ in range(chain.view().get_params().job_challenge_window_blocks + 1):
        chain.next_block()
    opening = job_of(chain, job.id).slots[0].openings[0]
    other = next(i for i in range(chain.n_validators) if _nft_of(chain, i) != nft)
    return chain.operator_keys[other], JobChallenge(job.id, nft, ChallengeAction.FRAUD, 0, (opening,))


BIG = 10**15
CASES: list[Case] = [
    ("transfer_insufficient", lambda c: (c.account_keys[0], Transfer(c.account_keys[1].address(), BIG)), InsufficientFunds),
    ("create_validator_exists", lambda c: (c.operator_keys[0], CreateValidator(derive_key(b"n", "k").public_key.raw, 2_000, 0, "x")), ValidatorExists),
    ("create_validator_key_reused", lambda c: (c.account_keys[0], CreateValidator(c.consensus_keys[0].public_key.raw, 2_000, 0, "x")), ValidatorExists),
    ("create_validator_commission", lambda c: (c.account_keys[0], CreateValidator(derive_key(b"n", "k").public_key.raw, 2_000, 9_000, "x")), CommissionTooHigh),
    ("create_validator_funds", lambda c: (c.account_keys[0], CreateValidator(derive_key(b"n", "k").public_key.raw, BIG, 0, "x")), InsufficientFunds),
    ("bond_not_validator", lambda c: (c.account_keys[0], Bond(10)), UnknownValidator),
    ("bond_funds", lambda c: (c.operator_keys[0], Bond(BIG)), InsufficientFunds),
    ("unbond_not_validator", lambda c: (c.account_keys[0], Unbond(10)), UnknownValidator),
    ("unbond_too_much", lambda c: (c.operator_keys[0], Unbond(BIG)), InsufficientBond),
    ("delegate_unknown", lambda c: (c.account_keys[0], Delegate(c.account_keys[1].address(), 10)), UnknownValidator),
    ("delegate_funds", lambda c: (c.account_keys[0], Delegate(c.operator_keys[0].address(), BIG)), InsufficientFunds),
    ("undelegate_none", lambda c: (c.account_keys[0], Undelegate(c.operator_keys[0].address(), 10)), InsufficientBond),
    ("undelegate_unknown", lambda c: (c.account_keys[0], Undelegate(c.account_keys[1].address(), 10)), UnknownValidator),
    ("register_collateral_low", lambda c: (c.account_keys[0], RegisterCompute(SPEC, 5, 1)), CollateralTooLow),
    ("register_funds", lambda c: (c.account_keys[0], RegisterCompute(SPEC, 5, BIG)), InsufficientFunds),
    ("transfer_nft_unknown", lambda c: (c.account_keys[0], TransferNFT(999, c.account_keys[1].address())), UnknownNFT),
    ("transfer_nft_not_owner", lambda c: (c.account_keys[0], TransferNFT(_nft_of(c, 0), c.account_keys[1].address())), NotNFTOwner),
    ("bind_nft_already_bound", lambda c: (c.operator_keys[0], BindNFT(_nft_of(c, 0), c.operator_keys[1].address())), NFTBindingError),
    ("bind_nft_not_owner", lambda c: (c.account_keys[0], BindNFT(_nft_of(c, 0), c.operator_keys[1].address())), NotNFTOwner),
    ("bind_nft_unknown_validator", lambda c: (c.account_keys[3], BindNFT(_fresh_nft(c), c.account_keys[1].address())), UnknownValidator),
    ("unbind_nft_not_bound", lambda c: (c.account_keys[3], UnbindNFT(_fresh_nft(c))), NFTBindingError),
    ("unbind_nft_unknown", lambda c: (c.account_keys[3], UnbindNFT(12345)), UnknownNFT),
    ("unjail_not_jailed", lambda c: (c.operator_keys[0], Unjail()), UnjailRefused),
    ("unjail_not_validator", lambda c: (c.account_keys[0], Unjail()), UnknownValidator),
    ("evidence_garbage", lambda c: (c.account_keys[0], SubmitEvidence(1, b"\x93\x01\x02\x03")), InvalidEvidence),
    ("poc_commit_unknown_challenge", lambda c: (c.operator_keys[0], PocCommit(b"\x01" * 32, b"\x02" * 32)), UnknownChallenge),
    ("poc_commit_late", lambda c: (c.operator_keys[0], PocCommit(_late_challenge(c), b"\x02" * 32)), ChallengeClosed),
    ("poc_commit_not_owner", lambda c: (c.account_keys[0], PocCommit(_poc_challenge(c), b"\x02" * 32)), NotChallengeProver),
    ("poc_open_malformed", lambda c: (c.operator_keys[0], _bad_openings(c)), MalformedOpenings),
    ("fraud_proof_bogus", lambda c: (c.account_keys[0], _bogus_fraud_proof(c)), RejectedFraudProof),
    ("submit_job_escrow_below_bid", lambda c: (c.account_keys[0], matmul_body(bid=5, escrow=4)), JobError),
    ("submit_job_unknown_kind", lambda c: (c.account_keys[0], dataclasses.replace(matmul_body(), job_kind=9)), JobError),
    ("submit_job_wrong_input_hash", lambda c: (c.account_keys[0], dataclasses.replace(matmul_body(), input_hash=b"\x05" * 32)), JobError),
    ("cancel_job_assigned", lambda c: (c.account_keys[1], CancelJob(_assigned_job(c))), JobError),
    ("cancel_job_not_submitter", lambda c: (c.account_keys[0], CancelJob(_assigned_job(c))), JobError),
    ("job_result_not_assigned_nft", lambda c: _result_from_other_nft(c), JobError),
    ("job_challenge_after_window", lambda c: _challenge_after_window(c), JobError),
    ("set_price_not_owner", lambda c: (c.account_keys[0], SetPrice(_nft_of(c, 0), 3, 1)), NotNFTOwner),
]


@pytest.mark.parametrize(("name", "make", "error"), CASES, ids=[c[0] for c in CASES])
def test_invalid_tx_changes_only_fee_and_nonce(
    chain: TestChain, name: str, make: Callable[[TestChain], tuple[PrivateKey, Encodable]], error: type[Exception]
) -> None:
    key, body = make(chain)
    # At least 7, and at least the kind's cost price (consensus.costs).
    fee = max(7, get_min_fee(body, chain.view().get_params()))
    tx = chain.tx(key, body, fee=fee)
    block = chain.build_block([tx])
    control_block = chain.build_block([])
    control = dict(chain.state.data)
    from consensus.state import DictStateReader

    reader = DictStateReader(control)
    reader.apply(state_transition(chain.state, control_block).changes)
    result = chain.apply(block)
    assert result.tx_results[0].code == error.code  # type: ignore[attr-defined]
    assert result.tx_results[0].log.startswith(error.__name__)
    assert_only_fee_and_nonce(chain, control, key.address(), fee)


def test_invalid_unjail_too_early_then_allowed() -> None:
    chain = TestChain(params={"downtime_window": 10, "downtime_max_missed": 5, "jail_duration_ms": 5_000})
    chain.next_block()
    op = chain.operator_keys[1]
    # Jail directly through the slashing routine (downtime detection is exercised elsewhere).
    from consensus.staking import process_jail

    st = chain.view()
    process_jail(st, op.address(), chain.time_ms + 3_000, tombstone=False)
    chain.state.apply(st.changes())
    r = chain.next_block([chain.tx(op, Unjail())])
    assert r.tx_results[0].code == UnjailRefused.code and "to go" in r.tx_results[0].log
    chain.next_block(time_step_ms=5_000)
    r = chain.next_block([chain.tx(op, Unjail())])
    assert r.tx_results[0].code == 0
    assert chain.view().get_validator(op.address()).jailed == 0  # type: ignore[union-attr]


def test_invalid_unjail_tombstoned(chain: TestChain) -> None:
    kind, data = make_double_sign(chain, 1, 1)
    chain.next_block([chain.tx(chain.account_keys[0], SubmitEvidence(kind, data))])
    r = chain.next_block([chain.tx(chain.operator_keys[1], Unjail())])
    assert r.tx_results[0].code == UnjailRefused.code and "tombstoned" in r.tx_results[0].log


# --- authentication failures invalidate the block and change nothing ------------------------


def _auth_cases(chain: TestChain) -> dict[str, bytes]:
    a = chain.account_keys[0]
    to = chain.account_keys[1].address()
    nonce = chain.view().get_account(a.address()).nonce
    good = build_tx(a, chain.chain_id, nonce, 10, Transfer(to, 1))
    bad_sig = dataclasses.replace(good, signature=bytes(64))
    from consensus.codec import pack_raw

    return {
        "bad_nonce": build_tx(a, chain.chain_id, nonce + 1, 10, Transfer(to, 1)).raw,
        "wrong_chain": build_tx(a, "other-chain", nonce, 10, Transfer(to, 1)).raw,
        "fee_too_low": build_tx(a, chain.chain_id, nonce, 0, Transfer(to, 1)).raw,
        "cannot_pay_fee": build_tx(chain.account_keys[0], chain.chain_id, nonce, 10**15, Transfer(to, 1)).raw,
        "bad_signature": pack_raw([bad_sig.payload_bytes, bad_sig.signature]),
        "zero_amount": build_tx(a, chain.chain_id, nonce, 10, Transfer(to, 0)).raw,
        "garbage": b"\x92\xc4\x01x\xc4\x01y",
    }


@pytest.mark.parametrize(
    "case", ["bad_nonce", "wrong_chain", "fee_too_low", "cannot_pay_fee", "bad_signature", "zero_amount", "garbage"]
)
def test_invalid_auth_rejects_block_without_changes(chain: TestChain, case: str) -> None:
    raw = _auth_cases(chain)[case]
    from consensus.blocks import make_block

    good = chain.build_block()
    block = make_block(
        chain_id=chain.chain_id,
        height=good.header.height,
        round=0,
        time_ms=good.header.time_ms,
        proposer=good.header.proposer,
        parent_hash=good.header.parent_hash,
        last_commit=good.last_commit,
        txs=(raw,),
        attestations=(),
        evidence=(),
        state_root=good.header.state_root,
        validators_hash=good.header.validators_hash,
    )
    before = snapshot(chain)
    with pytest.raises(InvalidBlock):
        state_transition(chain.state, block)
    assert snapshot(chain) == before


# --- block-level checks -------------------------------------------------------------------


def _mutate_header(chain: TestChain, **changes: Any) -> Any:
    from consensus.blocks import Block

    good = chain.build_block()
    header = dataclasses.replace(good.header, **changes)
    return Block(header, good.txs, good.attestations, good.evidence, good.last_commit)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("height", 5, "previous height|does not follow"),
        ("parent_hash", b"\x07" * 32, "parent"),
        ("time_ms", 0, "not after"),
        ("proposer", b"\x01" * 20, "not the proposer"),
        ("validators_hash", b"\x02" * 32, "validators_hash"),
        ("chain_id", "other", "chain"),
        ("txs_hash", b"\x03" * 32, "txs_hash"),
    ],
)
def test_invalid_block_header(chain: TestChain, field: str, value: Any, match: str) -> None:
    with pytest.raises(InvalidBlock, match=match):
        state_transition(chain.state, _mutate_header(chain, **{field: value}))


def test_invalid_block_dated_past_the_representable_time(chain: TestChain) -> None:
    from consensus.blocks import MAX_BLOCK_TIME_MS

    # A proposer dating its block 2^64-1 would leave no encodable later time: the chain halts.
    for time_ms in ((1 << 64) - 1, MAX_BLOCK_TIME_MS + 1):
        with pytest.raises(InvalidBlock, match="representable"):
            state_transition(chain.state, _mutate_header(chain, time_ms=time_ms))


def test_invalid_block_with_too_much_evidence(chain: TestChain) -> None:
    from consensus.blocks import MAX_BLOCK_EVIDENCE, EvidenceItem

    items = tuple(EvidenceItem(1, bytes([i]) * 8) for i in range(MAX_BLOCK_EVIDENCE + 1))
    with pytest.raises(InvalidBlock, match="evidence items exceed"):
        state_transition(chain.state, chain.build_block(evidence=items))


def test_invalid_block_larger_than_max_block_bytes(chain: TestChain) -> None:
    limit = chain.view().get_params().max_block_bytes
    big = chain.build_block([chain.tx(chain.account_keys[0], Transfer(chain.account_keys[1].address(), 1))])
    filler = (b"\x00" * (limit // 4),) * 5
    block = dataclasses.replace(big, attestations=filler)
    block = dataclasses.replace(
        block, header=dataclasses.replace(block.header, attestations_hash=_attestations_root(filler))
    )
    with pytest.raises(InvalidBlock, match="max_block_bytes"):
        state_transition(chain.state, block)


def _attestations_root(items: tuple[bytes, ...]) -> bytes:
    from consensus.hashing import hash32, merkle_root

    return merkle_root([hash32(a) for a in items])


def test_invalid_block_last_commit_without_quorum(chain: TestChain) -> None:
    block = chain.build_block()
    chain.apply(block)
    # Replace the commit with one signed by a minority.
    chain.last_commit = chain.sign_commit(block, signers=[0])
    with pytest.raises(InvalidBlock, match="last commit"):
        state_transition(chain.state, chain.build_block())


def test_state_transition_is_deterministic() -> None:
    roots = []
    for _ in range(2):
        c = TestChain(seed=b"det")
        a, b = c.account_keys[0], c.account_keys[1]
        for i in range(6):
            c.next_block([c.tx(a, Transfer(b.address(), i + 1)), c.tx(b, Transfer(a.address(), 2))])
        roots.append((c.last_hash, sorted(c.state.data.items())))
    assert roots[0] == roots[1]
