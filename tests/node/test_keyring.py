"""The keyring: SLIP-0010 Ed25519 derivation (published vectors), BIP-39 recovery, named keystores."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from consensus.crypto import encode_address
from node.errors import CommandError
from node.keyring import (
    HARDENED,
    Keyring,
    compute_slip10_ed25519,
    derive_key,
    get_derivation_path,
    new_mnemonic,
)

ABANDON = "abandon " * 11 + "about"


def test_slip10_ed25519_published_vector_1() -> None:
    """SLIP-0010 test vector 1 for ed25519 (seed 000102...0f)."""
    seed = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    assert compute_slip10_ed25519(seed, ()).hex() == "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7"
    path = tuple(i | HARDENED for i in (0, 1, 2, 2, 1000000000))
    assert compute_slip10_ed25519(seed, path).hex() == "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793"


def test_mnemonic_derivation_matches_an_independent_implementation() -> None:
    """Values from bip_utils (Bip39SeedGenerator + Bip32Slip10Ed25519) on m/44'/9777'/0'/0'/0'."""
    assert derive_key(ABANDON).seed().hex() == "7b24df76e3e994f2bc58842b6197fd6e61a4192691a06e8aeb57a8a7683fcc32"
    words = "legal winner thank year wave sausage worth useful legal winner thank yellow"
    key = derive_key(words, bip39_passphrase="TREZOR")
    assert key.seed().hex() == "f37bf26d16c3aed28096077e289d45429e67dbe6ce7c63e28953ce8199386805"
    assert derive_key("  " + ABANDON.replace(" ", "  ") + "\n").seed() == derive_key(ABANDON).seed()
    assert derive_key(ABANDON, index=1).seed() != derive_key(ABANDON).seed()
    assert get_derivation_path(0)[1] == 9777 | HARDENED


@pytest.mark.parametrize("bad", ["abandon " * 12, "abandon " * 11 + "zebra", "hello world", "", ABANDON + " about"])
def test_invalid_mnemonics_are_refused(bad: str) -> None:
    with pytest.raises(CommandError, match="not valid BIP-39"):
        derive_key(bad)


def test_new_mnemonics_are_fresh_and_valid() -> None:
    a, b = new_mnemonic(), new_mnemonic(12)
    assert len(a.split()) == 24 and len(b.split()) == 12 and a != new_mnemonic()
    derive_key(a)
    derive_key(b)


def test_keyring_add_list_export_import(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    info = ring.add("alice", derive_key(ABANDON), None)
    assert info.address == encode_address(derive_key(ABANDON).address()) and not info.encrypted
    path = ring.path("alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(CommandError, match="exists already"):
        ring.add("alice", derive_key(ABANDON, index=3), None)
    with pytest.raises(CommandError, match="already as 'alice'"):
        ring.add("bob", derive_key(ABANDON), None)
    with pytest.raises(CommandError, match="home's own key"):
        ring.add("account", derive_key(ABANDON, index=2), None)
    for bad in ("Alice", "-x", "a" * 33, "a/b", "../x"):
        with pytest.raises(CommandError, match="key name"):
            ring.add(bad, derive_key(ABANDON, index=2), None)
    enc = ring.add("carol", derive_key(ABANDON, index=4), "correct horse")
    assert enc.encrypted and [i.name for i in ring.list()] == ["alice", "carol"]
    assert ring.load("carol", "correct horse").seed() == derive_key(ABANDON, index=4).seed()
    with pytest.raises(CommandError, match="cannot load"):
        ring.load("carol", "wrong")
    # Export from one home, import into another: same address, encryption kept.
    other = Keyring(tmp_path / "other")
    assert other.import_keystore("c2", ring.export_keystore("carol")).address == enc.address
    assert other.info("c2").encrypted
    tampered = json.loads(ring.export_keystore("alice"))
    tampered["pubkey"] = "0x" + "00" * 32
    with pytest.raises(CommandError, match="does not match"):
        other.import_keystore("bad", json.dumps(tampered))
    with pytest.raises(CommandError, match="not a keystore"):
        other.import_keystore("bad", "{}")
    with pytest.raises(CommandError, match="no key named"):
        ring.info("nobody")
