"""The keystore format: an Ed25519 private seed in a JSON document.

Encrypted (the default)::

    {"version": 1, "type": "ed25519", "pubkey": "0x...", "encrypted": true,
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "0x<16 bytes>"},
     "cipher": {"name": "aes-256-gcm", "nonce": "0x<12 bytes>", "ciphertext": "0x..."}}

The key is scrypt(passphrase, salt) and the public key is the GCM associated
data, so a file whose pubkey was swapped fails to decrypt. Development mode
(``"encrypted": false`` and ``"seed": "0x..."``) exists for devnets and says so
in the file. Randomness (salt, nonce) is passed in: this module stays pure;
node/ reads and writes the files (mode 0600).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consensus.crypto import PrivateKey
from consensus.errors import KeystoreError

SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _unhex(value: Any, what: str) -> bytes:
    if type(value) is not str or not value.startswith("0x"):
        raise KeystoreError(f"keystore field {what} must be a 0x-prefixed hex string")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise KeystoreError(f"keystore field {what} is not valid hex") from exc


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if not (n >= 2 and n & (n - 1) == 0 and n <= 1 << 20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise KeystoreError("keystore scrypt parameters out of the accepted range")
    return hashlib.scrypt(
        passphrase.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 << 20, dklen=32
    )


def encode_keystore(
    key: PrivateKey,
    passphrase: str | None,
    *,
    salt: bytes = b"",
    nonce: bytes = b"",
    scrypt_n: int = SCRYPT_N,
) -> str:
    """Return keystore JSON for ``key``: encrypted with ``passphrase``, or dev mode if None."""
    pub = key.public_key.raw
    if passphrase is None:
        doc: dict[str, Any] = {
            "version": 1,
            "type": "ed25519",
            "pubkey": _hex(pub),
            "encrypted": False,
            "warning": "UNENCRYPTED development key: never use for value-bearing chains",
            "seed": _hex(key.seed()),
        }
        return json.dumps(doc, indent=2)
    if len(salt) != 16 or len(nonce) != 12:
        raise KeystoreError("an encrypted keystore needs a 16-byte salt and a 12-byte nonce")
    if not passphrase:
        raise KeystoreError("the passphrase must not be empty")
    dk = _derive(passphrase, salt, scrypt_n, SCRYPT_R, SCRYPT_P)
    ciphertext = AESGCM(dk).encrypt(nonce, key.seed(), pub)
    doc = {
        "version": 1,
        "type": "ed25519",
        "pubkey": _hex(pub),
        "encrypted": True,
        "kdf": {"name": "scrypt", "n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _hex(salt)},
        "cipher": {"name": "aes-256-gcm", "nonce": _hex(nonce), "ciphertext": _hex(ciphertext)},
    }
    return json.dumps(doc, indent=2)


def is_encrypted_keystore(text: str) -> bool:
    """Return True when the keystore JSON needs a passphrase."""
    try:
        return bool(json.loads(text).get("encrypted", True))
    except (ValueError, AttributeError) as exc:
        raise KeystoreError("keystore is not a JSON object") from exc


def decode_keystore(text: str, passphrase: str | None) -> PrivateKey:
    """Return the key in keystore JSON ``text``; raise KeystoreError with the reason."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise KeystoreError("keystore is not valid JSON") from exc
    if type(doc) is not dict or doc.get("version") != 1 or doc.get("type") != "ed25519":
        raise KeystoreError("unsupported keystore (expected version 1, type ed25519)")
    pub = _unhex(doc.get("pubkey"), "pubkey")
    if doc.get("encrypted") is False:
        seed = _unhex(doc.get("seed"), "seed")
    elif doc.get("encrypted") is True:
        if passphrase is None:
            raise KeystoreError("keystore is encrypted: a passphrase is required")
        kdf, cipher = doc.get("kdf"), doc.get("cipher")
        if type(kdf) is not dict or kdf.get("name") != "scrypt":
            raise KeystoreError("unsupported keystore kdf (expected scrypt)")
        if type(cipher) is not dict or cipher.get("name") != "aes-256-gcm":
            raise KeystoreError("unsupported keystore cipher (expected aes-256-gcm)")
        n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
        if type(n) is not int or type(r) is not int or type(p) is not int:
            raise KeystoreError("keystore scrypt parameters must be integers")
        dk = _derive(passphrase, _unhex(kdf.get("salt"), "kdf.salt"), n, r, p)
        try:
            seed = AESGCM(dk).decrypt(
                _unhex(cipher.get("nonce"), "cipher.nonce"),
                _unhex(cipher.get("ciphertext"), "cipher.ciphertext"),
                pub,
            )
        except (InvalidTag, ValueError) as exc:
            raise KeystoreError("wrong passphrase or tampered keystore") from exc
    else:
        raise KeystoreError("keystore field 'encrypted' must be true or false")
    if len(seed) != 32:
        raise KeystoreError("keystore seed must be 32 bytes")
    key = PrivateKey.from_seed(seed)
    if key.public_key.raw != pub:
        raise KeystoreError("keystore seed does not match its public key")
    return key
