"""The node's address index service: files each committed block's transactions by address.

Runs beside the block store (storage/tx_index.py holds the data): the daemon
calls ``on_committed`` after each commit and ``catch_up`` at start, which
indexes every stored height the index has not seen (after a crash, or when
the index database was deleted to rebuild it). The addresses of a transaction
are its sender and the addresses in its body (``get_tx_addresses``), so
``tx_search`` finds a transfer from both ends, a delegation from the delegator
and the validator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from consensus.blocks import Block
from consensus.errors import ConsensusError
from consensus.txs import SignedTx
from node.rpc.chain_events import get_tx_addresses
from storage.tx_index import AddressTxIndex

log = logging.getLogger(__name__)


class TxIndexer:
    """Keeps an ``AddressTxIndex`` level with the committed chain."""

    def __init__(
        self, index: AddressTxIndex, load_block: Callable[[int], Block | None], earliest: Callable[[], int]
    ) -> None:
        self.index = index
        self.load_block = load_block
        self.earliest = earliest

    def on_committed(self, height: int, txs: Sequence[SignedTx]) -> None:
        """Index the committed block at ``height`` (its transactions, decoded, in block order)."""
        indexed = self.index.indexed_height()
        if height <= indexed:
            return  # indexed by catch_up already
        if height > indexed + 1:
            self.catch_up(height - 1)
        self.index.index_height(height, [(i, tx.tx_hash, get_tx_addresses(tx)) for i, tx in enumerate(txs)])

    def catch_up(self, head: int) -> int:
        """Index the heights after ``indexed_height`` up to ``head`` from the stored blocks; return how many."""
        start = self.index.indexed_height() + 1
        earliest = self.earliest()
        if start < earliest:
            # Blocks below the earliest stored height are pruned: nothing of them to file.
            self.index.mark_indexed(earliest - 1)
            start = earliest
        done = 0
        for height in range(start, head + 1):
            block = self.load_block(height)
            if block is None:
                log.warning("address index: block %d is not stored; the index stops at %d", height, height - 1)
                break
            rows = []
            for i, raw in enumerate(block.txs):
                try:
                    tx = SignedTx.decode(raw, max_bytes=len(raw))
                except ConsensusError:
                    continue  # a committed block's txs decode; never stop indexing over one
                rows.append((i, tx.tx_hash, get_tx_addresses(tx)))
            self.index.index_height(height, rows)
            done += 1
        return done
