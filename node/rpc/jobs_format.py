"""JSON form of marketplace jobs for the ``jobs`` and ``job`` RPC methods."""

from __future__ import annotations

from typing import Any

from consensus.crypto import encode_address
from consensus.jobs.iterate import IterateSpec
from consensus.jobs.matmul import MatmulSpec
from consensus.jobs.registry import get_kind
from consensus.jobs.types import Dispute, Job, JobSlot, JobStatus, SlotStatus


def _hex(data: bytes) -> str | None:
    return "0x" + data.hex() if data else None


def _addr(data: bytes) -> str | None:
    return encode_address(data) if data else None


def is_job_status(job: Job, status: str) -> bool:
    """Return whether ``job`` matches a status filter ("open" is every status before the end)."""
    if status == "open":
        return job.status not in JobStatus.FINAL
    return JobStatus.NAMES.get(job.status) == status


def format_spec(job: Job) -> dict[str, int]:
    if job.job_kind == 1:
        m = MatmulSpec.decode(job.spec)
        return {"m": m.m, "n": m.n, "p": m.p}
    if job.job_kind == 2:
        it = IterateSpec.decode(job.spec)
        return {"steps": it.steps, "width": it.width}
    return {}


def format_dispute(d: Dispute | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "challenger": _addr(d.challenger), "lo": d.lo, "hi": d.hi,
        "turn": "provider" if d.turn == 0 else "challenger", "turn_deadline": d.turn_deadline,
        "rounds": d.rounds,
    }


def format_slot(slot: JobSlot, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": slot.index, "status": SlotStatus.NAMES.get(slot.status, str(slot.status)),
        "nft_id": slot.nft_id if slot.status != SlotStatus.EMPTY else None,
        "provider": _addr(slot.provider), "validator": _addr(slot.validator), "price": slot.price,
        "assigned_height": slot.assigned_height, "deadline_height": slot.deadline_height,
        "result_root": _hex(slot.result_root), "committed_height": slot.committed_height,
        "committer": _addr(slot.committer),
        "window_end": slot.window_end, "opened": len(slot.openings), "dispute": format_dispute(slot.dispute),
    }
    if detail:
        out["openings"] = [{"index": o.index, "leaf": _hex(o.leaf)} for o in slot.openings]
    return out


def format_job(job: Job, *, detail: bool) -> dict[str, Any]:
    """Return the JSON form of ``job`` (with the opened leaves when ``detail``)."""
    kind = get_kind(job.job_kind)
    return {
        "id": _hex(job.id), "seq": job.seq, "submitter": _addr(job.submitter),
        "kind": kind.name if kind is not None else str(job.job_kind), "spec": format_spec(job),
        "inputs": "inline" if job.inputs else "seed", "input_seed": _hex(job.input_seed),
        "input_hash": _hex(job.input_hash), "status": JobStatus.NAMES.get(job.status, str(job.status)),
        "work_units": job.work_units, "min_units": job.min_units, "bid_per_unit": job.bid_per_unit,
        "redundancy": job.redundancy, "deadline_blocks": job.deadline_blocks,
        "submitted_height": job.submitted_height, "expires_height": job.expires_height,
        "settled_height": job.settled_height, "result_root": _hex(job.result_root),
        "escrow": job.escrow, "locked": job.locked, "paid": job.paid, "verifier_paid": job.verifier_paid,
        "burned": job.burned, "refunded": job.refunded, "excluded": list(job.excluded),
        "slots": [format_slot(s, detail) for s in job.slots],
    }
