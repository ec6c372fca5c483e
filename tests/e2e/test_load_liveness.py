"""The chain keeps committing under 1,000 tx/s, and every accepted transaction lands exactly once.

``cstake load`` sends 1,000 transfers per second for 15 s across the four RPC
URLs (issue 18's target rate; blocks then exceed the 48 KiB inline proposal
size, so proposals travel compact and are rebuilt from the mempools). The
devnet has no epoch boundary in the test's span: the whole devnet proving its
compute at once on two cores stretches one interval to several seconds, which
``python -m bench node`` measures (docs/performance.md); this test is about the
transaction path.
Pass means: no gap of more than a few seconds between consecutive blocks while
the load runs, and every transaction the nodes accepted is committed exactly
once, counted from the blocks' transaction lists.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.kit.devnet import MakeDevnet, block, cstake, height, rpc, wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

RATE = 1_000
DURATION_S = 15
MAX_GAP_MS = 5_000


def test_chain_keeps_committing_under_load_and_includes_every_accepted_tx(make_devnet: MakeDevnet) -> None:
    devnet = make_devnet(params={"epoch_blocks": 100_000})
    main = devnet.nodes[0].url
    devnet.wait_all_at(2, timeout=60)
    proc = cstake(
        "load", "--home", str(devnet.node("node0").home), "--rpc", ",".join(devnet.urls),
        "--rate", str(RATE), "--duration", str(DURATION_S), "--accounts", "200", "--drain", "30", "--json",
        timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["accepted"] >= 0.5 * RATE * DURATION_S, report
    start = int(report["start_height"])

    # Give the chain a bounded time to empty every mempool, then count from the blocks.
    def drained() -> bool:
        return all(rpc(n.url, "mempool", {"limit": 0})["size"] == 0 for n in devnet.nodes)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not drained():
        time.sleep(0.5)
    top = height(main)
    blocks = [block(main, h) for h in range(start, top + 1)]
    times = [b["header"]["time"] for b in blocks]
    load_end = times[0] + DURATION_S * 1000
    # Every gap that overlaps the load window, up to the first block after it.
    after = next((i for i, t in enumerate(times) if t > load_end), len(times) - 1)
    during = times[: after + 1]
    gaps = [b - a for a, b in zip(during, during[1:], strict=False)]
    if times[-1] <= load_end:  # nothing after the window: the stall lasted to the end
        gaps.append(int(time.time() * 1000) - times[-1])
    rounds = {b["header"]["height"]: b["header"]["round"] for b in blocks if b["header"]["round"] > 0}
    assert len(during) >= 2 and max(gaps) <= MAX_GAP_MS, (
        f"under {RATE} tx/s the chain committed {len(during)} blocks in {DURATION_S} s "
        f"(heights {start}..{blocks[len(during) - 1]['header']['height']}); longest gap "
        f"{max(gaps, default=0)} ms; heights decided after round 0 (height: round): {rounds}"
    )
    committed = sum(b["num_txs"] for b in blocks[1:])
    assert committed >= report["accepted"], (
        f"{report['accepted']} transactions accepted, {committed} committed in heights {start + 1}..{top}"
    )
    # Exactly once: every accepted transaction is in a block, none in two.
    hashes = [h for b in blocks[1:] for h in b["txs"]]
    assert len(hashes) == committed and len(set(hashes)) == len(hashes), (
        f"{len(hashes) - len(set(hashes))} transactions committed more than once"
    )
    assert report["duplicates"] == 0, report
    assert report["committed_accepted"] == report["accepted"], report
    wait_until(drained, 5, "every mempool to be empty")
