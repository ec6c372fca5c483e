"""Stake, voting power, slashing, unbonding and epoch changes of the validator set.

Voting power is ``isqrt(stake * verified_compute)``: zero when either is zero,
and by Cauchy-Schwarz never increased by splitting stake and compute over
several identities (sqrt(a1*b1) + sqrt(a2*b2) <= sqrt((a1+a2)*(b1+b2))).

There is one slashing routine, ``process_slash``; every fault goes through it.
"""

from __future__ import annotations

import dataclasses
from math import isqrt

from consensus.params import BPS, Params
from consensus.records import (
    NO_ADDRESS,
    Account,
    ComputeNFT,
    Delegation,
    NFTStatus,
    SlashingRecord,
    UnbondingEntry,
    Validator,
)
from consensus.state import State


def compute_voting_power(stake: int, verified_compute: int) -> int:
    """Return the voting power of ``stake`` tokens and ``verified_compute`` units."""
    if stake <= 0 or verified_compute <= 0:
        return 0
    return isqrt(stake * verified_compute)


def get_validator_compute(state: State, validator: bytes) -> int:
    """Return the verified units of the active NFTs bound to ``validator``."""
    total = 0
    for nft_id in state.iter_validator_nft_ids(validator):
        nft = state.get_nft(nft_id)
        if nft is not None and nft.status == NFTStatus.ACTIVE:
            total += nft.verified_units
    return total


def is_eligible(validator: Validator, compute: int, params: Params) -> bool:
    """Return True when ``validator`` may be in the active set."""
    return (
        not validator.jailed
        and not validator.tombstoned
        and validator.self_bond >= params.min_self_bond
        and compute >= params.min_verified_compute
    )


def compute_active_entries(state: State, params: Params) -> list[tuple[bytes, bytes, int]]:
    """Return (address, consensus pubkey, power) of the next active set.

    The top ``max_validators`` eligible validators by power (ties by address).
    """
    ranked: list[tuple[int, bytes, bytes]] = []
    for v in state.iter_validators():
        compute = get_validator_compute(state, v.address)
        if not is_eligible(v, compute, params):
            continue
        power = compute_voting_power(v.stake, compute)
        if power > 0:
            ranked.append((power, v.address, v.consensus_pubkey))
    ranked.sort(key=lambda e: (-e[0], e[1]))
    return [(addr, pk, power) for power, addr, pk in ranked[: params.max_validators]]


def compute_epoch_changes(state: State, params: Params) -> list[tuple[bytes, bytes, int]]:
    """Return the validator-set change set at an epoch boundary.

    New powers for the eligible top validators, and power 0 for members that
    dropped out. If nobody would remain, the change set is empty and the set
    stays as it is: an empty set could never commit another block.
    """
    current = state.get_validator_set()
    entries = compute_active_entries(state, params)
    if not entries:
        return []
    members = {e[0] for e in entries}
    removals = [(v.address, v.pubkey, 0) for v in current.validators if v.address not in members]
    return entries + removals


def add_balance(state: State, address: bytes, amount: int) -> None:
    """Credit ``amount`` to ``address``."""
    acct = state.get_account(address)
    state.set_account(address, Account(acct.balance + amount, acct.nonce))


def process_mint(state: State, amount: int) -> None:
    """Record ``amount`` newly minted tokens in the supply counters."""
    meta = state.get_meta()
    state.set_meta(
        dataclasses.replace(
            meta, total_supply=meta.total_supply + amount, minted=meta.minted + amount
        )
    )


def process_burn(state: State, amount: int) -> None:
    """Record ``amount`` tokens destroyed in the supply counters."""
    meta = state.get_meta()
    state.set_meta(
        dataclasses.replace(
            meta, total_supply=meta.total_supply - amount, burned=meta.burned + amount
        )
    )


def process_bond(state: State, validator: Validator, delegator: bytes, amount: int) -> Validator:
    """Move ``amount`` bonded tokens into ``delegator``'s delegation to ``validator``."""
    d = state.get_delegation(validator.address, delegator)
    current = 0 if d is None else d.amount
    state.set_delegation(Delegation(delegator, validator.address, current + amount))
    self_add = amount if delegator == validator.address else 0
    updated = dataclasses.replace(
        validator, stake=validator.stake + amount, self_bond=validator.self_bond + self_add
    )
    state.set_validator(updated)
    return updated


def process_begin_unbonding(
    state: State, validator: Validator, delegator: bytes, amount: int, height: int, params: Params
) -> UnbondingEntry:
    """Move ``amount`` from a delegation into the unbonding queue (caller checked it)."""
    d = state.get_delegation(validator.address, delegator)
    current = 0 if d is None else d.amount
    state.set_delegation(Delegation(delegator, validator.address, current - amount))
    self_sub = amount if delegator == validator.address else 0
    state.set_validator(
        dataclasses.replace(
            validator, stake=validator.stake - amount, self_bond=validator.self_bond - self_sub
        )
    )
    meta = state.get_meta()
    entry = UnbondingEntry(
        delegator=delegator,
        validator=validator.address,
        amount=amount,
        creation_height=height,
        completion_height=height + params.unbonding_blocks,
        seq=meta.next_unbonding_seq,
    )
    state.set_meta(dataclasses.replace(meta, next_unbonding_seq=meta.next_unbonding_seq + 1))
    state.put_unbonding(entry)
    return entry


def process_matured_unbondings(state: State, height: int) -> list[UnbondingEntry]:
    """Return tokens of every entry whose completion height is <= ``height``."""
    matured = []
    for entry in state.iter_unbonding():
        if entry.completion_height > height:
            break
        matured.append(entry)
    for entry in matured:
        add_balance(state, entry.delegator, entry.amount)
        state.put_unbonding(dataclasses.replace(entry, amount=0))
    return matured


def process_slash(
    state: State,
    *,
    validator_address: bytes,
    fault: int,
    slash_bps: int,
    infraction_height: int,
    evidence_hash: bytes,
    whistleblower: bytes,
    height: int,
    params: Params,
    extra_amount: int = 0,
) -> SlashingRecord:
    """Slash a validator for one fault; return the slashing record.

    Takes ``slash_bps`` of every delegation (self-bond included) and of every
    unbonding entry of the validator created after ``infraction_height`` (it
    was still at stake when the fault happened); entries that already matured
    are gone from the queue and untouched. ``extra_amount`` is an already
    removed amount (e.g. NFT collateral) counted into the same record. A
    ``whistleblower_bps`` share goes to ``whistleblower`` (if any); the rest is
    burned. The caller guarantees the fault was not slashed before.
    """
    validator = state.get_validator(validator_address)
    total = extra_amount
    if validator is not None:
        taken_stake = 0
        taken_self = 0
        for d in list(state.iter_delegations(validator_address)):
            cut = d.amount * slash_bps // BPS
            if cut:
                state.set_delegation(dataclasses.replace(d, amount=d.amount - cut))
                taken_stake += cut
                if d.delegator == validator_address:
                    taken_self = cut
        state.set_validator(
            dataclasses.replace(
                validator,
                stake=validator.stake - taken_stake,
                self_bond=validator.self_bond - taken_self,
            )
        )
        total += taken_stake
        for entry in list(state.iter_unbonding()):
            if entry.validator != validator_address or entry.creation_height <= infraction_height:
                continue
            cut = entry.amount * slash_bps // BPS
            if cut:
                state.put_unbonding(dataclasses.replace(entry, amount=entry.amount - cut))
                total += cut
    reward = total * params.whistleblower_bps // BPS if whistleblower != NO_ADDRESS else 0
    if reward:
        add_balance(state, whistleblower, reward)
    process_burn(state, total - reward)
    record = SlashingRecord(
        height=height,
        validator=validator_address,
        fault=fault,
        amount=total,
        evidence_hash=evidence_hash,
        whistleblower=whistleblower,
        whistleblower_reward=reward,
    )
    state.add_slashing_record(record)
    return record


def process_jail(state: State, validator_address: bytes, until_ms: int, *, tombstone: bool) -> None:
    """Jail a validator until ``until_ms`` (forever when tombstoned)."""
    v = state.get_validator(validator_address)
    if v is None:
        return
    state.set_validator(
        dataclasses.replace(
            v,
            jailed=1,
            jailed_until_ms=max(v.jailed_until_ms, until_ms),
            tombstoned=1 if tombstone else v.tombstoned,
        )
    )


def process_slash_collateral(state: State, nft: ComputeNFT, slash_bps: int) -> tuple[ComputeNFT, int]:
    """Take ``slash_bps`` of an NFT's collateral; return the new NFT and the amount taken."""
    cut = nft.collateral * slash_bps // BPS
    updated = dataclasses.replace(nft, collateral=nft.collateral - cut)
    state.set_nft(updated)
    return updated, cut
