"""Binding consent: a stranger's NFT cannot make a validator liable for anything.

The attack (issue "Economic soundness"): a stranger registers an NFT with the
minimum collateral and ``claimed_units = 1``, binds it to a victim, answers the
NFT's challenge with a garbage root and has an accomplice send the fraud proof;
before consent existed the victim lost ``faulty_compute_slash_bps`` of its
stake. Now ``bind_nft`` only requests a binding (``pending_validator``); the
validator's operator must ``accept_nft`` it. Until then the NFT gives the
validator no power, no challenge liability and no job faults. After acceptance
a validator's stake answers only for commitments its operator signed: an
owner-answered fault costs the collateral only (docs/protocol.md, section 10).
"""

from __future__ import annotations

from consensus.crypto import PrivateKey
from consensus.errors import NFTBindingError, NotNFTOwner
from consensus.hashing import tagged_hash
from consensus.jobs.store import iter_open_job_ids
from consensus.jobs.types import JobStatus, SetPrice, SlotStatus
from consensus.poc import (
    PocCommitment,
    PocFraudProof,
    PocOpenings,
    RowOpening,
    derive_sample_indices,
)
from consensus.poc_state import MISSED_TAG, ChallengeRecord, ChallengeStatus, get_latest_challenge
from consensus.records import NO_ADDRESS, Fault, HardwareSpec, NFTStatus, SlashingRecord
from consensus.staking import get_validator_compute
from consensus.transition import TransitionResult
from consensus.txs import AcceptNFT, BindNFT, RegisterCompute, TransferNFT, UnbindNFT
from node.compute.prover import compute_commitment, compute_path, compute_rows
from tests.kit.chain import TestChain
from tests.kit.jobs import MarketPlayer, job_of, matmul_body

EPOCH = 20
STAKE = 40_000
GENESIS_UNITS = 3
PARAMS = {"epoch_blocks": EPOCH, "challenge_seconds": 1, "max_block_bytes": 8 << 20}
SPEC = HardwareSpec(device_kind=0, model="stranger", cores=1, memory_mb=1)
#: Every row of a "garbage" answer is wrong.
GARBAGE = 1.0


def make_chain() -> TestChain:
    return TestChain(n_validators=4, stakes=[STAKE] * 4, computes=[GENESIS_UNITS] * 4, params=PARAMS)


def ok(result: TransitionResult) -> TransitionResult:
    assert all(r.code == 0 for r in result.tx_results), [r.log for r in result.tx_results]
    return result


def request_binding(chain: TestChain, stranger: PrivateKey, validator: bytes) -> int:
    """The stranger registers a minimal NFT and asks to bind it to ``validator``; return its id."""
    collateral = chain.view().get_params().min_nft_collateral
    nft_id = chain.view().get_meta().next_nft_id
    ok(chain.next_block([chain.tx(stranger, RegisterCompute(SPEC, 1, collateral)),
                         chain.tx(stranger, BindNFT(nft_id, validator))]))
    return nft_id


def run_to(chain: TestChain, height: int) -> None:
    while chain.height < height:
        chain.next_block()


def challenge(chain: TestChain, nft_id: int) -> ChallengeRecord:
    rec = get_latest_challenge(chain.view(), nft_id)
    assert rec is not None
    return rec


class Answer:
    """One answer to an NFT's challenge (honest or garbage), signed by ``key``."""

    def __init__(self, chain: TestChain, nft_id: int, key: PrivateKey, cheat: float) -> None:
        self.chain, self.key, self.cheat = chain, key, cheat
        self.rec = challenge(chain, nft_id)
        ch = self.rec.challenge
        self.work = compute_commitment(ch.seed, ch.n, ch.rows, "float32", cheat)

    def commit(self) -> TransitionResult:
        # Half a second after the challenge: a one-unit claim measures one unit.
        tx = self.chain.tx(self.key, PocCommitment(self.rec.challenge.id, self.work.root))
        return self.chain.next_block([tx], time_step_ms=500)

    def fraud_proof(self, sender: PrivateKey) -> TransitionResult:
        ch = self.rec.challenge
        (row,) = compute_rows(ch.seed, ch.n, ch.rows, [0], "float32", self.cheat)
        proof = PocFraudProof(ch.id, RowOpening(0, row, compute_path(self.work.levels, 0)))
        return self.chain.next_block([self.chain.tx(sender, proof)])

    def open(self) -> TransitionResult:
        """Wait for the sample block, then post the openings."""
        chain = self.chain
        while not challenge(chain, self.rec.nft_id).sample_hash:
            chain.next_block()
        rec = challenge(chain, self.rec.nft_id)
        ch = rec.challenge
        indices = derive_sample_indices(ch, rec.root, rec.sample_hash)
        rows = compute_rows(ch.seed, ch.n, ch.rows, list(indices), "float32", self.cheat)
        body = PocOpenings(ch.id, tuple(RowOpening(i, r, compute_path(self.work.levels, i))
                                        for i, r in zip(indices, rows, strict=True)))
        return chain.next_block([chain.tx(self.key, body)])


def stake_of(chain: TestChain, address: bytes) -> int:
    v = chain.view().get_validator(address)
    assert v is not None
    return v.stake


def records(chain: TestChain, fault: int) -> list[SlashingRecord]:
    return [r for r in chain.view().iter_slashing_records() if r.fault == fault]


# --- the attack, without consent ----------------------------------------------------------


def test_stranger_binding_is_only_a_request() -> None:
    chain = make_chain()
    stranger, victim = chain.account_keys[0], chain.operator_keys[0].address()
    nft_id = request_binding(chain, stranger, victim)
    nft = chain.view().get_nft(nft_id)
    assert nft is not None and nft.bound_validator == NO_ADDRESS
    assert nft.pending_validator == victim
    assert nft_id not in list(chain.view().iter_validator_nft_ids(victim))


def test_stranger_garbage_answer_and_fraud_proof_cost_only_the_collateral() -> None:
    chain = make_chain()
    stranger, accomplice = chain.account_keys[0], chain.account_keys[1]
    victim = chain.operator_keys[0].address()
    nft_id = request_binding(chain, stranger, victim)
    collateral = chain.view().get_params().min_nft_collateral
    run_to(chain, EPOCH)
    stake0 = stake_of(chain, victim)
    answer = Answer(chain, nft_id, stranger, GARBAGE)
    ok(answer.commit())  # the owner may answer its NFT's challenge
    ok(answer.fraud_proof(accomplice))
    assert stake_of(chain, victim) == stake0
    (record,) = records(chain, Fault.FAULTY_COMPUTE)
    assert record.validator == stranger.address() and record.amount == collateral
    nft = chain.view().get_nft(nft_id)
    assert nft is not None and nft.status == NFTStatus.FAULTY and nft.collateral == 0
    # The victim's operator cannot be made to answer for it either: it may not even commit.
    assert challenge(chain, nft_id).status == ChallengeStatus.FAILED


def test_stranger_nft_gives_no_power_and_its_missed_challenge_names_the_owner() -> None:
    chain = make_chain()
    stranger, victim = chain.account_keys[0], chain.operator_keys[0].address()
    passing = request_binding(chain, stranger, victim)
    missing = request_binding(chain, chain.account_keys[1], victim)
    run_to(chain, EPOCH)
    answer = Answer(chain, passing, stranger, 0.0)
    ok(answer.commit())
    ok(answer.open())
    nft = chain.view().get_nft(passing)
    assert nft is not None and nft.status == NFTStatus.ACTIVE and nft.verified_units > 0
    # The victim's compute is its own genesis NFT's, never the stranger's.
    own = sum(n.verified_units for _, n in _nfts(chain) if n.owner == victim)
    assert get_validator_compute(chain.view(), victim) == own
    missed_id = challenge(chain, missing).challenge.id
    run_to(chain, challenge(chain, missing).challenge.deadline_height + 1)
    assert challenge(chain, missing).status == ChallengeStatus.MISSED
    (record,) = [r for r in records(chain, Fault.MISSED_CHALLENGE)
                 if r.evidence_hash == tagged_hash(MISSED_TAG, missed_id)]
    assert record.validator == chain.account_keys[1].address()


def _nfts(chain: TestChain) -> list:  # type: ignore[type-arg]
    from consensus.records import ComputeNFT
    from consensus.state import Keys

    return list(chain.view().iter_records(Keys.NFT, ComputeNFT))


def _only_stranger_offers(chain: TestChain, stranger_nft: int) -> None:
    """Genesis NFTs stop offering, so a job can only go to the stranger's NFT."""
    txs = []
    for _, n in _nfts(chain):
        if n.id != stranger_nft:
            txs.append(chain.tx(chain.key_by_address(n.owner), SetPrice(n.id, 1, 0)))
    ok(chain.next_block(txs))


def _active_stranger_nft(chain: TestChain, stranger: PrivateKey, victim: bytes) -> int:
    nft_id = request_binding(chain, stranger, victim)
    _only_stranger_offers(chain, nft_id)
    run_to(chain, EPOCH)
    answer = Answer(chain, nft_id, stranger, 0.0)
    ok(answer.commit())
    ok(answer.open())
    return nft_id


def test_stranger_nft_takes_no_job_and_cannot_cause_a_job_fault() -> None:
    chain = make_chain()
    stranger, user = chain.account_keys[0], chain.account_keys[2]
    victim = chain.operator_keys[0].address()
    nft_id = _active_stranger_nft(chain, stranger, victim)
    stake0 = stake_of(chain, victim)
    ok(chain.next_block([chain.tx(user, matmul_body(m=8, n=32))]))
    (job_id,) = iter_open_job_ids(chain.view())
    player = MarketPlayer(chain, {nft_id: "cheat"}, watcher=1)
    for _ in range(12):
        player.step()
    job = job_of(chain, job_id)
    assert all(s.status == SlotStatus.EMPTY for s in job.slots) and job.status == JobStatus.SUBMITTED
    assert stake_of(chain, victim) == stake0
    assert records(chain, Fault.JOB_FAULT) == []


# --- consent, and liability after it ---------------------------------------------------------


def test_accepted_binding_counts_and_an_owner_fault_costs_the_collateral_only() -> None:
    chain = make_chain()
    stranger, accomplice = chain.account_keys[0], chain.account_keys[1]
    operator = chain.operator_keys[0]
    victim = operator.address()
    nft_id = request_binding(chain, stranger, victim)
    ok(chain.next_block([chain.tx(operator, AcceptNFT(nft_id))]))
    nft = chain.view().get_nft(nft_id)
    assert nft is not None and nft.bound_validator == victim
    assert nft.pending_validator == NO_ADDRESS
    assert nft_id in list(chain.view().iter_validator_nft_ids(victim))
    run_to(chain, EPOCH)
    stake0 = stake_of(chain, victim)
    reputation0 = chain.view().get_validator(victim).reputation  # type: ignore[union-attr]
    answer = Answer(chain, nft_id, stranger, GARBAGE)
    ok(answer.commit())
    assert challenge(chain, nft_id).liable_validator == NO_ADDRESS
    ok(answer.fraud_proof(accomplice))
    assert stake_of(chain, victim) == stake0
    # Not down by the challenge step (it only rises with signed blocks meanwhile).
    assert chain.view().get_validator(victim).reputation >= reputation0  # type: ignore[union-attr]
    (record,) = records(chain, Fault.FAULTY_COMPUTE)
    assert record.validator == stranger.address()
    assert record.amount == chain.view().get_params().min_nft_collateral


def test_accepted_binding_answered_by_the_validator_makes_it_liable() -> None:
    chain = make_chain()
    stranger, accomplice = chain.account_keys[0], chain.account_keys[1]
    operator = chain.operator_keys[0]
    victim = operator.address()
    nft_id = request_binding(chain, stranger, victim)
    ok(chain.next_block([chain.tx(operator, AcceptNFT(nft_id))]))
    run_to(chain, EPOCH)
    stake0 = stake_of(chain, victim)
    answer = Answer(chain, nft_id, operator, GARBAGE)  # the validator's own service answered
    ok(answer.commit())
    assert challenge(chain, nft_id).liable_validator == victim
    # Releasing the NFT after committing does not escape the liability.
    ok(chain.next_block([chain.tx(operator, UnbindNFT(nft_id))]))
    ok(answer.fraud_proof(accomplice))
    slashed = STAKE * chain.view().get_params().faulty_compute_slash_bps // 10_000
    assert stake_of(chain, victim) == stake0 - slashed
    (record,) = records(chain, Fault.FAULTY_COMPUTE)
    assert record.validator == victim
    assert record.amount == slashed + chain.view().get_params().min_nft_collateral


def test_accepted_nft_job_fault_committed_by_its_owner_costs_the_collateral_only() -> None:
    chain = make_chain()
    stranger, user = chain.account_keys[0], chain.account_keys[2]
    operator = chain.operator_keys[0]
    victim = operator.address()
    nft_id = _active_stranger_nft(chain, stranger, victim)
    ok(chain.next_block([chain.tx(operator, AcceptNFT(nft_id))]))
    stake0 = stake_of(chain, victim)
    ok(chain.next_block([chain.tx(user, matmul_body(m=8, n=32))]))
    (job_id,) = iter_open_job_ids(chain.view())
    assert job_of(chain, job_id).slots[0].nft_id == nft_id
    player = MarketPlayer(chain, {nft_id: "cheat"}, watcher=1)
    for _ in range(12):
        player.step()
        if records(chain, Fault.JOB_FAULT):
            break
    (record,) = records(chain, Fault.JOB_FAULT)
    assert record.validator == stranger.address()
    assert stake_of(chain, victim) == stake0
    nft = chain.view().get_nft(nft_id)
    assert nft is not None and nft.status == NFTStatus.FAULTY and nft.collateral == 0


# --- the transaction rules ---------------------------------------------------------------------


def test_self_binding_takes_effect_at_once() -> None:
    chain = make_chain()
    operator = chain.operator_keys[1]
    nft_id = request_binding(chain, operator, operator.address())
    nft = chain.view().get_nft(nft_id)
    assert nft is not None and nft.bound_validator == operator.address()
    assert nft.pending_validator == NO_ADDRESS
    assert nft_id in list(chain.view().iter_validator_nft_ids(operator.address()))


def test_owner_cancels_a_pending_request() -> None:
    chain = make_chain()
    stranger, operator = chain.account_keys[0], chain.operator_keys[0]
    nft_id = request_binding(chain, stranger, operator.address())
    ok(chain.next_block([chain.tx(stranger, UnbindNFT(nft_id))]))
    nft = chain.view().get_nft(nft_id)
    assert nft is not None and nft.pending_validator == NO_ADDRESS
    r = chain.next_block([chain.tx(operator, AcceptNFT(nft_id))])
    assert r.tx_results[0].log.startswith(NFTBindingError.__name__)
    assert chain.view().get_nft(nft_id).bound_validator == NO_ADDRESS  # type: ignore[union-attr]


def test_transfer_drops_a_pending_request() -> None:
    chain = make_chain()
    stranger, buyer, operator = chain.account_keys[0], chain.account_keys[1], chain.operator_keys[0]
    nft_id = request_binding(chain, stranger, operator.address())
    ok(chain.next_block([chain.tx(stranger, TransferNFT(nft_id, buyer.address()))]))
    nft = chain.view().get_nft(nft_id)
    assert nft is not None and nft.owner == buyer.address()
    assert nft.pending_validator == NO_ADDRESS


def test_invalid_accept_nft() -> None:
    chain = make_chain()
    stranger, operator, other = chain.account_keys[0], chain.operator_keys[0], chain.operator_keys[1]
    nft_id = request_binding(chain, stranger, operator.address())
    cases = [
        (other, AcceptNFT(nft_id), NFTBindingError),  # the request names another validator
        (stranger, AcceptNFT(nft_id), NFTBindingError),  # the owner cannot accept for it
        (operator, AcceptNFT(nft_id + 100), NFTBindingError),  # no such NFT
    ]
    for key, body, error in cases:
        r = chain.next_block([chain.tx(key, body)])
        assert r.tx_results[0].code != 0
        if body != AcceptNFT(nft_id + 100):
            assert r.tx_results[0].log.startswith(error.__name__), r.tx_results[0].log
    # A second request while one is pending is refused; a stranger cannot cancel it.
    r = chain.next_block([chain.tx(stranger, BindNFT(nft_id, other.address()))])
    assert r.tx_results[0].log.startswith(NFTBindingError.__name__)
    r = chain.next_block([chain.tx(other, UnbindNFT(nft_id))])
    assert r.tx_results[0].log.startswith(NotNFTOwner.__name__)
    # Accepted once; a second accept is refused.
    ok(chain.next_block([chain.tx(operator, AcceptNFT(nft_id))]))
    r = chain.next_block([chain.tx(operator, AcceptNFT(nft_id))])
    assert r.tx_results[0].log.startswith(NFTBindingError.__name__)
    # The validator may release an NFT it accepted.
    ok(chain.next_block([chain.tx(operator, UnbindNFT(nft_id))]))
    assert chain.view().get_nft(nft_id).bound_validator == NO_ADDRESS  # type: ignore[union-attr]


def test_genesis_nfts_stay_bound() -> None:
    chain = make_chain()
    for op in chain.operator_keys:
        (nft_id,) = list(chain.view().iter_validator_nft_ids(op.address()))
        nft = chain.view().get_nft(nft_id)
        assert nft is not None and nft.bound_validator == op.address()
        assert nft.pending_validator == NO_ADDRESS
