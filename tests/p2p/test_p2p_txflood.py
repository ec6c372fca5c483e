"""A tx-gossip flood: one peer forwarding batches of transactions that are checked, then IGNOREd.

IGNORE is not penalised, so without a budget a peer at the tx topic's rate
limit (500 batches/s of 800 txs) could make a node check 400,000 transactions
a second. Each forwarding peer has a validation budget of checks: the checks
spent on a flooding peer stay within ``burst + rate * seconds`` while an
honest peer's transactions keep being accepted.
"""

from __future__ import annotations

import asyncio
import time

from p2p.config import P2PConfig
from p2p.envelope import encode_tx_batch
from p2p.interface import Verdict
from p2p.memory import MemoryHub, MemoryTransport
from p2p.txbatch import TxGossip

CHAIN = "floodnet"
#: The budget the node must enforce per forwarding peer (the requirement, in checks).
BUDGET_RATE = 1000
BUDGET_BURST = 5000


def _cfg(tmp_path, name: str, **kw) -> P2PConfig:
    return P2PConfig(chain_id=CHAIN, key_path=str(tmp_path / name), listen_port=0, **kw)


class Checker:
    """The node's per-tx check as the batcher sees it: counts checks per forwarding peer."""

    def __init__(self) -> None:
        self.checks: dict[str, int] = {}
        self.delivered: list[bytes] = []

    def validate(self, peer: str, tx: bytes) -> Verdict:
        self.checks[peer] = self.checks.get(peer, 0) + 1
        if tx.startswith(b"ok"):
            return Verdict.ACCEPT
        if tx.startswith(b"no"):
            return Verdict.REJECT
        return Verdict.IGNORE  # "unfunded": an unfunded sender's tx costs a check, then is ignored

    def deliver(self, peer: str, tx: bytes) -> None:
        self.delivered.append(tx)


async def _settle(n: int = 40) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def _star(tmp_path, names: str, **kw):
    """Transports for ``names``; every other one connects to the first (the victim)."""
    hub = MemoryHub()
    ts = {n: MemoryTransport(_cfg(tmp_path, n, **kw), hub, n) for n in names}
    return hub, ts


async def test_unfunded_flood_from_one_peer_is_bounded_while_an_honest_peer_is_accepted(tmp_path):
    _, ts = await _star(tmp_path, "vei")
    checker = Checker()
    victim = TxGossip(ts["v"], checker.validate, checker.deliver)
    for t in ts.values():
        await t.start()
    await ts["e"].connect("/memory/v/p2p/v")
    await ts["i"].connect("/memory/v/p2p/v")
    started = time.monotonic()
    honest: list[bytes] = []
    for b in range(40):
        # 800 transactions of unfunded senders per batch, the most a batch may hold.
        await ts["e"].publish("tx", encode_tx_batch([b"unfunded-%d-%d" % (b, k) for k in range(800)]))
        if b % 2 == 0:
            txs = [b"ok-%d-%d" % (b, k) for k in range(50)]
            honest += txs
            await ts["i"].publish("tx", encode_tx_batch(txs))
        await _settle()
    await _settle(200)
    elapsed = time.monotonic() - started
    flood_checks = checker.checks.get("e", 0)
    # The checks spent on the flooding peer: at most the budget over the time it flooded.
    assert flood_checks <= BUDGET_BURST + BUDGET_RATE * elapsed + 1, (flood_checks, elapsed)
    assert flood_checks < 40 * 800
    assert victim.stats.batches_over_budget > 0
    # Meanwhile every honest transaction was checked and accepted.
    assert checker.delivered == honest
    assert checker.checks["i"] == len(honest)
    # IGNORE is not penalised: the flooder only lost our attention.
    assert ts["v"].get_peer_score("e") == 0.0


async def test_budget_refills_with_time_and_is_kept_per_peer(tmp_path):
    now = [100.0]
    hub = MemoryHub(clock=lambda: now[0])
    ts = {n: MemoryTransport(_cfg(tmp_path, n), hub, n) for n in "vei"}
    checker = Checker()
    victim = TxGossip(ts["v"], checker.validate, checker.deliver, budget_rate=100, budget_burst=500, clock=lambda: now[0])
    for t in ts.values():
        await t.start()
    await ts["e"].connect("/memory/v/p2p/v")
    await ts["i"].connect("/memory/v/p2p/v")

    async def flood(tag: int) -> None:
        await ts["e"].publish("tx", encode_tx_batch([b"unfunded-%d-%d" % (tag, k) for k in range(200)]))
        await _settle()

    await flood(0)
    await flood(1)
    assert checker.checks["e"] == 400  # 100 tokens left
    await flood(2)
    assert checker.checks["e"] == 500  # stopped at the 501st check; the rest unchecked
    assert victim.stats.txs_unchecked == 100 and victim.stats.batches_over_budget == 1
    await flood(3)
    assert checker.checks["e"] == 500  # out of budget: ignored before decoding
    assert victim.stats.batches_over_budget == 2
    # Not decoded while out of budget: a malformed batch is ignored, not even rejected.
    await ts["e"].publish("tx", b"\x91\x91\x01")
    await _settle()
    assert victim.stats.batches_malformed == 0 and ts["v"].get_peer_score("e") == 0.0

    # The honest peer has its own bucket, and accepted txs give their tokens back.
    for b in range(10):
        await ts["i"].publish("tx", encode_tx_batch([b"ok-%d-%d" % (b, k) for k in range(200)]))
        await _settle()
    assert len(checker.delivered) == 2000 and checker.checks["i"] == 2000
    assert victim.budget.get_tokens("i", now[0]) == 500

    now[0] += 2.0  # 200 tokens back for the flooder
    await flood(4)
    assert checker.checks["e"] == 700
    await flood(5)
    assert checker.checks["e"] == 700


async def test_a_batch_cut_short_by_the_budget_is_not_relayed(tmp_path):
    hub = MemoryHub()
    e, v, c = (MemoryTransport(_cfg(tmp_path, n), hub, n) for n in "evc")
    checker = Checker()
    downstream = Checker()
    TxGossip(v, checker.validate, checker.deliver, budget_rate=1, budget_burst=10)
    TxGossip(c, downstream.validate, downstream.deliver)
    for t in (e, v, c):
        await t.start()
    await e.connect("/memory/v/p2p/v")
    await v.connect("/memory/c/p2p/c")
    # Five accepted, then twelve ignored: the batch holds more than the 10 tokens.
    await e.publish("tx", encode_tx_batch([b"ok-%d" % k for k in range(5)] + [b"unfunded-%d" % k for k in range(12)]))
    await _settle(100)
    assert checker.checks["e"] == 10  # the last seven went unchecked
    assert downstream.checks == {} and downstream.delivered == []  # never vouched for, never relayed


async def test_invalid_oversize_batches_are_rejected_before_any_check(tmp_path):
    hub = MemoryHub()
    e, v = (MemoryTransport(_cfg(tmp_path, n), hub, n) for n in "ev")
    checker = Checker()
    victim = TxGossip(v, checker.validate, checker.deliver)
    for t in (e, v):
        await t.start()
    await e.connect("/memory/v/p2p/v")
    assert victim.max_batch_txs == 800
    await e.publish("tx", encode_tx_batch([b"ok-%d" % k for k in range(801)]))  # too many txs
    await _settle()
    assert checker.checks == {} and victim.stats.batches_oversize == 1
    score = v.get_peer_score("e")
    assert score < 0
    big = [b"ok" + bytes([k]) * 2000 for k in range(100)]  # 200 KB in 100 txs: too many bytes
    await e.publish("tx", encode_tx_batch(big))
    await _settle()
    assert checker.checks == {} and victim.stats.batches_oversize == 2
    assert v.get_peer_score("e") < score
    # One large transaction alone is not oversize (a batch of one is the only way to send it).
    await e.publish("tx", encode_tx_batch([b"ok" + b"x" * 300_000]))
    await _settle()
    assert checker.checks == {"e": 1} and len(checker.delivered) == 1


async def test_an_honest_relay_at_the_load_generator_rate_never_hits_the_budget(tmp_path):
    # 1,000 tx/s for 20 simulated seconds, in 50 ms batches, with 5% of them
    # ignored (stale or out-of-order nonces): the bucket never runs dry.
    now = [0.0]
    hub = MemoryHub(clock=lambda: now[0])
    i, v = (MemoryTransport(_cfg(tmp_path, n), hub, n) for n in "iv")
    checker = Checker()
    victim = TxGossip(v, checker.validate, checker.deliver, clock=lambda: now[0])
    for t in (i, v):
        await t.start()
    await i.connect("/memory/v/p2p/v")
    sent = 0
    lowest = float(BUDGET_BURST)
    for b in range(400):
        txs = [(b"unfunded-%d-%d" if k % 20 == 0 else b"ok-%d-%d") % (b, k) for k in range(50)]
        await i.publish("tx", encode_tx_batch(txs))
        sent += len(txs)
        await _settle(10)
        lowest = min(lowest, victim.budget.get_tokens("i", now[0]))
        now[0] += 0.05
    assert victim.stats.batches_over_budget == 0 and victim.stats.txs_unchecked == 0
    assert checker.checks["i"] == sent
    assert lowest >= BUDGET_BURST - 100  # it barely moves: 50 wasted/s against 1,000/s of refill


# -- the node's per-tx check under the budget --------------------------------------------------


def _node_check(chain, mempool):
    """The daemon's tx-topic check (``node.app.validate_gossip_tx``) over a test chain's head state."""
    from node.app import validate_gossip_tx

    state = chain.view()
    return lambda peer, raw: validate_gossip_tx(raw, state, mempool, chain.chain_id)


def _count_signature_checks(monkeypatch) -> list[int]:
    import consensus.transition
    import node.app

    count = [0]
    real = consensus.transition.is_valid_signature

    def counted(*args):
        count[0] += 1
        return real(*args)

    monkeypatch.setattr(consensus.transition, "is_valid_signature", counted)
    monkeypatch.setattr(node.app, "is_valid_signature", counted, raising=False)
    return count


def test_invalid_tx_checks_run_stateless_then_signature_then_state(monkeypatch):
    from consensus.crypto import PrivateKey
    from consensus.txs import SignedTx, Transfer, build_tx
    from node.mempool.pool import Mempool
    from tests.kit.chain import TestChain

    chain = TestChain()
    check = _node_check(chain, Mempool())
    sigs = _count_signature_checks(monkeypatch)
    stranger = PrivateKey.from_seed(b"\x11" * 32)  # no account: unfunded
    to = Transfer(b"r" * 20, 1)
    unfunded = build_tx(stranger, chain.chain_id, 0, 10, to)
    assert check("e", unfunded.raw) is Verdict.IGNORE and sigs[0] == 1
    # A forged signature from an unfunded sender: the signature is checked first, so REJECT.
    forged = SignedTx.create(stranger, unfunded.payload)
    forged_raw = forged.raw[:-1] + bytes([forged.raw[-1] ^ 1])
    assert check("e", forged_raw) is Verdict.REJECT and sigs[0] == 2
    # Stateless refusals cost no signature check.
    assert check("e", build_tx(stranger, "other-chain", 0, 10, to).raw) is Verdict.REJECT
    assert check("e", build_tx(stranger, chain.chain_id, 0, 0, to).raw) is Verdict.IGNORE  # fee below the floor
    assert check("e", b"\x92\x01") is Verdict.REJECT
    assert sigs[0] == 2
    # A funded sender's tx: verified once (the mempool reuses the result), then a duplicate costs none.
    good = chain.tx(chain.account_keys[0], to)
    assert check("i", good.raw) is Verdict.ACCEPT and sigs[0] == 3
    assert check("i", good.raw) is Verdict.IGNORE and sigs[0] == 3


async def test_node_check_under_an_unfunded_flood_is_bounded_per_peer(tmp_path, monkeypatch):
    from consensus.crypto import PrivateKey
    from consensus.txs import Transfer, build_tx
    from node.mempool.pool import Mempool
    from tests.kit.chain import TestChain

    chain = TestChain(n_accounts=2)
    mempool = Mempool()
    node_check = _node_check(chain, mempool)
    calls: dict[str, int] = {}

    def check(peer: str, raw: bytes) -> Verdict:
        calls[peer] = calls.get(peer, 0) + 1
        return node_check(peer, raw)

    sigs = _count_signature_checks(monkeypatch)
    now = [0.0]
    hub = MemoryHub(clock=lambda: now[0])
    e, i, v = (MemoryTransport(_cfg(tmp_path, n), hub, n) for n in "eiv")
    TxGossip(v, check, clock=lambda: now[0])
    for t in (e, i, v):
        await t.start()
    await e.connect("/memory/v/p2p/v")
    await i.connect("/memory/v/p2p/v")
    to = Transfer(b"r" * 20, 1)
    # Batches of 500 validly signed txs from unfunded senders (about 120 KB: under the byte limit), 0.1 s apart.
    strangers = [PrivateKey.from_seed((k + 1).to_bytes(32, "big")) for k in range(500)]
    honest = []
    for b in range(14):
        await e.publish("tx", encode_tx_batch([build_tx(k, chain.chain_id, b, 10, to).raw for k in strangers]))
        txs = [chain.tx(chain.account_keys[b % 2], to) for _ in range(5)]
        honest += txs
        await i.publish("tx", encode_tx_batch([t.raw for t in txs]))
        await _settle(20)
        now[0] += 0.1
    # At most the budget over the 1.4 s of flood, out of 7,000 offered.
    assert BUDGET_BURST <= calls["e"] <= BUDGET_BURST + BUDGET_RATE * 1.4 + 1
    assert sigs[0] <= calls["e"] + len(honest)
    assert all(t.tx_hash in mempool for t in honest)


def test_invalid_budget_settings_are_refused():
    import pytest

    from p2p.errors import ConfigError
    from p2p.txbatch import TxValidationBudget

    for rate, burst in ((0, 10), (10, 0.5), (-1, 10)):
        with pytest.raises(ConfigError):
            TxValidationBudget(rate, burst)
    budget = TxValidationBudget(1, 3, max_peers=2)
    assert budget.reserve("a", 5, 0.0) == 3 and budget.reserve("a", 1, 0.5) == 0
    budget.refund("a", 2)
    assert budget.get_tokens("a", 0.5) == 2.5
    budget.reserve("b", 1, 0.5)
    budget.reserve("c", 1, 0.5)  # the table keeps two peers: "a" is forgotten
    assert len(budget) == 2
