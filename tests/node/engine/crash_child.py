"""Child processes for the kill tests: a signer that signs until killed, and a WAL writer.

Run as ``python -m tests.node.engine.crash_child signer STATE_PATH MODE NONCE HEIGHTS`` or
``python -m tests.node.engine.crash_child wal WAL_PATH``. The signer child walks heights 1..HEIGHTS,
rounds 0..1, prevote then precommit, asking to sign a block hash derived from
its NONCE, so a rerun with another nonce asks for conflicting messages at every
step it already signed. A signature counts as released only once it is printed
(and flushed) to stdout. MODE chooses where the child kills itself on the k-th
signature (k from the nonce): ``before-persist`` (signed, not yet stored),
``mid-persist`` (temporary file written, not yet renamed), ``after-persist``
(stored, not yet released) or ``none`` (the parent kills it at a random time).
"""

from __future__ import annotations

import os
import signal
import sys

from consensus.crypto import PrivateKey
from consensus.hashing import hash32
from consensus.votes import Vote, VoteType
from node.engine import signer as signer_mod
from node.engine.signer import FileSignerStore, PersistentSigner
from node.engine.wal import WriteAheadLog
from node.errors import DoubleSignRefused

CHAIN = "cstake-kill-test"
KEY = PrivateKey.from_seed(hash32(b"kill-test-validator"))


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def run_signer(path: str, mode: str, nonce: int, heights: int) -> None:
    store = FileSignerStore(path)
    kill_at = 3 + nonce % 7
    count = 0
    original_save = FileSignerStore.save
    original_replace = os.replace

    def save(self: FileSignerStore, state: signer_mod.LastSignState) -> None:
        nonlocal count
        count += 1
        if mode == "before-persist" and count == kill_at:
            _die()
        if mode == "mid-persist" and count == kill_at:
            signer_mod.os.replace = lambda *a, **k: _die()  # type: ignore[assignment]
        original_save(self, state)
        signer_mod.os.replace = original_replace  # type: ignore[assignment]
        if mode == "after-persist" and count == kill_at:
            _die()

    FileSignerStore.save = save  # type: ignore[method-assign]
    signer = PersistentSigner(KEY, CHAIN, store)
    print(f"START {nonce}", flush=True)
    for height in range(1, heights + 1):
        for round_ in range(2):
            for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
                block = hash32(b"%d/%d/%d/%d" % (nonce, height, round_, vote_type))
                vote = Vote(height, round_, vote_type, block, KEY.address(), 1000 + nonce)
                try:
                    signed = signer.sign_vote(vote)
                except DoubleSignRefused:
                    print(f"REFUSED {height} {round_} {vote_type}", flush=True)
                    continue
                print(f"SIGNED {signed.encode().hex()}", flush=True)
    print("DONE", flush=True)


def run_wal(path: str) -> None:
    wal = WriteAheadLog(path)
    print(f"OPENED {len(wal.records())} {wal.truncated_bytes}", flush=True)
    start = len(wal.records())
    for i in range(start, start + 100_000):
        payload = b"record-%d-" % i + bytes(i % 251 for _ in range(i % 300))
        wal.append(payload, sync=(i % 3 == 0))
        if i % 3 == 0:
            print(f"SYNCED {i}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "signer":
        run_signer(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        run_wal(sys.argv[2])
