"""Proof of compute on a real 4-node devnet (separate processes, libp2p, LevelDB, BLAS workers).

``cstake devnet up --byzantine node1=poc-cheat``: node1 corrupts 2% of its rows; its
openings fail the Freivalds check, so it gets a faulty-computation slashing record,
its NFT goes FAULTY with zero verified units, and at the next epoch it has no
voting power, while the three honest validators pass their challenges and keep theirs.

``--byzantine node1=poc-overclaim``: node1 registers an NFT claiming twice its
benchmarked units; after its first challenge the verified units settle near the
benchmarked figure, well below the claim.
"""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.devtools.devnet import DevnetError, load_devnet, rpc_call, stop_pids

ROOT = Path(__file__).resolve().parents[2]
EPOCH = 20


def _free_base_port(n: int) -> int:
    """A base port whose devnet ports (base + 10 i and + 1) are all free on 127.0.0.1."""
    for _ in range(200):
        base = random.randrange(20_000, 60_000, 10)
        socks = []
        try:
            for i in range(n):
                for off in (0, 1):
                    s = socket.socket()
                    socks.append(s)
                    s.bind(("127.0.0.1", base + 10 * i + off))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range found")


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """Start a 4-validator devnet with one byzantine node; stop every process by pid after."""
    directory = tmp_path / "devnet"

    def up(mode: str, params: dict[str, int] | None = None) -> dict[str, Any]:
        base = _free_base_port(4)
        extra = ["--params", json.dumps(params)] if params else []
        r = _cli("devnet", "up", "--validators", "4", "--dir", str(directory), "--base-port", str(base),
                 "--detach", "--byzantine", f"node1={mode}", *extra)
        assert r.returncode == 0, r.stderr
        return load_devnet(directory)

    try:
        yield up
    finally:
        if (directory / "devnet.json").exists():
            _cli("devnet", "down", "--dir", str(directory), timeout=60)
            stop_pids(load_devnet(directory)["nodes"])  # anything still alive, by pid


def _call(url: str, method: str, params: dict[str, Any] | None = None) -> Any:
    return rpc_call(url, method, params or {}, timeout=5.0)


def _wait(what: str, fn: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
        except DevnetError as exc:
            last, value = exc, None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def _addresses(doc: dict[str, Any]) -> dict[str, str]:
    return {n["name"]: _call(n["rpc"], "status")["validator_address"] for n in doc["nodes"]}


def _nfts_of(url: str, validator: str) -> list[dict[str, Any]]:
    return list(_call(url, "nfts", {"validator": validator})["nfts"])


def _logs(doc: dict[str, Any], name: str) -> str:
    node = next(n for n in doc["nodes"] if n["name"] == name)
    return (Path(node["home"]) / "logs" / "stdout.log").read_text(errors="replace")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_poc_cheat_is_slashed_and_loses_power(devnet: Callable[..., dict[str, Any]]) -> None:
    doc = devnet("poc-cheat")
    url = doc["nodes"][0]["rpc"]
    addrs = _addresses(doc)
    cheater = addrs["node1"]
    honest = [addrs[n] for n in ("node0", "node2", "node3")]

    def faulty_record() -> dict[str, Any] | None:
        records = _call(url, "slashing_records", {"validator": cheater})
        return next((r for r in records if r["fault"] == "faulty_compute"), None)

    record = _wait("node1's faulty-computation slashing record", faulty_record, 75)
    assert record["amount"] > 0
    (nft,) = _nfts_of(url, cheater)
    assert (nft["status"], nft["verified_units"], nft["collateral"]) == ("faulty", 0, 0)

    # Voting power follows at the next epoch boundary after the fault.
    next_epoch = (record["height"] // EPOCH + 1) * EPOCH
    _wait(f"height {next_epoch + 1}", lambda: _call(url, "status")["latest_height"] > next_epoch, 45)
    # The set that decided the height of the fault (and the rest of that epoch) still
    # had the cheater's power; the set from the next epoch on does not.
    at_fault = {v["address"]: v["voting_power"] for v in
                _call(url, "validators", {"height": record["height"]})["validators"]}
    assert at_fault.get(cheater, 0) > 0
    vals = _call(url, "validators", {"height": next_epoch + 1})
    active = {v["address"]: v for v in vals["validators"]}
    assert cheater not in active
    for address in honest:
        assert active[address]["voting_power"] > 0, address
        assert active[address]["compute_units"] > 0
        for n in _nfts_of(url, address):
            assert n["status"] == "active" and n["verified_units"] > 0
            assert n["last_verified_height"] > 0  # proven on chain, not only genesis-given
    # Only the cheater was slashed.
    assert {r["validator"] for r in _call(url, "slashing_records")} == {cheater}
    # The challenges RPC shows node1's challenge failed and the others passed.
    latest = {c["nft_id"]: c for c in _call(url, "challenges", {"height": EPOCH})["challenges"]}
    assert latest[nft["id"]]["status"] == "failed"
    assert sorted(c["status"] for c in latest.values()) == ["failed", "passed", "passed", "passed"]
    # Attestations signed by the validators are carried in blocks and served over RPC.
    atts = _call(url, "attestations")["attestations"]
    assert {a["validator"] for a in atts if a["source"] == "chain"} & set(honest)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_poc_overclaim_settles_near_real_units(devnet: Callable[..., dict[str, Any]]) -> None:
    # A 2x claim needs twice the challenge time, and on this shared 2-core machine the
    # overclaimer's real rate is a fraction of its idle benchmark: 1-second challenges and
    # a 24-block commitment deadline let it finish, so the chain can measure it.
    doc = devnet("poc-overclaim", {"challenge_seconds": 1, "poc_commit_deadline_blocks": 24,
                                   "epoch_blocks": 30})
    url = doc["nodes"][0]["rpc"]
    over = _addresses(doc)["node1"]

    def registered() -> dict[str, Any] | None:
        return next((n for n in _nfts_of(url, over) if n["registered_height"] > 0), None)

    nft = _wait("node1's overclaimed NFT, bound", registered, 60)
    match = re.search(r"poc-overclaim: measured (\d+) units, registering an NFT claiming (\d+)",
                      _logs(doc, "node1"))
    assert match is not None
    benchmarked, claimed = int(match[1]), int(match[2])
    assert claimed == 2 * benchmarked == nft["claimed_units"]

    def verified() -> dict[str, Any] | None:
        n = _call(url, "nft", {"id": nft["id"]})
        return n if n["last_verified_height"] > 0 else None

    done = _wait("the overclaimed NFT's first passed challenge", verified, 100)
    units = done["verified_units"]
    # What the hardware delivered on that very challenge, as node1's prover timed it.
    local = [int(m[1]) for m in re.finditer(
        rf"proved challenge \w+ for NFT {nft['id']} in [\d.]+ s \((\d+) units measured locally\)",
        _logs(doc, "node1"))]
    assert local
    print(json.dumps({"benchmarked": benchmarked, "claimed": claimed, "local": local[0],
                      "verified": units}))
    assert done["status"] == "active"
    # Far below the claim, and near the real figure: never above what the hardware did
    # (the chain's observed time includes the whole computation), and not far below it
    # (inclusion latency is a few blocks).
    assert 1 <= units <= claimed * 3 // 4
    assert local[0] // 3 <= units <= local[0] + 1
