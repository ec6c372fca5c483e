"""Ed25519 verification (libsodium): standard signatures verify, edge cases are refused.

The verifier decides which transactions and votes are valid, so it is a
consensus rule. These tests pin it: the RFC 8032 vectors and 300 random
signatures from the signing library verify (and fail when tampered with), and
the cases OpenSSL's cofactorless check lets through are refused: a small-order
public key with the (identity, 0) signature, which OpenSSL accepts for every
message, and an S that is not reduced mod L.
"""

from __future__ import annotations

import random

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consensus.codec import pack_raw
from consensus.crypto import PrivateKey, compute_address, is_valid_signature, sign_bytes
from consensus.errors import BadTxSignature
from consensus.records import Account
from consensus.state import State
from consensus.transition import check_tx
from consensus.txs import Domain, SignedTx, Transfer, TxKind, TxPayload
from tests.kit.chain import TestChain

# RFC 8032, section 7.1, tests 1-3: (secret, public key, message, signature).
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]
#: The group order L of Ed25519's prime-order subgroup.
L = 2**252 + 27742317777372353535851937790883648493
#: The encoding of the identity point (y = 1): a small-order public key.
IDENTITY = bytes([1]) + bytes(31)


@pytest.mark.parametrize("secret,public,message,signature", RFC8032)
def test_rfc8032_vectors_sign_and_verify(secret: str, public: str, message: str, signature: str) -> None:
    key = PrivateKey.from_seed(bytes.fromhex(secret))
    assert key.public_key.raw.hex() == public
    assert key.sign_raw(bytes.fromhex(message)).hex() == signature
    sig, msg, pk = bytes.fromhex(signature), bytes.fromhex(message), bytes.fromhex(public)
    assert is_valid_signature(pk, msg, sig)
    assert not is_valid_signature(pk, msg + b"\x00", sig)
    assert not is_valid_signature(pk, msg, sig[:-1] + bytes([sig[-1] ^ 1]))


def test_random_signatures_agree_with_the_signing_library() -> None:
    rng = random.Random(8032)
    print("seed 8032")
    for _ in range(300):
        key = PrivateKey.from_seed(rng.randbytes(32))
        message = rng.randbytes(rng.randrange(0, 300))
        sig = key.sign_raw(message)
        Ed25519PublicKey.from_public_bytes(key.public_key.raw).verify(sig, message)  # the signer's own check
        assert is_valid_signature(key.public_key.raw, message, sig)
        flipped = bytearray(sig)
        flipped[rng.randrange(64)] ^= 1 << rng.randrange(8)
        with pytest.raises(CryptoInvalidSignature):
            Ed25519PublicKey.from_public_bytes(key.public_key.raw).verify(bytes(flipped), message)
        assert not is_valid_signature(key.public_key.raw, message, bytes(flipped))


def test_a_small_order_key_does_not_sign_every_message() -> None:
    forged = IDENTITY + bytes(32)  # R = identity, S = 0
    # OpenSSL's cofactorless check accepts it for any message: [0]B == identity + [k]identity.
    for message in (b"", b"transfer everything", sign_bytes(Domain.TX, "cstake-devnet", b"x")):
        Ed25519PublicKey.from_public_bytes(IDENTITY).verify(forged, message)
        assert not is_valid_signature(IDENTITY, message, forged)


def test_an_unreduced_s_is_refused() -> None:
    key = PrivateKey.from_seed(bytes(range(32)))
    message = b"malleable?"
    sig = key.sign_raw(message)
    s = int.from_bytes(sig[32:], "little")
    malleated = sig[:32] + (s + L).to_bytes(32, "little")
    assert s + L < 2**256 and is_valid_signature(key.public_key.raw, message, sig)
    assert not is_valid_signature(key.public_key.raw, message, malleated)


def test_nobody_can_spend_from_the_small_order_keys_address() -> None:
    """The attack on the chain: the identity key's address holds funds; a stranger signs for it."""
    chain = TestChain(n_validators=1)
    victim = compute_address(IDENTITY)
    st = State(chain.state)
    st.set_account(victim, Account(1_000_000, 0))
    chain.state.apply(st.changes())
    thief = PrivateKey.from_seed(b"\x07" * 32).address()
    payload = TxPayload(chain_id=chain.chain_id, sender=victim, pubkey=IDENTITY, nonce=0, fee=10,
                        kind=TxKind.TRANSFER, body=Transfer(thief, 999_000).encode())
    payload_bytes = payload.encode()
    tx = SignedTx.decode(pack_raw([payload_bytes, IDENTITY + bytes(32)]))
    # The signature is "valid" to OpenSSL over exactly these sign bytes...
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(
        tx.signature, sign_bytes(Domain.TX, chain.chain_id, payload_bytes)
    )
    # ...and refused by the chain.
    state = chain.view()
    with pytest.raises(BadTxSignature):
        check_tx(state, tx, chain.chain_id, state.get_params())
