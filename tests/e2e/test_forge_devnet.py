"""A forging validator on a real 4-validator devnet: the honest three keep their pace, their peers and their txs.

node1 runs ``--byzantine forge``: it behaves normally and also gossips a
steady stream of forged votes, proposals (inline, in parts, announced for
fetching with a block near ``Block.MAX_BYTES``, for round ``MAX_ROUND``),
block parts and evidence in the other validators' names. For 40 s:

- the honest three keep at least 80% of their block rate without the
  forger's stream (measured after, for 15 s, with node1 stopped: its peers
  cut a forger off within a second, so its proposer turns time out either
  way; the comparison isolates what the stream costs them);
- they stay connected to each other, and none of them bans another;
- every transfer sent to them meanwhile commits within 10 s;
- they penalise node1 (rejected messages, penalties, a ban in their logs).

The genesis keeps node1 in the set throughout (no epoch change, proof-of-
compute deadlines and the downtime window out of reach), so both windows
are measured on the same validator set.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from consensus.txs import Transfer, build_tx
from node.keyfiles import load_keystore
from tests.kit.devnet import Devnet, MakeDevnet, http_get, rpc, wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

FORGE_S = 40.0
IDLE_S = 15.0
HONEST = (0, 2, 3)
PARAMS = {
    "epoch_blocks": 100_000,
    "poc_commit_deadline_blocks": 100_000,
    "poc_open_deadline_blocks": 100_000,
    "downtime_window": 100_000,
    "downtime_max_missed": 99_999,
}


def _peer_id(devnet: Devnet, i: int) -> str:
    return devnet.node(i).p2p.rsplit("/p2p/", 1)[1]


def _metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _banned(devnet: Devnet, i: int) -> set[str]:
    """Peer ids node ``i``'s log says it disconnected and banned."""
    found = set()
    for line in devnet.log(i).splitlines():
        try:
            msg = json.loads(line).get("msg", "")
        except ValueError:
            continue
        m = re.match(r"disconnecting and banning peer (\S+)", msg)
        if m:
            found.add(m.group(1))
    return found


def _honest_rate(devnet: Devnet, seconds: float) -> float:
    """Blocks per second committed by the slowest honest node over ``seconds``."""
    start = {i: devnet.height(i) for i in HONEST}
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    return min(devnet.height(i) - start[i] for i in HONEST) / elapsed


def test_a_forging_validator_slows_nobody_and_is_cut_off(make_devnet: MakeDevnet) -> None:
    devnet = make_devnet(params=PARAMS, byzantine={"node1": "forge"})
    devnet.wait_all_at(2, timeout=90, nodes=HONEST)
    honest_ids = {_peer_id(devnet, i) for i in HONEST}
    forger_id = _peer_id(devnet, 1)
    keys = {i: load_keystore(devnet.node(i).home / "keys" / "account.json", None) for i in HONEST}
    fee = int(rpc(devnet.node(0).url, "params")["min_fee"])

    # -- 40 s of forging: transfers keep landing, honest peers stay linked --------------------
    start = {i: devnet.height(i) for i in HONEST}
    t0 = time.monotonic()
    latencies: list[float] = []
    disconnected: list[str] = []
    k = 0
    while time.monotonic() - t0 < FORGE_S:
        i = HONEST[k % len(HONEST)]
        k += 1
        url = devnet.node(i).url
        nonce = int(rpc(url, "account", {"address": devnet.address_of(i)})["next_nonce"])
        tx = build_tx(keys[i], devnet.chain_id, nonce, fee, Transfer(keys[HONEST[k % 3]].address(), 1 + k))
        sent = time.monotonic()
        done = rpc(url, "broadcast_tx", {"tx": "0x" + tx.raw.hex(), "mode": "commit"}, timeout=30)
        latencies.append(time.monotonic() - sent)
        assert done["code"] == 0, done
        for j in HONEST:
            peers = {p["node_id"] for p in rpc(devnet.node(j).url, "net_info")["peers"]}
            missing = honest_ids - {_peer_id(devnet, j)} - peers
            if missing:
                disconnected.append(f"node{j} lacks {sorted(missing)} at {time.monotonic() - t0:.0f} s")
        time.sleep(max(0.0, 3.0 - (time.monotonic() - sent)))
    forge_elapsed = time.monotonic() - t0
    forge_rate = min(devnet.height(i) - start[i] for i in HONEST) / forge_elapsed
    forge_window = (start[0] + 1, devnet.height(0))

    # -- what the honest nodes did to the forger, and to each other ----------------------------
    rejected = {}
    for i in HONEST:
        status, text = http_get(devnet.node(i).url, "/metrics")
        assert status == 200
        rejected[i] = (_metric(text, "cstake_p2p_dropped_total", '{reason="rejected"}'),
                       _metric(text, "cstake_p2p_peers_penalised_total"))
    banned = {i: _banned(devnet, i) for i in HONEST}
    assert "test fault: forging consensus messages" in devnet.log(1)

    # -- the same honest three, with the forger silent -----------------------------------------
    devnet.stop(1)
    time.sleep(3)
    idle_start = devnet.height(0) + 1
    idle_rate = _honest_rate(devnet, IDLE_S)
    idle_window = (idle_start, devnet.height(0))
    later_rounds = {
        name: sum(devnet.block(0, h)["header"]["round"] > 0 for h in range(lo, hi + 1))
        for name, (lo, hi) in (("forge", forge_window), ("idle", idle_window))
    }

    print(
        f"honest block rate: {forge_rate:.2f}/s while node1 forged ({forge_elapsed:.0f} s), "
        f"{idle_rate:.2f}/s with node1 stopped ({IDLE_S:.0f} s); {len(latencies)} transfers, "
        f"commit latency max {max(latencies):.2f} s, median {sorted(latencies)[len(latencies) // 2]:.2f} s; "
        f"rejected/penalties per honest node {rejected}; bans {banned}; "
        f"heights decided after round 0: {later_rounds} (windows {forge_window}, {idle_window})"
    )
    assert forge_rate >= 0.8 * idle_rate, f"{forge_rate:.2f}/s under forging vs {idle_rate:.2f}/s without"
    assert len(latencies) >= 10 and max(latencies) <= 10.0, latencies
    assert not disconnected, disconnected
    for i in HONEST:
        assert not (banned[i] & honest_ids), f"node{i} banned an honest peer: {banned[i] & honest_ids}"
    # Every honest node refused forged messages and penalised for them; node1 was cut off.
    assert all(n_rejected > 0 and penalties > 0 for n_rejected, penalties in rejected.values()), rejected
    assert any(forger_id in b for b in banned.values()), banned
    # And the chain is one chain.
    top = min(devnet.height(i) for i in HONEST)
    wait_until(lambda: len({devnet.block(i, top)["hash"] for i in HONEST}) == 1, 10, "agreement")
