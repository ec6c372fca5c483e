"""A keyring per node home: named account keys, recoverable from BIP-39 mnemonics.

Each key is a keystore file ``<home>/keys/keyring/<name>.json`` (the same
format, 0600 mode and optional passphrase encryption as the home's own
``account.json``). A mnemonic (BIP-39, English, 12 or 24 words, checked by the
``mnemonic`` library) becomes a 64-byte seed (BIP-39 PBKDF2, with an optional
BIP-39 passphrase), and the account key is derived from it by SLIP-0010 for
Ed25519 along ``m/44'/9777'/0'/0'/<index>'`` (Ed25519 allows only hardened
steps). The same words give the same address with any tool that follows
BIP-39 and SLIP-0010 on that path.

The name ``account`` is reserved: it is the home's own key (``keys/account.json``),
so ``--from account`` (the default) signs as the node's operator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from pathlib import Path

from mnemonic import Mnemonic

from consensus.crypto import PrivateKey, compute_address, encode_address
from consensus.errors import KeystoreError
from consensus.keystore import decode_keystore, is_encrypted_keystore
from node.errors import CommandError, InvalidKeyFile
from node.keyfiles import read_private_file, save_keystore, write_private_file

#: SLIP-0044 style coin type of this chain's derivation path (unregistered; documented here).
COIN_TYPE = 9777
HARDENED = 0x8000_0000
DEFAULT_ACCOUNT_NAME = "account"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_WORDS = Mnemonic("english")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """The public side of a keyring entry."""

    name: str
    address: str
    pubkey: str
    encrypted: bool


def get_derivation_path(index: int = 0) -> tuple[int, ...]:
    """``m/44'/9777'/0'/0'/index'`` as hardened indices."""
    if not 0 <= index < HARDENED:
        raise CommandError(f"account index {index} is out of range (0..{HARDENED - 1})")
    return tuple(i | HARDENED for i in (44, COIN_TYPE, 0, 0, index))


def compute_slip10_ed25519(seed: bytes, path: tuple[int, ...]) -> bytes:
    """The SLIP-0010 Ed25519 private key (32 bytes) at ``path`` (every step hardened) from ``seed``."""
    digest = hmac.new(b"ed25519 seed", seed, hashlib.sha512).digest()
    key, chain = digest[:32], digest[32:]
    for index in path:
        if index < HARDENED:
            raise CommandError("Ed25519 (SLIP-0010) derivation allows only hardened steps")
        data = b"\x00" + key + index.to_bytes(4, "big")
        digest = hmac.new(chain, data, hashlib.sha512).digest()
        key, chain = digest[:32], digest[32:]
    return key


def new_mnemonic(words: int = 24) -> str:
    """Fresh BIP-39 words from the OS's randomness (12 or 24 words)."""
    if words not in (12, 24):
        raise CommandError("a mnemonic has 12 or 24 words")
    return str(_WORDS.generate(strength=128 if words == 12 else 256))


def derive_key(mnemonic: str, *, bip39_passphrase: str = "", index: int = 0) -> PrivateKey:
    """The account key of ``mnemonic`` (checked: word list and checksum) at account ``index``."""
    words = " ".join(mnemonic.split())
    if len(words.split()) not in (12, 15, 18, 21, 24) or not _WORDS.check(words):
        raise CommandError("the mnemonic is not valid BIP-39 English (wrong word, count or checksum)")
    seed = Mnemonic.to_seed(words, passphrase=bip39_passphrase)
    return PrivateKey.from_seed(compute_slip10_ed25519(seed, get_derivation_path(index)))


class Keyring:
    """The named keys of one home (``keys/keyring/``)."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir
        self.dir = keys_dir / "keyring"

    def path(self, name: str) -> Path:
        """The keystore file of ``name`` (``account``: the home's own key)."""
        self.check_name(name)
        if name == DEFAULT_ACCOUNT_NAME:
            return self.keys_dir / "account.json"
        return self.dir / f"{name}.json"

    @staticmethod
    def check_name(name: str) -> None:
        if not _NAME_RE.match(name):
            raise CommandError(f"key name {name!r} must be 1-32 of a-z, 0-9, '_' and '-', starting alphanumeric")

    def add(self, name: str, key: PrivateKey, passphrase: str | None) -> KeyInfo:
        """Store ``key`` under a new ``name``; refuse a name or an address already held."""
        if name == DEFAULT_ACCOUNT_NAME:
            raise CommandError(f"'{DEFAULT_ACCOUNT_NAME}' is the home's own key; choose another name")
        path = self.path(name)
        if path.exists():
            raise CommandError(f"a key named {name!r} exists already ({path})")
        address = encode_address(key.address())
        for info in self.list():
            if info.address == address:
                raise CommandError(f"this key is in the keyring already as {info.name!r}")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            save_keystore(path, key, passphrase)
        except InvalidKeyFile as exc:
            raise CommandError(str(exc)) from exc
        return self.info(name)

    def import_keystore(self, name: str, text: str) -> KeyInfo:
        """Store an exported keystore (its encryption kept as it is) under ``name``."""
        if name == DEFAULT_ACCOUNT_NAME:
            raise CommandError(f"'{DEFAULT_ACCOUNT_NAME}' is the home's own key; choose another name")
        pub = _pubkey_of(text, "the imported keystore")
        try:
            if not is_encrypted_keystore(text) and decode_keystore(text, None).public_key.raw != pub:
                raise CommandError("the imported keystore's seed does not match its public key")
        except KeystoreError as exc:
            raise CommandError(f"the imported keystore is invalid: {exc}") from exc
        address = encode_address(compute_address(pub))
        for info in self.list():
            if info.address == address:
                raise CommandError(f"this key is in the keyring already as {info.name!r}")
        path = self.path(name)
        if path.exists():
            raise CommandError(f"a key named {name!r} exists already ({path})")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_file(path, text.encode("utf-8"))
        return self.info(name)

    def export_keystore(self, name: str) -> str:
        """The keystore text of ``name`` (encrypted if it was stored encrypted)."""
        return self._read(name)

    def info(self, name: str) -> KeyInfo:
        text = self._read(name)
        pub = _pubkey_of(text, str(self.path(name)))
        try:
            encrypted = is_encrypted_keystore(text)
        except KeystoreError as exc:
            raise CommandError(f"key {name!r} is not a keystore: {exc}") from exc
        return KeyInfo(name, encode_address(compute_address(pub)), "0x" + pub.hex(), encrypted)

    def list(self) -> list[KeyInfo]:
        """Every key: the home's own ``account`` first (when present), then by name."""
        out = []
        if self.path(DEFAULT_ACCOUNT_NAME).exists():
            out.append(self.info(DEFAULT_ACCOUNT_NAME))
        if self.dir.is_dir():
            out += [self.info(p.stem) for p in sorted(self.dir.glob("*.json")) if _NAME_RE.match(p.stem)]
        return out

    def load(self, name: str, passphrase: str | None) -> PrivateKey:
        """The private key of ``name`` (``passphrase`` for an encrypted keystore)."""
        try:
            return decode_keystore(self._read(name), passphrase)
        except KeystoreError as exc:
            raise CommandError(f"cannot load key {name!r}: {exc}") from exc

    def is_encrypted(self, name: str) -> bool:
        return self.info(name).encrypted

    def _read(self, name: str) -> str:
        path = self.path(name)
        if not path.exists():
            raise CommandError(f"no key named {name!r} in {self.dir} (see `cstake keys list`)")
        try:
            return read_private_file(path).decode("utf-8")
        except (InvalidKeyFile, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read key {name!r}: {exc}") from exc


def _pubkey_of(text: str, what: str) -> bytes:
    try:
        doc = json.loads(text)
        value = doc["pubkey"]
        if not isinstance(value, str) or not value.startswith("0x"):
            raise ValueError("pubkey is not 0x-hex")
        pub = bytes.fromhex(value[2:])
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"{what} is not a keystore: {exc}") from exc
    if len(pub) != 32:
        raise CommandError(f"{what} holds a public key of {len(pub)} bytes, not 32")
    return pub
