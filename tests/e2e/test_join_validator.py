"""A fifth validator joins a running 4-node devnet, as an operator would, and signs its blocks.

The operator makes a home from the chain's genesis and one bootstrap peer
(``cstake init --genesis FILE --bootstrap MULTIADDR``), starts the node (it
syncs the chain from the others), receives funds from node0's account, then
sends from its own account: ``tx create-validator``, ``tx register-compute
--from-bench`` (the benchmark of the node's prover at the chain's challenge
size) and ``tx bind-nft`` of that NFT to its own validator (no accept needed).

Voting power is ``isqrt(stake x verified_compute)``: the new NFT is challenged at
the next epoch boundary, the node's prover passes, and from the boundary after
that the new validator is in the active set: its precommits are in the blocks'
commits and it proposes blocks of its own. Then ``tx edit-validator`` renames it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.kit.devnet import (
    Devnet,
    MakeDevnet,
    block,
    cstake,
    height,
    rpc,
    start_node,
    stop_process,
    wait_height,
    wait_until,
)

EPOCH = 20
#: Challenge width. The devnet default (256) makes openings of ~1.3 MB, and py-libp2p 0.8.1's
#: per-peer outbound pubsub queue drops any RPC over 1 MiB (``RpcQueue`` keeps its default
#: ``max_message_size``), so such openings never leave a node: a validator gets them in only by
#: proposing itself, and the joiner, not yet a proposer, never could. At 128 they are ~0.9 MB.
POC_N = 128
STAKE = 2_000_000
FUNDS = 10 * STAKE


def _tx(home: Path, url: str, *args: str) -> dict[str, Any]:
    out = cstake("tx", *args, "--home", str(home), "--rpc", url, "--wait", "--json", timeout=120)
    result: dict[str, Any] = json.loads(out.stdout)
    assert result["code"] == 0, result
    return result


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_fifth_validator_joins_and_signs_after_the_next_epoch(make_devnet: MakeDevnet, tmp_path: Path) -> None:
    devnet: Devnet = make_devnet(4, params={"epoch_blocks": EPOCH, "poc_max_n": POC_N})
    assert devnet.ports is not None
    node0 = devnet.node("node0")
    devnet.wait_height(0, 2, timeout=60)

    # The joiner's home: the chain's genesis file and node0 as its bootstrap peer, on the
    # ports the devnet's reservation holds for a fifth node (p2p base+40, RPC base+41).
    home = tmp_path / "joiner"
    p2p_port, rpc_port = devnet.ports.base + 40, devnet.ports.base + 41
    init = json.loads(cstake(
        "init", "--home", str(home), "--moniker", "joiner", "--unencrypted", "--json",
        "--genesis", str(node0.home / "genesis.json"), "--bootstrap", node0.p2p,
        "--p2p-port", str(p2p_port), "--rpc-port", str(rpc_port), timeout=60).stdout)
    me, url = init["address"], f"http://127.0.0.1:{rpc_port}"
    assert init["chain_id"] == devnet.chain_id
    assert f"/p2p/{node0.p2p.rsplit('/p2p/', 1)[1]}" in (home / "config.toml").read_text()

    proc = start_node(home)
    try:
        # It syncs the running chain from its bootstrap peer.
        head = devnet.height(0)
        wait_until(lambda: height(url), 90, "the joiner to sync the running chain", until=lambda h: h >= head,
                   interval=0.5)
        assert block(url, head)["hash"] == devnet.block(0, head)["hash"]

        _tx(node0.home, node0.url, "send", me, str(FUNDS))
        # The funds were committed on node0; the joiner's own node may be a block behind, and
        # the CLI checks the balance there before it signs.
        wait_until(lambda: rpc(url, "account", {"address": me})["balance"], 30,
                   "the joiner's node to see its funds", until=lambda b: b >= FUNDS, interval=0.2)
        created = _tx(home, url, "create-validator", "--stake", str(STAKE), "--commission", "700")
        # A validator record outside the active set until the next epoch boundary at least.
        (record,) = [v for v in rpc(url, "validators")["inactive"] if v["address"] == me]
        assert (record["moniker"], record["stake"]) == ("joiner", STAKE)

        params = rpc(url, "params")
        # The whole measured rate (margin 100%): at this devnet's small challenges one unit is a
        # large share of a claim, and on a loaded machine 80% of a measured 1 rounds to nothing.
        _tx(home, url, "register-compute", "--from-bench", "--bench-seconds", "5", "--margin-percent", "100",
            "--collateral", str(params["min_nft_collateral"] * 10))
        (nft_id,) = [n["id"] for n in rpc(url, "nfts", {"owner": me})["nfts"]]
        bound = _tx(home, url, "bind-nft", str(nft_id), me)
        assert rpc(url, "nft", {"id": nft_id})["bound_validator"] == me  # its own validator: bound at once
        # Not in the active set yet: no verified compute, and sets change only at epoch boundaries.
        assert me not in {v["address"] for v in rpc(url, "validators")["validators"]}
        assert created["height"] <= bound["height"]

        # The next boundary challenges the NFT and the joiner's prover answers. On a loaded
        # machine a challenge may miss its deadline; the NFT is challenged again at the next
        # boundary, so allow a few epochs (the chain's record says what happened to each).
        challenged_at = (bound["height"] // EPOCH + 1) * EPOCH
        wait_height(url, challenged_at, timeout=EPOCH * 3)

        def passed() -> bool:
            nft = rpc(url, "nft", {"id": nft_id})
            return bool(nft["status"] == "active" and nft["verified_units"] > 0)

        try:
            wait_until(passed, EPOCH * 8, f"NFT {nft_id} to pass a challenge from height {challenged_at}",
                       interval=0.5)
        finally:
            print(json.dumps(rpc(url, "challenges", {"nft_id": nft_id})["challenges"]))

        # From the boundary after the proof, the joiner is in the active set.
        joined_at = (rpc(url, "nft", {"id": nft_id})["last_verified_height"] // EPOCH + 1) * EPOCH
        wait_height(url, joined_at + 1, timeout=EPOCH * 3)
        active = {v["address"]: v for v in rpc(url, "validators", {"height": joined_at + 1})["validators"]}
        # The genesis validators stay in the set only while their own NFTs pass their challenges,
        # which a loaded machine does not guarantee; the joiner's place is what this test is about.
        assert me in active and active[me]["voting_power"] > 0, active
        assert (active[me]["commission_bps"], active[me]["self_bond"]) == (700, STAKE)

        def signed_and_proposed() -> tuple[list[int], list[int]] | None:
            top = height(url)
            signed = [h for h in range(joined_at + 2, top + 1)
                      if me in {s["validator"] for s in block(url, h)["last_commit"]["signatures"]}]
            proposed = [h for h in range(joined_at + 1, top + 1) if block(url, h)["header"]["proposer"] == me]
            return (signed, proposed) if signed and proposed else None

        signed, proposed = wait_until(signed_and_proposed, 60, "the joiner's precommits and a proposal of its own",
                                      interval=1.0)
        # Every node agrees on the blocks it signed and proposed.
        for h in signed[:1] + proposed[:1]:
            hashes = {devnet.block(n.name, h)["hash"] for n in devnet.nodes} | {block(url, h)["hash"]}
            assert len(hashes) == 1, (h, hashes)
        print(json.dumps({"joined_at": joined_at, "signed": signed[:5], "proposed": proposed[:5]}))

        # The operator renames the validator and changes its commission.
        _tx(home, url, "edit-validator", "--moniker", "joiner-renamed", "--commission", "300")
        (edited,) = [v for v in rpc(node0.url, "validators")["validators"] if v["address"] == me]
        assert (edited["moniker"], edited["commission_bps"]) == ("joiner-renamed", 300)
    finally:
        stop_process(proc)
