"""BFT time on a real 4-validator devnet whose node1 dates its blocks and votes an hour ahead (``time-warp``).

Its proposals are invalid (a block's time must be the weighted median of its
last commit's timestamps), so the honest validators prevote nil and the next
round's proposer commits; its precommits, an hour ahead, sit in commits but
cannot move the median while it holds a quarter of the power. No committed
block is dated more than the bound of docs/protocol.md ("Block time") after
the wall clock.
"""

from __future__ import annotations

import time

import pytest

from tests.kit.devnet import MakeDevnet

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

#: Honest clock skew (none: one machine) + one block interval, as docs/protocol.md states.
BOUND_MS = 2_000
WATCH_S = 20.0
HOUR_MS = 3_600_000


def test_time_warping_proposer_never_dates_the_chain(make_devnet: MakeDevnet) -> None:
    devnet = make_devnet(byzantine={"node1": "time-warp"})
    warp = devnet.address_of(1)
    start_height = devnet.height(0)
    seen: dict[int, dict] = {}
    late_by_ms: list[int] = []
    deadline = time.monotonic() + WATCH_S
    while time.monotonic() < deadline:
        top = devnet.height(0)
        for h in range(max(1, start_height), top + 1):
            if h in seen:
                continue
            blk = devnet.block(0, h)
            observed_ms = time.time_ns() // 1_000_000
            seen[h] = blk
            late_by_ms.append(blk["header"]["time"] - observed_ms)
            assert blk["header"]["time"] <= observed_ms + BOUND_MS, (
                f"block {h} is dated {blk['header']['time'] - observed_ms} ms after the wall clock"
            )
        time.sleep(0.2)
    heights = sorted(seen)
    print(f"watched heights {heights[0]}..{heights[-1]}; block time minus wall clock when seen: "
          f"max {max(late_by_ms)} ms, min {min(late_by_ms)} ms")
    # The chain kept committing, a block at least every few seconds.
    assert len(heights) >= 8, f"only {len(heights)} blocks in {WATCH_S:.0f} s"
    # node1 proposed (and warped) but none of its blocks was committed: the next round's was.
    assert "test fault: dating the block we propose" in devnet.log(1)
    headers = [seen[h]["header"] for h in heights]
    assert all(hd["proposer"] != warp for hd in headers)
    assert any(hd["round"] >= 1 for hd in headers), "no height needed a second round"
    # Time only moves forward.
    times = [hd["time"] for hd in headers]
    assert times == sorted(set(times))
    # node1's precommits, an hour ahead, are in the commits, and the block times stay honest.
    warped_sigs = [
        s for h in heights for s in seen[h]["last_commit"]["signatures"]
        if s["validator"] == warp and s["timestamp"] > seen[h]["header"]["time"] + HOUR_MS - 60_000
    ]
    assert warped_sigs, "node1's precommits never made it into a commit"
    # Every honest node follows the same chain.
    top = heights[-1]
    devnet.wait_all_at(top, 60)
    for i in (1, 2, 3):
        assert devnet.block(i, top)["hash"] == seen[top]["hash"]
