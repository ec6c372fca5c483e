"""Transaction batching and block sync over the in-memory transport, and one libp2p pair in-process."""

from __future__ import annotations

import asyncio
import threading

import pytest

from p2p.blocksync import BlockSyncClient, BlockSyncServer
from p2p.config import P2PConfig, blocks_protocol
from p2p.envelope import BlockFrame, encode_tx_batch
from p2p.errors import MessageTooLarge, NoPeersAvailable
from p2p.interface import Verdict
from p2p.memory import MemoryHub, MemoryTransport
from p2p.txbatch import TxGossip
from tests.kit.p2p_synthetic import ChainVerifier, corrupt, make_chain

CHAIN = "memnet"
#: A seed of the sync client's holder order that asks the liar (test_sync_retries_elsewhere...).
SYNC_SEED = 0


def _cfg(tmp_path, name: str, **kw) -> P2PConfig:
    return P2PConfig(chain_id=CHAIN, key_path=str(tmp_path / name), listen_port=0, **kw)


async def _pair(tmp_path, **kw):
    hub = MemoryHub()
    a = MemoryTransport(_cfg(tmp_path, "a", **kw), hub, "a")
    b = MemoryTransport(_cfg(tmp_path, "b", **kw), hub, "b")
    return hub, a, b


def _tx_verdict(tx: bytes) -> Verdict:
    return {b"ok": Verdict.ACCEPT, b"ig": Verdict.IGNORE, b"no": Verdict.REJECT}[tx[:2]]


# -- tx batching ---------------------------------------------------------------------------


async def test_txs_are_batched_by_count_and_delivered_one_by_one(tmp_path):
    _, a, b = await _pair(tmp_path, tx_batch_max_txs=10, tx_batch_delay=10.0)
    got: list[bytes] = []
    sender = TxGossip(a, lambda p, tx: Verdict.ACCEPT, lambda p, tx: None)
    TxGossip(b, lambda p, tx: _tx_verdict(tx), lambda p, tx: got.append(tx))
    for t in (a, b):
        await t.start()
    await a.connect("/memory/b/p2p/b")
    for i in range(25):
        sender.submit(b"ok%03d" % i)
    await asyncio.sleep(0.01)
    assert sender.stats.batches_sent == 2  # two full batches of 10; 5 wait for the delay
    await sender.flush()
    for _ in range(50):
        await asyncio.sleep(0)
    assert got == [b"ok%03d" % i for i in range(25)]
    assert sender.stats.batches_sent == 3 and a.stats.messages_out == 3


async def test_a_synchronous_check_runs_on_arrival_and_an_async_one_still_judges_the_batch(tmp_path):
    _, a, b = await _pair(tmp_path, tx_batch_max_txs=10, tx_batch_delay=10.0)
    _, c, d = await _pair(tmp_path, tx_batch_max_txs=10, tx_batch_delay=10.0)
    seen_sync: list[bytes] = []
    seen_async: list[bytes] = []

    def check(p: str, tx: bytes) -> Verdict:
        seen_sync.append(tx)
        return _tx_verdict(tx)

    async def check_later(p: str, tx: bytes) -> Verdict:
        await asyncio.sleep(0)
        seen_async.append(tx)
        return _tx_verdict(tx)

    sync_rx = TxGossip(b, check)
    async_rx = TxGossip(d, check_later)
    # The dispatcher gets a verdict back at once from the synchronous form, a coroutine from the other.
    assert sync_rx._validate_batch("x", encode_tx_batch([b"ok1", b"ig2"])) is Verdict.ACCEPT
    assert seen_sync == [b"ok1", b"ig2"]
    assert await async_rx._validate_batch_async("x", encode_tx_batch([b"ig1", b"no2"])) is Verdict.REJECT
    assert seen_async == [b"ig1", b"no2"]
    for t in (a, b, c, d):
        await t.start()
    await a.connect("/memory/b/p2p/b")
    await c.connect("/memory/b/p2p/b")  # the second pair is named a, b on its own hub
    for sender in (TxGossip(a, lambda p, tx: Verdict.ACCEPT), TxGossip(c, lambda p, tx: Verdict.ACCEPT)):
        for i in range(3):
            sender.submit(b"ok%d" % i)
        await sender.flush()
    for _ in range(50):
        await asyncio.sleep(0)
    assert seen_sync[2:] == [b"ok0", b"ok1", b"ok2"] and seen_async[2:] == [b"ok0", b"ok1", b"ok2"]
    assert sync_rx.stats.txs_accepted == 4 and async_rx.stats.txs_accepted == 3


async def test_txs_are_flushed_after_the_delay_or_at_the_byte_budget(tmp_path):
    _, a, b = await _pair(tmp_path, tx_batch_max_bytes=1024, tx_batch_delay=0.02)
    sender = TxGossip(a, lambda p, tx: Verdict.ACCEPT, lambda p, tx: None)
    await a.start()
    sender.submit(b"ok" + b"x" * 600)
    sender.submit(b"ok" + b"y" * 600)  # would pass 1 KiB: the first batch goes now
    await asyncio.sleep(0)
    assert sender.stats.batches_sent == 1
    await asyncio.sleep(0.05)
    assert sender.stats.batches_sent == 2
    with pytest.raises(MessageTooLarge):
        sender.submit(b"z" * (2 << 20))


async def test_batch_verdict_rules(tmp_path):
    hub = MemoryHub()
    a, b, c = (MemoryTransport(_cfg(tmp_path, n), hub, n) for n in "abc")
    got_b: list[bytes] = []
    got_c: list[bytes] = []
    TxGossip(b, lambda p, tx: _tx_verdict(tx), lambda p, tx: got_b.append(tx))
    TxGossip(c, lambda p, tx: _tx_verdict(tx), lambda p, tx: got_c.append(tx))
    for t in (a, b, c):
        await t.start()
    await a.connect("/memory/b/p2p/b")
    await b.connect("/memory/c/p2p/c")

    async def send(payload: bytes) -> None:
        await a.publish("tx", payload)
        for _ in range(30):
            await asyncio.sleep(0)

    await send(encode_tx_batch([b"ok1", b"ig2"]))  # accepted (relayed), the ignored tx not delivered
    assert got_b == [b"ok1"] and got_c == [b"ok1"]
    await send(encode_tx_batch([b"ig3"]))  # nothing accepted: ignored, no penalty
    assert b.get_peer_score("a") == 0.0
    await send(encode_tx_batch([b"ok4", b"no5"]))  # a stateless-invalid tx: the batch is rejected
    assert got_c == [b"ok1"]  # not relayed
    assert b.get_peer_score("a") < 0
    score = b.get_peer_score("a")
    await send(b"\x91\x01")  # not a batch: rejected
    assert b.get_peer_score("a") < score
    assert b.stats.dropped["rejected"] == 2 and b.stats.dropped["ignored"] == 1


# -- block sync ----------------------------------------------------------------------------


class Provider:
    def __init__(self, rows):
        self.rows = rows
        self.calls = 0

    def get_status(self):
        return (len(self.rows), b"\x07" * 32, 1)

    async def get_blocks(self, start, end):
        self.calls += 1
        return self.rows[start - 1 : end]


async def test_status_and_range_sync_in_chunks_with_verification(tmp_path):
    _, a, b = await _pair(tmp_path, max_request_blocks=40)
    rows = make_chain(CHAIN, 150, body_size=200)
    prov = Provider(rows)
    BlockSyncServer(a, prov)
    for t in (a, b):
        await t.start()
    await b.connect("/memory/a/p2p/a")
    client = BlockSyncClient(b)
    st = await client.fetch_status("a")
    assert (st.height, st.earliest_height) == (150, 1)
    verifier = ChainVerifier(CHAIN)
    frames = await client.fetch_range(1, 150, verify=verifier)
    assert [f.height for f in frames] == list(range(1, 151))
    assert verifier.verified == 150 and prov.calls == 4  # 40-block requests


async def test_sync_retries_elsewhere_and_cuts_a_peer_serving_bad_commits(tmp_path):
    hub = MemoryHub()
    liar, honest, me = (MemoryTransport(_cfg(tmp_path, n, max_request_blocks=50), hub, n) for n in ("l", "h", "me"))
    rows = make_chain(CHAIN, 120, body_size=100)
    lies = Provider(corrupt(rows))
    BlockSyncServer(liar, lies)
    BlockSyncServer(honest, Provider(rows))
    for t in (liar, honest, me):
        await t.start()
    await me.connect("/memory/l/p2p/l")
    await me.connect("/memory/h/p2p/h")
    # Seeded so that the liar is asked (unseeded, all three requests went to the honest
    # peer in about one run of six, and nothing was left to cut: a flaky failure in CI;
    # seeds 9 and 11 are such runs).
    frames = await BlockSyncClient(me, seed=SYNC_SEED).fetch_range(1, 120, verify=ChainVerifier(CHAIN))
    assert len(frames) == 120
    assert lies.calls >= 1
    assert "l" not in me.peers() and "h" in me.peers()
    assert me.get_peer_score("l") < 0


async def test_sync_with_only_bad_peers_fails_clearly(tmp_path):
    _, a, b = await _pair(tmp_path)
    BlockSyncServer(a, Provider(corrupt(make_chain(CHAIN, 5))))
    for t in (a, b):
        await t.start()
    await b.connect("/memory/a/p2p/a")
    with pytest.raises(NoPeersAvailable):
        await BlockSyncClient(b).fetch_range(1, 5, verify=ChainVerifier(CHAIN))


async def test_invalid_block_frames_with_wrong_heights_are_bad_data(tmp_path):
    _, a, b = await _pair(tmp_path)
    rows = make_chain(CHAIN, 10)
    BlockSyncServer(a, Provider(rows))
    # Replace the honest blocks handler with one that labels heights wrongly.
    a.set_request_handler(
        blocks_protocol(CHAIN), lambda peer, data: [BlockFrame(h + 2, *rows[h]).encode() for h in range(3)]
    )
    for t in (a, b):
        await t.start()
    await b.connect("/memory/a/p2p/a")
    with pytest.raises(NoPeersAvailable, match="height 2 where 1 was due"):
        await BlockSyncClient(b).fetch_range(1, 10)
    assert "a" not in b.peers()


async def test_invalid_shifted_chain_is_caught_by_verification(tmp_path):
    _, a, b = await _pair(tmp_path)

    class Skipper(Provider):
        async def get_blocks(self, start, end):
            return self.rows[start:end]  # off by one

    BlockSyncServer(a, Skipper(make_chain(CHAIN, 10)))
    for t in (a, b):
        await t.start()
    await b.connect("/memory/a/p2p/a")
    with pytest.raises(NoPeersAvailable, match="block 1: height mismatch"):
        await BlockSyncClient(b).fetch_range(1, 10, verify=ChainVerifier(CHAIN))


def test_verifier_refuses_a_gap():
    rows = make_chain(CHAIN, 3)
    v = ChainVerifier(CHAIN)
    v(BlockFrame(1, *rows[0]))
    with pytest.raises(Exception, match="does not extend"):
        v(BlockFrame(3, *rows[2]))


# -- libp2p, two transports in one process ---------------------------------------------------


@pytest.mark.slow
async def test_libp2p_pair_in_process_gossip_requests_and_clean_shutdown(tmp_path):
    from p2p.host import Libp2pTransport

    before = {t.name for t in threading.enumerate()}
    a = Libp2pTransport(_cfg(tmp_path, "a"))
    got: asyncio.Queue[bytes] = asyncio.Queue()
    a.subscribe("vote", lambda p, x: Verdict.ACCEPT, lambda p, x: got.put_nowait(x))
    BlockSyncServer(a, Provider(make_chain(CHAIN, 20)))
    await a.start()
    b = Libp2pTransport(_cfg(tmp_path, "b", bootstrap=tuple(a.listen_addrs())))
    b.subscribe("vote", lambda p, x: Verdict.ACCEPT, lambda p, x: None)
    try:
        await b.start()
        assert a.peer_id != b.peer_id and a.listen_addrs()[0].endswith(a.peer_id)
        for _ in range(200):
            if a.peers() and await b.mesh_peers("vote"):
                break
            await asyncio.sleep(0.05)
        assert a.peers() == [b.peer_id]
        with pytest.raises(MessageTooLarge):
            await b.publish("vote", b"x" * (1 << 20))
        await b.publish("vote", b"hello")
        assert await asyncio.wait_for(got.get(), 10) == b"hello"
        frames = await BlockSyncClient(b).fetch_range(1, 20, verify=ChainVerifier(CHAIN))
        assert len(frames) == 20
    finally:
        await b.stop()
        await a.stop()
    assert {t.name for t in threading.enumerate()} <= before


@pytest.mark.slow
async def test_invalid_listen_port_in_use_fails_start_with_a_clear_error(tmp_path):
    import socket

    from p2p.errors import TransportClosed
    from p2p.host import Libp2pTransport

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    before = {t.name for t in threading.enumerate()}
    try:
        t = Libp2pTransport(_cfg(tmp_path, "a").with_changes(listen_port=port))
        with pytest.raises(TransportClosed, match=f"127.0.0.1:{port}"):
            await t.start()
    finally:
        sock.close()
    assert {t.name for t in threading.enumerate()} <= before
