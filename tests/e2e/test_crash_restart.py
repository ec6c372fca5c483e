"""SIGKILL one validator of four while transactions flow, restart it with ``cstake start``.

Pass means: the other three never stop committing; the restarted node comes
back without manual repair, keeps every block it had with the same hash and
catches up to identical hashes; it signs again; and no conflicting vote was
ever signed (no evidence in any block on any node, no double-sign slashing
record, no validator flagged byzantine or tombstoned).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.kit.devnet import (
    Devnet,
    Node,
    block,
    height,
    http_get,
    rpc,
    wait_height,
    wait_until,
)

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

DOWN_S = 8.0
#: Longest allowed gap between consecutive block times while the victim is down (idle is ~0.7 s).
MAX_GAP_MS = 5_000


def _start_load(devnet: Devnet, urls: list[str], out_dir: Path) -> subprocess.Popen[bytes]:
    """``cstake load`` in the background (stopped at teardown if it still runs)."""
    return devnet.spawn(
        "load", "--home", str(devnet.node("node0").home), "--rpc", ",".join(urls),
        "--rate", "40", "--duration", "25", "--accounts", "8", "--drain", "20", "--json",
        stdout=out_dir / "load.json", stderr=out_dir / "load.log",
    )


def _first_block_with_txs(url: str, after: int) -> int | None:
    for h in range(after + 1, height(url) + 1):
        if block(url, h)["num_txs"] > 0:
            return h
    return None


def test_sigkilled_validator_restarts_catches_up_and_never_double_signs(
    devnet: Devnet, tmp_path: Path
) -> None:
    victim = devnet.node("node2")
    others: list[Node] = [n for n in devnet.nodes if n.name != victim.name]
    main = others[0].url
    devnet.wait_all_at(2, timeout=60)
    start = height(main)
    load = _start_load(devnet, [n.url for n in others], tmp_path)
    try:
        wait_until(lambda: _first_block_with_txs(main, start), 60, "load transactions in blocks", interval=0.5)
        before = height(victim.url)
        kept = devnet.block_hashes(victim, before)

        devnet.kill(victim.name)
        killed_at = devnet.heights(others)
        deadline = time.monotonic() + DOWN_S
        while time.monotonic() < deadline:
            time.sleep(0.5)
        restarted_at = devnet.heights(others)
        for n in others:
            assert restarted_at[n.name] >= killed_at[n.name] + 3, (
                f"{n.name} committed only {restarted_at[n.name] - killed_at[n.name]} blocks in {DOWN_S:g} s "
                "while one validator of four was down"
            )

        devnet.start(victim.name)
        devnet.wait_ready(victim.name, timeout=60)
        target = max(devnet.heights(others).values())
        wait_height(victim.url, target, timeout=60)
        wait_until(lambda: rpc(victim.url, "status")["catching_up"], 30, "the node to finish catching up",
                   until=lambda catching_up: not catching_up)
        assert load.wait(timeout=120) == 0, (tmp_path / "load.log").read_text()[-2000:]
    finally:
        if load.poll() is None:
            load.kill()
            load.wait(timeout=10)

    # The three kept committing without a stall, with transactions, while the victim was down.
    lo, hi = min(killed_at.values()), max(restarted_at.values())
    window = [block(main, h) for h in range(lo, hi + 1)]
    gaps = [b["header"]["time"] - a["header"]["time"] for a, b in zip(window, window[1:], strict=False)]
    assert max(gaps) <= MAX_GAP_MS, f"a {max(gaps)} ms gap between blocks while node2 was down"
    assert sum(b["num_txs"] for b in window) > 0

    # Identical hashes everywhere, and the victim kept what it had committed before the kill.
    devnet.wait_all_at(target + 2, timeout=60)
    top = min(devnet.heights().values())
    chains = {n.name: devnet.block_hashes(n, top) for n in devnet.nodes}
    for name, chain in chains.items():
        assert chain == chains["node0"], f"{name} disagrees with node0 on some height in 1..{top}"
    assert chains[victim.name][: len(kept)] == kept

    # It signs again: its precommit shows up in a later block's last commit.
    victim_addr = devnet.address_of(victim.name)

    def signed_again() -> bool:
        latest = height(main)
        for h in range(max(target + 1, latest - 5), latest + 1):
            sigs = block(main, h)["last_commit"]["signatures"]
            if victim_addr in {s["validator"] for s in sigs}:
                return True
        return False

    wait_until(signed_again, 30, "the restarted validator's precommit in a commit", interval=0.5)

    # No conflicting vote was ever signed: nothing to report anywhere.
    end = min(devnet.heights().values())
    for n in devnet.nodes:
        evidence = [h for h in range(1, end + 1) if block(n.url, h)["evidence"]]
        assert evidence == [], f"{n.name} has evidence committed at heights {evidence}"
        # Other faults (a missed proof-of-compute challenge, say) are not votes; only double_sign is.
        double_signs = [r for r in rpc(n.url, "slashing_records") if r["fault"] == "double_sign"]
        assert double_signs == [], f"{n.name} holds double-sign slashing records: {double_signs}"
        for v in rpc(n.url, "validators")["validators"]:
            assert not v["tombstoned"], v
        status, metrics = http_get(n.url, "/metrics")
        assert status == 200
        match = re.search(r"^cstake_byzantine_validators ([0-9.]+)$", metrics, re.MULTILINE)
        assert match is not None and float(match.group(1)) == 0
    report = json.loads((tmp_path / "load.json").read_text())
    assert report["committed"] > 0
