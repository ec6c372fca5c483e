"""What every ``cstake`` command shares: the home and RPC URL it acts on, keys, output, exit codes.

Rules every command follows:

- ``--home`` names a node home; its config.toml (when present) places the
  files and gives the default RPC URL (``resolve_home``, ``resolve_rpc_url``).
- Encrypted keystores take the passphrase from ``CSTAKE_PASSPHRASE``, else ask
  on the terminal; without a terminal the command fails rather than hang.
- Output is human-readable by default and JSON with ``--json`` (``emit``).
- A handler returns an exit code (None means success) and raises
  ``node.errors.NodeError`` (``CommandError`` for bad arguments) or
  ``consensus.errors.ConsensusError`` on failure; ``as_command`` turns those
  into one line on stderr and exit code 1.

This module imports no other command module, so each of them can use it
without an import cycle.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consensus.crypto import PrivateKey, decode_address
from consensus.errors import ConsensusError, InvalidAddress, KeystoreError
from consensus.keystore import is_encrypted_keystore
from node.config import load_config
from node.errors import CommandError, InvalidKeyFile, NodeError
from node.home import CONFIG_FILE, NodeHome
from node.keyfiles import load_keystore, read_private_file

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
"""argparse's own exit code for a malformed command line."""
EXIT_INTERRUPTED = 130

PASSPHRASE_ENV = "CSTAKE_PASSPHRASE"
DEFAULT_RPC_URL = "http://127.0.0.1:26657"

Handler = Callable[[argparse.Namespace], int]


# --- errors to exit codes ------------------------------------------------------------------


def as_command(fn: Callable[[argparse.Namespace], int | None]) -> Handler:
    """Wrap a handler: a node or protocol error becomes one line on stderr and exit code 1."""

    def handler(args: argparse.Namespace) -> int:
        try:
            result = fn(args)
        except (NodeError, ConsensusError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        return EXIT_OK if result is None else int(result)

    return handler


# --- the home, its node and its keys --------------------------------------------------------


def resolve_home(args: argparse.Namespace) -> NodeHome:
    """The home of ``--home``, placed as its config.toml says (defaults when it has none)."""
    root = Path(args.home).expanduser()
    cfg_file = root / CONFIG_FILE
    if cfg_file.exists():
        return load_config(cfg_file).home(root)
    return NodeHome.at(root)


def resolve_rpc_url(args: argparse.Namespace) -> str:
    """``--rpc`` if given, else the home's own ``rpc.listen``, else the default port."""
    if getattr(args, "rpc", None):
        return str(args.rpc)
    cfg_file = Path(args.home).expanduser() / CONFIG_FILE
    if cfg_file.exists():
        return load_config(cfg_file).rpc_url
    return DEFAULT_RPC_URL


def read_passphrase(
    *,
    confirm: bool = False,
    no_terminal: str = f"the keystore is encrypted: set {PASSPHRASE_ENV} or run from a terminal",
) -> str:
    """The keystore passphrase: ``CSTAKE_PASSPHRASE``, else asked on the terminal.

    Without a terminal, raise CommandError with the ``no_terminal`` message;
    with ``confirm``, ask twice and refuse a mismatch (new keystores).
    """
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        raise CommandError(no_terminal)
    first = getpass.getpass("keystore passphrase: ")
    if confirm and getpass.getpass("repeat passphrase: ") != first:
        raise CommandError("passphrases do not match")
    return first


def load_account_key(home: NodeHome, name: str = "account") -> PrivateKey:
    """Load the signing key ``name`` of the home's keyring (``account``: the home's own key).

    The passphrase is asked only if the keystore is encrypted.
    """
    from node.keyring import Keyring

    path = Keyring(home.keys_dir).path(name)
    if name != "account" and not path.exists():
        raise CommandError(f"no key named {name!r} in {path.parent} (see `cstake keys list`)")
    try:
        text = read_private_file(path).decode("utf-8")
        passphrase = read_passphrase() if is_encrypted_keystore(text) else None
        return load_keystore(path, passphrase)
    except (InvalidKeyFile, KeystoreError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot load the account key {path}: {exc}") from exc


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


def parse_address(text: str, what: str) -> bytes:
    """Decode an account address given on the command line; ``what`` names it in the error."""
    try:
        return decode_address(text)
    except InvalidAddress as exc:
        raise CommandError(f"{what} {text!r} is not a valid address: {exc}") from exc


# --- output --------------------------------------------------------------------------------


def emit(args: argparse.Namespace, human: str, data: Any) -> None:
    """Print ``data`` as JSON with ``--json``, else the ``human`` text."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(human)


def render(value: Any, indent: int = 0) -> str:
    """A readable, YAML-like rendering of a JSON value."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}"
        lines = []
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                lines.append(f"{pad}{k}:")
                lines.append(render(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {render_scalar(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return pad + "[]"
        lines = []
        for item in value:
            if isinstance(item, dict | list) and item:
                body = render(item, indent + 1).lstrip()
                lines.append(f"{pad}- {body}")
            else:
                lines.append(f"{pad}- {render_scalar(item)}")
        return "\n".join(lines)
    return pad + render_scalar(value)


def format_amount(units: int) -> str:
    """Base units with thousands separators: ``1,250,000``."""
    return f"{units:,}"


def format_time_ms(ms: int | None) -> str:
    """Unix milliseconds as ISO-8601 UTC (``2026-12-05T13:58:01.123Z``); ``-`` for none."""
    if ms is None:
        return "-"
    import datetime

    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def render_scalar(v: Any) -> str:
    """One JSON value as a word: ``-`` for null, yes/no for booleans."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict | list):
        return "{}" if isinstance(v, dict) else "[]"
    return str(v)
