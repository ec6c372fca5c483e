"""Proof of compute in the state transition: challenge records, deadlines, and the three txs.

The pure rules live in ``consensus.poc``; this module keeps their state and
applies the slashing table (docs/proof-of-compute.md, sections 9 and 9a).

Life of a challenge (``ChallengeRecord`` under ``Keys.challenge(id)``):

1. **Issued** at the end of an epoch-boundary block ``h`` (``h % epoch_blocks
   == 0``), one per ACTIVE or UNVERIFIED NFT without an open challenge. The
   seed is the hash of the commit that block ``h`` carries (``last_commit``:
   the precommit signatures for block ``h - 1``): each signer contributes a
   signature nobody else can predict, so no single party knows the seed before
   the others have signed. (The commit *of* block ``h`` itself only exists
   after ``h`` is decided, so block ``h``'s transition cannot use it.)
2. **Committed** by a ``PocCommitment`` at ``h_c`` in ``(h, h + commit deadline]``;
   the pending units are computed from the block times of ``h`` and ``h_c``.
3. **Sampled** at the end of block ``s = h_c + poc_sample_delay_blocks``
   (delay >= 2): the sample hash is the hash of block ``s - 1`` (block ``s``'s
   parent, ``s - 1 >= h_c + 1``), a block built after the root was fixed. It
   is the same whichever precommits block ``s``'s last commit carries (a
   commit's signatures, which the proposer picks beyond +2/3, would let it
   grind the rows), and the proposer of the commitment's block cannot know it.
   The prover learns its rows once block ``s`` is committed, and its openings
   may be included at ``s + 1 .. s + poc_open_deadline_blocks``.
4. **Passed** (openings verify): the NFT becomes ACTIVE with the pending units
   as its verified units; reputation up. **Failed** (a wrong row in the
   openings, or a fraud proof): faulty-computation slash, charged to the
   validator's stake only when its operator signed the commitment
   (``liable_validator``); an owner's garbage root costs the collateral only. **Missed** (no
   commitment by the deadline, or no well-formed openings by theirs): 1% of
   the collateral, verified units zero until a later challenge passes.

Deadlines are found without scanning every challenge: each step puts an index
key ``Keys.challenge_due(height, id)`` for the height at whose end it must be
looked at, and each block reads only its own height's keys (and deletes them).
Voting power reads NFTs only at epoch boundaries (consensus.staking), so every
change here counts from the next epoch on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from consensus.blocks import Block
from consensus.codec import Encodable
from consensus.errors import (
    ChallengeClosed,
    FaultAlreadySlashed,
    MalformedOpenings,
    NotChallengeProver,
    RejectedFraudProof,
    UnknownChallenge,
)
from consensus.hashing import hash32, tagged_hash
from consensus.incentives import process_reputation
from consensus.params import BPS, Params
from consensus.poc import (
    Challenge,
    InvalidFraudProof,
    InvalidOpenings,
    PocCommitment,
    PocFraudProof,
    PocOpenings,
    PocParams,
    compute_verified_units,
    derive_challenge,
    get_openings_deadline,
    get_sample_height,
    is_commitment_in_time,
    is_row_correct,
    verify_fraud_proof_inclusion,
    verify_openings,
)
from consensus.records import NO_ADDRESS, ComputeNFT, Fault, NFTStatus
from consensus.staking import process_slash, process_slash_collateral
from consensus.state import Keys, State, _Marker, be64
from consensus.tx_context import TxContext

MISSED_TAG = b"cstake/poc/missed/v1"
FAULTY_TAG = b"cstake/poc/faulty/v1"


class ChallengeStatus:
    """Where a challenge stands."""

    PENDING = 0
    COMMITTED = 1
    PASSED = 2
    FAILED = 3
    MISSED = 4

    NAMES: ClassVar[dict[int, str]] = {
        0: "pending", 1: "committed", 2: "passed", 3: "failed", 4: "missed",
    }
    OPEN: ClassVar[tuple[int, ...]] = (0, 1)


@dataclass(frozen=True, slots=True)
class ChallengeRecord(Encodable):
    """A challenge and everything the chain has seen of its answer."""

    challenge: Challenge
    #: The NFT's numeric id (``challenge.nft_id`` is its 8-byte big-endian form).
    nft_id: int
    #: ChallengeStatus code.
    status: int
    #: Time of the block at the challenge height (the start of the measurement).
    challenge_time_ms: int
    #: Committed Merkle root, b"" until committed.
    root: bytes
    #: Height of the block that included the commitment (0 until committed).
    commit_height: int
    #: Units the commitment earns if its openings pass.
    pending_units: int
    #: Hash of the commit carried by the sample block, b"" until that block.
    sample_hash: bytes
    #: Height at which the challenge passed, failed or was missed (0 while open).
    resolved_height: int
    #: Validator whose stake answers for the committed root: the commitment's
    #: sender when it was the NFT's bound validator then (an owner that is its
    #: own validator's operator included); b"" when the owner committed for
    #: another validator, or before a commitment. A faulty root then costs the
    #: collateral only.
    liable_validator: bytes
    #: Sampled rows opened so far, in order: openings may come in several
    #: transactions (consensus.poc.verify); the challenge passes at the last.
    opened_rows: int = 0


@dataclass(frozen=True, slots=True)
class ChallengeRef(Encodable):
    """An index value naming a challenge (the NFT's latest challenge)."""

    challenge_id: bytes


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChallengeIssued:
    """Event: a challenge was derived for an NFT."""

    challenge_id: bytes
    nft_id: int
    height: int
    n: int
    rows: int


@dataclass(frozen=True, slots=True)
class ChallengeSampled:
    """Event: the rows to open are now fixed."""

    challenge_id: bytes
    nft_id: int
    height: int


@dataclass(frozen=True, slots=True)
class ChallengeResolved:
    """Event: a challenge passed, failed or was missed."""

    challenge_id: bytes
    nft_id: int
    height: int
    status: int
    verified_units: int


# --- parameters and reads -------------------------------------------------------------


def get_poc_params(params: Params) -> PocParams:
    """Return the proof-of-compute parameters in force (built from the chain's Params)."""
    return PocParams(
        challenge_ms=params.challenge_seconds * 1000,
        commit_deadline_blocks=params.poc_commit_deadline_blocks,
        sample_delay_blocks=params.poc_sample_delay_blocks,
        openings_deadline_blocks=params.poc_open_deadline_blocks,
        max_rows=params.poc_max_rows,
        max_n=params.poc_max_n,
    )


def get_challenge(state: State, challenge_id: bytes) -> ChallengeRecord | None:
    """Return the record of challenge ``challenge_id``, or None."""
    return state.get_record(Keys.challenge(challenge_id), ChallengeRecord)


def get_latest_challenge(state: State, nft_id: int) -> ChallengeRecord | None:
    """Return the NFT's latest challenge, or None if it was never challenged."""
    ref = state.get_record(Keys.challenge_by_nft(nft_id), ChallengeRef)
    return None if ref is None else get_challenge(state, ref.challenge_id)


def iter_challenges_at(state: State, height: int) -> list[ChallengeRecord]:
    """Return the challenges issued at ``height`` (in id order)."""
    out = []
    prefix = Keys.challenge_by_height(height)
    for key, _ in state.iter_records(prefix, _Marker):
        rec = get_challenge(state, key[len(prefix):])
        if rec is not None:
            out.append(rec)
    return out


def _put(state: State, rec: ChallengeRecord) -> None:
    state.put_record(Keys.challenge(rec.challenge.id), rec)


def _schedule(state: State, height: int, challenge_id: bytes) -> None:
    state.put_record(Keys.challenge_due(height, challenge_id), _Marker())


# --- end of block -----------------------------------------------------------------------


def process_poc_epoch(state: State, block: Block, params: Params, events: list[object]) -> None:
    """At an epoch boundary, issue one challenge per ACTIVE or UNVERIFIED NFT.

    Runs before the boundary's validator-set change, on the NFTs as they are.
    NFTs whose previous challenge is still open are skipped (with the devnet and
    mainnet parameters a challenge always resolves within its epoch).
    """
    h = block.header
    if h.height % params.epoch_blocks != 0 or block.last_commit is None:
        return
    epoch_seed = hash32(block.last_commit.encode())
    poc = get_poc_params(params)
    for _, nft in state.iter_records(Keys.NFT, ComputeNFT):
        if nft.status not in (NFTStatus.ACTIVE, NFTStatus.UNVERIFIED):
            continue
        latest = get_latest_challenge(state, nft.id)
        if latest is not None and latest.status in ChallengeStatus.OPEN:
            continue
        challenge = derive_challenge(epoch_seed, be64(nft.id), nft.claimed_units, h.height, poc)
        rec = ChallengeRecord(
            challenge=challenge, nft_id=nft.id, status=ChallengeStatus.PENDING,
            challenge_time_ms=h.time_ms, root=b"", commit_height=0, pending_units=0,
            sample_hash=b"", resolved_height=0, liable_validator=NO_ADDRESS,
        )
        _put(state, rec)
        state.put_record(Keys.challenge_by_nft(nft.id), ChallengeRef(challenge.id))
        state.put_record(Keys.challenge_by_height(h.height, challenge.id), _Marker())
        _schedule(state, challenge.deadline_height + 1, challenge.id)
        events.append(ChallengeIssued(challenge.id, nft.id, h.height, challenge.n, challenge.rows))


def process_poc_deadlines(state: State, block: Block, params: Params, events: list[object]) -> None:
    """Handle every challenge step due at this height: samples, missed deadlines."""
    h = block.header
    prefix = Keys.challenge_due(h.height)
    due = [key[len(prefix):] for key, _ in state.iter_records(prefix, _Marker)]
    poc = get_poc_params(params)
    for challenge_id in due:
        state.put_record(Keys.challenge_due(h.height, challenge_id), None)
        rec = get_challenge(state, challenge_id)
        if rec is None:
            continue
        if rec.status == ChallengeStatus.PENDING and h.height > rec.challenge.deadline_height:
            _process_missed(state, rec, h.height, params, events)
        elif rec.status == ChallengeStatus.COMMITTED and not rec.sample_hash:
            if h.height == get_sample_height(rec.commit_height, poc):
                # The parent's hash: fixed by consensus on block s - 1 (after the commitment's
                # block), not by which signatures this block's proposer put in its last commit.
                _put(state, dataclasses.replace(rec, sample_hash=h.parent_hash))
                _schedule(state, get_openings_deadline(rec.commit_height, poc) + 1, challenge_id)
                events.append(ChallengeSampled(challenge_id, rec.nft_id, h.height))
        elif rec.status == ChallengeStatus.COMMITTED and h.height > get_openings_deadline(rec.commit_height, poc):
            _process_missed(state, rec, h.height, params, events)


def _offender(nft: ComputeNFT) -> tuple[bytes, bool]:
    """Return (address charged in the record, whether it is a bound validator)."""
    if nft.bound_validator != NO_ADDRESS:
        return nft.bound_validator, True
    return nft.owner, False


def _liable(nft: ComputeNFT, rec: ChallengeRecord) -> tuple[bytes, bool]:
    """Return (address charged for a faulty root, whether its stake is liable)."""
    if rec.liable_validator != NO_ADDRESS:
        return rec.liable_validator, True
    return nft.owner, False


def _process_missed(
    state: State, rec: ChallengeRecord, height: int, params: Params, events: list[object]
) -> None:
    """Missed deadline: slash the collateral, zero the verified units until a later pass."""
    _put(state, dataclasses.replace(rec, status=ChallengeStatus.MISSED, resolved_height=height))
    events.append(ChallengeResolved(rec.challenge.id, rec.nft_id, height, ChallengeStatus.MISSED, 0))
    nft = state.get_nft(rec.nft_id)
    if nft is None:
        return
    nft, cut = process_slash_collateral(state, nft, params.missed_challenge_slash_bps)
    status = NFTStatus.UNVERIFIED if nft.status == NFTStatus.ACTIVE else nft.status
    state.set_nft(dataclasses.replace(nft, verified_units=0, status=status))
    offender, bound = _offender(nft)
    # slash_bps 0: this fault costs only collateral; the record still says who and why.
    process_slash(
        state, validator_address=offender, fault=Fault.MISSED_CHALLENGE, slash_bps=0,
        infraction_height=height, evidence_hash=tagged_hash(MISSED_TAG, rec.challenge.id),
        whistleblower=NO_ADDRESS, height=height, params=params, extra_amount=cut,
    )
    if bound:
        process_reputation(state, offender, False, params.reputation_challenge_bps)


def _process_faulty(
    state: State, rec: ChallengeRecord, height: int, params: Params, whistleblower: bytes
) -> None:
    """Faulty computation: the whole collateral, NFT FAULTY; the stake slash and
    reputation loss only for the validator that signed the commitment."""
    evidence_hash = tagged_hash(FAULTY_TAG, rec.challenge.id)
    if state.is_fault_slashed(evidence_hash):
        raise FaultAlreadySlashed("this challenge's faulty computation was already punished")
    if rec.status in ChallengeStatus.OPEN:
        rec = dataclasses.replace(rec, status=ChallengeStatus.FAILED, resolved_height=height)
    _put(state, rec)
    nft = state.get_nft(rec.nft_id)
    cut = 0
    offender, bound = NO_ADDRESS, False
    if nft is not None:
        nft, cut = process_slash_collateral(state, nft, BPS)
        state.set_nft(dataclasses.replace(nft, verified_units=0, status=NFTStatus.FAULTY))
        # Liability follows the signature on the root: a validator's stake answers only
        # for a commitment its operator signed as the NFT's (consenting) validator.
        offender, bound = _liable(nft, rec)
    process_slash(
        state, validator_address=offender, fault=Fault.FAULTY_COMPUTE,
        slash_bps=params.faulty_compute_slash_bps if bound else 0,
        infraction_height=rec.challenge.height, evidence_hash=evidence_hash,
        whistleblower=whistleblower, height=height, params=params, extra_amount=cut,
    )
    if bound:
        process_reputation(state, offender, False, params.reputation_challenge_bps)


# --- transactions ----------------------------------------------------------------------------


def _require_challenge(state: State, challenge_id: bytes) -> ChallengeRecord:
    rec = get_challenge(state, challenge_id)
    if rec is None:
        raise UnknownChallenge(f"no proof-of-compute challenge {challenge_id.hex()}")
    return rec


def _require_prover(state: State, rec: ChallengeRecord, sender: bytes) -> None:
    nft = state.get_nft(rec.nft_id)
    if nft is None or sender not in (nft.owner, nft.bound_validator):
        raise NotChallengeProver(
            f"only the owner of compute NFT {rec.nft_id} or its bound validator may answer "
            "its challenge"
        )


def process_poc_commit(state: State, ctx: TxContext, sender: bytes, body: PocCommitment) -> None:
    """Accept the commitment to a pending challenge, in time, from its prover."""
    rec = _require_challenge(state, body.challenge_id)
    _require_prover(state, rec, sender)
    if rec.status != ChallengeStatus.PENDING:
        raise ChallengeClosed(
            f"challenge is {ChallengeStatus.NAMES[rec.status]}; a commitment is accepted only once"
        )
    if not is_commitment_in_time(rec.challenge, ctx.height):
        raise ChallengeClosed(
            f"commitment at height {ctx.height} is outside ({rec.challenge.height}, "
            f"{rec.challenge.deadline_height}]"
        )
    units = compute_verified_units(rec.challenge, rec.challenge_time_ms, ctx.time_ms)
    nft = state.get_nft(rec.nft_id)
    liable = sender if nft is not None and sender == nft.bound_validator else NO_ADDRESS
    _put(state, dataclasses.replace(
        rec, status=ChallengeStatus.COMMITTED, root=body.root, commit_height=ctx.height,
        pending_units=units, liable_validator=liable,
    ))
    _schedule(state, get_sample_height(ctx.height, get_poc_params(ctx.params)), body.challenge_id)


def process_poc_open(state: State, ctx: TxContext, sender: bytes, body: PocOpenings) -> None:
    """Check a chunk of openings: a wrong row is a fault; the last chunk passed verifies the units."""
    rec = _require_challenge(state, body.challenge_id)
    _require_prover(state, rec, sender)
    if rec.status != ChallengeStatus.COMMITTED:
        raise ChallengeClosed(f"challenge is {ChallengeStatus.NAMES[rec.status]}, not awaiting openings")
    if not rec.sample_hash:
        raise ChallengeClosed("the sample block is not committed yet; the rows to open are unknown")
    deadline = get_openings_deadline(rec.commit_height, get_poc_params(ctx.params))
    if ctx.height > deadline:
        raise ChallengeClosed(f"openings at height {ctx.height} are after the deadline {deadline}")
    try:
        verdict = verify_openings(rec.challenge, rec.root, rec.sample_hash, body, rec.opened_rows)
    except InvalidOpenings as exc:
        raise MalformedOpenings(str(exc)) from exc
    if not verdict.passed:
        _process_faulty(state, rec, ctx.height, ctx.params, NO_ADDRESS)
        return
    opened = rec.opened_rows + len(body.openings)
    if verdict.rows_left:
        _put(state, dataclasses.replace(rec, opened_rows=opened))
        return
    _put(state, dataclasses.replace(
        rec, status=ChallengeStatus.PASSED, resolved_height=ctx.height, opened_rows=opened,
    ))
    nft = state.get_nft(rec.nft_id)
    if nft is None or nft.status not in (NFTStatus.ACTIVE, NFTStatus.UNVERIFIED):
        return
    state.set_nft(dataclasses.replace(
        nft, status=NFTStatus.ACTIVE, verified_units=rec.pending_units,
        last_verified_height=ctx.height,
    ))
    if nft.bound_validator != NO_ADDRESS:
        process_reputation(state, nft.bound_validator, True, ctx.params.reputation_challenge_bps)


def process_fraud_proof_claim(state: State, ctx: TxContext, sender: bytes, body: PocFraudProof) -> None:
    """The cheap checks of a fraud proof, then its row marked as tried (the mark stays if it fails).

    Everything short of recomputing the row: the challenge has a commitment,
    the fault is not punished yet, the row is in the commitment (its Merkle
    path verifies, so it is the one committed row at that index) and no
    earlier proof tried this row. A path must verify before the mark is
    written, or anyone could mark a wrong row with a bogus proof and block
    the real one.
    """
    rec = _require_challenge(state, body.challenge_id)
    if not rec.root:
        raise ChallengeClosed("the challenge has no commitment to prove wrong")
    if state.is_fault_slashed(tagged_hash(FAULTY_TAG, rec.challenge.id)):
        raise FaultAlreadySlashed("this challenge's faulty computation was already punished")
    try:
        verify_fraud_proof_inclusion(rec.challenge, rec.root, body)
    except InvalidFraudProof as exc:
        raise RejectedFraudProof(str(exc)) from exc
    key = Keys.fraud_row(rec.challenge.id, body.opening.index)
    if state.get_record(key, _Marker) is not None:
        raise RejectedFraudProof(
            f"row {body.opening.index} of this challenge was already tried by a fraud proof"
        )
    state.put_record(key, _Marker())


def process_fraud_proof(state: State, ctx: TxContext, sender: bytes, body: PocFraudProof) -> None:
    """Convict a committed wrong row; anyone may send it and is paid the whistleblower share.

    Runs after ``process_fraud_proof_claim`` (the challenge, the fault not yet
    punished, the row's inclusion): only the row's O(n²) recomputation is left.
    """
    rec = _require_challenge(state, body.challenge_id)
    if is_row_correct(rec.challenge, body.opening.index, body.opening.row):
        raise RejectedFraudProof(f"row {body.opening.index} is correct: no fault to prove")
    _process_faulty(state, rec, ctx.height, ctx.params, sender)
