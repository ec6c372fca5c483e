"""The deterministic workload of the crash test, shared by the test and its child process.

Height h's block and state changes depend only on h, so the test can rebuild
the exact expected state at any height in memory and compare roots.
"""

from __future__ import annotations

import hashlib
import random

KEY_SPACE = 400
CHANGES_PER_HEIGHT = 150


def key(i: int) -> bytes:
    return b"acct/" + i.to_bytes(4, "big")


def genesis_changes() -> dict[bytes, bytes | None]:
    return {key(i): b"genesis-%d" % i for i in range(0, KEY_SPACE, 2)}


def changes_for(height: int) -> dict[bytes, bytes | None]:
    rng = random.Random(height)
    changes: dict[bytes, bytes | None] = {}
    for _ in range(CHANGES_PER_HEIGHT):
        k = key(rng.randrange(KEY_SPACE))
        changes[k] = None if rng.random() < 0.25 else rng.randbytes(rng.randint(1, 64))
    return changes


def block_for(height: int) -> tuple[bytes, bytes, bytes, dict[bytes, tuple[int, int, int, str]]]:
    """Return (block hash, block bytes, commit bytes, tx entries) of ``height``."""
    block = b"block-%d-" % height + hashlib.sha256(b"%d" % height).digest() * 64
    txs = {
        hashlib.sha256(b"tx-%d-%d" % (height, i)).digest(): (height, i, i % 3, f"log {i}")
        for i in range(5)
    }
    return hashlib.sha256(block).digest(), block, b"commit-%d" % height, txs
