"""The simulated validators' mempool: the transactions a test submits, in nonce order per sender.

The real state decides everything: ``reap`` offers, per sender, the
transactions that continue the account's nonce on the head state, and the
driver's block proposer still dry-runs them. A node's commit listener drops
what a block carried.
"""

from __future__ import annotations

from collections.abc import Iterable

from consensus.state import State
from consensus.tx_handlers import TxContext
from consensus.txs import SignedTx


class SimMempool:
    """Pending transactions of one node (lost when it crashes, refilled from the simulation)."""

    def __init__(self, txs: Iterable[SignedTx] = ()) -> None:
        self.txs: list[SignedTx] = list(txs)

    def add(self, tx: SignedTx) -> None:
        if all(t.tx_hash != tx.tx_hash for t in self.txs):
            self.txs.append(tx)

    def remove(self, tx_hashes: Iterable[bytes]) -> None:
        gone = set(tx_hashes)
        if gone:
            self.txs = [t for t in self.txs if t.tx_hash not in gone]

    def reap(
        self, max_txs: int, max_bytes: int, *, state: State | None = None, ctx: TxContext | None = None
    ) -> list[SignedTx]:
        """Return up to ``max_txs`` transactions whose nonces continue their senders' accounts."""
        out: list[SignedTx] = []
        size = 0
        next_nonce: dict[bytes, int] = {}
        for tx in sorted(self.txs, key=lambda t: (t.payload.sender, t.payload.nonce)):
            sender = tx.payload.sender
            if sender not in next_nonce:
                next_nonce[sender] = state.get_account(sender).nonce if state is not None else tx.payload.nonce
            if tx.payload.nonce != next_nonce[sender] or len(out) >= max_txs or size + len(tx.raw) > max_bytes:
                continue
            out.append(tx)
            size += len(tx.raw)
            next_nonce[sender] += 1
        return out
