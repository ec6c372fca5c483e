"""Ed25519 keys, domain-separated signatures, and addresses.

One implementation verifies every consensus-critical signature: libraries
disagree on edge-case signatures, and a network that mixed them could split.
It is libsodium's (through PyNaCl): about twice as fast here as OpenSSL's
(through ``cryptography``, which still generates keys and signs; Ed25519
signing is deterministic, so the signatures are the same), and strict where
OpenSSL is not. OpenSSL's cofactorless check accepts the signature
(R = identity, S = 0) under the identity public key for every message, so a
small-order key signs everything; libsodium refuses small-order keys and R,
non-canonical encodings and S >= L (tests/consensus/test_crypto_verify.py). A signature covers ``sign_bytes(domain, chain_id, payload)``:

    u8 len(domain) || domain || u8 len(chain_id) || chain_id || payload

so a signature for one message kind or one chain is never valid for another.

An address is the first 20 bytes of ``SHA-256("cstake/address/v1" || pubkey)``,
shown in bech32 (BIP-173) with the human-readable part ``cs``: a prefix and a
6-character checksum that catches any typo of up to four characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from consensus.errors import CryptoError, InvalidAddress, InvalidKey, InvalidSignature
from consensus.hashing import tagged_hash

PUBKEY_LEN = 32
SIGNATURE_LEN = 64
ADDRESS_LEN = 20
ADDRESS_HRP = "cs"


class Domain:
    """Domain tags: one per signed message kind."""

    TX = b"cstake/tx/v1"
    PROPOSAL = b"cstake/proposal/v1"
    PROPOSAL_PART = b"cstake/proposal-part/v1"
    VOTE = b"cstake/vote/v1"
    ATTESTATION = b"cstake/attestation/v1"
    POC = b"cstake/poc/v1"
    P2P = b"cstake/p2p/v1"


def sign_bytes(domain: bytes, chain_id: str, payload: bytes) -> bytes:
    """Return the exact bytes a signature of ``payload`` covers (CryptoError for an unsignable chain id)."""
    try:
        cid = chain_id.encode("ascii")
    except UnicodeEncodeError as exc:
        raise CryptoError("a chain id is ASCII; this one cannot be signed over") from exc
    if len(cid) > 255:
        raise CryptoError(f"a chain id is at most 255 bytes, not {len(cid)}")
    return bytes((len(domain),)) + domain + bytes((len(cid),)) + cid + payload


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 public key (32 raw bytes)."""

    raw: bytes

    def __post_init__(self) -> None:
        if type(self.raw) is not bytes or len(self.raw) != PUBKEY_LEN:
            raise InvalidKey(f"an Ed25519 public key is {PUBKEY_LEN} bytes")

    def address(self) -> bytes:
        """Return the 20-byte account address of this key."""
        return compute_address(self.raw)

    def verify(self, domain: bytes, chain_id: str, payload: bytes, signature: bytes) -> None:
        """Raise InvalidSignature unless ``signature`` signs ``payload`` in ``domain``."""
        verify_signature(self.raw, sign_bytes(domain, chain_id, payload), signature)


class PrivateKey:
    """An Ed25519 private key. Never encoded into consensus objects."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = PublicKey(key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls) -> PrivateKey:
        """Return a new key from the operating system's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        """Return the key whose 32-byte private seed is ``seed``."""
        if type(seed) is not bytes or len(seed) != 32:
            raise InvalidKey("an Ed25519 private seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        """Return the 32-byte private seed (for keystores only)."""
        return self._key.private_bytes_raw()

    def address(self) -> bytes:
        """Return the 20-byte account address of this key."""
        return self.public_key.address()

    def sign(self, domain: bytes, chain_id: str, payload: bytes) -> bytes:
        """Return a signature of ``payload`` under ``domain`` and ``chain_id``."""
        return self._key.sign(sign_bytes(domain, chain_id, payload))

    def sign_raw(self, message: bytes) -> bytes:
        """Sign already-assembled sign bytes (the signer service uses this)."""
        return self._key.sign(message)


def verify_signature(pubkey: bytes, message: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` is valid for ``message`` and ``pubkey``."""
    if type(signature) is not bytes or len(signature) != SIGNATURE_LEN:
        raise InvalidSignature(f"a signature is {SIGNATURE_LEN} bytes")
    if type(pubkey) is not bytes or len(pubkey) != PUBKEY_LEN:
        raise InvalidSignature(f"a public key is {PUBKEY_LEN} bytes")
    try:
        crypto_sign_open(signature + message, pubkey)
    except (BadSignatureError, ValueError) as exc:
        raise InvalidSignature("signature does not verify") from exc


def is_valid_signature(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """Return True when ``signature`` is valid for ``message`` and ``pubkey``."""
    try:
        verify_signature(pubkey, message, signature)
    except InvalidSignature:
        return False
    return True


def compute_address(pubkey: bytes) -> bytes:
    """Return the 20-byte address derived from a 32-byte public key."""
    if len(pubkey) != PUBKEY_LEN:
        raise InvalidKey(f"an Ed25519 public key is {PUBKEY_LEN} bytes")
    return tagged_hash(b"cstake/address/v1", pubkey)[:ADDRESS_LEN]


# --- bech32 (BIP-173) ------------------------------------------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_MAP = {c: i for i, c in enumerate(_CHARSET)}
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if ((top >> i) & 1) else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _convert_bits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out = []
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise InvalidAddress("invalid padding in address data")
    return out


def encode_address(address: bytes) -> str:
    """Return the human form (bech32, ``cs1...``) of a 20-byte address."""
    if type(address) is not bytes or len(address) != ADDRESS_LEN:
        raise InvalidAddress(f"an address is {ADDRESS_LEN} bytes")
    data = _convert_bits(address, 8, 5, True)
    values = _hrp_expand(ADDRESS_HRP) + data
    polymod = _polymod(values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return ADDRESS_HRP + "1" + "".join(_CHARSET[d] for d in data + checksum)


def decode_address(text: str) -> bytes:
    """Return the 20-byte address of a human-form address, checking its checksum."""
    if type(text) is not str or not 8 <= len(text) <= 90:
        raise InvalidAddress("address must be a bech32 string")
    if text.lower() != text and text.upper() != text:
        raise InvalidAddress("address mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    hrp, body = text[:pos], text[pos + 1 :]
    if hrp != ADDRESS_HRP:
        raise InvalidAddress(f"address must start with '{ADDRESS_HRP}1'")
    if len(body) < 7 or any(c not in _CHARSET_MAP for c in body):
        raise InvalidAddress("address contains characters outside the bech32 alphabet")
    data = [_CHARSET_MAP[c] for c in body]
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise InvalidAddress("address checksum does not match (typo?)")
    raw = bytes(_convert_bits(data[:-6], 5, 8, False))
    if len(raw) != ADDRESS_LEN:
        raise InvalidAddress(f"address must hold {ADDRESS_LEN} bytes")
    return raw
