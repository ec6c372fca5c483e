"""``cstake bench`` and ``cstake tx register-compute --from-bench`` against a real RPC server.

The claim is the margin (80% by default) of what the prover measures at the
challenge size of the chain's parameters, read from the node's RPC or from a
genesis file: the in-memory chain here uses n = 512 and a genesis file n = 384,
so the printed n shows where the sizes came from.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consensus.crypto import encode_address
from node.cli.main import build_parser
from node.config import default_config, write_config
from node.home import NodeHome
from node.keyfiles import save_keystore
from node.rpc.server import RPCServer
from p2p.keys import load_or_create_peer_key
from tests.kit.chain import TestChain
from tests.kit.memview import MemoryNodeView, _now_ms

pytestmark = pytest.mark.multiprocess

RPC_N = 512
GENESIS_N = 384
MEASURED = re.compile(r"measured: (\d+) compute units \(([\d.]+) GFLOP/s at n=(\d+), (\d+) rows")
CLAIMING = re.compile(r"claiming: (\d+) compute units \((\d+)% of measured\)")


@dataclass
class LiveNode:
    view: MemoryNodeView
    url: str
    home: Path


def _serve(ready: threading.Event, box: dict, stop: threading.Event) -> None:
    async def main() -> None:
        chain = TestChain(genesis_time_ms=_now_ms() - 1_000, params={"poc_max_n": RPC_N})
        view = MemoryNodeView(chain)
        server = RPCServer(view, default_config("bench-test", rpc_listen="127.0.0.1:0").rpc)
        await server.start()
        view.start_blocks(0.05)
        box.update(view=view, url=server.url)
        ready.set()
        try:
            while not stop.is_set():
                await asyncio.sleep(0.05)
        finally:
            await view.stop_blocks()
            await server.stop()

    try:
        asyncio.run(main())
    except BaseException as exc:  # surface a start-up failure to the fixture
        box["error"] = exc
        ready.set()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    ready, stop, box = threading.Event(), threading.Event(), {}
    thread = threading.Thread(target=_serve, args=(ready, box, stop), daemon=True)
    thread.start()
    assert ready.wait(30)
    if "error" in box:
        raise box["error"]
    view: MemoryNodeView = box["view"]
    root = tmp_path_factory.mktemp("home")
    home = NodeHome.at(root)
    home.make_dirs()
    save_keystore(home.account_key_file, view.chain.account_keys[0], None)
    save_keystore(home.consensus_key_file, view.chain.consensus_keys[0], None)
    load_or_create_peer_key(home.node_key_file)
    write_config(home.config_file, default_config("bench-test", rpc_listen=box["url"].removeprefix("http://")))
    try:
        yield LiveNode(view, box["url"], root)
    finally:
        stop.set()
        thread.join(10)


def cli(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return int(args.func(args))


def _owned(live: LiveNode, capsys: pytest.CaptureFixture[str]) -> dict[int, int]:
    capsys.readouterr()
    owner = encode_address(live.view.chain.account_keys[0].address())
    assert cli("query", "nfts", "--owner", owner, "--home", str(live.home), "--json") == 0
    return {n["id"]: n["claimed_units"] for n in json.loads(capsys.readouterr().out)["nfts"]}


def _register(live: LiveNode, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, int]:
    capsys.readouterr()
    code = cli("tx", "register-compute", "--from-bench", "--bench-seconds", "1", "--collateral", "1000",
               "--home", str(live.home), "--wait", *extra)
    return capsys.readouterr().err, code


def test_from_bench_claims_the_margin_of_the_prover_at_the_rpc_chain_size(
        live: LiveNode, capsys: pytest.CaptureFixture[str]) -> None:
    before = _owned(live, capsys)
    err, code = _register(live, capsys)
    assert code == 0, err
    measured, claimed = MEASURED.search(err), CLAIMING.search(err)
    assert measured is not None and claimed is not None, err
    units, n = int(measured[1]), int(measured[3])
    assert n == RPC_N  # the chain's size, read from the node
    assert abs(float(measured[2]) - units) < 1.05  # units are whole GFLOP/s (printed to 0.1)
    assert (int(claimed[1]), int(claimed[2])) == (units * 80 // 100, 80)
    assert "kernel cpu, 1 BLAS thread, float32 (BLAS reports 1; numpy)" in err
    assert f"params from the node at {live.url}" in err
    new = {i: u for i, u in _owned(live, capsys).items() if i not in before}
    assert list(new.values()) == [units * 80 // 100]


def test_from_bench_reads_a_genesis_and_a_margin(live: LiveNode, capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    genesis = live.view.chain.genesis.to_json()
    genesis["params"]["poc_max_n"] = GENESIS_N
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(genesis))
    before = _owned(live, capsys)
    err, code = _register(live, capsys, "--genesis", str(path), "--margin-percent", "50")
    assert code == 0, err
    measured, claimed = MEASURED.search(err), CLAIMING.search(err)
    assert measured is not None and claimed is not None, err
    units = int(measured[1])
    assert int(measured[3]) == GENESIS_N and f"params from genesis {path}" in err
    assert (int(claimed[1]), int(claimed[2])) == (units * 50 // 100, 50)
    new = {i: u for i, u in _owned(live, capsys).items() if i not in before}
    assert list(new.values()) == [units * 50 // 100]


@pytest.mark.parametrize(("extra", "needle"), [
    (("--margin-percent", "0"), "--margin-percent must be in [1, 100]"),
    (("--threads", "0"), "kernel threads must be a positive integer"),
    (("--device", "tpu"), "kernel device must be"),
    (("--genesis", "/nonexistent/genesis.json"), "cannot read genesis"),
])
def test_invalid_from_bench_options(live: LiveNode, capsys: pytest.CaptureFixture[str],
                                    extra: tuple[str, ...], needle: str) -> None:
    before = _owned(live, capsys)
    err, code = _register(live, capsys, *extra)
    assert code == 1 and needle in err, err
    assert _owned(live, capsys) == before  # nothing registered


def test_bench_json_records_the_kernel_and_the_chain_size(live: LiveNode,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cli("bench", "--seconds", "1", "--rpc", live.url, "--threads", "2", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kernel"]["threads"] == 2 and data["kernel"]["blas_threads"] == 2
    assert data["prover"]["n"] == RPC_N and data["units"] == data["prover"]["units"]
    assert data["params_source"] == f"the node at {live.url}"
