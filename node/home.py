"""A node home: the one place that names every file and folder a node keeps on disk.

Layout (paths relative to the home; ``data/``, ``keys/`` and ``logs/`` may be
moved by ``[node]`` settings in config.toml)::

    config.toml              operator configuration (node/config.py)
    genesis.json             the chain's genesis document
    keys/account.json        account keystore: the operator's account key (signs txs)
    keys/consensus.json      consensus keystore: signs votes and proposals
    keys/node_key            libp2p peer key: a raw 32-byte Ed25519 seed (p2p/keys.py)
    data/db/                 LevelDB (storage.NodeStore)
    data/cs.wal              consensus write-ahead log
    data/signer_state        last signed height/round/step (node/signer.py)
    logs/node.log            the node's log file (when [log] file is unset)

Key files are mode 0600 (node/keyfiles.py and p2p/keys.py enforce it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The home every command uses without ``--home``: ``CSTAKE_HOME`` (the container image sets it), else ~/.cstake.
DEFAULT_HOME = os.environ.get("CSTAKE_HOME") or "~/.cstake"
CONFIG_FILE = "config.toml"


@dataclass(frozen=True, slots=True)
class NodeHome:
    """Every path of one node home."""

    root: Path
    """The home directory itself (absolute)."""
    genesis_file: Path
    """The genesis document."""
    data_dir: Path
    """Node data: database, WAL, signer state."""
    keys_dir: Path
    """Key files (0600)."""
    logs_dir: Path
    """Log files."""

    @classmethod
    def at(
        cls,
        root: str | os.PathLike[str],
        *,
        genesis_file: str = "genesis.json",
        data_dir: str = "data",
        keys_dir: str = "keys",
        logs_dir: str = "logs",
    ) -> NodeHome:
        """Return the home at ``root`` (``~`` expanded); relative parts resolve against it."""
        base = Path(root).expanduser().resolve()
        return cls(
            root=base,
            genesis_file=base / Path(genesis_file).expanduser(),
            data_dir=base / Path(data_dir).expanduser(),
            keys_dir=base / Path(keys_dir).expanduser(),
            logs_dir=base / Path(logs_dir).expanduser(),
        )

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def account_key_file(self) -> Path:
        """Account keystore (signs transactions; the validator's operator address)."""
        return self.keys_dir / "account.json"

    @property
    def consensus_key_file(self) -> Path:
        """Consensus keystore (signs votes and proposals)."""
        return self.keys_dir / "consensus.json"

    @property
    def node_key_file(self) -> Path:
        """libp2p peer key: a raw 32-byte seed (p2p.keys.load_or_create_peer_key)."""
        return self.keys_dir / "node_key"

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "db"

    @property
    def wal_file(self) -> Path:
        return self.data_dir / "cs.wal"

    @property
    def signer_state_file(self) -> Path:
        return self.data_dir / "signer_state"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "node.log"

    def make_dirs(self) -> None:
        """Create the home's folders (keys/ mode 0700)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
