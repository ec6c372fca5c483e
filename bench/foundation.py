"""Foundation figures: canonical codec rate, signature verification rate, block execution rate."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consensus.crypto import Domain, sign_bytes, verify_signature
from consensus.hashing import hash32
from consensus.transition import state_transition
from consensus.txs import SignedTx, Transfer
from consensus.votes import Vote, VoteType
from tests.kit.chain import TestChain


def _rate(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def bench_codec() -> None:
    chain = TestChain(n_accounts=2)
    a, b = chain.account_keys
    tx = chain.tx(a, Transfer(b.address(), 12345))
    vote = Vote(10, 0, VoteType.PRECOMMIT, hash32(b"x"), a.address(), 1_700_000_000_000, bytes(64))
    vote_bytes = vote.encode()

    def run_vote(n: int) -> None:
        for _ in range(n):
            Vote.decode(vote.encode())

    def run_tx(n: int) -> None:
        raw = tx.raw
        for _ in range(n):
            SignedTx.decode(raw).encode()

    print(f"codec: vote encode+decode      {_rate(run_vote, 50_000):>10,.0f} /s  ({len(vote_bytes)} B)")
    print(f"codec: signed tx decode        {_rate(run_tx, 50_000):>10,.0f} /s  ({len(tx.raw)} B, payload and body checked)")


def bench_signatures() -> float:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    pub_raw = pub.public_bytes_raw()
    msg = sign_bytes(Domain.TX, "bench", b"x" * 150)
    sig = key.sign(msg)
    n = 20_000

    def raw(n: int) -> None:
        for _ in range(n):
            pub.verify(sig, msg)

    def ours(n: int) -> None:
        for _ in range(n):
            verify_signature(pub_raw, msg, sig)

    raw_rate = _rate(raw, n)
    our_rate = _rate(ours, n)
    print(f"sig: raw cryptography Ed25519 verify   {raw_rate:>10,.0f} /s (one core)")
    print(f"sig: consensus verify_signature        {our_rate:>10,.0f} /s ({our_rate / raw_rate:.0%} of raw; includes key parsing)")
    with ThreadPoolExecutor(2) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda _: raw(n // 2), range(2)))
        par = n / (time.perf_counter() - t0)
    print(f"sig: raw verify on 2 threads           {par:>10,.0f} /s (cryptography releases the GIL)")
    return raw_rate


def bench_block(raw_rate: float) -> None:
    n_tx, senders = 5_000, 100
    chain = TestChain(n_accounts=senders, seed=b"bench")
    chain.next_block()
    txs = []
    for i in range(n_tx):
        a = chain.account_keys[i % senders]
        b = chain.account_keys[(i + 1) % senders]
        txs.append(chain.tx(a, Transfer(b.address(), 1), fee=1))
    block = chain.build_block(txs)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        result = state_transition(chain.state, block)
        dt = time.perf_counter() - t0
        best = max(best, n_tx / dt)
    assert all(r.code == 0 for r in result.tx_results)
    print(f"block: {n_tx} signed transfers, verified in block   {best:>10,.0f} tx/s = {best / raw_rate:.0%} of raw verify")
    verified = {t.tx_hash for t in txs}
    best_cached = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        state_transition(chain.state, block, sig_cache=verified.__contains__, txs=txs)
        best_cached = max(best_cached, n_tx / (time.perf_counter() - t0))
    print(f"block: same, signatures cached by the mempool    {best_cached:>10,.0f} tx/s = {best_cached / raw_rate:.0%} of raw verify")


def run() -> None:
    bench_codec()
    raw_rate = bench_signatures()
    bench_block(raw_rate)
