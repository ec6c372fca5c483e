"""Stake, voting power, slashing, unbonding and epoch changes of the validator set.

Voting power is ``isqrt(stake * verified_compute)``: zero when either is zero,
and by Cauchy-Schwarz never increased by splitting stake and compute over
several identities (sqrt(a1*b1) + sqrt(a2*b2) <= sqrt((a1+a2)*(b1+b2))).

There is one slashing routine, ``process_slash``; every fault goes through it.
It touches the slashed validator's delegations and, through the
``uv/`` index, only that validator's unbonding entries.

Delegator rewards are lazy (F1 distribution, as in the Cosmos SDK): a block
adds to the validator's cumulative reward-per-token ratio (scaled by
``REWARD_SCALE``) in O(1); a delegation remembers the ratio, its amount and
the validator's slash-event count when it was last settled, and is paid
``amount x (ratio_now - ratio_then) / REWARD_SCALE`` (split at each slash
event since) when it is withdrawn or changed. See docs/protocol.md.
"""

from __future__ import annotations

import dataclasses
from math import isqrt

from consensus.params import BPS, Params
from consensus.records import (
    NO_ADDRESS,
    REWARD_SCALE,
    Account,
    ComputeNFT,
    Delegation,
    NFTStatus,
    SlashEvent,
    SlashingRecord,
    UnbondingEntry,
    Validator,
    ValidatorRewards,
    decode_ratio,
    encode_ratio,
)
from consensus.state import Keys, State


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


def compute_pending_rewards(state: State, delegation: Delegation, validator: Validator) -> int:
    """Return the rewards ``delegation`` would be paid if settled now.

    The scaled reward is summed over the intervals between the validator's
    slash events since the delegation was settled (each slash cuts the amount
    exactly as ``process_slash`` did), then floored once. When the delegation
    is the validator's whole stake nobody else is owed anything, and it takes
    the whole outstanding pool (the rounding dust included).
    """
    vr = state.get_validator_rewards(validator.address)
    amount = delegation.start_amount
    ratio = decode_ratio(delegation.start_ratio)
    scaled = 0
    for index in range(delegation.start_slash, vr.slash_count):
        event = state.get_slash_event(validator.address, index)
        event_ratio = decode_ratio(event.ratio)
        scaled += amount * (event_ratio - ratio)
        ratio = event_ratio
        amount -= amount * event.slash_bps // BPS
    scaled += amount * (decode_ratio(vr.ratio) - ratio)
    if delegation.amount > 0 and delegation.amount == validator.stake:
        return vr.outstanding
    return min(scaled // REWARD_SCALE, vr.outstanding)


def process_settle_rewards(state: State, validator: Validator, delegator: bytes) -> int:
    """Pay ``delegator``'s pending rewards from ``validator`` and restart its accrual; return the amount."""
    d = state.get_delegation(validator.address, delegator)
    if d is None:
        return 0
    reward = compute_pending_rewards(state, d, validator)
    vr = state.get_validator_rewards(validator.address)
    if reward:
        add_balance(state, delegator, reward)
        vr = dataclasses.replace(vr, outstanding=vr.outstanding - reward)
        state.set_validator_rewards(validator.address, vr)
    state.set_delegation(
        dataclasses.replace(d, start_amount=d.amount, start_ratio=encode_ratio(decode_ratio(vr.ratio)), start_slash=vr.slash_count)
    )
    return reward


def process_allocate_rewards(state: State, validator: Validator, amount: int) -> None:
    """Credit ``amount`` to ``validator``'s delegators (self-bond included), in O(1).

    The ratio grows by ``floor((amount x REWARD_SCALE + carry) / stake)``; the
    scaled remainder is carried to the next allocation, so the ratio never
    promises more than was allocated. With no stake the operator is paid.
    """
    if amount <= 0:
        return
    if validator.stake <= 0:
        add_balance(state, validator.address, amount)
        return
    vr = state.get_validator_rewards(validator.address)
    scaled = amount * REWARD_SCALE + decode_ratio(vr.carry)
    state.set_validator_rewards(
        validator.address,
        ValidatorRewards(
            ratio=encode_ratio(decode_ratio(vr.ratio) + scaled // validator.stake),
            carry=encode_ratio(scaled % validator.stake),
            outstanding=vr.outstanding + amount,
            slash_count=vr.slash_count,
        ),
    )


def process_bond(state: State, validator: Validator, delegator: bytes, amount: int) -> Validator:
    """Move ``amount`` bonded tokens into ``delegator``'s delegation to ``validator``."""
    process_settle_rewards(state, validator, delegator)
    d = state.get_delegation(validator.address, delegator)
    current = 0 if d is None else d.amount
    vr = state.get_validator_rewards(validator.address)
    state.set_delegation(
        Delegation(delegator, validator.address, current + amount, current + amount, encode_ratio(decode_ratio(vr.ratio)), vr.slash_count)
    )
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
    process_settle_rewards(state, validator, delegator)
    d = state.get_delegation(validator.address, delegator)
    current = 0 if d is None else d.amount
    vr = state.get_validator_rewards(validator.address)
    state.set_delegation(
        Delegation(delegator, validator.address, current - amount, current - amount, encode_ratio(decode_ratio(vr.ratio)), vr.slash_count)
    )
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
        # The lazy reward computation splits at this event (the amounts change here).
        vr = state.get_validator_rewards(validator_address)
        state.put_record(Keys.slash_event(validator_address, vr.slash_count), SlashEvent(encode_ratio(decode_ratio(vr.ratio)), slash_bps, height))
        state.set_validator_rewards(validator_address, dataclasses.replace(vr, slash_count=vr.slash_count + 1))
        for entry in list(state.iter_validator_unbonding(validator_address, infraction_height)):
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
