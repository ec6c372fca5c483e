"""An honest operator registered with ``--from-bench`` passes its challenges at its claim.

A one-validator devnet (one genesis NFT of 5 units, so the machine is shared by
two provers at each boundary, not five). Right after an epoch boundary, node0's
operator runs ``cstake tx register-compute --from-bench`` against its node: the
benchmark measures the prover's kernel (one BLAS thread on the CPU, the node's
default) at the chain's challenge size read from the node's RPC, and claims a
margin of it.

The margin: the default is 80%, for a machine whose load is the operator's own.
This one is shared with other engineers' test suites (load average 6 to 15 on 2
cores while this was written), and what one prover thread gets moves by 2-3x
between the benchmark and a challenge a few seconds later (measured, bench
units then units delivered on the three challenges: 34 then 19, 15, 28 with one
deadline missed; 47 then 14, 15, 27). So this operator, like any operator of a
shared machine, benchmarks longer (8 s) and claims 50% (``--margin-percent
50``); the claim is still exactly the margin of what the prover measured, and
the old bench's claim (all cores at n = 2048, 2-4x the prover's figure) would
still fail.

Before the fix the bench claimed what all cores measured at n = 2048 with no
margin (measured here: a claim of 94 units where the node's single-threaded
n = 256 prover delivered 23 GFLOP/s), so the challenges were sized for a device
several times faster and were verified far below the claim or missed.

Parameters: 4-second challenges (the devnet default is 2), so the chain's
inclusion latency (about one block, ~0.5 s) is a small share of the observed
time; n = 512 (the devnet default is 256), because units are whole numbers and
one BLAS thread delivers only 3-6 units at n = 256 on this loaded machine, where
one unit would be 17-33% of the claim (n = 512 gives several times more); the
openings (800 rows of 2 KiB with their paths, ~2.1 MB) then need a larger
``max_tx_bytes`` (one validator: they never travel on gossip).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.kit.devnet import Devnet, MakeDevnet, cstake, wait_until

EPOCH = 20
CHALLENGE_SECONDS = 4
POC_N = 512
EPOCHS = 3
MEASURED = re.compile(r"measured: (\d+) compute units \(([\d.]+) GFLOP/s at n=(\d+)")
MARGIN = 50
CLAIMING = re.compile(rf"claiming: (\d+) compute units \({MARGIN}% of measured\)")


def _tx(devnet: Devnet, *args: str) -> tuple[dict[str, Any], str]:
    node = devnet.node("node0")
    out = cstake("tx", *args, "--home", str(node.home), "--rpc", node.url, "--wait", "--json", timeout=120)
    result: dict[str, Any] = json.loads(out.stdout)
    assert result["code"] == 0, result
    return result, out.stderr


@pytest.mark.multiprocess
@pytest.mark.slow
def test_from_bench_operator_passes_every_challenge_near_its_claim(make_devnet: MakeDevnet) -> None:
    devnet = make_devnet(1, params={"challenge_seconds": CHALLENGE_SECONDS, "epoch_blocks": EPOCH,
                                    "poc_max_n": POC_N, "max_tx_bytes": 4 << 20,
                                    "max_block_bytes": 8 << 20})
    me = devnet.rpc(0, "status")["validator_address"]
    params = devnet.rpc(0, "params")
    # Start right after a boundary, so registration and binding land inside one epoch.
    devnet.wait_height(0, 1, timeout=60)
    wait_until(lambda: devnet.height(0), 60, "a height just after an epoch boundary",
               until=lambda h: 1 <= h % EPOCH <= 3, interval=0.1)

    def owned() -> set[int]:
        return {n["id"] for n in devnet.rpc(0, "nfts", {"owner": me})["nfts"]}

    before = owned()
    _, err = _tx(devnet, "register-compute", "--from-bench", "--bench-seconds", "8",
                 "--margin-percent", str(MARGIN), "--collateral", str(params["min_nft_collateral"] * 10))
    measured, claiming = MEASURED.search(err), CLAIMING.search(err)
    assert measured is not None and claiming is not None, err
    units, claim = int(measured[1]), int(claiming[1])
    assert int(measured[3]) == params["poc_max_n"] == POC_N  # the chain's challenge width, from its RPC
    assert claim == units * MARGIN // 100 >= 1
    (nft_id,) = owned() - before
    bound, _ = _tx(devnet, "bind-nft", str(nft_id), me)
    nft = devnet.rpc(0, "nft", {"id": nft_id})
    assert nft["claimed_units"] == claim and nft["bound_validator"] == me
    first = (bound["height"] // EPOCH + 1) * EPOCH
    boundaries = [first + i * EPOCH for i in range(EPOCHS)]

    def resolved(boundary: int) -> dict[str, Any] | None:
        at = devnet.rpc(0, "challenges", {"height": boundary})["challenges"]
        mine = [c for c in at if c["nft_id"] == nft_id]
        return mine[0] if mine and mine[0]["status"] not in ("pending", "committed") else None

    seen = []
    for boundary in boundaries:
        devnet.wait_height(0, boundary, timeout=EPOCH * 3)
        seen.append(wait_until(lambda b=boundary: resolved(b), EPOCH * 3,
                               f"NFT {nft_id}'s challenge at height {boundary} to resolve", interval=0.5))
    local = [int(m[1]) for m in re.finditer(
        rf"proved challenge \w+ for NFT {nft_id} in [\d.]+ s \((\d+) units measured locally\)",
        devnet.log("node0", "stdout.log"))]
    print(json.dumps({"measured": units, "claimed": claim,
                      "verified": [c["pending_units"] for c in seen], "prover_local": local,
                      "challenge": {"n": seen[0]["n"], "rows": seen[0]["rows"]}}))
    assert [c["status"] for c in seen] == ["passed"] * EPOCHS
    assert all(c["claimed_units"] == claim and c["n"] == params["poc_max_n"] for c in seen)
    # Verified within 20% of the claim (never above it: the chain caps at the claim).
    assert all(claim * 8 <= c["pending_units"] * 10 and c["pending_units"] <= claim for c in seen), seen
    final = devnet.rpc(0, "nft", {"id": nft_id})
    assert final["status"] == "active" and claim * 8 <= final["verified_units"] * 10
    assert final["verified_units"] <= claim
    assert final["collateral"] == params["min_nft_collateral"] * 10  # never slashed
