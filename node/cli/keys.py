"""``cstake keys show``: the account address and public keys of a node home.

Only public parts are read: the keystores record their public key in clear,
so no passphrase is asked, and the peer id comes from the libp2p node key.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from consensus.crypto import compute_address, encode_address
from node.cli.common import EXIT_OK, as_command, emit, render_scalar, resolve_home
from node.errors import CommandError, InvalidKeyFile
from node.home import DEFAULT_HOME
from node.keyfiles import read_private_file


def read_keystore_pubkey(path: Path) -> bytes:
    """The public key recorded in a keystore (no passphrase needed)."""
    try:
        doc = json.loads(read_private_file(path).decode("utf-8"))
        text = doc["pubkey"]
        if not isinstance(text, str) or not text.startswith("0x"):
            raise ValueError("pubkey is not 0x-hex")
        pub = bytes.fromhex(text[2:])
    except (InvalidKeyFile, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read the keystore {path}: {exc}") from exc
    if len(pub) != 32:
        raise CommandError(f"keystore {path} holds a public key of {len(pub)} bytes, not 32")
    return pub


def keys_show(args: argparse.Namespace) -> int:
    """Print the account address, the account and consensus public keys and the peer id."""
    home = resolve_home(args)
    pub = read_keystore_pubkey(home.account_key_file)
    cons = read_keystore_pubkey(home.consensus_key_file) if home.consensus_key_file.exists() else None
    peer_id = None
    if home.node_key_file.exists():
        from p2p.errors import KeyFileError
        from p2p.keys import load_peer_key, peer_id_from_seed

        try:
            peer_id = peer_id_from_seed(load_peer_key(home.node_key_file))
        except KeyFileError as exc:
            raise CommandError(str(exc)) from exc
    data = {
        "address": encode_address(compute_address(pub)),
        "pubkey": "0x" + pub.hex(),
        "consensus_pubkey": None if cons is None else "0x" + cons.hex(),
        "peer_id": peer_id,
    }
    emit(args, "\n".join(f"{k:<17}{render_scalar(v)}" for k, v in data.items()), data)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register ``keys`` and its subcommands on the ``cstake`` subparsers."""
    k = sub.add_parser("keys", help="the keys of a node home").add_subparsers(dest="keys_cmd", required=True)
    p = k.add_parser("show", help="account address and public keys")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(keys_show))
