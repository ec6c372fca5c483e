"""A synthetic chain for block-sync tests and benchmarks: real Ed25519 commits, no state.

Each block links to its parent's hash; each commit carries signatures of
``height || block hash`` by a fixed validator set (deterministic seeds), and
``verify_chain`` checks the links and a two-thirds quorum of valid
signatures, the way a syncing node checks commits against the validator set
it trusts. Not protocol code: it exists so p2p can be tested end to end
without node/ or storage/.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.codec import Encodable
from consensus.crypto import Domain, PrivateKey, sign_bytes, verify_signature
from consensus.errors import DecodeError, InvalidBlock, InvalidSignature
from consensus.hashing import ZERO_HASH, hash32, tagged_hash
from p2p.envelope import BlockFrame


@dataclass(frozen=True, slots=True)
class SynthBlock(Encodable):
    height: int
    parent_hash: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class SynthSignature(Encodable):
    pubkey: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class SynthCommit(Encodable):
    height: int
    block_hash: bytes
    signatures: tuple[SynthSignature, ...]


def validator_keys(n: int = 4) -> list[PrivateKey]:
    """Deterministic validator keys (test and benchmark use only)."""
    return [PrivateKey.from_seed(tagged_hash(b"cstake/p2p-synthetic", bytes([i]))) for i in range(n)]


def _vote_bytes(height: int, block_hash: bytes) -> bytes:
    return height.to_bytes(8, "big") + block_hash


def make_chain(chain_id: str, count: int, body_size: int = 1024, n_validators: int = 4) -> list[tuple[bytes, bytes]]:
    """Return ``count`` (block bytes, commit bytes) pairs for heights 1..count."""
    keys = validator_keys(n_validators)
    out = []
    parent = ZERO_HASH
    for h in range(1, count + 1):
        body = (h.to_bytes(8, "big") * (body_size // 8 + 1))[:body_size]
        block = SynthBlock(h, parent, body).encode()
        bh = hash32(block)
        sigs = tuple(
            SynthSignature(k.public_key.raw, k.sign(Domain.VOTE, chain_id, _vote_bytes(h, bh))) for k in keys
        )
        out.append((block, SynthCommit(h, bh, sigs).encode()))
        parent = bh
    return out


class ChainVerifier:
    """Checks frames in height order: parent links and a 2/3 quorum of commit signatures."""

    def __init__(self, chain_id: str, n_validators: int = 4, parent_hash: bytes = ZERO_HASH) -> None:
        self.chain_id = chain_id
        self.validators = {k.public_key.raw for k in validator_keys(n_validators)}
        self.quorum = len(self.validators) * 2 // 3 + 1
        self.parent_hash = parent_hash
        self.verified = 0

    def __call__(self, frame: BlockFrame) -> None:
        """Raise InvalidBlock or InvalidSignature unless ``frame`` extends the chain verified so far."""
        try:
            block = SynthBlock.decode(frame.block)
            commit = SynthCommit.decode(frame.commit)
        except DecodeError as exc:
            raise InvalidBlock(f"block {frame.height}: {exc}") from exc
        bh = hash32(frame.block)
        if block.height != frame.height or commit.height != frame.height:
            raise InvalidBlock(f"block {frame.height}: height mismatch")
        if block.parent_hash != self.parent_hash:
            raise InvalidBlock(f"block {frame.height} does not extend the verified chain")
        if commit.block_hash != bh:
            raise InvalidBlock(f"commit {frame.height} is for another block")
        signers = set()
        for s in commit.signatures:
            if s.pubkey not in self.validators or s.pubkey in signers:
                continue
            verify_signature(s.pubkey, _sign_bytes(self.chain_id, frame.height, bh), s.signature)
            signers.add(s.pubkey)
        if len(signers) < self.quorum:
            raise InvalidSignature(f"commit {frame.height} has {len(signers)} of {self.quorum} signatures needed")
        self.parent_hash = bh
        self.verified += 1


def _sign_bytes(chain_id: str, height: int, block_hash: bytes) -> bytes:
    return sign_bytes(Domain.VOTE, chain_id, _vote_bytes(height, block_hash))


def corrupt(rows: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Return rows whose commits carry flipped signature bytes (a lying peer)."""
    out = []
    for block, commit in rows:
        c = SynthCommit.decode(commit)
        bad = tuple(SynthSignature(s.pubkey, bytes([s.signature[0] ^ 1]) + s.signature[1:]) for s in c.signatures)
        out.append((block, SynthCommit(c.height, c.block_hash, bad).encode()))
    return out
