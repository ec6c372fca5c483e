"""config.toml as `init` writes it (the commented template), and overrides from CSTAKE_* and `start` flags."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from node.cli.lifecycle import load_start_settings
from node.config import (
    apply_overrides,
    default_config,
    get_env_overrides,
    parse_config,
    render_config,
    write_config,
)
from node.errors import CommandError, InvalidConfig


def test_written_config_keeps_the_templates_comments_and_loads_back() -> None:
    cfg = apply_overrides(default_config("alice"), {
        "p2p.bootstrap": "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWabc", "p2p.outbound_slots": "4",
        "consensus.timeout_commit_ms": "250", "rpc.cors_origins": "http://localhost:3000",
        "test.clock_offset_ms": "5",
    }, "test")
    text = render_config(cfg)
    assert "# Human name of this node (status, peer lists)." in text
    assert "# LevelDB, consensus WAL, signer state" in text
    assert 'moniker = "alice"' in text and "outbound_slots = 4" in text and "timeout_commit_ms = 250" in text
    assert "# timeout_vote_ms = 500" in text  # unset: stays an example
    assert "[test]" in text and "clock_offset_ms = 5" in text
    assert parse_config(tomllib.loads(text)) == cfg
    default = render_config(default_config("bob"))
    assert parse_config(tomllib.loads(default)) == default_config("bob") and "[test]" not in default
    assert "# outbound_slots = 8" in default


def test_env_overrides_are_typed_and_name_the_variable() -> None:
    env = {"CSTAKE_RPC_LISTEN": "127.0.0.1:39999", "CSTAKE_P2P_MAX_PEERS": "12",
           "CSTAKE_P2P_BOOTSTRAP": "/ip4/10.0.0.1/tcp/1/p2p/A, /ip4/10.0.0.2/tcp/1/p2p/B",
           "CSTAKE_MEMPOOL_RECHECK": "false", "CSTAKE_LOG_FORMAT": "json",
           "CSTAKE_PASSPHRASE": "not a config key", "HOME": "/x"}
    overrides = get_env_overrides(env)
    assert set(overrides) == {"rpc.listen", "p2p.max_peers", "p2p.bootstrap", "mempool.recheck", "log.format"}
    cfg = apply_overrides(default_config(), overrides, "environment")
    assert cfg.rpc.listen == "127.0.0.1:39999" and cfg.p2p.max_peers == 12 and cfg.mempool.recheck is False
    assert cfg.p2p.bootstrap == ("/ip4/10.0.0.1/tcp/1/p2p/A", "/ip4/10.0.0.2/tcp/1/p2p/B")
    assert cfg.log.format == "json"
    with pytest.raises(InvalidConfig, match="CSTAKE_RPC_LISTN: \\[rpc\\] has no key"):
        get_env_overrides({"CSTAKE_RPC_LISTN": "x"})
    with pytest.raises(InvalidConfig, match="environment: p2p.max_peers"):
        apply_overrides(default_config(), {"p2p.max_peers": "many"}, "environment")
    with pytest.raises(InvalidConfig, match="environment: rpc.max_batch"):
        apply_overrides(default_config(), {"rpc.max_batch": "0"}, "environment")
    with pytest.raises(InvalidConfig, match="log.format"):
        apply_overrides(default_config(), {"log.format": "xml"}, "environment")


def test_start_settings_apply_file_then_env_then_flags(tmp_path: Path) -> None:
    write_config(tmp_path / "config.toml", default_config("file-name"))
    env = {"CSTAKE_NODE_MONIKER": "env-name", "CSTAKE_LOG_LEVEL": "debug"}
    got = load_start_settings(str(tmp_path), env=env, flags={"moniker": "flag-name", "log_level": None})
    assert got.config.node.moniker == "flag-name" and got.config.log.level == "debug"
    assert load_start_settings(str(tmp_path), env={}).config.node.moniker == "file-name"
    with pytest.raises(CommandError, match="config: flags: rpc.listen"):
        load_start_settings(str(tmp_path), env={}, flags={"rpc_listen": "nonsense"})


def test_new_rpc_and_p2p_keys_are_validated() -> None:
    for dotted, bad in (("rpc.cors_origins", "ftp://x"), ("rpc.metrics_listen", "nowhere"),
                        ("rpc.metrics_listen", "127.0.0.1:26657"), ("p2p.outbound_slots", "32")):
        with pytest.raises(InvalidConfig, match=dotted.replace(".", "\\.")):
            apply_overrides(default_config(), {dotted: bad}, "test")


def test_compute_section_names_the_provers_kernel() -> None:
    cfg = apply_overrides(default_config(), {"compute.prover_device": "gpu:1", "compute.prover_threads": "4"}, "t")
    assert (cfg.compute.prover_device, cfg.compute.prover_threads) == ("gpu:1", 4)
    assert parse_config(tomllib.loads(render_config(cfg))) == cfg
    for dotted, bad in (("compute.prover_device", "tpu"), ("compute.prover_threads", "0")):
        with pytest.raises(InvalidConfig, match=dotted.replace(".", "\\.")):
            apply_overrides(default_config(), {dotted: bad}, "test")
