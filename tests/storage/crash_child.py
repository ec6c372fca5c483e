"""Crash-test child: commits heights of the crash workload in a loop until it is killed.

Usage: python crash_child.py DATA_DIR PAUSE_HEIGHT

Prints ``P <h>`` once height h is prepared (its batch built, not written) and
``C <h> <root hex>`` once its commit returned (durable). At PAUSE_HEIGHT it
stops between building the batch and writing it and waits on stdin, so the
parent can kill it exactly there (0: never pause). Run with the repository root
on PYTHONPATH.
"""

from __future__ import annotations

import os
import sys

import crash_workload as workload

from storage import NodeStore


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def main(directory: str, pause_height: int) -> None:
    store = NodeStore.open(directory)
    if store.head is None:
        prepared = store.prepare_genesis(workload.genesis_changes())
        say("P 0")
        store.commit(prepared)
        say(f"C 0 {prepared.state_root.hex()}")
    head = store.head
    if head is None:
        raise SystemExit("no head after genesis")
    for height in range(head.height + 1, head.height + 100_000):
        block_hash, block, commit, txs = workload.block_for(height)
        prepared = store.prepare_height(
            height, block_hash, block, commit, txs, workload.changes_for(height)
        )
        say(f"P {height}")
        if height == pause_height:
            sys.stdin.buffer.read(1)  # wait here, holding the built batch, to be killed
        store.commit(prepared)
        say(f"C {height} {prepared.state_root.hex()}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
