"""Peer exchange: the address book is bounded, expires, scores entries and distrusts penalised peers.

The attack: peer-exchange answers are attacker-chosen. A peer lists thousands
of addresses (its sybils, or hosts that do not exist) so that the node's
dialer spends its outbound slots on them, and nothing it learned ever went
away. ``p2p.peers.PeerBook`` holds what we learn: at most
``PX_MAX_PER_ANSWER`` new entries from one answer and ``PX_MAX_PER_SOURCE``
from one source, ``PX_MAX_ENTRIES`` in all, each gone ``PX_ENTRY_TTL`` after it
was last advertised, dropped after failed dials, and dropped when its source
is penalised. Unit tests of the book, then the host service's peer-exchange
path (``p2p.host.slots``) driven under trio without sockets.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from p2p.config import P2PConfig
from p2p.envelope import PeerExchange, PeerRecord
from p2p.errors import ConfigError
from p2p.host.service import HostService
from p2p.host.slots import PX_MAX_BYTES, get_valid_addrs, on_peer_exchange, px_loop
from p2p.peers import (
    PX_DROP_SCORE,
    PX_ENTRY_TTL,
    PX_MAX_ENTRIES,
    PX_MAX_PER_ANSWER,
    PX_MAX_PER_SOURCE,
    PeerBook,
)
from p2p.stats import P2PStats


def _recs(prefix: str, n: int) -> list[tuple[str, list[str]]]:
    return [(f"{prefix}{i}", [f"/ip4/10.9.{i // 250 % 250}.{i % 250}/tcp/26656/p2p/{prefix}{i}"]) for i in range(n)]


def _never(pid: str) -> bool:
    return False


# -- the book ------------------------------------------------------------------------------------


def test_learn_takes_at_most_the_cap_from_one_answer() -> None:
    book = PeerBook()
    res = book.learn("evil", _recs("a", 10_000), now=0.0, skip=_never)
    assert res.added == len(book) == PX_MAX_PER_ANSWER < 10_000


def test_one_source_holds_at_most_its_share_over_many_answers() -> None:
    book = PeerBook()
    for k in range(20):
        book.learn("evil", _recs(f"r{k}-", 50), now=float(k), skip=_never)
    assert len(book) == book.get_source_count("evil") == PX_MAX_PER_SOURCE
    # Other sources still get in.
    assert book.learn("honest", _recs("h", 3), now=30.0, skip=_never).added == 3


def test_entries_expire_unless_advertised_again_or_connected() -> None:
    book = PeerBook()
    book.learn("s", _recs("x", 3), now=0.0, skip=_never)
    book.learn("s2", [("x1", ["/ip4/10.0.0.1/tcp/1/p2p/x1"])], now=PX_ENTRY_TTL - 10, skip=_never)  # x1 refreshed
    assert book.expire(PX_ENTRY_TTL + 1, alive=lambda p: p == "x2") == ["x0"]
    assert sorted(book.entries) == ["x1", "x2"]
    assert book.expire(2 * PX_ENTRY_TTL, alive=_never) == ["x1"]
    assert sorted(book.entries) == ["x2"]  # x2 was connected at PX_ENTRY_TTL + 1, seen then


def test_book_is_bounded_and_verified_entries_survive_a_flood() -> None:
    book = PeerBook(max_entries=10, max_per_answer=10, max_per_source=10)
    book.learn("s", _recs("good", 4), now=0.0, skip=_never)
    for pid in ("good0", "good1", "good2", "good3"):
        book.on_connected(pid, now=1.0)
    for k in range(50):  # fifty sybil sources, each with ten fresh addresses
        book.learn(f"sybil{k}", _recs(f"s{k}-", 10), now=2.0 + k, skip=_never)
        assert len(book) <= 10
    assert {f"good{i}" for i in range(4)} <= set(book.entries)
    assert all(e.verified for p, e in book.entries.items() if p.startswith("good"))


def test_failed_dials_lower_the_score_and_drop_the_entry_successful_ones_raise_it() -> None:
    book = PeerBook()
    book.learn("s", _recs("p", 2), now=0.0, skip=_never)
    fails = 0
    while "p0" in book:
        book.on_dial_failed("p0")
        fails += 1
    assert fails == int(-PX_DROP_SCORE) + 1
    book.on_connected("p1", now=1.0)
    entry = book.get("p1")
    assert entry is not None and entry.score > 0 and entry.verified
    assert book.on_dial_failed("unknown") is False


def test_dial_candidates_best_score_first_and_limited() -> None:
    book = PeerBook()
    book.learn("s", _recs("c", 5), now=0.0, skip=_never)
    book.on_connected("c3", now=1.0)
    book.on_dial_failed("c1")
    picked = [e.peer_id for e in book.get_dial_candidates(2.0, exclude=lambda p: p == "c0", limit=3)]
    assert picked == ["c3", "c2", "c4"]
    assert book.get_dial_candidates(2.0, exclude=_never, limit=0) == []


def test_entries_from_a_penalised_source_are_dropped_but_verified_ones_kept() -> None:
    book = PeerBook()
    book.learn("bad", _recs("b", 5), now=0.0, skip=_never)
    book.learn("good", _recs("g", 2), now=0.0, skip=_never)
    book.on_connected("b0", now=1.0)
    assert book.on_source_penalised("bad") == 4
    assert sorted(book.entries) == ["b0", "g0", "g1"]


def test_learn_skips_vetoed_and_addressless_records_and_keeps_first_addresses() -> None:
    book = PeerBook()
    res = book.learn("s", [("me", ["/ip4/1.1.1.1/tcp/1/p2p/me"]), ("s", ["/ip4/1.1.1.2/tcp/1/p2p/s"]), ("n", [])],
                     now=0.0, skip=lambda p: p == "me")
    assert res.added == 0 and res.ignored == 3 and len(book) == 0
    book.learn("s", [("p", ["/ip4/1.1.1.3/tcp/1/p2p/p"])], now=0.0, skip=_never)
    book.learn("t", [("p", ["/ip4/6.6.6.6/tcp/1/p2p/p"])], now=5.0, skip=_never)
    entry = book.get("p")
    assert entry is not None and entry.target.addrs == ["/ip4/1.1.1.3/tcp/1/p2p/p"] and entry.last_seen == 5.0


def test_invalid_book_settings_are_refused() -> None:
    for bad in ({"max_entries": 0}, {"max_per_answer": 0}, {"max_per_source": 0}, {"ttl": 0.0}):
        with pytest.raises(ConfigError):
            PeerBook(**bad)  # type: ignore[arg-type]


# -- the host service's peer exchange (trio, no sockets) -------------------------------------------


def _peer(n: int) -> ID:
    return ID.from_pubkey(create_new_key_pair(bytes([n]) * 32).public_key)


def _svc(tmp_path: Any, **changes: Any) -> HostService:
    boot = (f"/ip4/10.0.0.1/tcp/26656/p2p/{_peer(90).to_base58()}",)
    cfg = P2PConfig(chain_id="t", key_path=str(tmp_path / "k"), bootstrap=boot, **changes)
    cfg.validate()
    return HostService(cfg, bytes(32), P2PStats(), None, [])  # type: ignore[arg-type]


def _answer(source: ID, n: int, prefix: str = "x") -> PeerExchange:
    peers = tuple(PeerRecord(f"{prefix}{i}", (f"/ip4/10.8.{i // 250 % 250}.{i % 250}/tcp/26656",)) for i in range(n))
    return PeerExchange(PeerRecord(source.to_base58(), ("/ip4/10.7.0.1/tcp/26656",)), peers)


def test_a_peer_sending_10000_entries_gets_at_most_the_cap_stored(tmp_path: Any) -> None:
    svc, evil = _svc(tmp_path), _peer(1)
    msg = _answer(evil, 10_000)
    # On the wire such an answer is over the 64 KiB frame cap and refused whole; handed
    # in directly, it shows the book's own bound.
    assert len(msg.encode()) > PX_MAX_BYTES

    async def main() -> None:
        on_peer_exchange(svc, evil, msg)
        assert len(svc.book) == PX_MAX_PER_ANSWER
        for k in range(10):  # and more answers never give it more than its share
            on_peer_exchange(svc, evil, _answer(evil, 500, prefix=f"r{k}-"))
        assert len(svc.book) == svc.book.get_source_count(evil.to_base58()) == PX_MAX_PER_SOURCE

    trio.run(main)
    assert svc.known_addrs[evil.to_base58()] == [f"/ip4/10.7.0.1/tcp/26656/p2p/{evil.to_base58()}"]


def test_exchanged_entries_expire_in_the_peer_exchange_loop(tmp_path: Any) -> None:
    svc, src = _svc(tmp_path), _peer(2)

    async def main() -> None:
        on_peer_exchange(svc, src, _answer(src, 5))
        assert len(svc.book) == 5
        async with trio.open_nursery() as nursery:
            nursery.start_soon(px_loop, svc)
            await trio.sleep(PX_ENTRY_TTL / 2)
            assert len(svc.book) == 5
            await trio.sleep(PX_ENTRY_TTL / 2 + 2 * svc.config.peer_exchange_interval)
            assert len(svc.book) == 0
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_entries_from_a_penalised_peer_are_dropped_and_its_answers_ignored(tmp_path: Any) -> None:
    svc, bad, good = _svc(tmp_path), _peer(3), _peer(4)

    async def main() -> None:
        on_peer_exchange(svc, bad, _answer(bad, 8, prefix="b"))
        on_peer_exchange(svc, good, _answer(good, 2, prefix="g"))
        svc.on_fault(bad, "bad_data")
        assert sorted(svc.book.entries) == ["g0", "g1"]
        on_peer_exchange(svc, bad, _answer(bad, 8, prefix="c"))
        assert sorted(svc.book.entries) == ["g0", "g1"]

    trio.run(main)


def test_persistent_peers_and_ourselves_never_enter_the_book(tmp_path: Any) -> None:
    svc, src = _svc(tmp_path), _peer(5)
    boot = next(iter(svc.persistent))
    me = svc.my_id.to_base58()
    msg = PeerExchange(PeerRecord(src.to_base58(), ()),
                       (PeerRecord(boot, ("/ip4/6.6.6.6/tcp/1",)), PeerRecord(me, ("/ip4/6.6.6.7/tcp/1",))))

    async def main() -> None:
        on_peer_exchange(svc, src, msg)

    trio.run(main)
    assert len(svc.book) == 0
    assert svc.persistent[boot].addrs == ["/ip4/10.0.0.1/tcp/26656/p2p/" + boot]


def test_the_book_bound_is_the_default_table_size() -> None:
    assert PeerBook().max_entries == PX_MAX_ENTRIES >= PX_MAX_PER_SOURCE > PX_MAX_PER_ANSWER


def test_unspecified_and_foreign_loopback_addresses_are_never_dialable() -> None:
    """A listener on 0.0.0.0 advertises ``/ip4/0.0.0.0``, which dialled anywhere reaches the
    dialler itself (in containers sharing one port: its own listener). In a peer's own
    record it becomes the address the peer reached us from; elsewhere it is dropped, as
    loopback addresses are when the record came from another host."""
    pid = "12D3KooWpeer"
    wild, loop, real = "/ip4/0.0.0.0/tcp/26656", "/ip4/127.0.0.1/tcp/26656", "/ip4/172.28.0.13/tcp/26656"
    assert get_valid_addrs((wild, real), pid, "172.28.0.13", own=True) == [
        f"/ip4/172.28.0.13/tcp/26656/p2p/{pid}", f"{real}/p2p/{pid}"]
    assert get_valid_addrs((wild, real), pid, "172.28.0.10") == [f"{real}/p2p/{pid}"]  # a third party's
    assert get_valid_addrs((wild,), pid, None, own=True) == []  # source unknown: nothing to put there
    assert get_valid_addrs((loop, real), pid, "172.28.0.10") == [f"{real}/p2p/{pid}"]
    assert get_valid_addrs((loop,), pid, "127.0.0.1") == [f"{loop}/p2p/{pid}"]  # a local devnet
