"""The checks run after every scenario, on what the nodes serve over RPC.

``collect_chain`` reads every block a node holds (JSON-RPC batches); the
``check_*`` functions are pure: they take the collected data and return a
``Check`` (name, passed, one-line detail) so the report prints them all, and
the e2e test asserts every one passed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.faults.faults import Restart
from tests.faults.load import TxRecord
from tests.kit.devnet import BadAnswer, post, rpc

BATCH = 100
#: Slashing faults a validator taken out by an injected fault may earn: liveness faults only.
LIVENESS_FAULTS = ("downtime", "missed_challenge")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ChainBlock:
    """What the checks need of one block as one node serves it."""

    height: int
    hash: str
    txs: tuple[str, ...]
    evidence_kinds: tuple[int, ...]
    commit_validators: tuple[str, ...]
    """Validators with a precommit in the block's commit (``last_commit`` of the next block when absent)."""


def collect_chain(url: str, top: int, timeout: float = 30.0) -> list[ChainBlock]:
    """Blocks 1..top of the node at ``url``."""
    out: list[ChainBlock] = []
    for start in range(1, top + 1, BATCH):
        heights = range(start, min(top, start + BATCH - 1) + 1)
        body = json.dumps([{"jsonrpc": "2.0", "id": h, "method": "block", "params": {"height": h, "txs": "hashes"}}
                           for h in heights]).encode()
        _, doc = post(url, body, timeout=timeout)
        if not isinstance(doc, list):
            raise BadAnswer(f"block batch: the node answered {str(doc)[:200]}")
        by_id = {d.get("id"): d for d in doc if isinstance(d, dict)}
        for h in heights:
            d = by_id.get(h, {})
            if "result" not in d:
                raise BadAnswer(f"block {h} from {url}: {d.get('error', d)}")
            out.append(to_block(d["result"]))
    return out


def to_block(b: dict[str, Any]) -> ChainBlock:
    commit = b.get("commit") or {"signatures": []}
    return ChainBlock(
        height=int(b["header"]["height"]),
        hash=str(b["hash"]),
        txs=tuple(str(t) for t in b["txs"]),
        evidence_kinds=tuple(int(e["kind"]) for e in b.get("evidence", [])),
        commit_validators=tuple(str(s["validator"]) for s in commit["signatures"]),
    )


def fetch_slashing_records(url: str) -> list[dict[str, Any]]:
    return list(rpc(url, "slashing_records", timeout=10.0))


# --- the checks ----------------------------------------------------------------------------------


def check_no_fork(chains: dict[str, list[ChainBlock]]) -> Check:
    """Every node holds the same hash at every height it holds."""
    by_height: dict[int, dict[str, str]] = {}
    for node, blocks in chains.items():
        for b in blocks:
            by_height.setdefault(b.height, {})[node] = b.hash
    forks = [(h, seen) for h, seen in sorted(by_height.items()) if len(set(seen.values())) > 1]
    heights = {node: len(blocks) for node, blocks in chains.items()}
    if forks:
        h, seen = forks[0]
        return Check("no fork", False, f"{len(forks)} heights differ; first {h}: {seen}")
    return Check("no fork", True, f"{len(by_height)} heights, identical hashes on {len(chains)} nodes "
                                  f"(heights {heights})")


def check_no_block_lost(restarts: Sequence[Restart]) -> Check:
    """A restarted node still holds every height it had committed, with the same hash."""
    bad = []
    checked = 0
    for r in restarts:
        if not r.expect_kept or not r.height_before:
            continue
        checked += 1
        if r.height_after is None:
            bad.append(f"node{r.node} ({r.kind}) never answered after its restart")
        elif r.height_after < r.height_before:
            bad.append(f"node{r.node} ({r.kind}) had height {r.height_before}, came back at {r.height_after}")
        elif r.hash_after != r.hash_before:
            bad.append(f"node{r.node} ({r.kind}) height {r.height_before}: {r.hash_before} became {r.hash_after}")
    if bad:
        return Check("no committed block lost", False, f"{len(bad)} of {checked} restarts: {'; '.join(bad[:3])}")
    return Check("no committed block lost", True, f"{checked} restarts, each came back at or above its height")


def check_no_double_sign(blocks: Iterable[ChainBlock], slashing: Sequence[dict[str, Any]]) -> Check:
    """One precommit per validator per commit; no double-sign evidence or slashing record."""
    dup_commits = []
    evidence = 0
    n = 0
    for b in blocks:
        n += 1
        counts = Counter(b.commit_validators)
        if any(c > 1 for c in counts.values()):
            dup_commits.append(b.height)
        evidence += len(b.evidence_kinds)
    records = [r for r in slashing if r["fault"] == "double_sign"]
    if dup_commits or evidence or records:
        return Check("no double-sign", False, f"commits with a validator twice at heights {dup_commits[:5]}, "
                                              f"{evidence} evidence pieces, {len(records)} double-sign records")
    return Check("no double-sign", True, f"{n} commits scanned, no evidence, no double-sign record")


def check_txs(records: Sequence[TxRecord], blocks: Iterable[ChainBlock]) -> Check:
    """Accepted: committed exactly once; unknown (no answer): at most once; refused: never."""
    seen = Counter(t for b in blocks for t in b.txs)
    bad = []
    fates: Counter[str] = Counter()
    for r in records:
        fates[r.fate] += 1
        k = seen.get(r.tx_hash, 0)
        if r.fate == "accepted" and k != 1:
            bad.append(f"accepted {r.tx_hash[:12]} (nonce {r.nonce}) committed {k} times")
        elif r.fate == "unknown" and k > 1:
            bad.append(f"unanswered {r.tx_hash[:12]} committed {k} times")
        elif r.fate == "refused" and k:
            bad.append(f"refused {r.tx_hash[:12]} ({r.reason}) committed {k} times")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(fates.items()))
    if not records:
        return Check("transactions exactly once", False, "no transaction was sent (the load did not run)")
    if bad:
        return Check("transactions exactly once", False, f"{len(bad)} wrong ({summary}): {'; '.join(bad[:3])}")
    committed = sum(1 for r in records if seen.get(r.tx_hash, 0) == 1)
    return Check("transactions exactly once", True, f"{summary}; {committed} committed once, refused ones never")


def check_recovery(recovery_s: float | None, bound: float) -> Check:
    if recovery_s is None:
        return Check("recovered", False, f"the chain did not resume within {bound:g} s of the last heal")
    return Check("recovered", recovery_s <= bound, f"resumed and converged {recovery_s:.1f} s after the last heal "
                                                   f"(bound {bound:g} s)")


def check_slashing(slashing: Sequence[dict[str, Any]], faulted: dict[str, set[str]]) -> Check:
    """Slashing records only of validators a fault took out, and only liveness faults.

    ``faulted`` maps a validator address to the fault kinds injected into it.
    """
    unexpected = [r for r in slashing
                  if r["fault"] not in LIVENESS_FAULTS or r["validator"] not in faulted]
    summary = ", ".join(f"{r['fault']} of {r['validator'][:12]} at {r['height']}" for r in slashing) or "none"
    if unexpected:
        return Check("slashing only for injected faults", False, f"unexpected: {unexpected[:3]}; all: {summary}")
    return Check("slashing only for injected faults", True, f"records: {summary}")
