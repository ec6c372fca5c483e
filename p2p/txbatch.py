"""Transaction gossip in batches: one gossip message carries many transactions.

One gossip message costs py-libp2p about a millisecond of CPU, so one
transaction per message caps a node near 1,000 tx/s. ``TxGossip`` collects
the node's encoded transactions (``submit``) and publishes a ``TxBatch``
when it holds ``tx_batch_max_txs`` transactions, would pass
``tx_batch_max_bytes``, or ``tx_batch_delay`` seconds after its first one.

On receipt the batch is split and the node's validator runs per transaction.
The batch, as one gossip message, is then judged:

* oversize (over ``BATCH_SLACK`` times our own batch limits in transactions,
  or in bytes while holding more than one transaction; the sender could have
  checked): REJECT as ``oversize``;
* malformed (not a canonical batch, empty, an empty tx, over the object
  budget of its size): REJECT;
* any transaction REJECTed (stateless-invalid, which an honest relay would
  have refused to relay): REJECT;
* the forwarder's validation budget ran out during the batch: IGNORE (the
  transactions after that point were not checked, so nothing is relayed);
* otherwise ACCEPT (and relayed) if any transaction was accepted, else IGNORE.

Accepted transactions are handed to the node's handler one by one.

**Validation budget.** Checking a transaction costs the node a signature
check and state reads; a peer can forward batches of transactions that cost
that work and are then IGNOREd (unfunded sender, bad nonce, duplicate), which
GossipSub does not penalise. So every forwarding peer has a token bucket of
checks (``TxValidationBudget``: ``budget_rate`` per second, ``budget_burst``
saved up). Each transaction costs one token before its check runs (a batch
reserves its tokens up front); one that is ACCEPTed (new, valid, now in our
mempool: work worth doing) gets its token back at the end of the batch, one
IGNOREd or REJECTed does not. A batch that arrives while the peer's bucket is
empty is IGNOREd before it is decoded, and the transactions of a batch beyond
the peer's tokens are not checked (the batch is then IGNOREd). So the checks wasted on one peer
stay at most ``budget_burst + budget_rate * seconds``, while an honest peer,
whose transactions are nearly all accepted, keeps a full bucket. IGNORE is
not penalised: a peer over its budget loses only our attention.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from consensus.errors import DecodeError
from consensus.hashing import hash32
from p2p.envelope import TxBatch, encode_tx_batch
from p2p.errors import ConfigError, MessageTooLarge
from p2p.interface import GossipVerdict, Handler, Reject, Transport, Validator, Verdict

log = logging.getLogger("p2p.txbatch")

# Per-batch overhead of the envelope and batch arrays (generous).
_ENVELOPE_SLACK = 64
_STASH_MAX = 4096
#: A received batch may exceed our own batch limits (txs, bytes) this many times over:
#: peers may run other settings; beyond it no honest batcher sends it.
BATCH_SLACK = 4
#: Checked-but-not-accepted transactions per second each forwarding peer may cost us.
#: The load generator's whole 1,000 tx/s passes through one peer at most, so even if
#: every one of them were wasted (we are a block behind: all nonces look ahead) an
#: honest peer stays within it; a flooding peer gets at most this many checks a second.
DEFAULT_BUDGET_RATE = 1000.0
#: Checks saved up after idling: five seconds of the rate (a burst after a stall).
DEFAULT_BUDGET_BURST = 5000.0
#: Forwarding peers whose buckets are kept (least recently used dropped first).
_BUDGET_PEERS = 4096


class TxValidationBudget:
    """Per-peer token buckets of transaction checks; time comes in as an argument.

    A peer may start a check while it has a token; a check takes one token and
    an accepted transaction returns it. A batch reserves its tokens before its
    first check (so batches validated concurrently cannot overspend) and gets
    the accepted ones back at its end. The table holds at most ``max_peers``
    buckets (least recently used dropped: a new bucket starts full, which a
    peer cannot exploit faster than it can rotate peer ids past the table).
    """

    __slots__ = ("_buckets", "burst", "max_peers", "rate")

    def __init__(self, rate: float, burst: float, max_peers: int = _BUDGET_PEERS) -> None:
        if not (rate > 0 and burst >= 1 and max_peers >= 1):
            raise ConfigError(f"budget rate must be > 0, burst >= 1, max_peers >= 1 (got {rate}, {burst}, {max_peers})")
        self.rate = rate
        self.burst = burst
        self.max_peers = max_peers
        # peer -> [tokens, stamp]
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def _bucket(self, peer_id: str, now: float) -> list[float]:
        b = self._buckets.get(peer_id)
        if b is None:
            b = [self.burst, now]
            self._buckets[peer_id] = b
            if len(self._buckets) > self.max_peers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(peer_id)
            elapsed = now - b[1]
            if elapsed > 0:
                b[0] = min(self.burst, b[0] + elapsed * self.rate)
                b[1] = now
        return b

    def get_tokens(self, peer_id: str, now: float) -> float:
        """Checks ``peer_id`` may still start at ``now``."""
        return self._bucket(peer_id, now)[0]

    def reserve(self, peer_id: str, n: int, now: float) -> int:
        """Take tokens for up to ``n`` checks at once; return how many were taken (whole tokens)."""
        b = self._bucket(peer_id, now)
        taken = min(n, int(b[0]))
        b[0] -= taken
        return max(taken, 0)

    def refund(self, peer_id: str, n: int) -> None:
        """Give back the tokens of ``n`` checks that accepted their transactions."""
        b = self._buckets.get(peer_id)
        if b is not None:
            b[0] = min(self.burst, b[0] + n)

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(slots=True)
class TxGossipStats:
    """Counters of the batcher (exported with the transport's)."""

    txs_submitted: int = 0
    batches_sent: int = 0
    batches_received: int = 0
    batches_malformed: int = 0
    txs_accepted: int = 0
    txs_ignored: int = 0
    txs_rejected: int = 0
    batches_oversize: int = 0
    #: Batches IGNOREd unchecked (or partly checked) because the forwarder's budget ran out.
    batches_over_budget: int = 0
    #: Transactions of those batches left unchecked.
    txs_unchecked: int = 0


class TxGossip:
    """Batches outgoing transactions and splits incoming batches for the node."""

    def __init__(
        self,
        transport: Transport,
        validator: Validator,
        handler: Handler | None = None,
        *,
        budget_rate: float = DEFAULT_BUDGET_RATE,
        budget_burst: float = DEFAULT_BUDGET_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        cfg = transport.config
        self._transport = transport
        self._validator = validator
        self._handler = handler
        self.max_txs = cfg.tx_batch_max_txs
        self.max_bytes = cfg.tx_batch_max_bytes
        self.delay = cfg.tx_batch_delay
        self._max_message = cfg.max_message_bytes
        # What a received batch may hold before it is oversize (see BATCH_SLACK).
        self.max_batch_txs = self.max_txs * BATCH_SLACK
        self.max_batch_bytes = min(self._max_message, self.max_bytes * BATCH_SLACK + _ENVELOPE_SLACK)
        self.budget = TxValidationBudget(budget_rate, budget_burst)
        self._clock = clock
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stash: dict[bytes, list[tuple[bytes, ...]]] = {}
        self.stats = TxGossipStats()
        # A synchronous per-transaction validator (the node's) makes the batch check
        # synchronous: the dispatcher runs it the moment the batch arrives, so its
        # transactions are in the mempool before a proposal that came after it on the
        # same stream is rebuilt from the mempool. An async check would only start a
        # task, and a compact proposal right behind it found its transactions missing.
        sync = not inspect.iscoroutinefunction(validator)
        transport.subscribe("tx", self._validate_batch if sync else self._validate_batch_async, self._deliver_batch)

    # -- sending -------------------------------------------------------------

    def submit(self, tx: bytes) -> None:
        """Queue one encoded transaction for gossip (returns at once)."""
        size = len(tx) + 5
        if size + _ENVELOPE_SLACK > self._max_message:
            raise MessageTooLarge(f"transaction of {len(tx)} bytes cannot fit one gossip message")
        if self._buf and self._buf_bytes + size > self.max_bytes:
            self.send_pending()
        self._buf.append(tx)
        self._buf_bytes += size
        self.stats.txs_submitted += 1
        if len(self._buf) >= self.max_txs or self._buf_bytes >= self.max_bytes:
            self.send_pending()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self.send_pending)

    def send_pending(self) -> None:
        """Publish the transactions waiting for the batch delay now (a proposer does before its proposal)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buf:
            return
        txs, self._buf, self._buf_bytes = self._buf, [], 0
        task = asyncio.get_running_loop().create_task(self._publish(txs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, txs: list[bytes]) -> None:
        try:
            await self._transport.publish("tx", encode_tx_batch(txs))
            self.stats.batches_sent += 1
        except Exception:
            log.exception("publishing a batch of %d transactions failed", len(txs))

    async def flush(self) -> None:
        """Publish whatever is queued now and wait for every publish in flight."""
        self.send_pending()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Flush, then stop the timer."""
        await self.flush()

    # -- receiving -------------------------------------------------------------

    def _validate_batch(self, peer_id: str, payload: bytes) -> GossipVerdict:
        """The batch's verdict, checked now (the per-transaction validator is synchronous)."""
        started = self._start_batch(peer_id, payload)
        if not isinstance(started, tuple):
            return started
        txs, allowed = started
        verdicts = [self._check_now(peer_id, tx) for tx in txs[:allowed]]
        return self._finish_batch(peer_id, payload, txs, allowed, verdicts)

    async def _validate_batch_async(self, peer_id: str, payload: bytes) -> GossipVerdict:
        """The batch's verdict through an async per-transaction validator."""
        started = self._start_batch(peer_id, payload)
        if not isinstance(started, tuple):
            return started
        txs, allowed = started
        verdicts = []
        for tx in txs[:allowed]:
            res = self._validator(peer_id, tx)
            verdicts.append(await res if inspect.isawaitable(res) else res)
        return self._finish_batch(peer_id, payload, txs, allowed, verdicts)

    def _check_now(self, peer_id: str, tx: bytes) -> GossipVerdict:
        res = self._validator(peer_id, tx)
        if inspect.isawaitable(res):
            res.close()  # type: ignore[attr-defined]
            raise TypeError("a synchronous transaction validator returned an awaitable")
        return res

    def _start_batch(self, peer_id: str, payload: bytes) -> tuple[tuple[bytes, ...], int] | GossipVerdict:
        """The batch's transactions and how many the forwarder's budget lets us check, or its early verdict."""
        self.stats.batches_received += 1
        # Out of budget: nothing is decoded or checked until the peer's bucket refills.
        if self.budget.get_tokens(peer_id, self._clock()) < 1:
            self.stats.batches_over_budget += 1
            return Verdict.IGNORE
        txs = self._decode_batch(peer_id, payload)
        if not isinstance(txs, tuple):
            return txs
        return txs, self.budget.reserve(peer_id, len(txs), self._clock())

    def _finish_batch(self, peer_id: str, payload: bytes, txs: tuple[bytes, ...], allowed: int,
                      verdicts: list[GossipVerdict]) -> GossipVerdict:
        """Judge the batch by its transactions' verdicts (see the module docstring)."""
        accepted: list[bytes] = []
        rejected = False
        for tx, verdict in zip(txs, verdicts, strict=False):
            if verdict is Verdict.ACCEPT:
                accepted.append(tx)
            elif verdict is Verdict.REJECT or isinstance(verdict, Reject):
                rejected = True
                self.stats.txs_rejected += 1
            else:
                self.stats.txs_ignored += 1
        self.budget.refund(peer_id, len(accepted))
        if allowed < len(txs):
            # The rest went unchecked, so the batch cannot be vouched for: not relayed.
            self.stats.batches_over_budget += 1
            self.stats.txs_unchecked += len(txs) - allowed
            self.stats.txs_accepted += len(accepted)
            log.debug("tx batch from %s: validation budget spent after %d of %d txs", peer_id, allowed, len(txs))
            return Reject() if rejected else Verdict.IGNORE
        self.stats.txs_accepted += len(accepted)
        if rejected:
            return Verdict.REJECT
        if not accepted:
            return Verdict.IGNORE
        key = hash32(payload)
        pending = self._stash.setdefault(key, [])
        pending.append(tuple(accepted))
        if len(self._stash) > _STASH_MAX:
            # The dispatcher dropped deliveries (queue full); forget the oldest.
            self._stash.pop(next(iter(self._stash)))
        return Verdict.ACCEPT

    def _decode_batch(self, peer_id: str, payload: bytes) -> tuple[bytes, ...] | Reject:
        """Return the batch's transactions, or the Reject of an oversize or malformed batch.

        Cheapest first: the declared transaction count and the byte size, then a
        decode whose object budget is the largest batch allowed.
        """
        count = _declared_tx_count(payload)
        if count is not None and (
            count > self.max_batch_txs or (count > 1 and len(payload) > self.max_batch_bytes)
        ):
            self.stats.batches_oversize += 1
            log.debug("oversize tx batch from %s: %d txs, %d bytes", peer_id, count, len(payload))
            return Reject("oversize")
        try:
            batch = TxBatch.decode(payload, max_bytes=self._max_message, max_objects=self.max_batch_txs + 2)
        except DecodeError as exc:
            self.stats.batches_malformed += 1
            log.debug("malformed tx batch from %s: %s", peer_id, exc)
            return Reject("malformed")
        if not batch.txs or any(not tx for tx in batch.txs):
            self.stats.batches_malformed += 1
            return Reject("malformed")
        return batch.txs

    async def _deliver_batch(self, peer_id: str, payload: bytes) -> None:
        key = hash32(payload)
        pending = self._stash.get(key)
        if not pending:
            return
        accepted = pending.pop(0)
        if not pending:
            del self._stash[key]
        if self._handler is None:
            return  # the validator already took the transactions in (the node's mempool)
        for tx in accepted:
            res = self._handler(peer_id, tx)
            if inspect.isawaitable(res):
                await res


def _declared_tx_count(payload: bytes) -> int | None:
    """The transaction count a batch payload (``[[tx, ...]]``) declares, read from its header; None if unreadable."""
    if len(payload) < 2 or payload[0] != 0x91:
        return None
    head = payload[1]
    if 0x90 <= head <= 0x9F:
        return head - 0x90
    if head == 0xDC and len(payload) >= 4:
        return int.from_bytes(payload[2:4], "big")
    if head == 0xDD and len(payload) >= 6:
        return int.from_bytes(payload[2:6], "big")
    return None
