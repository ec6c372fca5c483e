"""Proof of compute through the state transition: challenge, commitment, samples, openings, faults.

Every test drives a ``TestChain`` block by block; provers are the real kernel
(``node.compute.prover`` functions, in-process) on small challenges (claimed units 3 with
1-second challenges at the devnet width n = 256: 22,848 rows), so each takes a fraction
of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.crypto import PrivateKey
from consensus.poc import (
    PocCommitment,
    PocFraudProof,
    PocOpenings,
    RowOpening,
    derive_sample_indices,
)
from consensus.poc_state import (
    ChallengeRecord,
    ChallengeStatus,
    get_latest_challenge,
    iter_challenges_at,
)
from consensus.records import Fault, NFTStatus
from consensus.staking import compute_voting_power
from consensus.transition import TransitionResult
from node.compute.prover import compute_commitment, compute_path, compute_rows
from tests.kit.chain import TestChain

CLAIMED = 3
COLLATERAL = 1_000
STAKE = 40_000
EPOCH = 20
# The responder puts all four validators' openings (about 1.2 MB each) in one
# block, where a proposer would spread them: room for them under the size rule.
PARAMS = {"epoch_blocks": EPOCH, "challenge_seconds": 1, "max_block_bytes": 8 << 20}


def make_chain() -> TestChain:
    chain = TestChain(n_validators=4, stakes=[STAKE] * 4, computes=[CLAIMED] * 4, params=PARAMS)
    return chain


def nft_of(chain: TestChain, i: int) -> int:
    return next(iter(chain.view().iter_validator_nft_ids(chain.operator_keys[i].address())))


def challenge_of(chain: TestChain, i: int) -> ChallengeRecord:
    rec = get_latest_challenge(chain.view(), nft_of(chain, i))
    assert rec is not None
    return rec


@dataclass
class Responder:
    """Answers the challenges of some validators' NFTs as their compute services would."""

    chain: TestChain
    answer: dict[int, float]  # validator index -> cheat fraction (0: honest)
    open_rows: bool = True
    levels: dict[bytes, list[bytes]] = field(default_factory=dict)
    sent: set[tuple[bytes, str]] = field(default_factory=set)

    def openings(self, rec: ChallengeRecord, cheat: float) -> PocOpenings:
        ch = rec.challenge
        indices = derive_sample_indices(ch, rec.root, rec.sample_hash)
        rows = compute_rows(ch.seed, ch.n, ch.rows, list(indices), "float32", cheat)
        levels = self.levels[ch.id]
        return PocOpenings(ch.id, tuple(
            RowOpening(i, row, compute_path(levels, i)) for i, row in zip(indices, rows, strict=True)
        ))

    def txs(self) -> list:  # type: ignore[type-arg]
        out = []
        for i, cheat in sorted(self.answer.items()):
            rec = get_latest_challenge(self.chain.view(), nft_of(self.chain, i))
            if rec is None:
                continue
            key = self.chain.operator_keys[i]
            cid = rec.challenge.id
            if rec.status == ChallengeStatus.PENDING and (cid, "commit") not in self.sent:
                ch = rec.challenge
                work = compute_commitment(ch.seed, ch.n, ch.rows, "float32", cheat)
                self.levels[cid] = work.levels
                out.append(self.chain.tx(key, PocCommitment(cid, work.root)))
                self.sent.add((cid, "commit"))
            elif (rec.status == ChallengeStatus.COMMITTED and rec.sample_hash and self.open_rows
                  and (cid, "open") not in self.sent):
                out.append(self.chain.tx(key, self.openings(rec, cheat)))
                self.sent.add((cid, "open"))
        return out

    def step(self, **kw: object) -> TransitionResult:
        result = self.chain.next_block(self.txs(), **kw)  # type: ignore[arg-type]
        assert all(r.code == 0 for r in result.tx_results), [r.log for r in result.tx_results]
        return result


def run_to(chain: TestChain, height: int, responder: Responder | None = None) -> None:
    while chain.height < height:
        if responder is None:
            chain.next_block()
        else:
            responder.step()


def power_of(chain: TestChain, i: int) -> int:
    member = chain.view().get_validator_set().get_by_address(chain.operator_keys[i].address())
    return 0 if member is None else member.power


def test_challenges_issued_at_boundary_from_the_commit() -> None:
    chain = make_chain()
    run_to(chain, EPOCH - 1)
    assert iter_challenges_at(chain.view(), EPOCH - 1) == []
    boundary = chain.build_block()
    chain.apply(boundary)
    issued = iter_challenges_at(chain.view(), EPOCH)
    assert sorted(r.nft_id for r in issued) == sorted(nft_of(chain, i) for i in range(4))
    for rec in issued:
        assert rec.status == ChallengeStatus.PENDING
        assert rec.challenge.height == EPOCH and rec.challenge_time_ms == boundary.header.time_ms
        assert (rec.challenge.n, rec.challenge.rows) == (256, 22_848)
    # The seeds differ per NFT, and depend on the precommits the boundary block carries.
    assert len({r.challenge.seed for r in issued}) == 4
    other = make_chain()
    run_to(other, EPOCH - 1)
    other.last_commit = other.sign_commit(other.blocks[-1], signers=[0, 1, 2])
    other.next_block()
    assert {r.challenge.seed for r in iter_challenges_at(other.view(), EPOCH)}.isdisjoint(
        {r.challenge.seed for r in issued}
    )


def test_honest_challenge_passes_and_power_follows_next_epoch() -> None:
    chain = make_chain()
    responder = Responder(chain, {i: 0.0 for i in range(4)})
    run_to(chain, EPOCH, responder)
    power_before = [power_of(chain, i) for i in range(4)]
    assert power_before == [compute_voting_power(STAKE, CLAIMED)] * 4
    # Commitment one block (1,000 ms) after the challenge; 2·22,848·256² = 2.99e9 ops -> 2 units.
    responder.step()
    rec = challenge_of(chain, 0)
    assert rec.status == ChallengeStatus.COMMITTED and rec.commit_height == EPOCH + 1
    assert rec.pending_units == 2
    assert chain.view().get_nft(nft_of(chain, 0)).verified_units == CLAIMED  # type: ignore[union-attr]
    responder.step()
    assert not challenge_of(chain, 0).sample_hash
    sample_block = chain.build_block(responder.txs())
    responder.step()  # the sample block: its parent's hash is recorded at its end
    rec = challenge_of(chain, 0)
    assert rec.sample_hash == sample_block.header.parent_hash and rec.status == ChallengeStatus.COMMITTED
    rep_before = chain.view().get_validator(chain.operator_keys[0].address()).reputation  # type: ignore[union-attr]
    responder.answer = {0: 0.0}  # only validator 0 opens now; the others open next block
    responder.step()
    rec = challenge_of(chain, 0)
    assert rec.status == ChallengeStatus.PASSED and rec.resolved_height == EPOCH + 4
    nft = chain.view().get_nft(nft_of(chain, 0))
    assert nft is not None
    assert (nft.status, nft.verified_units, nft.last_verified_height) == (NFTStatus.ACTIVE, 2, EPOCH + 4)
    v0 = chain.view().get_validator(chain.operator_keys[0].address())
    v1 = chain.view().get_validator(chain.operator_keys[1].address())
    assert v0 is not None and v1 is not None
    assert v0.reputation > v1.reputation and v0.reputation > rep_before
    responder.answer = {i: 0.0 for i in range(4)}
    run_to(chain, 2 * EPOCH - 1, responder)
    # Verified units changed mid-epoch; voting power still the old one...
    assert [power_of(chain, i) for i in range(4)] == power_before
    run_to(chain, 2 * EPOCH, responder)
    # ...and the new figure from the next epoch on.
    assert [power_of(chain, i) for i in range(4)] == [compute_voting_power(STAKE, 2)] * 4
    assert not list(chain.view().iter_slashing_records())


def test_missed_commitment_is_slashed_from_collateral() -> None:
    chain = make_chain()
    responder = Responder(chain, {0: 0.0, 2: 0.0, 3: 0.0})  # validator 1 never answers
    run_to(chain, EPOCH, responder)
    rec = challenge_of(chain, 1)
    deadline = rec.challenge.deadline_height
    run_to(chain, deadline, responder)
    assert challenge_of(chain, 1).status == ChallengeStatus.PENDING
    assert not list(chain.view().iter_slashing_records())
    burned = chain.view().get_meta().burned
    run_to(chain, deadline + 1, responder)
    assert challenge_of(chain, 1).status == ChallengeStatus.MISSED
    (record,) = list(chain.view().iter_slashing_records())
    assert record.fault == Fault.MISSED_CHALLENGE
    assert record.validator == chain.operator_keys[1].address()
    assert record.amount == COLLATERAL // 100 and record.whistleblower_reward == 0
    assert chain.view().get_meta().burned == burned + COLLATERAL // 100
    nft = chain.view().get_nft(nft_of(chain, 1))
    assert nft is not None
    assert (nft.collateral, nft.verified_units, nft.status) == (COLLATERAL - 10, 0, NFTStatus.UNVERIFIED)
    # Stake untouched; the validator leaves the set at the next epoch (no verified compute).
    assert chain.view().get_validator(chain.operator_keys[1].address()).stake == STAKE  # type: ignore[union-attr]
    assert power_of(chain, 1) > 0
    run_to(chain, 2 * EPOCH, responder)
    assert power_of(chain, 1) == 0 and all(power_of(chain, i) > 0 for i in (0, 2, 3))
    # The unverified NFT is challenged again and can earn its units back.
    assert challenge_of(chain, 1).challenge.height == 2 * EPOCH


def test_missed_openings_are_slashed() -> None:
    chain = make_chain()
    responder = Responder(chain, {i: 0.0 for i in range(4)})
    run_to(chain, EPOCH + 3, responder)  # committed at 21, sampled at 23
    responder.answer = {i: 0.0 for i in (1, 2, 3)}  # validator 0 never opens
    rec = challenge_of(chain, 0)
    deadline = rec.commit_height + 2 + 5  # sample delay, then the openings deadline
    run_to(chain, deadline, responder)
    assert challenge_of(chain, 0).status == ChallengeStatus.COMMITTED
    run_to(chain, deadline + 1, responder)
    assert challenge_of(chain, 0).status == ChallengeStatus.MISSED
    (record,) = list(chain.view().iter_slashing_records())
    assert (record.fault, record.height, record.amount) == (Fault.MISSED_CHALLENGE, deadline + 1, 10)


def test_wrong_row_in_openings_is_faulty_computation() -> None:
    chain = make_chain()
    responder = Responder(chain, {0: 0.02, 1: 0.0, 2: 0.0, 3: 0.0})  # validator 0 cheats on 2% of rows
    run_to(chain, EPOCH + 4, responder)
    rec = challenge_of(chain, 0)
    assert rec.status == ChallengeStatus.FAILED
    (record,) = list(chain.view().iter_slashing_records())
    assert record.fault == Fault.FAULTY_COMPUTE and record.validator == chain.operator_keys[0].address()
    # 10% of the stake plus the whole collateral, all burned (no whistleblower).
    assert record.amount == STAKE // 10 + COLLATERAL and record.whistleblower_reward == 0
    v0 = chain.view().get_validator(chain.operator_keys[0].address())
    assert v0 is not None and v0.stake == STAKE - STAKE // 10
    nft = chain.view().get_nft(nft_of(chain, 0))
    assert nft is not None and (nft.status, nft.verified_units, nft.collateral) == (NFTStatus.FAULTY, 0, 0)
    for i in (1, 2, 3):
        assert challenge_of(chain, i).status == ChallengeStatus.PASSED
    power_before = power_of(chain, 0)
    run_to(chain, 2 * EPOCH - 1, responder)
    assert power_of(chain, 0) == power_before > 0
    run_to(chain, 2 * EPOCH, responder)
    assert power_of(chain, 0) == 0
    assert [power_of(chain, i) for i in (1, 2, 3)] == [compute_voting_power(STAKE, 2)] * 3
    # A faulty NFT is not challenged again.
    assert challenge_of(chain, 0).challenge.height == EPOCH


def test_fraud_proof_from_a_third_party_pays_the_whistleblower() -> None:
    chain = make_chain()
    responder = Responder(chain, {0: 0.02, 1: 0.0, 2: 0.0, 3: 0.0}, open_rows=False)
    run_to(chain, EPOCH + 3, responder)  # validator 0 committed a root with wrong rows; sampled
    rec = challenge_of(chain, 0)
    ch = rec.challenge
    # A verifier recomputes rows and finds one that is wrong in the commitment.
    honest = compute_commitment(ch.seed, ch.n, ch.rows)
    levels = responder.levels[ch.id]
    wrong = next(i for i in range(ch.rows)
                 if levels[0][32 * i:32 * i + 32] != honest.levels[0][32 * i:32 * i + 32])
    (row,) = compute_rows(ch.seed, ch.n, ch.rows, [wrong], "float32", 0.02)
    proof = PocFraudProof(ch.id, RowOpening(wrong, row, compute_path(levels, wrong)))
    whistleblower: PrivateKey = chain.account_keys[2]
    before = chain.view().get_account(whistleblower.address()).balance
    result = chain.next_block([chain.tx(whistleblower, proof, fee=5)])
    assert result.tx_results[0].code == 0, result.tx_results[0].log
    (record,) = list(chain.view().iter_slashing_records())
    assert record.fault == Fault.FAULTY_COMPUTE and record.whistleblower == whistleblower.address()
    assert record.amount == STAKE // 10 + COLLATERAL
    assert record.whistleblower_reward == record.amount // 10
    assert chain.view().get_account(whistleblower.address()).balance == before - 5 + record.whistleblower_reward
    assert challenge_of(chain, 0).status == ChallengeStatus.FAILED
    # The same fault cannot be punished twice, and the prover can no longer open.
    again = chain.next_block([chain.tx(whistleblower, proof)])
    assert again.tx_results[0].log.startswith("FaultAlreadySlashed")
    late = chain.next_block([chain.tx(chain.operator_keys[0], responder.openings(challenge_of(chain, 0), 0.02))])
    assert late.tx_results[0].log.startswith("ChallengeClosed")
    assert len(list(chain.view().iter_slashing_records())) == 1
