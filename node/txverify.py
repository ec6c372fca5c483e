"""Signature checks of transaction batches, optionally on a thread pool.

``cryptography`` (>= 50) releases the GIL inside Ed25519 verification, so a
batch of gossiped transactions can be verified on several threads while the
event loop keeps running. Verified ids go into the mempool's
``SignatureCache``, so ``Mempool.add`` (and block execution) skip the check.
Measured on the project's 2-core machine (2,000-4,000 transfers, best of
several runs, other work running on the machine): one thread verifies about
8,500-9,200 signatures/s; the 2-thread pool about 8,800-9,600/s, and under
contention both fell to about 5,000/s. So on 2 cores the pool does not
materially raise throughput (the event loop, the other services and the
workers share the same two cores); what it buys is keeping the event loop
responsive while a large gossiped batch is checked. On machines with more
cores it scales with them, since verification releases the GIL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

from consensus.crypto import Domain, is_valid_signature, sign_bytes
from consensus.txs import SignedTx
from node.mempool import SignatureCache


def is_tx_signature_valid(tx: SignedTx) -> bool:
    """Return True when ``tx``'s signature verifies for its payload and public key."""
    p = tx.payload
    return is_valid_signature(p.pubkey, sign_bytes(Domain.TX, p.chain_id, tx.payload_bytes), tx.signature)


def verify_batch(txs: Sequence[SignedTx]) -> list[bool]:
    """Verify every signature of ``txs`` on this thread."""
    return [is_tx_signature_valid(tx) for tx in txs]


async def verify_batch_parallel(
    txs: Sequence[SignedTx],
    executor: Executor | None,
    *,
    workers: int = 2,
    cache: SignatureCache | None = None,
) -> list[bool]:
    """Verify ``txs`` split over ``workers`` chunks on ``executor`` (None: on the loop).

    Transactions already in ``cache`` count as valid without a check; valid
    ones are added to it.
    """
    results = [False] * len(txs)
    todo: list[int] = []
    for i, tx in enumerate(txs):
        if cache is not None and tx.tx_hash in cache:
            results[i] = True
        else:
            todo.append(i)
    if not todo:
        return results
    if executor is None or workers <= 1 or len(todo) < 2 * workers:
        checked = verify_batch([txs[i] for i in todo])
    else:
        loop = asyncio.get_running_loop()
        size = -(-len(todo) // workers)
        chunks = [[txs[i] for i in todo[k : k + size]] for k in range(0, len(todo), size)]
        parts = await asyncio.gather(*(loop.run_in_executor(executor, verify_batch, c) for c in chunks))
        checked = [ok for part in parts for ok in part]
    for i, ok in zip(todo, checked, strict=True):
        results[i] = ok
        if ok and cache is not None:
            cache.add(txs[i].tx_hash)
    return results


class TxVerifier:
    """A small thread pool for transaction signature checks (owned by the node)."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="txverify")

    async def verify(self, txs: Sequence[SignedTx], cache: SignatureCache | None = None) -> list[bool]:
        return await verify_batch_parallel(txs, self._pool, workers=self.workers, cache=cache)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
