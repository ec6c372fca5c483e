"""The job marketplace on a real 4-validator devnet, driven through `cstake` and RPC only.

One devnet, node1 in ``job-cheat`` mode. A user submits four matrix jobs with
`cstake tx submit-job`; each NFT can hold one job at a time, so every
provider gets one, the cheater included. Honest providers execute, commit,
open, and are paid after the challenge window, with the escrow remainder
refunded. The cheater's wrong result is challenged by a watching validator
with a fraud proof: it is slashed (job_fault, the challenger paid as
whistleblower), its NFT turns faulty, and the job is re-assigned and
completed by an honest provider.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.kit.devnet import Devnet, MakeDevnet, cstake, wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

# Submissions land within a few blocks, well inside one job's life (so every NFT, the
# cheater's included, takes one of the four jobs: one unsettled slot per NFT).
PARAMS = {"job_challenge_window_blocks": 6, "job_sample_count": 32}
BID = 3


def _address(devnet: Devnet, i: int) -> str:
    """The node's address as ``cstake keys show`` prints it."""
    home = str(devnet.node(i).home)
    return str(json.loads(cstake("keys", "show", "--home", home, "--json").stdout)["address"])


def _jobs(devnet: Devnet, i: int, status: str | None = None) -> list[dict[str, Any]]:
    args = ["query", "jobs", "--rpc", devnet.node(i).url, "--json"] + (["--status", status] if status else [])
    return list(json.loads(cstake(*args).stdout)["jobs"])


def test_matrix_jobs_paid_refunded_and_cheater_slashed(make_devnet: MakeDevnet) -> None:
    started = time.monotonic()
    devnet = make_devnet(params=PARAMS, byzantine={"node1": "job-cheat"})
    cheater = _address(devnet, 1)
    user = 3
    devnet.wait_height(0, 2, timeout=60)
    job_ids = []
    for k in range(4):
        out = cstake(
            "tx", "submit-job", "--kind", "matmul", "--rows", "16", "--n", "64",
            "--input-seed", f"{k + 1:02x}" * 32, "--bid-per-unit", str(BID), "--deadline-blocks", "15",
            "--home", str(devnet.node(user).home), "--json",
        )
        doc = json.loads(out.stdout)
        assert doc["code"] == 0, doc
        job_ids.append(doc["job_id"])

    def all_settled() -> list[dict[str, Any]]:
        jobs = [devnet.rpc(0, "job", {"id": j}) for j in job_ids]
        return jobs if all(j["status"] == "settled" for j in jobs) else []

    jobs = wait_until(all_settled, 120, "all four jobs to settle", interval=1.0)
    # Every node agrees on every job.
    for j in job_ids:
        assert devnet.rpc(2, "job", {"id": j}) == devnet.rpc(0, "job", {"id": j})
    listed = {j["id"] for j in _jobs(devnet, 2, "settled")}
    assert set(job_ids) <= listed
    shown = json.loads(cstake("query", "job", job_ids[0], "--rpc", devnet.node(1).url, "--json").stdout)
    assert shown == devnet.rpc(0, "job", {"id": job_ids[0]})
    # 16 rows <= 32 samples: every row of the product was opened, the whole result is on chain.
    assert len(shown["slots"][0]["openings"]) == 16

    cheated = [j for j in jobs if j["excluded"]]
    honest = [j for j in jobs if not j["excluded"]]
    assert len(cheated) == 1, [j["excluded"] for j in jobs]
    for job in jobs:
        (slot,) = job["slots"]
        # Paid by the asking price, never the bid; the rest refunded; nothing lost.
        payment = slot["price"] * job["work_units"]
        assert payment > 0 and slot["price"] < BID
        assert job["paid"] + job["verifier_paid"] + job["burned"] == payment
        assert job["refunded"] == job["escrow"] - payment > 0
        assert job["locked"] == 0
        assert slot["status"] == "done" and slot["provider"] != cheater
        assert job["settled_height"] >= slot["window_end"]  # paid only after the challenge window
        assert job["result_root"] == slot["result_root"]
    assert len(honest) == 3

    # The cheater: slashed once for a job fault, the challenger (a validator) paid.
    records = devnet.rpc(0, "slashing_records", {"validator": cheater})
    faults = [r for r in records if r["fault"] == "job_fault"]
    assert len(faults) == 1, records
    validators = {_address(devnet, i) for i in range(4)}
    assert faults[0]["whistleblower"] in validators - {cheater}
    assert faults[0]["whistleblower_reward"] > 0 and faults[0]["amount"] > faults[0]["whistleblower_reward"]
    nft = devnet.rpc(0, "nft", {"id": cheated[0]["excluded"][0]})
    assert nft["status"] == "faulty" and nft["verified_units"] == 0 and nft["collateral"] == 0
    assert time.monotonic() - started < 150


@pytest.mark.parametrize(
    ("kind", "size", "dispute"),
    [("iterate", ["--steps", "2000", "--width", "8"], "a bisection"),
     ("matmul", ["--rows", "64", "--n", "64"], "a Merkle descent")],
    ids=["iterate-bisection", "matmul-descent"],
)
def test_cheater_escaping_the_samples_loses_the_dispute(
    make_devnet: MakeDevnet, kind: str, size: list[str], dispute: str
) -> None:
    """Four jobs, one sample per result, so the cheater's one wrong step or row (almost surely)
    escapes the samples; a watcher that re-executed disputes it on chain (bisection over the
    states, or a Merkle descent to the row), the chain checks one step or one row, and the
    cheater is slashed. (Should the sample hit it, a fraud proof slashes it just the same.)"""
    devnet = make_devnet(params={**PARAMS, "job_sample_count": 1}, byzantine={"node1": "job-cheat"})
    cheater = _address(devnet, 1)
    devnet.wait_height(0, 2, timeout=60)
    job_ids = []
    for k in range(4):
        doc = json.loads(cstake(
            "tx", "submit-job", "--kind", kind, *size,
            "--input-seed", f"{k + 1:02x}" * 32, "--bid-per-unit", str(BID), "--deadline-blocks", "15",
            "--home", str(devnet.node(3).home), "--json",
        ).stdout)
        assert doc["code"] == 0, doc
        job_ids.append(doc["job_id"])

    def all_settled() -> list[dict[str, Any]]:
        jobs = [devnet.rpc(0, "job", {"id": j}) for j in job_ids]
        return jobs if all(j["status"] == "settled" for j in jobs) else []

    jobs = wait_until(all_settled, 150, f"all four {kind} jobs to settle", interval=1.0)
    cheated = [j for j in jobs if j["excluded"]]
    assert len(cheated) == 1
    assert len({j["result_root"] for j in jobs}) == 4  # four different seeds
    assert all(j["slots"][0]["provider"] != cheater for j in jobs)
    faults = [r for r in devnet.rpc(2, "slashing_records", {"validator": cheater}) if r["fault"] == "job_fault"]
    assert len(faults) == 1 and faults[0]["whistleblower_reward"] > 0
    text = {i: devnet.log(i, "stdout.log") for i in range(4)}
    disputed = any(f"starting {dispute}" in text[i] for i in (0, 2, 3))
    proven = any("sending a fraud proof" in text[i] for i in (0, 2, 3))
    assert disputed or proven
    if disputed:
        assert "job transaction reveal sent" in text[1]
