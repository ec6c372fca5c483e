"""Binding consent on a real 4-node devnet: a stranger's bind stays pending until accepted.

node1's account registers a one-unit NFT and asks to bind it to node0's validator
(``cstake tx bind-nft``). The request shows as ``pending_validator``; no node's compute
service takes the NFT's challenge (a service proves only NFTs bound to its validator).
After ``cstake tx accept-nft`` from node0's operator the NFT is bound to node0, and
node0's service takes its challenge.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.kit.devnet import Devnet, cstake, wait_until

EPOCH = 20


def _tx(devnet: Devnet, node: str, *args: str) -> dict[str, Any]:
    out = cstake("tx", *args, "--home", str(devnet.node(node).home), "--rpc", devnet.node(node).url,
                 "--wait", "--json", timeout=90)
    result: dict[str, Any] = json.loads(out.stdout)
    assert result["code"] == 0, result
    return result


def _served(devnet: Devnet, node: str, nft_id: int) -> list[int]:
    """Boundaries at which ``node``'s compute service took a challenge of ``nft_id``."""
    marker = f"for NFT {nft_id} at height "
    heights = []
    for line in devnet.node(node).log_path().read_text(errors="replace").splitlines():
        if marker in line:
            heights.append(int(line.split(marker, 1)[1].split(":", 1)[0].split()[0].strip('",')))
    return heights


@pytest.mark.multiprocess
@pytest.mark.slow
def test_stranger_bind_stays_pending_until_the_validator_accepts(devnet: Devnet) -> None:
    node0 = devnet.rpc(0, "status")["validator_address"]
    node1 = devnet.rpc(1, "status")["validator_address"]
    params = devnet.rpc(0, "params")

    def owned() -> set[int]:
        return {n["id"] for n in devnet.rpc(0, "nfts", {"owner": node1})["nfts"]}

    before = owned()
    _tx(devnet, "node1", "register-compute", "--units", "1", "--collateral", str(params["min_nft_collateral"]),
        "--model", "stranger", "--cores", "1", "--memory-mb", "1")
    (nft_id,) = owned() - before
    _tx(devnet, "node1", "bind-nft", str(nft_id), node0)
    nft = devnet.rpc(0, "nft", {"id": nft_id})
    assert (nft["pending_validator"], nft["bound_validator"]) == (node0, None)
    assert nft_id not in [n["id"] for n in devnet.rpc(0, "nfts", {"validator": node0})["nfts"]]

    # The next boundary challenges the NFT; no node's service takes it while it is pending
    # (a service proves only the NFTs bound to its validator).
    boundary = (devnet.rpc(0, "status")["latest_height"] // EPOCH + 1) * EPOCH
    devnet.wait_height(0, boundary + 3, timeout=60)
    assert [c["height"] for c in devnet.rpc(0, "challenges", {"nft_id": nft_id})["challenges"]] == [boundary]
    assert _served(devnet, "node0", nft_id) == [] and _served(devnet, "node1", nft_id) == []

    _tx(devnet, "node0", "accept-nft", str(nft_id))
    nft = devnet.rpc(0, "nft", {"id": nft_id})
    assert (nft["pending_validator"], nft["bound_validator"]) == (None, node0)
    assert nft_id in [n["id"] for n in devnet.rpc(0, "nfts", {"validator": node0})["nfts"]]
    # Now node0's service takes the NFT's challenges (the open one, or the next boundary's).
    wait_until(lambda: _taken(devnet, nft_id), 60, "node0 taking the NFT's challenge", interval=0.5)
    assert _served(devnet, "node1", nft_id) == []


def _taken(devnet: Devnet, nft_id: int) -> bool:
    """Whether node0's log shows it working on ``nft_id``'s challenge."""
    text = devnet.node("node0").log_path().read_text(errors="replace")
    return re.search(rf"for NFT {nft_id}\b", text) is not None
