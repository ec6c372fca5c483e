"""Operator configuration: the template, round trips, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import (
    NodeConfig,
    default_config,
    load_config,
    parse_config,
    render_config,
    test_config,
    write_config,
)
from node.errors import InvalidConfig

TEMPLATE = Path(__file__).resolve().parents[2] / "node" / "config_template.toml"


def test_template_loads_and_matches_the_defaults() -> None:
    cfg = load_config(TEMPLATE)
    assert cfg == NodeConfig()
    assert cfg.rpc.listen == "127.0.0.1:26657"
    assert cfg.rpc.max_body_bytes == 1 << 20 and cfg.rpc.max_batch == 100
    assert cfg.mempool.max_txs == 20_000 and cfg.mempool.max_bytes == 64 << 20
    assert cfg.rpc_url == "http://127.0.0.1:26657"
    assert cfg.p2p_host_port == ("127.0.0.1", 26656)


@pytest.mark.parametrize(
    "cfg",
    [
        default_config("alice"),
        default_config("bob", rpc_listen="127.0.0.1:36657", p2p_listen="/ip4/127.0.0.1/tcp/36656",
                       bootstrap=("/ip4/127.0.0.1/tcp/26656/p2p/12D3KooWabc",)),
        test_config("t0", rpc_port=40001, p2p_port=40000),
    ],
)
def test_render_config_round_trips(tmp_path: Path, cfg: NodeConfig) -> None:
    path = tmp_path / "config.toml"
    write_config(path, cfg)
    assert load_config(path) == cfg
    assert "[rpc]" in render_config(cfg)


def test_test_config_has_tiny_timeouts() -> None:
    cfg = test_config()
    assert cfg.consensus.timeout_propose_ms is not None and cfg.consensus.timeout_propose_ms < 1000
    assert default_config().consensus.timeout_commit_ms is None


def test_home_paths_follow_the_config(tmp_path: Path) -> None:
    cfg = parse_config({"node": {"data_dir": "state", "keys_dir": "secrets"}})
    home = cfg.home(tmp_path)
    assert home.db_dir == tmp_path.resolve() / "state" / "db"
    assert home.account_key_file == tmp_path.resolve() / "secrets" / "account.json"
    assert home.config_file == tmp_path.resolve() / "config.toml"
    assert cfg.log_file(tmp_path) == tmp_path.resolve() / "logs" / "node.log"
    p2p = cfg.p2p_config("cstake-dev", tmp_path)
    assert p2p.key_path.endswith("secrets/node_key") and p2p.listen_port == 26656
    p2p.validate()


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", "logs/node.log"),
        ("node.log", "node.log"),
        ("custom/debug.log", "custom/debug.log"),
    ],
)
def test_log_file_resolves_against_the_home_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, expected: str
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = parse_config({"log": {"file": setting}})
    assert cfg.log_file(home) == home.resolve() / expected
    assert cfg.log_file("../home") == home.resolve() / expected


def test_log_file_keeps_an_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "var" / "node.log"
    cfg = parse_config({"log": {"file": str(target)}})
    assert cfg.log_file(tmp_path / "home") == target


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"rpc": {"max_batch": 0}}, "rpc.max_batch"),
        ({"rpc": {"max_batch": "100"}}, "rpc.max_batch"),
        ({"rpc": {"max_batch": True}}, "rpc.max_batch"),
        ({"rpc": {"listen": "localhost"}}, "rpc.listen"),
        ({"rpc": {"listen": "127.0.0.1:70000"}}, "rpc.listen"),
        ({"rpc": {"listen": "example.com:80"}}, "rpc.listen"),
        ({"rpc": {"request_timeout_s": -1}}, "rpc.request_timeout_s"),
        ({"rpc": {"max_body_bytes": 10}}, "rpc.max_body_bytes"),
        ({"p2p": {"listen": "/ip4/1.2.3/tcp/1"}}, "p2p.listen"),
        ({"p2p": {"listen": "127.0.0.1:26656"}}, "p2p.listen"),
        ({"p2p": {"bootstrap": "/ip4/1.2.3.4/tcp/1/p2p/x"}}, "p2p.bootstrap"),
        ({"p2p": {"bootstrap": ["/ip4/1.2.3.4/tcp/1"]}}, "p2p.bootstrap[0]"),
        ({"p2p": {"max_peers": 0}}, "p2p.max_peers"),
        ({"mempool": {"max_txs": -5}}, "mempool.max_txs"),
        ({"mempool": {"recheck": "yes"}}, "mempool.recheck"),
        ({"mempool": {"replace_bump_percent": 5000}}, "mempool.replace_bump_percent"),
        ({"consensus": {"timeout_vote_ms": 0}}, "consensus.timeout_vote_ms"),
        ({"log": {"level": "loud"}}, "log.level"),
        ({"node": {"moniker": ""}}, "node.moniker"),
        ({"node": {"data_dir": ""}}, "node.data_dir"),
        ({"rpc": {"max_batc": 5}}, "rpc.max_batc"),
        ({"rcp": {}}, "rcp"),
        ({"rpc": 5}, "[rpc]"),
    ],
)
def test_invalid_values_name_the_key(doc: dict, key: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        parse_config(doc)
    assert str(info.value).startswith(key), str(info.value)


def test_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[rpc\nlisten = 1")
    with pytest.raises(InvalidConfig, match="not valid TOML"):
        load_config(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[mempool]\nmax_txs = "many"\n')
    with pytest.raises(InvalidConfig, match=r"wrong\.toml: mempool\.max_txs: must be an integer"):
        load_config(wrong)
