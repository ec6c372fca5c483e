"""Unit tests: envelopes, config, peer keys, token buckets, frames, log routing, ledger, bridge."""

from __future__ import annotations

import asyncio
import logging
import os
import stat

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from consensus.params import DEVNET, MAINNET
from p2p import scoring
from p2p.config import (
    GOSSIP_KINDS,
    P2PConfig,
    RateLimit,
    blocks_protocol,
    compute_rate_limits,
    status_protocol,
    topic_name,
)
from p2p.dispatch import Dispatcher, GateDrop, GossipGate
from p2p.envelope import (
    BlockFrame,
    Envelope,
    StatusMessage,
    decode_envelope,
    decode_tx_batch,
    encode_envelope,
    encode_tx_batch,
)
from p2p.errors import (
    BadPeerData,
    ConfigError,
    KeyFileError,
    MalformedMessage,
    MessageTooLarge,
    TransportClosed,
)
from p2p.host.bridge import TrioThread
from p2p.host.logs import RateLimitedForwarder
from p2p.host.streams import FrameReader, encode_uvarint, frame, write_frames
from p2p.interface import Reject, Verdict
from p2p.keys import load_or_create_peer_key, peer_id_from_seed
from p2p.ratelimit import PeerRateLimiter, TokenBucket
from p2p.stats import P2PStats

# -- names and config ---------------------------------------------------------------


def test_topic_and_protocol_names_follow_the_interface():
    assert [topic_name("c1", k) for k in GOSSIP_KINDS] == [
        "/cstake/c1/tx/1",
        "/cstake/c1/proposal/1",
        "/cstake/c1/vote/1",
        "/cstake/c1/attestation/1",
        "/cstake/c1/evidence/1",
    ]
    assert status_protocol("c1") == "/cstake/c1/status/1"
    assert blocks_protocol("c1") == "/cstake/c1/blocks/1"


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": "bad chain"},
        {"listen_port": 70000},
        {"bootstrap": ("/ip4/127.0.0.1/tcp/1",)},
        {"max_peers": 0},
        {"max_message_bytes": 100},
        {"max_frame_bytes": 2048},
        {"request_timeout": 0},
        {"reconnect_min": 5.0, "reconnect_max": 1.0},
        {"rate_limits": {"tx": RateLimit(1.0, 1.0)}},
    ],
)
def test_invalid_config_is_refused_with_a_clear_error(tmp_path, change):
    cfg = P2PConfig(chain_id="c1", key_path=str(tmp_path / "k"))
    cfg.validate()
    with pytest.raises(ConfigError):
        cfg.with_changes(**change)


def test_invalid_unknown_topic_kind():
    with pytest.raises(ConfigError):
        topic_name("c1", "blocks")


# -- envelopes ------------------------------------------------------------------------


def test_envelope_roundtrip_and_kind_check():
    data = encode_envelope("vote", b"\x01\x02")
    assert Envelope.decode(data) == Envelope(1, "vote", b"\x01\x02")
    assert decode_envelope(data, "vote", 1 << 20) == b"\x01\x02"
    with pytest.raises(MalformedMessage, match="kind"):
        decode_envelope(data, "tx", 1 << 20)
    with pytest.raises(MalformedMessage):
        decode_envelope(Envelope(2, "vote", b"").encode(), "vote", 1 << 20)


@given(st.binary(max_size=200))
def test_invalid_envelope_bytes_never_crash_the_decoder(data):
    try:
        payload = decode_envelope(data, "vote", 1 << 20)
    except MalformedMessage:
        return
    assert encode_envelope("vote", payload) == data  # only a canonical envelope decodes


def test_tx_batch_roundtrip_and_invalid_batches():
    txs = (b"a", b"bb", b"ccc")
    assert decode_tx_batch(encode_tx_batch(txs), 1 << 20, 10) == txs
    with pytest.raises(MalformedMessage, match="empty"):
        decode_tx_batch(encode_tx_batch([]), 1 << 20, 10)
    with pytest.raises(MalformedMessage, match="more than"):
        decode_tx_batch(encode_tx_batch([b"x"] * 11), 1 << 20, 10)
    with pytest.raises(MalformedMessage):
        decode_tx_batch(encode_tx_batch([b"x", b""]), 1 << 20, 10)
    with pytest.raises(MalformedMessage):
        decode_tx_batch(b"\x93\x01\x02", 1 << 20, 10)


def test_sync_messages_roundtrip():
    assert StatusMessage.decode(StatusMessage(5, b"h" * 32, 1).encode()) == StatusMessage(5, b"h" * 32, 1)
    assert BlockFrame.decode(BlockFrame(3, b"b", b"c").encode()).height == 3


# -- keys ---------------------------------------------------------------------------------


def test_peer_key_is_created_0600_and_gives_a_stable_peer_id(tmp_path):
    path = tmp_path / "keys" / "node_key"
    seed = load_or_create_peer_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_peer_key(path) == seed
    pid = peer_id_from_seed(seed)
    assert pid.startswith("12D3KooW") and pid == peer_id_from_seed(load_or_create_peer_key(path))


def test_invalid_peer_key_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "node_key"
    load_or_create_peer_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_peer_key(path)


def test_invalid_peer_key_of_wrong_size_is_refused(tmp_path):
    path = tmp_path / "node_key"
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="32-byte"):
        load_or_create_peer_key(path)


# -- token buckets, ledger, bans -----------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate():
    b = TokenBucket(RateLimit(rate=10.0, burst=3.0), now=0.0)
    assert [b.try_take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.try_take(0.1) and not b.try_take(0.1)
    assert [b.try_take(10.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_peer_rate_limiter_is_per_peer_and_bounded():
    lim = PeerRateLimiter({"vote": RateLimit(rate=1.0, burst=1.0)}, max_entries=2)
    assert lim.allow("a", "vote", 0.0) and not lim.allow("a", "vote", 0.0)
    assert lim.allow("b", "vote", 0.0)
    assert lim.allow("c", "vote", 0.0)
    assert len(lim) == 2  # "a" was forgotten
    assert lim.allow("a", "vote", 0.0)
    assert lim.allow("x", "unknown-key", 0.0)


def test_a_byte_counted_limit_charges_each_message_its_size():
    lim = PeerRateLimiter({"proposal": RateLimit(rate=100.0, burst=1000.0, unit="bytes"),
                           "vote": RateLimit(rate=1.0, burst=2.0)})
    assert lim.allow_message("a", "proposal", 0.0, 600) and not lim.allow_message("a", "proposal", 0.0, 600)
    assert lim.allow_message("a", "proposal", 0.0, 400)  # exactly what is left
    assert lim.allow_message("a", "proposal", 1.0, 100) and not lim.allow_message("a", "proposal", 1.0, 1)
    # A message-counted limit ignores the size.
    assert lim.allow_message("a", "vote", 0.0, 1 << 20) and lim.allow_message("a", "vote", 0.0, 1 << 20)
    assert not lim.allow_message("a", "vote", 0.0, 1)


def test_invalid_rate_limit_unit_is_refused(tmp_path):
    cfg = P2PConfig(chain_id="c1", key_path=str(tmp_path / "k"))
    limits = dict(cfg.rate_limits, proposal=RateLimit(1.0, 1.0, unit="parcels"))
    with pytest.raises(ConfigError, match="unit"):
        cfg.with_changes(rate_limits=limits)
    with pytest.raises(ConfigError):
        compute_rate_limits(0)


@pytest.mark.parametrize("max_block_bytes", [DEVNET.max_block_bytes, MAINNET.max_block_bytes])
def test_the_proposal_budget_holds_two_full_blocks_of_parts_at_once(max_block_bytes):
    limit = compute_rate_limits(max_block_bytes)["proposal"]
    assert limit.unit == "bytes" and not limit.penalise
    part = len(encode_envelope("proposal", bytes(32 * 1024 + 200)))  # a 32 KiB part with its header
    parts = -(-max_block_bytes // (32 * 1024))
    bucket = TokenBucket(limit, now=0.0)
    # A round's block and the next round's, relayed by one peer back to back.
    assert all(bucket.try_take(0.0, part) for _ in range(2 * parts))
    # The default is sized for the largest preset: every chain's block fits it.
    default = P2PConfig(chain_id="c1", key_path="k").rate_limits["proposal"]
    assert default.burst >= limit.burst and default.rate >= limit.rate


def test_the_gate_leaves_a_non_penalising_limit_to_the_dispatcher(tmp_path):
    limits = dict(P2PConfig(chain_id="c1", key_path="k").rate_limits,
                  proposal=RateLimit(rate=1.0, burst=10.0, unit="bytes", penalise=False),
                  vote=RateLimit(rate=1.0, burst=1.0))
    gate = GossipGate(P2PConfig(chain_id="c1", key_path=str(tmp_path / "k"), rate_limits=limits))
    big = encode_envelope("proposal", bytes(1000))
    assert gate.admit("proposal", "p", big, 0.0) == bytes(1000)
    assert gate.admit("proposal", "p", big, 0.0) == bytes(1000)  # beyond the budget: no drop, no penalty here
    gate.admit("vote", "p", encode_envelope("vote", b"v"), 0.0)
    with pytest.raises(GateDrop) as drop:
        gate.admit("vote", "p", encode_envelope("vote", b"v"), 0.0)
    assert drop.value.reason == "rate"


async def test_beyond_a_non_penalising_budget_accepted_messages_are_ignored_and_rejects_still_count(tmp_path):
    now = [0.0]
    limits = dict(P2PConfig(chain_id="c1", key_path="k").rate_limits,
                  proposal=RateLimit(rate=100.0, burst=250.0, unit="bytes", penalise=False))
    stats = P2PStats()
    dispatcher = Dispatcher(P2PConfig(chain_id="c1", key_path=str(tmp_path / "k"), rate_limits=limits), stats,
                            clock=lambda: now[0])
    delivered: list[bytes] = []
    dispatcher.subscribe("proposal", lambda peer, data: Verdict.ACCEPT if data[:1] == b"+" else Reject("bad_signature"),
                         lambda peer, data: delivered.append(data))
    dispatcher.start()
    try:
        good, bad = b"+" + bytes(99), b"-" + bytes(99)
        assert await dispatcher.validate_async("proposal", "p", good) is Verdict.ACCEPT
        assert await dispatcher.validate_async("proposal", "p", good) is Verdict.ACCEPT
        assert await dispatcher.validate_async("proposal", "p", good) is Verdict.IGNORE  # 300 bytes > 250
        assert await dispatcher.validate_async("proposal", "p", bad) == Reject("bad_signature")
        assert await dispatcher.validate_async("proposal", "q", good) is Verdict.ACCEPT  # per peer
        now[0] = 1.0
        assert await dispatcher.validate_async("proposal", "p", good) is Verdict.ACCEPT  # refilled
        await asyncio.sleep(0)
        assert stats.dropped["rate"] == 1 and len(delivered) == 4
    finally:
        await dispatcher.stop()


def test_penalty_ledger_decays_and_ban_list_expires():
    led = scoring.PenaltyLedger()
    assert led.add("p", 100.0) == 100.0
    led.decay(0.5)
    assert led.get("p") == 50.0
    bans = scoring.BanList()
    bans.ban("p", now=0.0, seconds=10.0)
    assert bans.is_banned("p", 5.0) and not bans.is_banned("q", 5.0)
    assert bans.expired(11.0) == ["p"] and not bans.is_banned("p", 11.0)


# -- frames ----------------------------------------------------------------------------------


class FakeStream:
    """Serves bytes in small chunks, then EOF (b"")."""

    def __init__(self, data: bytes, chunk: int = 3) -> None:
        self.data = data
        self.chunk = chunk
        self.written = b""

    async def read(self, n: int) -> bytes:
        out, self.data = self.data[: min(n, self.chunk)], self.data[min(n, self.chunk) :]
        return out

    async def write(self, data: bytes) -> None:
        self.written += data


async def test_frame_reader_reads_frames_across_chunk_boundaries():
    frames = [b"", b"a", b"x" * 300, b"y" * 70_000]
    s = FakeStream(b"".join(frame(f) for f in frames), chunk=7)
    r = FrameReader(s, max_frame=100_000)
    assert [await r.read_frame() for _ in frames] == frames
    assert await r.read_frame() is None


async def test_invalid_frame_declared_over_the_cap_is_refused_before_reading():
    s = FakeStream(encode_uvarint(10_000_000) + b"x" * 10)
    with pytest.raises(MessageTooLarge):
        await FrameReader(s, max_frame=1000).read_frame()


@pytest.mark.parametrize("data", [b"\x05abc", b"\xff" * 11, b"\x80"])
async def test_invalid_truncated_or_bad_varint_frames(data):
    with pytest.raises(BadPeerData):
        await FrameReader(FakeStream(data), max_frame=1000).read_frame()


async def test_write_frames_roundtrip():
    s = FakeStream(b"")
    await write_frames(s, [b"one", b"two" * 1000])
    r = FrameReader(FakeStream(s.written, chunk=1 << 20), 1 << 20)
    assert [await r.read_frame(), await r.read_frame(), await r.read_frame()] == [b"one", b"two" * 1000, None]


# -- log routing -------------------------------------------------------------------------------


def test_libp2p_logs_are_forwarded_and_rate_limited():
    seen: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    target = logging.getLogger("p2p.libp2p")
    catch = Catch()
    target.addHandler(catch)
    try:
        fwd = RateLimitedForwarder(burst=3, window=60.0)
        src = logging.getLogger("libp2p.test_only")
        for i in range(10):
            fwd.handle(src.makeRecord(src.name, logging.WARNING, __file__, 1, "noisy %d", (i,), None))
        fwd.handle(src.makeRecord(src.name, logging.WARNING, __file__, 1, "other", (), None))
    finally:
        target.removeHandler(catch)
    assert [r.getMessage() for r in seen[:3]] == ["noisy 0", "noisy 1", "noisy 2"]
    assert len(seen) == 4 and "7 similar libp2p log lines suppressed" in seen[3].getMessage()


# -- bridge ---------------------------------------------------------------------------------------


async def test_trio_thread_calls_both_ways_and_leaves_no_thread():
    import threading

    before = {t.name for t in threading.enumerate()}
    bridge = TrioThread("test-trio", max_inflight=4)
    answers = []

    def on_loop(x: int, done) -> None:  # runs on the asyncio loop
        answers.append(asyncio.get_running_loop() is not None)
        done(x * 2)

    async def trio_work(x: int) -> int:
        await trio.sleep(0)
        return await bridge.to_asyncio(on_loop, x)

    async def trio_fail() -> None:
        raise ValueError("from trio")

    async def main(b: TrioThread) -> None:
        async with trio.open_nursery() as n:
            b.ready(n)
            await b.wait_stop()
            n.cancel_scope.cancel()

    await bridge.start(main)
    assert "test-trio" in {t.name for t in threading.enumerate()}
    results = await asyncio.gather(*(bridge.call(trio_work, i) for i in range(20)))
    assert results == [2 * i for i in range(20)] and all(answers)
    with pytest.raises(ValueError, match="from trio"):
        await bridge.call(trio_fail)
    await bridge.stop()
    assert {t.name for t in threading.enumerate()} <= before
    with pytest.raises(TransportClosed):
        await bridge.call(trio_work, 1)


async def test_trio_thread_reports_a_failed_start():
    async def broken(b: TrioThread) -> None:
        raise RuntimeError("cannot listen")

    with pytest.raises(RuntimeError, match="cannot listen"):
        await TrioThread("broken-trio").start(broken)
