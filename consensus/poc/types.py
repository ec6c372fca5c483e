"""Proof-of-compute containers: challenges, commitments, openings and fraud proofs.

All are frozen dataclasses with a canonical encoding (``consensus.codec``), so
they can be transaction bodies and be hashed into state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from consensus.codec import Encodable
from consensus.errors import ValidationError
from consensus.hashing import HASH_LEN
from consensus.poc.errors import InvalidChallengeParams
from consensus.poc.matrices import MAX_N
from consensus.poc.sampling import SAMPLE_COUNT

#: Longest Merkle path: the tree over at most 2^24 rows has 24 levels above the leaves.
MAX_PATH_LEN = 24


@dataclass(frozen=True, slots=True)
class PocParams(Encodable):
    """Protocol parameters of proof of compute (they live in genesis)."""

    challenge_ms: int
    """Time an honest device that meets its claimed units needs for its challenge."""
    commit_deadline_blocks: int
    """The commitment must be included at most this many blocks after the challenge height."""
    sample_delay_blocks: int
    """Samples are fixed at the end of the block this many blocks after the commitment's
    inclusion block, from its parent's hash (so at least 2 on a chain: consensus.params)."""
    openings_deadline_blocks: int
    """Openings must be included at most this many blocks after the sample block."""
    max_rows: int
    """Largest row count of A (bounds the work and the prover's memory for leaf hashes)."""
    max_n: int = MAX_N
    """Widest inner dimension n (a multiple of 64, at most 2048). The openings carry 800 rows
    of 4·n bytes, so a network whose gossip carries a few MiB per message at most (the
    devnet) uses n = 256 (openings about 1.3 MB) instead of the full 2048 (about 7 MB)."""

    def __post_init__(self) -> None:
        for name in ("challenge_ms", "commit_deadline_blocks", "sample_delay_blocks",
                     "openings_deadline_blocks", "max_rows"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise InvalidChallengeParams(f"PocParams.{name} must be a positive integer")
        if self.max_rows > 1 << 24:
            raise InvalidChallengeParams("PocParams.max_rows is at most 2^24")
        if type(self.max_n) is not int or not 64 <= self.max_n <= MAX_N or self.max_n % 64:
            raise InvalidChallengeParams(f"PocParams.max_n must be a multiple of 64 in [64, {MAX_N}]")


#: Devnet: ~1 s blocks and 20-block epochs; a challenge resolves well inside an epoch,
#: and the commit deadline (about 15 s) leaves room for a 2x overclaimer to finish and
#: be measured, while a >3x overclaimer misses it.
DEVNET_POC_PARAMS = PocParams(
    challenge_ms=5_000,
    commit_deadline_blocks=15,
    sample_delay_blocks=2,
    openings_deadline_blocks=3,
    max_rows=1 << 22,
)
#: Mainnet: longer challenges keep block-time granularity a small share of the measurement;
#: 2^24 rows (2·2^24·2048² = 1.4e14 operations) size a device of up to ~4,700 units for the
#: full 30 s; a faster one gets a shorter challenge and a coarser measurement.
MAINNET_POC_PARAMS = PocParams(
    challenge_ms=30_000,
    commit_deadline_blocks=30,
    sample_delay_blocks=2,
    openings_deadline_blocks=10,
    max_rows=1 << 24,
)


def _check_hash(owner: str, name: str, value: bytes) -> None:
    if type(value) is not bytes or len(value) != HASH_LEN:
        raise InvalidChallengeParams(f"{owner}.{name} must be {HASH_LEN} bytes")


@dataclass(frozen=True, slots=True)
class Challenge(Encodable):
    """One proof-of-compute challenge: compute C = A·B for A (rows x n) and B (n x n)."""

    id: bytes
    """Hash identifying the challenge (see derive_challenge)."""
    nft_id: bytes
    """The compute NFT challenged."""
    height: int
    """Height of the block whose state transition derived the challenge."""
    seed: bytes
    """32-byte seed of the matrix streams."""
    n: int
    """Inner dimension: B is n x n, rows of A and C have n entries (n <= 2048)."""
    rows: int
    """Row count of A and C."""
    claimed_units: int
    """The NFT's claimed units the size was chosen from; verified units never exceed it."""
    deadline_height: int
    """Last height at which the commitment may be included."""

    def __post_init__(self) -> None:
        _check_hash("Challenge", "id", self.id)
        _check_hash("Challenge", "seed", self.seed)
        if type(self.nft_id) is not bytes or not 1 <= len(self.nft_id) <= 64:
            raise InvalidChallengeParams("Challenge.nft_id must be 1 to 64 bytes")
        if type(self.n) is not int or not 1 <= self.n <= MAX_N:
            raise InvalidChallengeParams(f"Challenge.n must be in [1, {MAX_N}]")
        if type(self.rows) is not int or not 1 <= self.rows <= 1 << 24:
            raise InvalidChallengeParams("Challenge.rows must be in [1, 2^24]")
        for name in ("height", "claimed_units", "deadline_height"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise InvalidChallengeParams(f"Challenge.{name} must be a non-negative integer")
        if self.deadline_height <= self.height:
            raise InvalidChallengeParams("Challenge.deadline_height must be after its height")

    @property
    def work_flops(self) -> int:
        """Floating-point operations of the product (a multiply and an add per term)."""
        return 2 * self.rows * self.n * self.n


@dataclass(frozen=True, slots=True)
class PocCommitment(Encodable):
    """Body of the commitment transaction: the Merkle root over the rows of C."""

    challenge_id: bytes
    root: bytes

    def __post_init__(self) -> None:
        _check_hash("PocCommitment", "challenge_id", self.challenge_id)
        _check_hash("PocCommitment", "root", self.root)

    def validate_basic(self) -> None:
        """Stateless checks as a transaction body (the shape is checked on construction)."""
        return None


@dataclass(frozen=True, slots=True)
class RowOpening(Encodable):
    """One opened row of C with its Merkle inclusion proof."""

    index: int
    """Row index in C."""
    row: bytes
    """The row's leaf bytes: n little-endian int32 entries."""
    path: tuple[bytes, ...]
    """Sibling hashes from the leaf level up (see consensus.poc.merkle)."""

    def validate_basic(self) -> None:
        """Raise ValidationError unless the opening has a plausible shape."""
        if type(self.index) is not int or not 0 <= self.index < 1 << 24:
            raise ValidationError("opening.index must be in [0, 2^24)")
        if not 4 <= len(self.row) <= 4 * MAX_N or len(self.row) % 4:
            raise ValidationError(f"opening.row must be 1 to {MAX_N} little-endian int32 entries")
        if len(self.path) > MAX_PATH_LEN or any(len(p) != HASH_LEN for p in self.path):
            raise ValidationError(f"opening.path is at most {MAX_PATH_LEN} hashes of {HASH_LEN} bytes")


@dataclass(frozen=True, slots=True)
class PocOpenings(Encodable):
    """Body of the openings transaction: the sampled rows, in ascending index order."""

    # 800 rows of up to 2048 int32 entries plus paths: about 7 MB at most.
    MAX_BYTES: ClassVar[int] = 8 << 20

    challenge_id: bytes
    openings: tuple[RowOpening, ...]

    def __post_init__(self) -> None:
        _check_hash("PocOpenings", "challenge_id", self.challenge_id)

    def validate_basic(self) -> None:
        """Raise ValidationError unless there are 1..SAMPLE_COUNT openings in ascending order."""
        if not 1 <= len(self.openings) <= SAMPLE_COUNT:
            raise ValidationError(f"poc openings carry 1 to {SAMPLE_COUNT} rows")
        previous = -1
        for opening in self.openings:
            opening.validate_basic()
            if opening.index <= previous:
                raise ValidationError("poc openings must be in strictly ascending index order")
            previous = opening.index


@dataclass(frozen=True, slots=True)
class PocFraudProof(Encodable):
    """Body of a fraud-proof transaction: a committed row of C that is not A_i·B."""

    MAX_BYTES: ClassVar[int] = 64 << 10

    challenge_id: bytes
    opening: RowOpening

    def __post_init__(self) -> None:
        _check_hash("PocFraudProof", "challenge_id", self.challenge_id)

    def validate_basic(self) -> None:
        """Raise ValidationError unless the opened row has a plausible shape."""
        self.opening.validate_basic()
