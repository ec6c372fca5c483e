"""The marketplace on an in-memory chain: life cycle, payments, faults, bisection, deadlines, redundancy."""

from __future__ import annotations

import dataclasses
import math

from consensus.crypto import PrivateKey
from consensus.jobs.kinds import compute_commitment, open_leaves
from consensus.jobs.market import JobAssigned, JobDeadlineMissed, JobFaultProven
from consensus.jobs.registry import get_job_input, get_kind
from consensus.jobs.store import get_total_escrow, iter_open_job_ids
from consensus.jobs.types import (
    CancelJob,
    ChallengeAction,
    JobChallenge,
    JobStatus,
    SetPrice,
    SlotStatus,
)
from consensus.records import Fault, NFTStatus
from tests.kit.chain import TestChain
from tests.kit.jobs import (
    MarketPlayer,
    assert_job_accounting,
    cheat_leaves,
    commit,
    honest_leaves,
    iterate_body,
    job_of,
    key_of_nft,
    matmul_body,
    open_samples,
    supply_parts,
)


def _chain(**params: int) -> TestChain:
    chain = TestChain(params={"job_challenge_window_blocks": 3, **params})
    chain.next_block()
    return chain


def _submit(chain: TestChain, key: PrivateKey, body: object) -> bytes:
    result = chain.next_block([chain.tx(key, body)])  # type: ignore[arg-type]
    assert result.tx_results[0].code == 0, result.tx_results[0].log
    ids = iter_open_job_ids(chain.view())
    return ids[-1]


def _owner_of(chain: TestChain, nft_id: int) -> bytes:
    nft = chain.view().get_nft(nft_id)
    assert nft is not None
    return nft.owner


def test_honest_job_life_cycle_pays_provider_and_refunds_user() -> None:
    chain = _chain(job_default_price=2, job_verifier_share_bps=1_000, job_fee_bps=500)
    user = chain.account_keys[0]
    body = matmul_body(m=16, n=256, bid=5)  # 1 work unit
    supply, total = supply_parts(chain)
    assert supply == total
    balance0 = chain.view().get_account(user.address()).balance
    job_id = _submit(chain, user, body)
    job = job_of(chain, job_id)
    assert job.status == JobStatus.ASSIGNED and job.work_units == 1
    assert chain.view().get_account(user.address()).balance == balance0 - body.escrow - 10
    nft = job.slots[0].nft_id
    provider = _owner_of(chain, nft)
    c, _ = commit(chain, job_id, nft, honest_leaves(job))
    assert job_of(chain, job_id).status == JobStatus.COMMITTED
    chain.next_block()
    chain.next_block()  # fixes the samples (from the hash of the block after the commitment's)
    open_samples(chain, job_id, nft, c)
    slot = job_of(chain, job_id).slots[0]
    assert slot.status == SlotStatus.OPENED and len(slot.openings) == 16
    before = chain.view().get_account(provider).balance
    while job_of(chain, job_id).status != JobStatus.SETTLED:
        result = chain.next_block()
    job = job_of(chain, job_id)
    # Paid the asking price (2 per unit), not the bid; 10% verifier share, 5% fee burned.
    # 10% of 2 and 5% of 2 round down to nothing: the provider keeps the whole payment.
    assert (job.paid, job.verifier_paid, job.burned) == (2, 0, 0)
    assert job.refunded == body.escrow - 2 and job.locked == 0 and job.result_root == c.root
    assert_job_accounting(job)
    gained = chain.view().get_account(provider).balance - before
    assert gained >= job.paid  # plus block rewards it earned meanwhile
    assert job.settled_height == chain.height and result is not None
    assert get_total_escrow(chain.view()) == 0
    assert supply_parts(chain)[0] == supply_parts(chain)[1]


def test_payment_split_is_exact_with_large_prices() -> None:
    chain = _chain(job_default_price=1_000, job_verifier_share_bps=1_000, job_fee_bps=500)
    user = chain.account_keys[0]
    job_id = _submit(chain, user, matmul_body(m=64, n=256, bid=2_000))  # 4 work units
    player = MarketPlayer(chain, {})
    burned0 = chain.view().get_meta().burned
    while job_of(chain, job_id).status != JobStatus.SETTLED:
        player.step()
    job = job_of(chain, job_id)
    payment = 1_000 * job.work_units
    assert job.work_units == 4
    assert job.verifier_paid == payment // 10 and job.burned == payment // 20
    assert job.paid == payment - payment // 10 - payment // 20
    assert chain.view().get_meta().burned - burned0 >= job.burned
    assert job.refunded == job.escrow - payment
    assert_job_accounting(job)


def test_wrong_matrix_result_is_slashed_challenger_paid_and_job_reassigned() -> None:
    chain = _chain()
    user = chain.account_keys[0]
    job_id = _submit(chain, user, matmul_body(m=8, n=32))
    cheat_nft = job_of(chain, job_id).slots[0].nft_id
    cheater = _owner_of(chain, cheat_nft)
    watcher = next(i for i in range(4) if chain.operator_keys[i].address() != cheater)
    player = MarketPlayer(chain, {cheat_nft: "cheat"}, watcher=watcher)
    stake0 = chain.view().get_validator(cheater).stake  # type: ignore[union-attr]
    events: list[object] = []
    while job_of(chain, job_id).status != JobStatus.SETTLED:
        events += player.step().events
        assert chain.height < 60
    records = [r for r in chain.view().iter_slashing_records() if r.fault == Fault.JOB_FAULT]
    assert len(records) == 1 and records[0].validator == cheater
    assert records[0].whistleblower == chain.operator_keys[watcher].address() and records[0].whistleblower_reward > 0
    nft = chain.view().get_nft(cheat_nft)
    assert nft is not None and nft.status == NFTStatus.FAULTY and nft.verified_units == 0 and nft.collateral == 0
    assert chain.view().get_validator(cheater).stake < stake0  # type: ignore[union-attr]
    job = job_of(chain, job_id)
    assert job.excluded == (cheat_nft,) and job.slots[0].nft_id != cheat_nft
    assert job.result_root == compute_commitment(honest_leaves(job)).root
    assert len([e for e in events if isinstance(e, JobAssigned)]) == 1  # the re-assignment
    assert_job_accounting(job)
    assert supply_parts(chain)[0] == supply_parts(chain)[1]


def _play_bisection(chain: TestChain, job_id: bytes, challenger: PrivateKey, liar: bool) -> int:
    """Drive a bisection from START to its end; return the rounds played."""
    job = job_of(chain, job_id)
    slot = job.slots[0]
    kind = get_kind(job.job_kind)
    assert kind is not None
    mine = compute_commitment(honest_leaves(job))
    provider_c = compute_commitment(cheat_leaves(job) if not liar else honest_leaves(job))
    provider = key_of_nft(chain, slot.nft_id)
    r = chain.next_block([chain.tx(challenger, JobChallenge(job_id, slot.nft_id, ChallengeAction.START, 0, ()))])
    assert r.tx_results[0].code == 0, r.tx_results[0].log
    rounds = 1
    while True:
        slot = job_of(chain, job_id).slots[0]
        d = slot.dispute
        if slot.status != SlotStatus.DISPUTED or d is None:
            return rounds
        mid = (d.lo + d.hi) // 2
        reveal = JobChallenge(job_id, slot.nft_id, ChallengeAction.REVEAL, 0, open_leaves(provider_c, [mid]))
        r = chain.next_block([chain.tx(provider, reveal)])
        assert r.tx_results[0].code == 0, r.tx_results[0].log
        d = job_of(chain, job_id).slots[0].dispute
        assert d is not None
        agree = 0 if liar else int(mine.leaves[mid] == d.mid_leaf)
        r = chain.next_block([chain.tx(challenger, JobChallenge(job_id, slot.nft_id, ChallengeAction.CHOOSE, agree, ()))])
        assert r.tx_results[0].code == 0, r.tx_results[0].log
        d2 = job_of(chain, job_id).slots[0].dispute
        rounds = d2.rounds if d2 is not None else d.rounds + 1


def _iterate_job_opened(chain: TestChain, steps: int, cheat: bool) -> tuple[bytes, int]:
    job_id = _submit(chain, chain.account_keys[0], iterate_body(steps=steps, deadline=20))
    job = job_of(chain, job_id)
    nft = job.slots[0].nft_id
    c, _ = commit(chain, job_id, nft, cheat_leaves(job) if cheat else honest_leaves(job))
    chain.next_block()
    chain.next_block()
    r = open_samples(chain, job_id, nft, c)
    assert r.tx_results[0].code == 0, r.tx_results[0].log
    return job_id, nft


def test_wrong_step_escaping_the_samples_loses_the_bisection() -> None:
    steps = 1000
    chain = _chain(job_sample_count=2, job_challenge_window_blocks=5, job_response_blocks=3)
    job_id, nft = _iterate_job_opened(chain, steps, cheat=True)
    job = job_of(chain, job_id)
    slot = job.slots[0]
    kind = get_kind(2)
    assert kind is not None
    # The wrong step (500) is not among the sampled ones: the samples pass.
    from consensus.jobs.kinds import build_fraud_proof

    assert build_fraud_proof(kind, get_job_input(job), slot.sample_seed, slot.openings, 2) is None
    cheater = _owner_of(chain, nft)
    challenger = next(k for k in chain.operator_keys if k.address() != cheater)
    rounds = _play_bisection(chain, job_id, challenger, liar=False)
    # The start, then one round per halving of the 1000 steps, then the chain's one-step check.
    assert math.ceil(math.log2(steps)) <= rounds <= math.ceil(math.log2(steps)) + 2
    job = job_of(chain, job_id)
    assert nft in job.excluded and job.slots[0].status == SlotStatus.ASSIGNED
    records = [r for r in chain.view().iter_slashing_records() if r.fault == Fault.JOB_FAULT]
    assert len(records) == 1 and records[0].validator == cheater and records[0].whistleblower == challenger.address()


def test_lying_challenger_loses_the_bisection_and_the_job_settles() -> None:
    chain = _chain(job_sample_count=2, job_challenge_window_blocks=5)
    job_id, nft = _iterate_job_opened(chain, 64, cheat=False)
    provider = _owner_of(chain, nft)
    challenger = next(k for k in chain.operator_keys if k.address() != provider)
    rounds = _play_bisection(chain, job_id, challenger, liar=True)
    assert rounds <= math.ceil(math.log2(64)) + 2
    # The result stands (the window may have closed during the dispute: then it settles at once).
    assert job_of(chain, job_id).slots[0].status in (SlotStatus.OPENED, SlotStatus.DONE)
    assert not list(chain.view().iter_slashing_records())
    player = MarketPlayer(chain, {})
    while job_of(chain, job_id).status != JobStatus.SETTLED:
        player.step()
        assert chain.height < 80
    assert job_of(chain, job_id).slots[0].nft_id == nft


def test_provider_silent_in_a_bisection_loses_it() -> None:
    chain = _chain(job_sample_count=2, job_challenge_window_blocks=5, job_response_blocks=2)
    job_id, nft = _iterate_job_opened(chain, 64, cheat=False)
    challenger = next(k for k in chain.operator_keys if k.address() != _owner_of(chain, nft))
    chain.next_block([chain.tx(challenger, JobChallenge(job_id, nft, ChallengeAction.START, 0, ()))])
    assert job_of(chain, job_id).status == JobStatus.CHALLENGED
    events: list[object] = []
    for _ in range(3):
        events += chain.next_block().events
    assert any(isinstance(e, JobFaultProven) and e.nft_id == nft for e in events)


def test_missed_deadline_reassigns_and_costs_reputation_and_collateral() -> None:
    chain = _chain()
    job_id = _submit(chain, chain.account_keys[0], matmul_body(deadline=3))
    first = job_of(chain, job_id).slots[0]
    rep0 = chain.view().get_validator(first.validator).reputation  # type: ignore[union-attr]
    nft0 = chain.view().get_nft(first.nft_id)
    assert nft0 is not None
    burned0 = chain.view().get_meta().burned
    stake0 = chain.view().get_validator(first.validator).stake  # type: ignore[union-attr]
    player = MarketPlayer(chain, {first.nft_id: "silent"})
    events: list[object] = []
    while job_of(chain, job_id).status != JobStatus.SETTLED:
        events += player.step().events
        assert chain.height < 60
    missed = [e for e in events if isinstance(e, JobDeadlineMissed)]
    assert [e.nft_id for e in missed] == [first.nft_id]
    assert missed[0].height == first.deadline_height + 1
    job = job_of(chain, job_id)
    assert job.excluded == (first.nft_id,) and job.slots[0].nft_id != first.nft_id
    # Reputation went down for the miss (block signing moves it up by less meanwhile).
    v = chain.view().get_validator(first.validator)
    assert v is not None and v.reputation < rep0
    # The miss costs missed_job_slash_bps (1%) of the NFT's collateral, burned; never stake.
    cut = nft0.collateral * chain.view().get_params().missed_job_slash_bps // 10_000
    assert cut > 0
    nft = chain.view().get_nft(first.nft_id)
    assert nft is not None and nft.collateral == nft0.collateral - cut and nft.status == nft0.status
    (record,) = list(chain.view().iter_slashing_records())
    assert (record.fault, record.validator, record.amount, record.whistleblower_reward) == (
        Fault.MISSED_JOB, first.validator, cut, 0)
    assert v.stake == stake0
    assert chain.view().get_meta().burned >= burned0 + cut
    assert_job_accounting(job)


def test_redundant_providers_must_agree() -> None:
    chain = _chain()
    job_id = _submit(chain, chain.account_keys[0], matmul_body(redundancy=3))
    job = job_of(chain, job_id)
    nfts = [s.nft_id for s in job.slots]
    assert len(set(nfts)) == 3 and len({s.validator for s in job.slots}) == 3
    # One of three wrong and nobody watching: the two agreeing are paid, the third is not.
    player = MarketPlayer(chain, {nfts[1]: "cheat"})
    while job_of(chain, job_id).status not in JobStatus.FINAL:
        player.step()
        assert chain.height < 60
    job = job_of(chain, job_id)
    assert job.status == JobStatus.SETTLED
    assert [s.status for s in job.slots] == [SlotStatus.DONE, SlotStatus.LOST, SlotStatus.DONE]
    assert job.paid + job.verifier_paid + job.burned == 2 * job.work_units
    assert_job_accounting(job)


def test_two_disagreeing_providers_fail_the_job_and_refund() -> None:
    chain = _chain()
    user = chain.account_keys[0]
    job_id = _submit(chain, user, matmul_body(redundancy=2))
    player = MarketPlayer(chain, {job_of(chain, job_id).slots[0].nft_id: "cheat"})
    while job_of(chain, job_id).status not in JobStatus.FINAL:
        player.step()
        assert chain.height < 60
    job = job_of(chain, job_id)
    assert job.status == JobStatus.FAILED and job.refunded == job.escrow and job.paid == 0


def test_cancel_unassigned_job_refunds_all_and_price_above_bid_is_not_assigned() -> None:
    chain = _chain()
    user = chain.account_keys[0]
    for i in range(4):
        owner = chain.operator_keys[i]
        nft = next(n for n in range(8) if (x := chain.view().get_nft(n)) is not None and x.owner == owner.address())
        chain.next_block([chain.tx(owner, SetPrice(nft, 50, 1))])
    body = matmul_body(bid=10)
    balance0 = chain.view().get_account(user.address()).balance
    job_id = _submit(chain, user, body)
    assert job_of(chain, job_id).status == JobStatus.SUBMITTED  # every asking price is above the bid
    r = chain.next_block([chain.tx(user, CancelJob(job_id))])
    assert r.tx_results[0].code == 0
    job = job_of(chain, job_id)
    assert job.status == JobStatus.CANCELLED and job.refunded == body.escrow
    assert chain.view().get_account(user.address()).balance == balance0 - 20  # two fees only


def test_unassignable_job_fails_at_its_lifetime() -> None:
    chain = _chain(job_lifetime_blocks=4)
    job_id = _submit(chain, chain.account_keys[0], matmul_body(min_units=10_000))
    for _ in range(4):
        chain.next_block()
    job = job_of(chain, job_id)
    assert job.status == JobStatus.FAILED and job.refunded == job.escrow and job.locked == 0


def test_ranking_prefers_cheaper_provider_at_equal_units_and_reputation() -> None:
    chain = _chain()
    cheap = 3
    owner = chain.operator_keys[cheap]

    def nft_of(key: PrivateKey) -> int:
        return next(n for n in range(8) if (x := chain.view().get_nft(n)) is not None and x.owner == key.address())

    chain.next_block([chain.tx(k, SetPrice(nft_of(k), 1 if k is owner else 2, 1)) for k in chain.operator_keys])
    # Every validator signed every block: equal units and reputation, so the price decides.
    reps = {chain.view().get_validator(k.address()).reputation for k in chain.operator_keys}  # type: ignore[union-attr]
    assert len(reps) == 1
    job_id = _submit(chain, chain.account_keys[0], matmul_body())
    slot = job_of(chain, job_id).slots[0]
    assert slot.nft_id == nft_of(owner) and slot.price == 1


def _play_descent(chain: TestChain, job_id: bytes, challenger: PrivateKey, provider_leaves: list[bytes],
                  liar: bool) -> int:
    """Drive a Merkle descent from START to its end; return the challenger's moves."""
    from consensus.jobs.types import LeafOpening

    job = job_of(chain, job_id)
    nft = job.slots[0].nft_id
    mine = compute_commitment(honest_leaves(job))
    theirs = compute_commitment(provider_leaves)
    provider = key_of_nft(chain, nft)
    r = chain.next_block([chain.tx(challenger, JobChallenge(job_id, nft, ChallengeAction.START, 0, ()))])
    assert r.tx_results[0].code == 0, r.tx_results[0].log
    moves = 1
    while True:
        slot = job_of(chain, job_id).slots[0]
        d = slot.dispute
        if slot.status != SlotStatus.DISPUTED or d is None:
            return moves
        if d.lo > 0:
            below = theirs.levels[d.lo - 1]
            revealed = below[2 * d.hi] + below[2 * d.hi + 1]
        else:
            revealed = theirs.leaves[d.hi]
        r = chain.next_block([chain.tx(provider, JobChallenge(job_id, nft, ChallengeAction.REVEAL, 0,
                                                              (LeafOpening(d.hi, revealed, ()),)))])
        assert r.tx_results[0].code == 0, r.tx_results[0].log
        slot = job_of(chain, job_id).slots[0]
        d = slot.dispute
        if slot.status != SlotStatus.DISPUTED or d is None:
            return moves
        agree = 1 if liar else int(mine.levels[d.lo - 1][2 * d.hi] == d.mid_leaf[:32])
        r = chain.next_block([chain.tx(challenger, JobChallenge(job_id, nft, ChallengeAction.CHOOSE, agree, ()))])
        assert r.tx_results[0].code == 0, r.tx_results[0].log
        moves += 1


def test_unsampled_wrong_matrix_row_is_found_by_merkle_descent() -> None:
    rows = 200
    # The sample seed comes from a commit's signatures, which cover the block
    # time: try a few block intervals until the samples miss the wrong row.
    for step_ms in range(1_000, 1_020):
        chain = _chain(job_sample_count=4, job_challenge_window_blocks=5, job_response_blocks=3)
        job_id = _submit(chain, chain.account_keys[0], matmul_body(m=rows, n=32, deadline=20))
        job = job_of(chain, job_id)
        nft = job.slots[0].nft_id
        wrong = cheat_leaves(job)  # the last row is wrong
        c, _ = commit(chain, job_id, nft, wrong)
        chain.next_block(time_step_ms=step_ms)
        chain.next_block()
        open_samples(chain, job_id, nft, c)
        slot = job_of(chain, job_id).slots[0]
        if rows - 1 not in [o.index for o in slot.openings]:
            break  # the samples missed it
    assert rows - 1 not in [o.index for o in slot.openings]
    from consensus.jobs.kinds import build_fraud_proof

    kind = get_kind(1)
    assert kind is not None
    assert build_fraud_proof(kind, get_job_input(job), slot.sample_seed, slot.openings, 4) is None
    cheater = _owner_of(chain, nft)
    challenger = next(k for k in chain.operator_keys if k.address() != cheater)
    moves = _play_descent(chain, job_id, challenger, wrong, liar=False)
    assert moves <= math.ceil(math.log2(rows)) + 2
    job = job_of(chain, job_id)
    assert nft in job.excluded
    records = [r for r in chain.view().iter_slashing_records() if r.fault == Fault.JOB_FAULT]
    assert len(records) == 1 and records[0].validator == cheater and records[0].whistleblower == challenger.address()


def test_lying_challenger_loses_a_merkle_descent() -> None:
    chain = _chain(job_sample_count=4, job_challenge_window_blocks=5)
    job_id = _submit(chain, chain.account_keys[0], matmul_body(m=37, n=16, deadline=20))
    job = job_of(chain, job_id)
    nft = job.slots[0].nft_id
    leaves = honest_leaves(job)
    c, _ = commit(chain, job_id, nft, leaves)
    chain.next_block()
    chain.next_block()
    open_samples(chain, job_id, nft, c)
    challenger = next(k for k in chain.operator_keys if k.address() != _owner_of(chain, nft))
    moves = _play_descent(chain, job_id, challenger, leaves, liar=True)
    assert moves <= math.ceil(math.log2(37)) + 2
    assert job_of(chain, job_id).slots[0].status in (SlotStatus.OPENED, SlotStatus.DONE)
    assert not list(chain.view().iter_slashing_records())


def test_invalid_descent_reveal_that_does_not_hash_to_the_node() -> None:
    from consensus.jobs.types import LeafOpening

    chain = _chain(job_sample_count=4, job_challenge_window_blocks=5)
    job_id = _submit(chain, chain.account_keys[0], matmul_body(m=16, n=16, deadline=20))
    job = job_of(chain, job_id)
    nft = job.slots[0].nft_id
    c, _ = commit(chain, job_id, nft, honest_leaves(job))
    chain.next_block()
    chain.next_block()
    open_samples(chain, job_id, nft, c)
    challenger = next(k for k in chain.operator_keys if k.address() != _owner_of(chain, nft))
    chain.next_block([chain.tx(challenger, JobChallenge(job_id, nft, ChallengeAction.START, 0, ()))])
    d = job_of(chain, job_id).slots[0].dispute
    assert d is not None and d.lo == 4 and d.hi == 0 and d.hi_leaf == c.root
    bogus = JobChallenge(job_id, nft, ChallengeAction.REVEAL, 0, (LeafOpening(0, b"\x01" * 64, ()),))
    r = chain.next_block([chain.tx(key_of_nft(chain, nft), bogus)])
    assert r.tx_results[0].code == 36 and "do not hash" in r.tx_results[0].log


def test_job_fraud_proof_of_leaves_already_tried_is_refused_without_recomputation() -> None:
    chain = _chain(job_challenge_window_blocks=10)
    job_id = _submit(chain, chain.account_keys[0], matmul_body(m=16, n=256))
    job = job_of(chain, job_id)
    nft = job.slots[0].nft_id
    c, _ = commit(chain, job_id, nft, honest_leaves(job))
    chain.next_block()
    chain.next_block()
    assert open_samples(chain, job_id, nft, c).tx_results[0].code == 0
    opening = job_of(chain, job_id).slots[0].openings[0]
    body = JobChallenge(job_id, nft, ChallengeAction.FRAUD, 0, (opening,))
    others = [k for k in chain.operator_keys if k.address() not in (job.slots[0].provider, job.slots[0].validator)]
    result = chain.next_block([chain.tx(k, body) for k in others])
    logs = [r.log for r in result.tx_results]
    assert "proves nothing" in logs[0], logs[0]
    assert all("already tried" in log for log in logs[1:]) and len(logs) >= 2, logs
    # A leaf whose path fails marks nothing: a later real proof of it is not blocked.
    bogus = JobChallenge(job_id, nft, ChallengeAction.FRAUD, 0, (dataclasses.replace(opening, leaf=b"\x00" * 4),))
    r = chain.next_block([chain.tx(others[0], bogus)]).tx_results[0]
    assert "Merkle path" in r.log, r.log
