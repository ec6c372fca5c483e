"""The consensus signature cache: one real verification per signature, answers kept, bounded."""

from __future__ import annotations

import pytest

from consensus.crypto import PrivateKey, verify_signature
from consensus.errors import InvalidSignature
from node.engine.sigcache import SignatureCache


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, pubkey: bytes, message: bytes, signature: bytes) -> None:
        self.calls += 1
        verify_signature(pubkey, message, signature)


def _signed(n: int) -> tuple[bytes, bytes, bytes]:
    key = PrivateKey.from_seed(bytes([n]) * 32)
    message = b"message %d" % n
    return key.public_key.raw, message, key.sign_raw(message)


def test_a_valid_signature_is_verified_once() -> None:
    real = Counting()
    cache = SignatureCache(real)
    pubkey, message, sig = _signed(1)
    for _ in range(5):
        cache(pubkey, message, sig)
    assert real.calls == 1 and cache.verified == 1 and cache.hits == 4
    assert cache.is_valid(pubkey, message, sig)


def test_invalid_signature_is_remembered_and_still_raises() -> None:
    real = Counting()
    cache = SignatureCache(real)
    pubkey, message, _ = _signed(2)
    forged = bytes(64)
    for _ in range(3):
        with pytest.raises(InvalidSignature):
            cache(pubkey, message, forged)
    assert real.calls == 1
    # The same signature bytes over another message are another question.
    with pytest.raises(InvalidSignature):
        cache(pubkey, message + b"!", forged)
    assert real.calls == 2


def test_forgeries_never_push_out_verified_signatures() -> None:
    real = Counting()
    cache = SignatureCache(real, max_valid=2, max_invalid=2)
    good = [_signed(n) for n in (3, 4)]
    for triple in good:
        cache(*triple)
    pubkey, message, _ = good[0]
    for i in range(10):
        assert not cache.is_valid(pubkey, message, bytes([i]) * 64)
    assert len(cache) == 4
    calls = real.calls
    for triple in good:
        cache(*triple)
    assert real.calls == calls  # still cached
    cache(*_signed(5))  # a third valid one pushes out the oldest valid one
    cache(*good[0])
    assert real.calls == calls + 2
