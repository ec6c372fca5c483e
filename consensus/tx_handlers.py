"""Per-kind transaction handlers: ``process_<kind>(state, ctx, sender, body)``.

A handler runs after the fee was charged and the nonce advanced. It either
applies the whole body or raises a ``TxExecutionError`` leaf with a message;
the caller then reverts every write the handler made, so a failed transaction
changes exactly the fee and the nonce, and what its kind's precheck
(``PRECHECKS``) wrote: a precheck runs the cheap checks before the handler's
expensive ones and records the attempt (a fraud proof's row), so that a
repeat is refused without redoing the work.

``HANDLERS`` maps each kind to its handler: the core ones defined here, the
marketplace ones of ``consensus.jobs.handlers`` and the proof-of-compute ones
of ``consensus.poc_state``. Those modules only depend downwards (on
``consensus.tx_context`` for ``TxContext``), never on this one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from consensus.errors import (
    CollateralTooLow,
    CommissionTooHigh,
    ConsensusError,
    FaultAlreadySlashed,
    InsufficientBond,
    InsufficientFunds,
    InvalidEvidence,
    NFTBindingError,
    NFTRetireRefused,
    NotNFTOwner,
    UnjailRefused,
    UnknownNFT,
    UnknownValidator,
    UnsupportedTransaction,
    ValidatorExists,
    ValidatorTombstoned,
)
from consensus.jobs.handlers import (
    process_cancel_job,
    process_job_challenge,
    process_job_challenge_claim,
    process_job_result,
    process_set_price,
    process_submit_job,
)
from consensus.jobs.store import count_busy
from consensus.poc_state import (
    ChallengeStatus,
    get_latest_challenge,
    process_fraud_proof,
    process_fraud_proof_claim,
    process_poc_commit,
    process_poc_open,
)
from consensus.records import (
    NO_ADDRESS,
    Account,
    ComputeNFT,
    Fault,
    NFTStatus,
    Validator,
)
from consensus.staking import (
    process_begin_unbonding,
    process_bond,
    process_jail,
    process_settle_rewards,
    process_slash,
)
from consensus.state import Keys, State, _Marker
from consensus.tx_context import TxContext as TxContext  # re-exported: node/ imports it from here
from consensus.txs import (
    KEEP_COMMISSION,
    AcceptNFT,
    BindNFT,
    Bond,
    CreateValidator,
    Delegate,
    EditValidator,
    RegisterCompute,
    RetireNFT,
    SubmitEvidence,
    Transfer,
    TransferNFT,
    TxKind,
    UnbindNFT,
    Unbond,
    Undelegate,
    Unjail,
    WithdrawRewards,
)

#: Reputation a new validator starts with (the middle of [0, 1,000,000]).
INITIAL_REPUTATION = 500_000
#: Jail end of a tombstoned validator: never.
JAILED_FOREVER_MS = (1 << 63) - 1


def _debit(state: State, address: bytes, amount: int, what: str) -> None:
    acct = state.get_account(address)
    if acct.balance < amount:
        raise InsufficientFunds(f"{what} needs {amount} but the balance is {acct.balance}")
    state.set_account(address, Account(acct.balance - amount, acct.nonce))


def _credit(state: State, address: bytes, amount: int) -> None:
    acct = state.get_account(address)
    state.set_account(address, Account(acct.balance + amount, acct.nonce))


def _require_validator(state: State, address: bytes) -> Validator:
    v = state.get_validator(address)
    if v is None:
        raise UnknownValidator(f"no validator with address {address.hex()}")
    return v


def _require_own_nft(state: State, nft_id: int, sender: bytes) -> ComputeNFT:
    nft = state.get_nft(nft_id)
    if nft is None:
        raise UnknownNFT(f"no compute NFT with id {nft_id}")
    if nft.owner != sender:
        raise NotNFTOwner(f"compute NFT {nft_id} is not owned by the sender")
    return nft


def process_transfer(state: State, ctx: TxContext, sender: bytes, body: Transfer) -> None:
    """Move tokens between accounts."""
    _debit(state, sender, body.amount, "transfer")
    _credit(state, body.to, body.amount)


def process_create_validator(
    state: State, ctx: TxContext, sender: bytes, body: CreateValidator
) -> None:
    """Create a validator for the sender and bond its initial self-bond."""
    if state.get_validator(sender) is not None:
        raise ValidatorExists("the sender already has a validator")
    if state.get_record(Keys.consensus_key(body.consensus_pubkey), _Marker) is not None:
        raise ValidatorExists("this consensus key is already used by a validator")
    if body.commission_bps > ctx.params.max_commission_bps:
        raise CommissionTooHigh(
            f"commission {body.commission_bps} bps exceeds the maximum "
            f"{ctx.params.max_commission_bps} bps"
        )
    _debit(state, sender, body.self_bond, "create_validator self-bond")
    validator = Validator(
        address=sender,
        consensus_pubkey=body.consensus_pubkey,
        stake=0,
        self_bond=0,
        commission_bps=body.commission_bps,
        moniker=body.moniker,
        jailed=0,
        jailed_until_ms=0,
        tombstoned=0,
        reputation=INITIAL_REPUTATION,
        created_height=ctx.height,
    )
    state.put_record(Keys.consensus_key(body.consensus_pubkey), _Marker())
    process_bond(state, validator, sender, body.self_bond)


def process_edit_validator(state: State, ctx: TxContext, sender: bytes, body: EditValidator) -> None:
    """Change the sender's validator's moniker and/or commission.

    The commission applies to rewards allocated from this block on: what was
    already allocated to delegators keeps the split it was allocated with.
    """
    validator = _require_validator(state, sender)
    commission = validator.commission_bps
    if body.commission_bps != KEEP_COMMISSION:
        if body.commission_bps > ctx.params.max_commission_bps:
            raise CommissionTooHigh(
                f"commission {body.commission_bps} bps exceeds the maximum "
                f"{ctx.params.max_commission_bps} bps"
            )
        commission = body.commission_bps
    moniker = body.moniker or validator.moniker
    state.set_validator(dataclasses.replace(validator, commission_bps=commission, moniker=moniker))


def process_bond_tx(state: State, ctx: TxContext, sender: bytes, body: Bond) -> None:
    """Add to the sender's own self-bond."""
    v = _require_validator(state, sender)
    if v.tombstoned:
        raise ValidatorTombstoned("a tombstoned validator cannot bond")
    _debit(state, sender, body.amount, "bond")
    process_bond(state, v, sender, body.amount)


def process_unbond(state: State, ctx: TxContext, sender: bytes, body: Unbond) -> None:
    """Start unbonding part of the sender's self-bond."""
    v = _require_validator(state, sender)
    if v.self_bond < body.amount:
        raise InsufficientBond(f"unbond of {body.amount} exceeds the self-bond {v.self_bond}")
    process_begin_unbonding(state, v, sender, body.amount, ctx.height, ctx.params)


def process_delegate(state: State, ctx: TxContext, sender: bytes, body: Delegate) -> None:
    """Bond the sender's tokens to a validator."""
    v = _require_validator(state, body.validator)
    if v.tombstoned:
        raise ValidatorTombstoned("cannot delegate to a tombstoned validator")
    _debit(state, sender, body.amount, "delegate")
    process_bond(state, v, sender, body.amount)


def process_undelegate(state: State, ctx: TxContext, sender: bytes, body: Undelegate) -> None:
    """Start unbonding part of the sender's delegation."""
    v = _require_validator(state, body.validator)
    d = state.get_delegation(body.validator, sender)
    have = 0 if d is None else d.amount
    if have < body.amount:
        raise InsufficientBond(f"undelegate of {body.amount} exceeds the delegation {have}")
    process_begin_unbonding(state, v, sender, body.amount, ctx.height, ctx.params)


def process_withdraw_rewards(state: State, ctx: TxContext, sender: bytes, body: WithdrawRewards) -> None:
    """Pay the sender's pending delegation rewards (from one validator, or all of them)."""
    if body.validator:
        v = _require_validator(state, body.validator)
        if state.get_delegation(body.validator, sender) is None:
            raise InsufficientBond(f"no delegation to validator {body.validator.hex()}")
        process_settle_rewards(state, v, sender)
        return
    for address in list(state.iter_delegated_validators(sender)):
        process_settle_rewards(state, _require_validator(state, address), sender)


def process_register_compute(
    state: State, ctx: TxContext, sender: bytes, body: RegisterCompute
) -> None:
    """Mint a compute NFT with claimed units (unverified) and lock its collateral."""
    if body.collateral < ctx.params.min_nft_collateral:
        raise CollateralTooLow(
            f"collateral {body.collateral} is below the minimum {ctx.params.min_nft_collateral}"
        )
    _debit(state, sender, body.collateral, "register_compute collateral")
    meta = state.get_meta()
    nft = ComputeNFT(
        id=meta.next_nft_id,
        owner=sender,
        bound_validator=NO_ADDRESS,
        spec=body.spec,
        claimed_units=body.claimed_units,
        verified_units=0,
        collateral=body.collateral,
        status=NFTStatus.UNVERIFIED,
        last_verified_height=0,
        registered_height=ctx.height,
        pending_validator=NO_ADDRESS,
    )
    state.set_meta(dataclasses.replace(meta, next_nft_id=meta.next_nft_id + 1))
    state.set_nft(nft)


def process_transfer_nft(state: State, ctx: TxContext, sender: bytes, body: TransferNFT) -> None:
    """Change a compute NFT's owner (its binding stays; a pending request is dropped)."""
    nft = _require_own_nft(state, body.nft_id, sender)
    state.set_nft(dataclasses.replace(nft, owner=body.to, pending_validator=NO_ADDRESS))


def _require_bindable(nft: ComputeNFT) -> None:
    if nft.bound_validator != NO_ADDRESS:
        raise NFTBindingError(f"compute NFT {nft.id} is already bound; unbind it first")
    if nft.status in (NFTStatus.FAULTY, NFTStatus.RETIRED):
        raise NFTBindingError(f"compute NFT {nft.id} is {NFTStatus.NAMES[nft.status]}")


def _bind(state: State, nft: ComputeNFT, validator: bytes) -> None:
    state.set_nft(dataclasses.replace(nft, bound_validator=validator, pending_validator=NO_ADDRESS))
    state.set_nft_binding(validator, nft.id, True)


def process_bind_nft(state: State, ctx: TxContext, sender: bytes, body: BindNFT) -> None:
    """Ask to bind a compute NFT to a validator; binding one's own validator is immediate.

    A binding makes the validator answer for the NFT (power, challenges, jobs),
    so it needs the validator's consent: the request waits in
    ``pending_validator`` until the validator's operator accepts it
    (``process_accept_nft``). An owner that is the validator's operator
    consents by sending the request. Counts from the next epoch once bound.
    """
    nft = _require_own_nft(state, body.nft_id, sender)
    _require_bindable(nft)
    if nft.pending_validator != NO_ADDRESS:
        raise NFTBindingError(
            f"compute NFT {nft.id} already has a binding request pending; cancel it with unbind_nft first"
        )
    v = _require_validator(state, body.validator)
    if v.tombstoned:
        raise ValidatorTombstoned("cannot bind compute to a tombstoned validator")
    if body.validator == sender:
        _bind(state, nft, body.validator)
        return
    state.set_nft(dataclasses.replace(nft, pending_validator=body.validator))


def process_accept_nft(state: State, ctx: TxContext, sender: bytes, body: AcceptNFT) -> None:
    """The sender's validator accepts a pending binding request: the NFT is bound to it."""
    nft = state.get_nft(body.nft_id)
    if nft is None or nft.pending_validator != sender:
        raise NFTBindingError(f"compute NFT {body.nft_id} has no binding request to the sender's validator")
    _require_bindable(nft)
    v = _require_validator(state, sender)
    if v.tombstoned:
        raise ValidatorTombstoned("a tombstoned validator cannot accept compute")
    _bind(state, nft, sender)


def process_unbind_nft(state: State, ctx: TxContext, sender: bytes, body: UnbindNFT) -> None:
    """Unbind a compute NFT (its owner, or the validator releasing it), or cancel its request.

    A bound NFT counts until the next epoch. An unbound NFT with a pending
    request has the request cancelled (owner only).
    """
    nft = state.get_nft(body.nft_id)
    if nft is None:
        raise UnknownNFT(f"no compute NFT with id {body.nft_id}")
    if nft.bound_validator != NO_ADDRESS and sender in (nft.owner, nft.bound_validator):
        state.set_nft_binding(nft.bound_validator, nft.id, False)
        state.set_nft(dataclasses.replace(nft, bound_validator=NO_ADDRESS))
        return
    if nft.owner != sender:
        raise NotNFTOwner(f"compute NFT {nft.id} is not owned by the sender")
    if nft.pending_validator != NO_ADDRESS:
        state.set_nft(dataclasses.replace(nft, pending_validator=NO_ADDRESS))
        return
    raise NFTBindingError(f"compute NFT {nft.id} is not bound and has no pending request")


def process_retire_nft(state: State, ctx: TxContext, sender: bytes, body: RetireNFT) -> None:
    """Retire an NFT the sender owns: unbound now, collateral back after ``unbonding_blocks``.

    The collateral stays on the NFT until then, so a fault found meanwhile (a
    fraud proof against a root it committed) still takes it. Refused while a
    challenge of the NFT is open or it holds job slots: retiring must not
    escape a pending answer.
    """
    nft = _require_own_nft(state, body.nft_id, sender)
    if nft.status in (NFTStatus.FAULTY, NFTStatus.RETIRED):
        raise NFTRetireRefused(f"compute NFT {nft.id} is {NFTStatus.NAMES[nft.status]}")
    latest = get_latest_challenge(state, nft.id)
    if latest is not None and latest.status in ChallengeStatus.OPEN:
        raise NFTRetireRefused(f"compute NFT {nft.id} has an open challenge: answer it first")
    slots = count_busy(state, nft.id)
    if slots:
        raise NFTRetireRefused(f"compute NFT {nft.id} holds {slots} unsettled job slot(s)")
    if nft.bound_validator != NO_ADDRESS:
        state.set_nft_binding(nft.bound_validator, nft.id, False)
    state.set_nft(dataclasses.replace(
        nft, bound_validator=NO_ADDRESS, pending_validator=NO_ADDRESS, verified_units=0,
        status=NFTStatus.RETIRED,
    ))
    state.put_record(Keys.nft_release(ctx.height + ctx.params.unbonding_blocks, nft.id), _Marker())


def process_nft_releases(state: State, height: int) -> None:
    """Return the collateral of the NFTs retired ``unbonding_blocks`` ago to their owners."""
    prefix = Keys.nft_release(height)
    due = [int.from_bytes(key[len(prefix):], "big") for key, _ in state.iter_records(prefix, _Marker)]
    for nft_id in due:
        state.put_record(Keys.nft_release(height, nft_id), None)
        nft = state.get_nft(nft_id)
        if nft is None or nft.collateral == 0:
            continue
        _credit(state, nft.owner, nft.collateral)
        state.set_nft(dataclasses.replace(nft, collateral=0))


def process_unjail(state: State, ctx: TxContext, sender: bytes, body: Unjail) -> None:
    """Return the sender's validator from jail (it rejoins at the next epoch)."""
    v = _require_validator(state, sender)
    if v.tombstoned:
        raise UnjailRefused("the validator is tombstoned for double-signing and can never return")
    if not v.jailed:
        raise UnjailRefused("the validator is not jailed")
    if ctx.time_ms < v.jailed_until_ms:
        raise UnjailRefused(
            f"jailed until {v.jailed_until_ms} ms; block time is {ctx.time_ms} ms "
            f"({v.jailed_until_ms - ctx.time_ms} ms to go)"
        )
    if v.self_bond < ctx.params.min_self_bond:
        raise UnjailRefused(
            f"self-bond {v.self_bond} is below the minimum {ctx.params.min_self_bond}; bond first"
        )
    state.set_validator(dataclasses.replace(v, jailed=0))


def process_double_sign_evidence(
    state: State, ctx: TxContext, evidence_kind: int, data: bytes, whistleblower: bytes
) -> None:
    """Verify double-sign evidence, slash once and tombstone the validator."""
    # Imported here: evidence verification lives with the BFT engine.
    from consensus.evidence import decode_evidence, verify_evidence

    try:
        evidence = decode_evidence(evidence_kind, data)
    except ConsensusError as exc:
        raise InvalidEvidence(f"malformed evidence: {exc}") from exc
    ev_height = evidence.height
    vset = state.get_validator_set_at(ev_height)
    if vset is None or ev_height > ctx.height:
        raise InvalidEvidence(f"no validator set known for evidence height {ev_height}")
    try:
        verify_evidence(ctx.chain_id, evidence, vset, ctx.height, ctx.params.unbonding_blocks)
    except ConsensusError as exc:
        raise InvalidEvidence(str(exc)) from exc
    ev_hash = evidence.evidence_hash()
    if state.is_fault_slashed(ev_hash) or _is_tombstoned(state, evidence.validator):
        raise FaultAlreadySlashed("this double-sign was already punished")
    process_slash(
        state,
        validator_address=evidence.validator,
        fault=Fault.DOUBLE_SIGN,
        slash_bps=ctx.params.double_sign_slash_bps,
        infraction_height=ev_height,
        evidence_hash=ev_hash,
        whistleblower=whistleblower,
        height=ctx.height,
        params=ctx.params,
    )
    process_jail(state, evidence.validator, JAILED_FOREVER_MS, tombstone=True)


def _is_tombstoned(state: State, address: bytes) -> bool:
    v = state.get_validator(address)
    return v is not None and bool(v.tombstoned)


def process_submit_evidence(
    state: State, ctx: TxContext, sender: bytes, body: SubmitEvidence
) -> None:
    """Evidence submitted in a transaction: the sender is the whistleblower."""
    process_double_sign_evidence(state, ctx, body.evidence_kind, body.evidence, sender)


def process_unsupported(state: State, ctx: TxContext, sender: bytes, body: Any) -> None:
    """Kinds whose rules are not part of this protocol version."""
    raise UnsupportedTransaction(
        f"{type(body).__name__} transactions are not enabled in this protocol version"
    )


Handler = Callable[[State, TxContext, bytes, Any], None]

HANDLERS: dict[int, Handler] = {
    TxKind.TRANSFER: process_transfer,
    TxKind.CREATE_VALIDATOR: process_create_validator,
    TxKind.BOND: process_bond_tx,
    TxKind.UNBOND: process_unbond,
    TxKind.DELEGATE: process_delegate,
    TxKind.UNDELEGATE: process_undelegate,
    TxKind.REGISTER_COMPUTE: process_register_compute,
    TxKind.TRANSFER_NFT: process_transfer_nft,
    TxKind.BIND_NFT: process_bind_nft,
    TxKind.UNBIND_NFT: process_unbind_nft,
    TxKind.ACCEPT_NFT: process_accept_nft,
    TxKind.UNJAIL: process_unjail,
    TxKind.WITHDRAW_REWARDS: process_withdraw_rewards,
    TxKind.RETIRE_NFT: process_retire_nft,
    TxKind.EDIT_VALIDATOR: process_edit_validator,
    TxKind.SUBMIT_EVIDENCE: process_submit_evidence,
    TxKind.SUBMIT_JOB: process_submit_job,
    TxKind.JOB_RESULT: process_job_result,
    TxKind.JOB_CHALLENGE: process_job_challenge,
    TxKind.CANCEL_JOB: process_cancel_job,
    TxKind.SET_PRICE: process_set_price,
    TxKind.POC_COMMIT: process_poc_commit,
    TxKind.POC_OPEN: process_poc_open,
    TxKind.FRAUD_PROOF: process_fraud_proof,
}


#: Cheap checks run before a kind's handler whose writes stay when the handler fails,
#: so that an attempt refused after expensive work is remembered and not paid for again.
PRECHECKS: dict[int, Handler] = {
    TxKind.FRAUD_PROOF: process_fraud_proof_claim,
    TxKind.JOB_CHALLENGE: process_job_challenge_claim,
}


def get_handler(kind: int) -> Handler:
    """Return the handler for ``kind`` (unsupported kinds fail at execution)."""
    return HANDLERS.get(kind, process_unsupported)


def get_precheck(kind: int) -> Handler | None:
    """Return the precheck of ``kind``, or None (see ``PRECHECKS``)."""
    return PRECHECKS.get(kind)
