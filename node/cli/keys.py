"""``cstake keys``: the keys of a node home and its keyring (node/keyring.py).

- ``keys show`` prints the home's account address, its public keys and the peer id
  (only public parts are read: no passphrase is asked); ``keys show NAME`` one
  keyring entry.
- ``keys add NAME`` makes a key from fresh BIP-39 words and prints them once;
  ``--recover`` reads the words from stdin instead (never from the command line,
  which shell history and ``ps`` would keep).
- ``keys list``, ``keys export NAME`` (the keystore JSON, encrypted if it is),
  ``keys import NAME FILE``.

Keys are encrypted with a passphrase (``CSTAKE_PASSPHRASE`` or the terminal)
unless ``--unencrypted`` is given (development only), as ``cstake init`` does.
Every ``tx`` command signs with ``--from NAME`` (default ``account``: the home's key).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from consensus.crypto import compute_address, encode_address
from node.cli.common import (
    EXIT_OK,
    as_command,
    emit,
    read_keystore_pubkey,
    read_passphrase,
    render_scalar,
    resolve_home,
)
from node.errors import CommandError, InvalidKeyFile
from node.home import DEFAULT_HOME
from node.keyring import KeyInfo, Keyring, derive_key, new_mnemonic


def _keyring(args: argparse.Namespace) -> Keyring:
    return Keyring(resolve_home(args).keys_dir)


def _info_json(info: KeyInfo) -> dict[str, Any]:
    return {"name": info.name, "address": info.address, "pubkey": info.pubkey, "encrypted": info.encrypted}


def _new_passphrase(args: argparse.Namespace) -> str | None:
    if args.unencrypted:
        return None
    return read_passphrase(confirm=True, no_terminal="set CSTAKE_PASSPHRASE, run from a terminal, "
                                                     "or pass --unencrypted (development only)")


def keys_add(args: argparse.Namespace) -> int:
    """Add a key from new BIP-39 words (printed once) or, with --recover, from words on stdin."""
    ring = _keyring(args)
    ring.check_name(args.name)
    if args.recover:
        words = sys.stdin.readline()
        if not words.strip():
            raise CommandError("--recover reads the mnemonic from stdin; nothing was given")
    else:
        words = new_mnemonic(args.words)
    key = derive_key(words, index=args.index)
    info = ring.add(args.name, key, _new_passphrase(args))
    data = _info_json(info)
    human = f"added key {info.name}\n  address: {info.address}"
    if not args.recover:
        data["mnemonic"] = words
        human += ("\n\nmnemonic (write it down and keep it offline: it is the only way to recover this key):"
                  f"\n  {words}")
    emit(args, human, data)
    return EXIT_OK


def keys_list(args: argparse.Namespace) -> int:
    infos = _keyring(args).list()
    rows = [f"{i.name:<16} {i.address}  {'encrypted' if i.encrypted else 'UNENCRYPTED'}" for i in infos]
    emit(args, "\n".join(rows) if rows else "no keys (cstake init, or cstake keys add NAME)",
         [_info_json(i) for i in infos])
    return EXIT_OK


def keys_export(args: argparse.Namespace) -> int:
    """Print (or write, 0600) the keystore JSON of a key, encrypted if it is stored encrypted."""
    from node.keyfiles import write_private_file

    text = _keyring(args).export_keystore(args.name)
    if args.out:
        try:
            write_private_file(Path(args.out), text.encode("utf-8"))
        except InvalidKeyFile as exc:
            raise CommandError(str(exc)) from exc
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return EXIT_OK


def keys_import(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror}") from exc
    info = _keyring(args).import_keystore(args.name, text)
    emit(args, f"imported key {info.name}\n  address: {info.address}", _info_json(info))
    return EXIT_OK


def keys_show(args: argparse.Namespace) -> int:
    """Print the account address, the account and consensus public keys and the peer id."""
    if args.name:
        info = _keyring(args).info(args.name)
        emit(args, f"name     {info.name}\naddress  {info.address}\npubkey   {info.pubkey}", _info_json(info))
        return EXIT_OK
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
    p = k.add_parser("show", help="the home's account address, public keys and peer id (or one named key)")
    p.add_argument("name", nargs="?", help="a keyring key (default: the home's own keys)")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(keys_show))
    p = k.add_parser("add", help="a new key from BIP-39 words (or --recover from words on stdin)")
    p.add_argument("name")
    p.add_argument("--recover", action="store_true", help="read the mnemonic from stdin")
    p.add_argument("--words", type=int, choices=(12, 24), default=24, help="length of a new mnemonic")
    p.add_argument("--index", type=int, default=0, help="account index in the derivation path m/44'/9777'/0'/0'/INDEX'")
    p.add_argument("--unencrypted", action="store_true", help="store the key unencrypted (development only)")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(keys_add))
    p = k.add_parser("list", help="every key of the home: its own account and the keyring")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(keys_list))
    p = k.add_parser("export", help="print a key's keystore JSON (encrypted if stored encrypted)")
    p.add_argument("name")
    p.add_argument("--out", help="write it to this file (mode 0600) instead")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.set_defaults(func=as_command(keys_export))
    p = k.add_parser("import", help="add a keystore file (from keys export) under a name")
    p.add_argument("name")
    p.add_argument("file")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(keys_import))
