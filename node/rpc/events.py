"""The node's event bus: committed blocks and transactions, for RPC subscribers and waiters.

The block executor calls ``EventBus.publish_block`` after each commit. Each
subscriber owns a bounded queue; a subscriber whose queue is full is marked
``overflowed`` and gets no more events (the WebSocket layer then closes it
with a reason), so a slow consumer never holds memory or slows the node.
``watch_tx`` gives a future resolved when a transaction is committed
(broadcast_tx mode=commit uses it).

A subscription names an event kind and, optionally, an address: ``tx`` events
of transactions that address sends or appears in, chain events (slashing,
jailing, challenges, attestations, jobs, epochs; node.rpc.chain_events) that
concern it. ``new_block`` takes no address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from consensus.blocks import Block
from consensus.records import TxResult
from consensus.txs import SignedTx
from node.rpc.chain_events import CHAIN_EVENT_KINDS, ChainEvent, get_tx_addresses

EVENT_KINDS = ("new_block", "tx", *CHAIN_EVENT_KINDS)


@dataclass(frozen=True, slots=True)
class BlockCommitted:
    """Event: a block was committed."""

    block: Block
    block_hash: bytes
    tx_hashes: tuple[bytes, ...]
    tx_results: tuple[TxResult, ...]


@dataclass(frozen=True, slots=True)
class TxCommitted:
    """Event: a transaction was committed in a block."""

    tx: SignedTx
    height: int
    index: int
    result: TxResult
    block_time_ms: int


Event = BlockCommitted | TxCommitted | ChainEvent


class Subscription:
    """One subscriber's bounded queue of events and the (kind, address or None) filters it asked for."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.filters: set[tuple[str, bytes | None]] = set()
        self.overflowed = False
        self.overflow_event = asyncio.Event()

    @property
    def kinds(self) -> set[str]:
        return {kind for kind, _ in self.filters}

    def wants(self, kind: str, addresses: Sequence[bytes] = ()) -> bool:
        """Whether an event of ``kind`` concerning ``addresses`` passes one of this subscriber's filters."""
        if (kind, None) in self.filters:
            return True
        return any((kind, a) in self.filters for a in addresses)

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.overflow_event.set()


class EventBus:
    """Fan-out of committed blocks and transactions."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._tx_waiters: dict[bytes, list[asyncio.Future[TxCommitted]]] = {}
        self.blocks_published = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(maxsize)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def watch_tx(self, tx_hash: bytes) -> asyncio.Future[TxCommitted]:
        """Return a future resolved with the TxCommitted event of ``tx_hash``."""
        fut: asyncio.Future[TxCommitted] = asyncio.get_running_loop().create_future()
        self._tx_waiters.setdefault(tx_hash, []).append(fut)
        return fut

    def unwatch_tx(self, tx_hash: bytes, fut: asyncio.Future[TxCommitted]) -> None:
        waiters = self._tx_waiters.get(tx_hash)
        if waiters is None:
            return
        if fut in waiters:
            waiters.remove(fut)
        if not waiters:
            del self._tx_waiters[tx_hash]

    def publish_block(
        self,
        block: Block,
        block_hash: bytes,
        txs: list[SignedTx] | tuple[SignedTx, ...],
        tx_results: list[TxResult] | tuple[TxResult, ...],
        chain_events: Sequence[ChainEvent] = (),
    ) -> None:
        """Announce a committed block, its transactions and chain events (call on the event loop)."""
        self.blocks_published += 1
        event = BlockCommitted(block, block_hash, tuple(t.tx_hash for t in txs), tuple(tx_results))
        want_tx = False
        for sub in list(self._subs):
            if sub.wants("new_block"):
                sub.offer(event)
            want_tx = want_tx or "tx" in sub.kinds
            for chain_event in chain_events:
                if sub.wants(chain_event.kind, chain_event.addresses):
                    sub.offer(chain_event)
        if not want_tx and not self._tx_waiters:
            return
        h = block.header
        for index, (tx, result) in enumerate(zip(txs, tx_results, strict=True)):
            waiters = self._tx_waiters.get(tx.tx_hash)
            if not want_tx and waiters is None:
                continue
            tx_event = TxCommitted(tx, h.height, index, result, h.time_ms)
            if want_tx:
                addresses = get_tx_addresses(tx)
                for sub in list(self._subs):
                    if sub.wants("tx", addresses):
                        sub.offer(tx_event)
            if waiters is not None:
                del self._tx_waiters[tx.tx_hash]
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(tx_event)
