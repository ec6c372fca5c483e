"""The driver's inbox: both places peers can fill are bounded, and stale heights are dropped."""

from __future__ import annotations

import asyncio

from node.engine.inbox import Inbox


def test_inbox_put_refuses_past_the_bound_unless_unbounded() -> None:
    inbox: Inbox[str, str] = Inbox(max_queue=2)
    assert inbox.put("a") and inbox.put("b")
    assert not inbox.put("c")
    assert inbox.dropped == 1
    assert inbox.put("synced", bounded=False)
    assert [inbox.take() for _ in range(4)] == ["a", "b", "synced", None]


def test_inbox_keeps_future_messages_within_heights_and_count() -> None:
    inbox: Inbox[str, str] = Inbox(max_future=3, max_future_heights=2)
    assert inbox.keep_for(11, 10, "h11")
    assert inbox.keep_for(12, 10, "h12")
    assert not inbox.keep_for(13, 10, "too far ahead")
    assert inbox.keep_for(12, 10, "h12b")
    assert not inbox.keep_for(11, 10, "over the count")
    assert inbox.future_count == 3 and inbox.dropped == 2


def test_inbox_release_drops_heights_left_behind() -> None:
    inbox: Inbox[str, str] = Inbox()
    inbox.keep_for(11, 10, "h11")
    inbox.keep_for(12, 10, "h12")
    inbox.keep_for(13, 10, "h13")
    # Block sync moved the head past 11 and 12: their messages can never be used.
    assert inbox.release(13) == ["h13"]
    assert inbox.future_count == 0
    assert inbox.release(11) == []


async def test_inbox_wait_returns_when_something_is_queued() -> None:
    inbox: Inbox[str, str] = Inbox()
    waiter = asyncio.ensure_future(inbox.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    inbox.put("x")
    await asyncio.wait_for(waiter, 1.0)
    # Something queued: no wait at all.
    await asyncio.wait_for(inbox.wait(), 0.1)


def test_inbox_bounds_what_one_peer_can_queue() -> None:
    inbox: Inbox[str, str] = Inbox(max_queue=10, max_queue_per_peer=2)
    assert inbox.put("a1", peer="a") and inbox.put("a2", peer="a")
    assert not inbox.put("a3", peer="a")
    assert inbox.put("b1", peer="b") and inbox.put("timeout")
    assert inbox.take() == "a1"
    assert inbox.put("a3", peer="a")  # room again once one of a's is taken
    assert [inbox.take() for _ in range(4)] == ["a2", "b1", "timeout", "a3"]
    assert inbox.dropped == 1


def test_inbox_bounds_future_messages_per_peer_and_block_bytes() -> None:
    inbox: Inbox[str, str] = Inbox(max_future=10, max_future_per_peer=2, max_future_bytes=100)
    assert inbox.keep_for(11, 10, "a1", peer="a") and inbox.keep_for(12, 10, "a2", peer="a")
    assert not inbox.keep_for(11, 10, "a3", peer="a")
    assert inbox.keep_for(11, 10, "p1", peer="b", size=80)
    assert not inbox.keep_for(11, 10, "p2", peer="c", size=30)  # over the block bytes
    assert inbox.future_bytes == 80 and inbox.dropped == 2
    assert inbox.release(11) == ["a1", "p1"]
    assert inbox.future_bytes == 0 and inbox.future_count == 1
    assert inbox.keep_for(12, 11, "a3", peer="a") and inbox.keep_for(12, 11, "p2", peer="c", size=30)
