"""The signature cache: tx ids whose signatures this node has verified, bounded, oldest forgotten first.

Admission verifies a transaction's signature once and records its id here;
block execution passes the cache to ``consensus.transition.state_transition``
(a ``SigCache``), so a transaction the mempool already admitted is not verified
again when its block commits. Only ids of verified signatures ever enter.
"""

from __future__ import annotations


class SignatureCache:
    """A bounded set of tx ids whose signatures verified (oldest forgotten first).

    Calling the cache answers membership, so it is a ``consensus.transition.SigCache``.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: dict[bytes, None] = {}
        self.hits = 0
        self.misses = 0

    def __call__(self, tx_hash: bytes) -> bool:
        if tx_hash in self._ids:
            self.hits += 1
            return True
        self.misses += 1
        return False

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, tx_hash: bytes) -> None:
        """Remember that ``tx_hash``'s signature verified."""
        if tx_hash in self._ids:
            return
        self._ids[tx_hash] = None
        if len(self._ids) > self.capacity:
            del self._ids[next(iter(self._ids))]

    def discard(self, tx_hash: bytes) -> None:
        self._ids.pop(tx_hash, None)
