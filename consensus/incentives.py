"""Per-block incentives: liveness (downtime) tracking, reputation, and the reward split.

Run at the end of every block, in this order:

1. **Liveness.** For each member of the set that decided the previous height,
   the block's ``last_commit`` says whether it precommitted. A sliding window
   of the last ``downtime_window`` heights counts misses per validator; once a
   validator has been tracked for a whole window and has missed more than
   ``downtime_max_missed``, it is slashed ``downtime_slash_bps`` (all burned),
   jailed until ``block time + jail_duration_ms``, and its window restarts.
   The infraction height is the start of the window, so unbonding entries
   created during the window are slashed as well.
2. **Reputation** (an integer in [0, 1,000,000]) moves ``reputation_block_bps``
   of the way toward 1,000,000 for a signed precommit and toward 0 for a miss;
   challenges and jobs move it by their own steps (``process_reputation``).
3. **Rewards.** ``block_reward`` is minted; with the block's fees it is split:
   ``consensus_share_bps`` to validators — ``proposer_bonus_bps`` of that part
   to the proposer, the rest to the previous commit's signers in proportion to
   their power — and the remainder to compute-NFT owners in proportion to
   ``verified_units × reputation`` of the NFT's validator (active NFTs bound to
   validators that are not jailed). A validator's reward pays its commission
   to the operator and credits the rest to its delegators (self-bond
   included) pro rata, lazily: the validator's cumulative reward ratio rises
   and each delegation is paid on withdrawal or change (``consensus.staking``;
   the operator's own bond is settled every block). Integer division in the
   split leaves dust; it goes to the proposer. Dust of the lazy ratio stays in
   the validator's outstanding reward pool, so every minted and collected unit
   is either paid or tracked there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from consensus.blocks import Block
from consensus.codec import Encodable
from consensus.hashing import tagged_hash
from consensus.params import BPS, Params
from consensus.records import NO_ADDRESS, Fault, NFTStatus, Validator
from consensus.staking import (
    add_balance,
    process_allocate_rewards,
    process_jail,
    process_settle_rewards,
    process_slash,
)
from consensus.state import State, be64
from consensus.validator_set import ValidatorSet

MAX_REPUTATION = 1_000_000
LIVENESS_PREFIX = b"lw/"


@dataclass(frozen=True, slots=True)
class LivenessWindow(Encodable):
    """Which of a validator's last ``window`` tracked heights it missed."""

    #: Heights tracked so far (the window is full once this reaches its size).
    tracked: int
    #: Bit i set = missed at the tracked height whose counter mod window is i.
    bits: bytes
    #: Number of set bits.
    missed: int


@dataclass(frozen=True, slots=True)
class ValidatorJailed:
    """Event: a validator was slashed and jailed for downtime."""

    validator: bytes
    height: int
    missed: int
    amount: int


def _window_key(validator: bytes) -> bytes:
    return LIVENESS_PREFIX + validator


def compute_reputation_step(reputation: int, up: bool, step_bps: int) -> int:
    """Move ``reputation`` ``step_bps`` of the way toward the top (up) or toward 0.

    The step is rounded up, so reputation reaches the bounds instead of
    stalling just short of them.
    """
    if up:
        return reputation + -(-(MAX_REPUTATION - reputation) * step_bps // BPS)
    return reputation - -(-reputation * step_bps // BPS)


def process_reputation(state: State, validator: bytes, up: bool, step_bps: int) -> None:
    """Apply one reputation step to ``validator`` (if it exists)."""
    v = state.get_validator(validator)
    if v is not None:
        state.set_validator(dataclasses.replace(v, reputation=compute_reputation_step(v.reputation, up, step_bps)))


def process_liveness(
    state: State, block: Block, last_set: ValidatorSet | None, params: Params, events: list[object]
) -> None:
    """Record who signed the previous height's commit; slash and jail the long-absent."""
    if block.last_commit is None or last_set is None:
        return
    h = block.header
    signers = {sig.validator for sig in block.last_commit.signatures}
    window = params.downtime_window
    for member in last_set.validators:
        v = state.get_validator(member.address)
        if v is None or v.jailed or v.tombstoned:
            continue
        signed = member.address in signers
        state.set_validator(
            dataclasses.replace(v, reputation=compute_reputation_step(v.reputation, signed, params.reputation_block_bps))
        )
        key = _window_key(member.address)
        w = state.get_record(key, LivenessWindow) or LivenessWindow(0, bytes((window + 7) // 8), 0)
        if len(w.bits) != (window + 7) // 8:
            w = LivenessWindow(0, bytes((window + 7) // 8), 0)
        i = w.tracked % window
        bits = bytearray(w.bits)
        was = (bits[i // 8] >> (i % 8)) & 1
        now = 0 if signed else 1
        if now:
            bits[i // 8] |= 1 << (i % 8)
        else:
            bits[i // 8] &= ~(1 << (i % 8)) & 0xFF
        w = LivenessWindow(w.tracked + 1, bytes(bits), w.missed - was + now)
        if w.tracked >= window and w.missed > params.downtime_max_missed:
            record = process_slash(
                state,
                validator_address=member.address,
                fault=Fault.DOWNTIME,
                slash_bps=params.downtime_slash_bps,
                # The fault spans the window: stake that began unbonding within it
                # was bonded while the validator was failing, and is slashed too.
                infraction_height=max(0, h.height - window),
                evidence_hash=tagged_hash(b"cstake/downtime", member.address + be64(h.height)),
                whistleblower=NO_ADDRESS,
                height=h.height,
                params=params,
            )
            process_jail(state, member.address, h.time_ms + params.jail_duration_ms, tombstone=False)
            events.append(ValidatorJailed(member.address, h.height, w.missed, record.amount))
            w = LivenessWindow(0, bytes(len(bits)), 0)
        state.put_record(key, w)


def pay_validator_reward(state: State, validator: Validator, amount: int) -> None:
    """Pay a validator's reward: commission to the operator, the rest to its delegators.

    O(1) in the number of delegations: the delegators' part only raises the
    validator's reward ratio (``process_allocate_rewards``); each delegation
    collects it when withdrawn or changed. The operator's own bond is settled
    at once, so the operator is paid every block as before.
    """
    if amount <= 0:
        return
    commission = amount * validator.commission_bps // BPS
    add_balance(state, validator.address, commission)
    process_allocate_rewards(state, validator, amount - commission)
    if validator.self_bond > 0:
        process_settle_rewards(state, validator, validator.address)


def process_rewards(
    state: State, block: Block, last_set: ValidatorSet | None, params: Params, fees: int
) -> None:
    """Split ``block_reward + fees`` between consensus and compute (see the module doc)."""
    h = block.header
    total = params.block_reward + fees
    consensus_part = total * params.consensus_share_bps // BPS
    compute_part = total - consensus_part
    dust = 0
    # Validator rewards accumulate per address first, so each validator pays out once.
    rewards: dict[bytes, int] = {}
    signers = [] if block.last_commit is None or last_set is None else [
        m for m in (last_set.get_by_address(s.validator) for s in block.last_commit.signatures) if m is not None
    ]
    signed_power = sum(m.power for m in signers)
    if signed_power == 0:
        dust += consensus_part
    else:
        bonus = consensus_part * params.proposer_bonus_bps // BPS
        rewards[h.proposer] = rewards.get(h.proposer, 0) + bonus
        rest = consensus_part - bonus
        paid = 0
        for m in sorted(signers, key=lambda m: m.address):
            share = rest * m.power // signed_power
            rewards[m.address] = rewards.get(m.address, 0) + share
            paid += share
        dust += rest - paid
    # Compute rewards: NFT owners by verified units x their validator's reputation.
    weights: list[tuple[bytes, int]] = []
    for v in state.iter_validators():
        if v.jailed or v.tombstoned or v.reputation == 0:
            continue
        for nft_id in state.iter_validator_nft_ids(v.address):
            nft = state.get_nft(nft_id)
            if nft is not None and nft.status == NFTStatus.ACTIVE and nft.verified_units > 0:
                weights.append((nft.owner, nft.verified_units * v.reputation))
    total_weight = sum(w for _, w in weights)
    if total_weight == 0:
        dust += compute_part
    else:
        paid = 0
        for owner, w in weights:
            share = compute_part * w // total_weight
            if share:
                add_balance(state, owner, share)
                paid += share
        dust += compute_part - paid
    for address in sorted(rewards):
        validator = state.get_validator(address)
        if validator is None:
            dust += rewards[address]
        else:
            pay_validator_reward(state, validator, rewards[address])
    if dust:
        proposer = state.get_validator(h.proposer)
        if proposer is None:
            add_balance(state, h.proposer, dust)
        else:
            add_balance(state, proposer.address, dust)
