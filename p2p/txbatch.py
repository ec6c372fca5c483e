"""Transaction gossip in batches: one gossip message carries many transactions.

One gossip message costs py-libp2p about a millisecond of CPU, so one
transaction per message caps a node near 1,000 tx/s. ``TxGossip`` collects
the node's encoded transactions (``submit``) and publishes a ``TxBatch``
when it holds ``tx_batch_max_txs`` transactions, would pass
``tx_batch_max_bytes``, or ``tx_batch_delay`` seconds after its first one.

On receipt the batch is split and the node's validator runs per transaction.
The batch, as one gossip message, is then judged:

* malformed (not a canonical batch, empty, too many txs): REJECT;
* any transaction REJECTed (stateless-invalid, which an honest relay would
  have refused to relay): REJECT;
* otherwise ACCEPT (and relayed) if any transaction was accepted, else IGNORE.

Accepted transactions are handed to the node's handler one by one.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass

from consensus.hashing import hash32
from p2p.envelope import decode_tx_batch, encode_tx_batch
from p2p.errors import MalformedMessage, MessageTooLarge
from p2p.interface import Handler, Transport, Validator, Verdict

log = logging.getLogger("p2p.txbatch")

# Per-batch overhead of the envelope and batch arrays (generous).
_ENVELOPE_SLACK = 64
_STASH_MAX = 4096


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


class TxGossip:
    """Batches outgoing transactions and splits incoming batches for the node."""

    def __init__(self, transport: Transport, validator: Validator, handler: Handler | None = None) -> None:
        cfg = transport.config
        self._transport = transport
        self._validator = validator
        self._handler = handler
        self.max_txs = cfg.tx_batch_max_txs
        self.max_bytes = cfg.tx_batch_max_bytes
        self.delay = cfg.tx_batch_delay
        self._max_message = cfg.max_message_bytes
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stash: dict[bytes, list[tuple[bytes, ...]]] = {}
        self.stats = TxGossipStats()
        transport.subscribe("tx", self._validate_batch, self._deliver_batch)

    # -- sending -------------------------------------------------------------

    def submit(self, tx: bytes) -> None:
        """Queue one encoded transaction for gossip (returns at once)."""
        size = len(tx) + 5
        if size + _ENVELOPE_SLACK > self._max_message:
            raise MessageTooLarge(f"transaction of {len(tx)} bytes cannot fit one gossip message")
        if self._buf and self._buf_bytes + size > self.max_bytes:
            self._flush_now()
        self._buf.append(tx)
        self._buf_bytes += size
        self.stats.txs_submitted += 1
        if len(self._buf) >= self.max_txs or self._buf_bytes >= self.max_bytes:
            self._flush_now()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._flush_now)

    def _flush_now(self) -> None:
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
        self._flush_now()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Flush, then stop the timer."""
        await self.flush()

    # -- receiving -------------------------------------------------------------

    async def _validate_batch(self, peer_id: str, payload: bytes) -> Verdict:
        self.stats.batches_received += 1
        try:
            txs = decode_tx_batch(payload, self._max_message, self.max_txs * 4)
        except MalformedMessage as exc:
            self.stats.batches_malformed += 1
            log.debug("malformed tx batch from %s: %s", peer_id, exc)
            return Verdict.REJECT
        accepted: list[bytes] = []
        rejected = False
        for tx in txs:
            res = self._validator(peer_id, tx)
            verdict = await res if inspect.isawaitable(res) else res
            if verdict is Verdict.ACCEPT:
                accepted.append(tx)
            elif verdict is Verdict.REJECT:
                rejected = True
                self.stats.txs_rejected += 1
            else:
                self.stats.txs_ignored += 1
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

