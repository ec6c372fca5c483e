"""JSON forms of proof-of-compute state for the ``challenges`` and ``attestations`` RPC methods."""

from __future__ import annotations

from typing import Any

from consensus.attestation import Attestation
from consensus.crypto import encode_address
from consensus.poc import get_openings_deadline, get_sample_height
from consensus.poc_state import (
    ChallengeRecord,
    ChallengeStatus,
    get_latest_challenge,
    get_poc_params,
    iter_challenges_at,
)
from consensus.records import NO_ADDRESS
from consensus.state import Keys, State
from node.compute.service import AttestationPool
from node.rpc.format import format_spec


def format_challenge(rec: ChallengeRecord, poc_deadlines: tuple[int, int] | None = None) -> dict[str, Any]:
    """The JSON form of a challenge record for the ``challenges`` RPC method."""
    ch = rec.challenge
    return {
        "id": "0x" + ch.id.hex(),
        "nft_id": rec.nft_id,
        "height": ch.height,
        "n": ch.n,
        "rows": ch.rows,
        "claimed_units": ch.claimed_units,
        "status": ChallengeStatus.NAMES.get(rec.status, str(rec.status)),
        "commit_deadline": ch.deadline_height,
        "root": "0x" + rec.root.hex() if rec.root else None,
        "commit_height": rec.commit_height or None,
        "sample_height": poc_deadlines[0] if poc_deadlines else None,
        "openings_deadline": poc_deadlines[1] if poc_deadlines else None,
        "pending_units": rec.pending_units,
        # Sampled rows opened so far (openings may come in several transactions).
        "opened_rows": rec.opened_rows,
        "resolved_height": rec.resolved_height or None,
        # Whose stake answers for the commitment: the bound validator if its operator signed it, else none.
        "liable_validator": encode_address(rec.liable_validator) if rec.liable_validator != NO_ADDRESS else None,
    }


def list_challenges(state: State, latest: int, height: int | None, nft_id: int | None) -> list[dict[str, Any]]:
    """Challenges at ``height`` (default: the latest epoch boundary), or the NFT's latest one."""
    params = state.get_params()
    poc = get_poc_params(params)
    if nft_id is not None and height is None:
        found = get_latest_challenge(state, nft_id)
        recs = [] if found is None else [found]
    else:
        at = height if height is not None else latest - latest % params.epoch_blocks
        recs = [r for r in iter_challenges_at(state, at) if nft_id is None or r.nft_id == nft_id]
    out = []
    for rec in recs:
        deadlines = None
        if rec.commit_height:
            deadlines = (get_sample_height(rec.commit_height, poc),
                         get_openings_deadline(rec.commit_height, poc))
        out.append(format_challenge(rec, deadlines))
    return out


def format_attestation(att: Attestation, source: str) -> dict[str, Any]:
    return {
        "nft_id": att.nft_id,
        "validator": encode_address(att.validator),
        "spec": format_spec(att.spec),
        "measured_units": att.measured_units,
        "height": att.height,
        "signature": "0x" + att.signature.hex(),
        "source": source,
    }


def list_attestations(state: State, pool: AttestationPool | None, validator: bytes | None) -> list[dict[str, Any]]:
    """The freshest attestation per NFT: kept on chain, or newer in this node's pool."""
    best: dict[int, tuple[Attestation, str]] = {}
    for _, att in state.iter_records(Keys.ATTESTATION, Attestation):
        best[att.nft_id] = (att, "chain")
    for att in pool.items() if pool is not None else []:
        held = best.get(att.nft_id)
        if held is None or att.height > held[0].height:
            best[att.nft_id] = (att, "pool")
    return [format_attestation(a, src) for nft_id, (a, src) in sorted(best.items())
            if validator is None or a.validator == validator]
