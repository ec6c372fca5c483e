"""Chain events for subscribers: what a committed block did besides its transactions.

The state transition reports facts as events (``consensus.poc_state``'s
challenge events, ``consensus.jobs.market``'s job events, jailing, epoch ends);
the block carries evidence and attestations; the slashing records a block wrote
are read from its changed keys. ``get_chain_events`` turns them into
``ChainEvent``s of a few kinds, each with the addresses it concerns, so a
WebSocket subscriber can ask for one kind, and for one address.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from consensus.attestation import Attestation
from consensus.blocks import Block
from consensus.errors import ConsensusError
from consensus.incentives import ValidatorJailed
from consensus.jobs.market import (
    JobAssigned,
    JobDeadlineMissed,
    JobDisputeDismissed,
    JobFaultProven,
    JobSettled,
)
from consensus.poc_state import (
    ChallengeIssued,
    ChallengeRecord,
    ChallengeResolved,
    ChallengeSampled,
    ChallengeStatus,
)
from consensus.records import Fault, SlashingRecord
from consensus.state import Keys
from consensus.transition import EpochEnded
from consensus.txs import SignedTx
from node.rpc import format as fmt

#: Chain event kinds a subscriber may ask for (besides new_block and tx).
CHAIN_EVENT_KINDS = ("slashing", "jailing", "challenge", "attestation", "job", "epoch")

_NAMES: dict[type, tuple[str, str]] = {
    ValidatorJailed: ("jailing", "validator_jailed"),
    ChallengeIssued: ("challenge", "challenge_issued"),
    ChallengeSampled: ("challenge", "challenge_sampled"),
    ChallengeResolved: ("challenge", "challenge_resolved"),
    JobAssigned: ("job", "job_assigned"),
    JobDeadlineMissed: ("job", "job_deadline_missed"),
    JobFaultProven: ("job", "job_fault_proven"),
    JobDisputeDismissed: ("job", "job_dispute_dismissed"),
    JobSettled: ("job", "job_settled"),
    EpochEnded: ("epoch", "epoch_ended"),
}


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """Event: something a committed block did, as subscribers see it."""

    kind: str
    name: str
    height: int
    data: dict[str, Any]
    #: Addresses the event concerns (a subscriber's address filter matches any of them).
    addresses: tuple[bytes, ...]


def _fields(obj: Any) -> tuple[dict[str, Any], tuple[bytes, ...]]:
    data: dict[str, Any] = {}
    addresses: list[bytes] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bytes) and len(value) == 20 and f.name in ("validator", "challenger"):
            data[f.name] = fmt.addr(value)
            addresses.append(value)
        else:
            data[f.name] = fmt.format_value(f.name, value)
    if isinstance(obj, ChallengeResolved):
        data["status"] = ChallengeStatus.NAMES.get(obj.status, str(obj.status))
    return data, tuple(addresses)


def get_chain_events(
    block: Block,
    events: Iterable[object],
    slashing_records: Iterable[SlashingRecord] = (),
    resolved: Iterable[ChallengeRecord] = (),
) -> list[ChainEvent]:
    """The subscriber events of one committed block, in the order the block produced them.

    ``resolved``: the challenges the block resolved (passed and failed ones are settled
    by transactions, which report no event; missed ones come as events already).
    """
    height = block.header.height
    out: list[ChainEvent] = []
    for event in events:
        named = _NAMES.get(type(event))
        if named is None:
            continue  # evidence items and tx-level facts are reported elsewhere
        data, addresses = _fields(event)
        out.append(ChainEvent(named[0], named[1], height, data, addresses))
    for rec in resolved:
        if rec.status == ChallengeStatus.MISSED:
            continue
        out.append(ChainEvent(
            "challenge", "challenge_resolved", height,
            {"challenge_id": fmt.hex0x(rec.challenge.id), "nft_id": rec.nft_id, "height": height,
             "status": ChallengeStatus.NAMES.get(rec.status, str(rec.status))},
            (),
        ))
    for record in slashing_records:
        out.append(ChainEvent(
            "slashing", "validator_slashed", height,
            {**fmt.format_slashing_record(record), "fault": Fault.NAMES.get(record.fault, str(record.fault))},
            (record.validator,) + ((record.whistleblower,) if record.whistleblower else ()),
        ))
    for raw in block.attestations:
        try:
            att = Attestation.decode(raw)
        except ConsensusError:
            continue
        out.append(ChainEvent(
            "attestation", "attestation_included", height,
            {"nft_id": att.nft_id, "validator": fmt.addr(att.validator), "measured_units": att.measured_units,
             "spec": fmt.format_spec(att.spec), "attested_height": att.height},
            (att.validator,),
        ))
    return out


def get_new_slashing_records(
    changed_keys: Iterable[bytes], read: Callable[[bytes], bytes | None]
) -> list[SlashingRecord]:
    """The slashing records a block wrote: its changed keys under the slashing prefix, read back."""
    out = []
    for key in changed_keys:
        if not key.startswith(Keys.SLASHING):
            continue
        raw = read(key)
        if raw is not None:
            try:
                out.append(SlashingRecord.decode(raw))
            except ConsensusError:
                continue
    return out


def get_resolved_challenges(
    height: int, changed_keys: Iterable[bytes], read: Callable[[bytes], bytes | None]
) -> list[ChallengeRecord]:
    """Challenge records the block at ``height`` resolved (passed, failed or missed), from its changed keys."""
    out = []
    for key in changed_keys:
        if not key.startswith(Keys.CHALLENGE):
            continue
        raw = read(key)
        if raw is None:
            continue
        try:
            rec = ChallengeRecord.decode(raw)
        except ConsensusError:
            continue
        if rec.status not in ChallengeStatus.OPEN and rec.resolved_height == height:
            out.append(rec)
    return out


def get_tx_addresses(tx: SignedTx) -> tuple[bytes, ...]:
    """The sender and every address in the body (recipient, validator, delegator...), for filters."""
    found = [tx.payload.sender]
    try:
        body = tx.payload.decode_body()
    except ConsensusError:
        return tuple(found)
    if dataclasses.is_dataclass(body):
        for f in dataclasses.fields(body):
            value = getattr(body, f.name)
            if f.name in fmt.ADDRESS_FIELDS and isinstance(value, bytes) and len(value) == 20:
                found.append(value)
    return tuple(dict.fromkeys(found))
