"""Background transfers during a scenario, with a record of what each node answered.

One thread sends transfers from the scenario's load account (funded in
genesis) at ``rate`` per second to the live nodes in turn, at most
``MAX_PENDING`` uncommitted at once. Every attempt gets its own amount, so its
own hash, and one of three fates:

* ``accepted``: the node answered code 0; the nonce is used up;
* ``refused``: the node answered a non-zero code or an error object; the next
  attempt reuses the nonce, so a refused transaction can never be committed;
* ``unknown``: no answer (the node was killed or paused mid-call); treated as
  accepted, since it may have reached the mempool.

A transaction not committed after ``REBROADCAST_S`` is sent again, same bytes,
to another live node (a killed node's mempool is gone). The checks then count
every hash in the committed chain: accepted exactly once, unknown at most
once, refused never.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from consensus.crypto import PrivateKey, encode_address
from consensus.txs import Transfer, build_tx
from tests.faults.cluster import CHAIN_ID, Cluster
from tests.kit.devnet import TRANSIENT_ERRORS, RPCFailure, rpc

MAX_PENDING = 32
REBROADCAST_S = 4.0
FEE = 1
#: What one step of the load may raise without stopping it: no answer, or an answer of an unexpected shape.
LOAD_ERRORS: tuple[type[Exception], ...] = (*TRANSIENT_ERRORS, KeyError, TypeError)


@dataclass
class TxRecord:
    tx_hash: str
    nonce: int
    fate: str
    """accepted, refused or unknown."""
    reason: str
    raw: str
    sent_mono: float
    committed: bool = False
    height: int = 0
    """Where a node said it was committed (0: not seen committed)."""


class TxLoad:
    """The load thread of one scenario."""

    def __init__(self, cluster: Cluster, rate: float, seed: int) -> None:
        self.cluster = cluster
        self.key: PrivateKey = cluster.load_key
        self.address = encode_address(self.key.address())
        self.to = self.key.address()[::-1]  # any other address: the amounts go nowhere useful
        self.rate = rate
        self.rng = random.Random(seed ^ 0x10AD)
        self.records: list[TxRecord] = []
        self.next_nonce = 0
        self.attempt = 0
        self._stop = threading.Event()
        self._sending = threading.Event()
        self._sending.set()
        self._thread = threading.Thread(target=self._run, name="tx-load", daemon=True)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self.errors: list[str] = []
        self.anomalies: list[str] = []
        self._url = ""

    def start(self) -> None:
        self._thread.start()

    def stop_sending(self) -> None:
        """Stop making new transactions; pending ones are still sent again until committed."""
        self._sending.clear()
        with self._send_lock:
            pass  # a send under way has finished and is recorded

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(30)

    def pending(self) -> list[TxRecord]:
        with self._lock:
            return [r for r in self.records if r.fate != "refused" and not r.committed]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._lock:
            for r in self.records:
                out[r.fate] = out.get(r.fate, 0) + 1
        return out

    # -- the thread -------------------------------------------------------------------------------

    def _urls(self) -> list[str]:
        return [self.cluster.nodes[i].url for i in self.cluster.live()]

    def _run(self) -> None:
        interval = 1.0 / self.rate if self.rate > 0 else 1.0
        last_check = time.monotonic()
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                with self._send_lock:
                    if self._sending.is_set() and len(self.pending()) < MAX_PENDING and self.rate > 0:
                        self._send_new()
                if time.monotonic() - last_check > 1.0:
                    last_check = time.monotonic()
                    self._follow_up()
            except LOAD_ERRORS as exc:
                # An answer of an unexpected shape is noted; the load goes on.
                self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                del self.errors[:-20]
            self._stop.wait(max(0.0, interval - (time.monotonic() - t0)))

    def _send_new(self) -> None:
        urls = self._urls()
        if not urls:
            return
        # One node at a time (the first live one after the last that answered): a node that has
        # not yet seen nonce n by gossip would refuse n + 1 as out of order.
        if self._url not in urls:
            self._url = urls[self.attempt % len(urls)]
        url = self._url
        self.attempt += 1
        tx = build_tx(self.key, CHAIN_ID, self.next_nonce, FEE, Transfer(self.to, self.attempt))
        raw = "0x" + tx.raw.hex()
        rec = TxRecord("0x" + tx.tx_hash.hex(), self.next_nonce, "unknown", "", raw, time.monotonic())
        try:
            res = rpc(url, "broadcast_tx", {"tx": raw}, timeout=5.0)
            if int(res["code"]) == 0:
                rec.fate = "accepted"
            else:
                rec.fate, rec.reason = "refused", f"code {res['code']}: {str(res.get('log', ''))[:80]}"
        except RPCFailure as exc:
            rec.fate, rec.reason = "refused", str(exc)[:80]
        except TRANSIENT_ERRORS as exc:
            rec.reason = f"no answer: {str(exc)[:80]}"
            self._url = ""
        if rec.fate != "refused":
            self.next_nonce += 1
        with self._lock:
            self.records.append(rec)

    def _follow_up(self) -> None:
        """Mark committed transactions; send again, to another node, those waiting too long."""
        urls = self._urls()
        if not urls:
            return
        now = time.monotonic()
        for rec in sorted(self.pending(), key=lambda r: r.nonce):
            url = self.rng.choice(urls)
            try:
                found = rpc(url, "tx", {"hash": rec.tx_hash}, timeout=3.0)
                if found.get("status", "committed") != "committed":
                    raise RPCFailure("tx", 0, "pending in the mempool, not committed")
                # Trust the answer only if the block it names holds the transaction: a node's
                # transaction index answering for a block it does not serve is a finding, not a commit.
                h = int(found["height"])
                block = rpc(url, "block", {"height": h, "txs": "hashes"}, timeout=3.0)
                if rec.tx_hash in block["txs"]:
                    rec.committed = True
                    rec.height = h
                else:
                    self.anomalies.append(f"{url}: tx {rec.tx_hash[:12]} reported at height {h}, "
                                          "not in that block")
                    del self.anomalies[:-20]
                continue
            except RPCFailure:
                pass  # not committed (yet) as this node sees it
            except TRANSIENT_ERRORS:
                continue
            if now - rec.sent_mono > REBROADCAST_S:
                # Refused (already known, nonce not reachable yet) or no answer: tried again later.
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    rpc(self.rng.choice(urls), "broadcast_tx", {"tx": rec.raw}, timeout=3.0)
                rec.sent_mono = now

    def drain(self, timeout: float) -> int:
        """After ``stop_sending``: wait until nothing is pending (or ``timeout`` s); how many remain."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pending():
            time.sleep(0.5)
        return len(self.pending())

    def highest_commit(self) -> int:
        """The highest height at which a node reported one of our transactions committed."""
        with self._lock:
            return max((r.height for r in self.records), default=0)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            reasons = Counter(r.reason.split(":")[0] for r in self.records if r.fate == "refused")
        return {"attempts": len(self.records), **self.counts(), "pending": len(self.pending()),
                "refusals": dict(reasons.most_common(3)), "anomalies": self.anomalies[-3:],
                "errors": self.errors[-3:]}
