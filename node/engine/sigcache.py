"""The consensus signature cache: each signature verified once per node, the answer kept, bounded.

A vote, proposal, block part or piece of evidence is authenticated when it
arrives (``node.engine.auth``), before it is relayed or queued; the round
machine, the evidence pool and the block proposer check the same signatures
again through ``MachineContext.verify``. ``SignatureCache`` is that verify
function: it runs the real Ed25519 check the first time it sees a
(public key, signed bytes, signature) triple and answers every repeat from
memory, so authenticating first does not double the cost.

Entries are keyed by the SHA-256 of the triple. Valid and invalid answers
are kept in separate bounded tables, oldest forgotten first: a flood of
forgeries can only push out other forgeries, never a verified signature.
"""

from __future__ import annotations

from collections import OrderedDict

from consensus.crypto import verify_signature
from consensus.errors import InvalidSignature
from consensus.hashing import hash32
from consensus.votes import SignatureVerifier

#: Verified signatures remembered (a few heights of votes of a large set).
MAX_VALID = 50_000
#: Signatures found invalid remembered (a forger re-sending the same bytes).
MAX_INVALID = 10_000


class SignatureCache:
    """A ``SignatureVerifier`` that verifies each (key, message, signature) once."""

    def __init__(
        self,
        verify: SignatureVerifier = verify_signature,
        *,
        max_valid: int = MAX_VALID,
        max_invalid: int = MAX_INVALID,
    ) -> None:
        self._verify = verify
        self._valid: OrderedDict[bytes, None] = OrderedDict()
        self._invalid: OrderedDict[bytes, None] = OrderedDict()
        self.max_valid = max_valid
        self.max_invalid = max_invalid
        #: Real verifications run (cache misses).
        self.verified = 0
        #: Answers given from memory.
        self.hits = 0

    def __call__(self, pubkey: bytes, message: bytes, signature: bytes) -> None:
        """Raise InvalidSignature unless ``signature`` by ``pubkey`` over ``message`` verifies."""
        key = hash32(b"".join((len(pubkey).to_bytes(2, "big"), pubkey, signature, message)))
        if key in self._valid:
            self.hits += 1
            self._valid.move_to_end(key)
            return
        if key in self._invalid:
            self.hits += 1
            raise InvalidSignature("signature does not verify (known forgery)")
        self.verified += 1
        try:
            self._verify(pubkey, message, signature)
        except InvalidSignature:
            self._remember(self._invalid, key, self.max_invalid)
            raise
        self._remember(self._valid, key, self.max_valid)

    def is_valid(self, pubkey: bytes, message: bytes, signature: bytes) -> bool:
        """Return True when the signature verifies (through the cache)."""
        try:
            self(pubkey, message, signature)
        except InvalidSignature:
            return False
        return True

    @staticmethod
    def _remember(table: OrderedDict[bytes, None], key: bytes, limit: int) -> None:
        table[key] = None
        while len(table) > limit:
            table.popitem(last=False)

    def __len__(self) -> int:
        return len(self._valid) + len(self._invalid)
