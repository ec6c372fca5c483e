"""Creating node homes: keys, config and genesis for one node or a whole devnet."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consensus.crypto import PrivateKey, encode_address
from consensus.genesis import load_genesis
from node.config import default_config, write_config
from node.errors import HomeError
from node.home import NodeHome
from node.keyfiles import save_keystore
from p2p.keys import load_or_create_peer_key, peer_id_from_seed

DEV_BALANCE = 10**15
DEV_SELF_BOND = 1_000_000
# Modest claims: devnet nodes share one small machine, and every challenge must finish
# well inside its commitment deadline there (docs/proof-of-compute.md, known limits).
DEV_COMPUTE_UNITS = 5
DEV_COLLATERAL = 10_000


@dataclass(frozen=True, slots=True)
class InitResult:
    home: NodeHome
    address: bytes
    consensus_pubkey: bytes
    peer_id: str


def init_home(
    root: Path,
    *,
    moniker: str,
    passphrase: str | None,
    p2p_port: int = 26656,
    rpc_port: int = 26657,
    bootstrap: tuple[str, ...] = (),
    genesis_file: Path | None = None,
    timeouts: dict[str, int] | None = None,
    rpc_host: str = "127.0.0.1",
    p2p_host: str = "127.0.0.1",
) -> InitResult:
    """Create a home with config.toml and keys; copy ``genesis_file`` if given."""
    home = NodeHome.at(root)
    if home.config_file.exists() or home.account_key_file.exists():
        raise HomeError(f"{home.root} already holds a node (config.toml or keys exist); use another --home")
    home.make_dirs()
    account = PrivateKey.generate()
    consensus = PrivateKey.generate()
    save_keystore(home.account_key_file, account, passphrase)
    save_keystore(home.consensus_key_file, consensus, passphrase)
    seed = load_or_create_peer_key(home.node_key_file)
    cfg = default_config(
        moniker=moniker,
        rpc_listen=f"{rpc_host}:{rpc_port}",
        p2p_listen=f"/ip4/{p2p_host}/tcp/{p2p_port}",
        bootstrap=bootstrap,
    )
    if timeouts:
        cfg = dataclasses.replace(cfg, consensus=dataclasses.replace(cfg.consensus, **timeouts))
    write_config(home.config_file, cfg)
    if genesis_file is not None:
        text = genesis_file.read_text()
        load_genesis(text)  # refuse a bad genesis before copying it
        shutil.copyfile(genesis_file, home.genesis_file)
    return InitResult(home, account.address(), consensus.public_key.raw, peer_id_from_seed(seed))


def make_genesis(
    chain_id: str,
    validators: list[InitResult],
    *,
    monikers: list[str],
    params: dict[str, int] | None = None,
    genesis_time_ms: int | None = None,
    compute_units: list[int] | None = None,
) -> dict[str, Any]:
    """A devnet genesis: every validator funded, bonded, with a verified compute NFT."""
    units = compute_units or [DEV_COMPUTE_UNITS] * len(validators)
    return {
        "chain_id": chain_id,
        "genesis_time_ms": genesis_time_ms if genesis_time_ms is not None else time.time_ns() // 1_000_000,
        "preset": "devnet",
        "params": params or {},
        "accounts": [{"address": encode_address(v.address), "balance": DEV_BALANCE} for v in validators],
        "validators": [
            {
                "address": encode_address(v.address),
                "consensus_pubkey": "0x" + v.consensus_pubkey.hex(),
                "self_bond": DEV_SELF_BOND,
                "commission_bps": 500,
                "moniker": moniker,
                "compute": [
                    {
                        "spec": {"device_kind": "cpu", "model": "devnet-cpu", "cores": os.cpu_count() or 1, "memory_mb": 1024},
                        "claimed_units": u,
                        "verified_units": u,
                        "collateral": DEV_COLLATERAL,
                    }
                ],
            }
            for v, moniker, u in zip(validators, monikers, units, strict=True)
        ],
    }


def write_genesis(home: NodeHome, doc: dict[str, Any]) -> None:
    text = json.dumps(doc, indent=2) + "\n"
    load_genesis(text)
    home.genesis_file.write_text(text)
