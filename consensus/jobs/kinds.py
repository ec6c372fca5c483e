"""The one small interface every job kind implements, and the generic commit/open/check steps.

A job kind defines its inputs and how its result splits into *leaves* (matrix
rows, or the successive states of a computation). Everything else is shared:
the result commitment is the Merkle root over the leaves (the
``consensus.poc.merkle`` tree), openings are leaves with Merkle paths, sample
indices come from a seed fixed after the commitment, and a fraud proof is a
handful of opened leaves that the kind's exact check convicts.

A new kind is a new module with a class satisfying ``JobKind``, added to
``KINDS`` (``consensus.jobs.registry``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from consensus.errors import JobError
from consensus.hashing import tagged_hash
from consensus.jobs.types import LeafOpening
from consensus.poc.merkle import (
    build_levels,
    compute_proof,
    compute_root,
    hash_leaf,
    is_valid_batch,
)

SAMPLE_TAG = b"cstake/job/sample/v1"
INDEX_TAG = b"cstake/job/indices/v1"


class InvalidJobSpec(JobError):
    """A job's spec or inputs are not acceptable for its kind."""


@dataclass(frozen=True, slots=True)
class JobInput:
    """What a kind needs to know about a job: its spec and its inputs."""

    spec: bytes
    inputs: bytes
    input_seed: bytes


class JobKind(Protocol):
    """A kind of job (see the module docstring)."""

    code: int
    name: str
    #: True when a dispute may bisect over the leaves (the leaves are successive states).
    supports_bisection: bool

    def validate_input(self, job: JobInput, max_input_bytes: int) -> None:
        """Raise InvalidJobSpec unless the spec and inputs are acceptable."""

    def compute_input_hash(self, job: JobInput) -> bytes:
        """Return SHA-256 over the job's inputs (inline, or as generated from the seed)."""

    def compute_work_units(self, job: JobInput) -> int:
        """Return the job's size in work units (what the bid is per)."""

    def get_leaf_count(self, job: JobInput) -> int:
        """Return how many leaves the result has."""

    def execute(self, job: JobInput) -> list[bytes]:
        """Compute the result's leaves (the provider's work)."""

    def compute_sample_indices(self, job: JobInput, sample_seed: bytes, count: int) -> tuple[int, ...]:
        """Return the sorted leaf indices the provider must open."""

    def check_samples(
        self, job: JobInput, sample_seed: bytes, leaves: dict[int, bytes], count: int
    ) -> tuple[int, ...] | None:
        """Return None if the opened samples pass, else the leaf indices of a fraud proof."""

    def is_fault(self, job: JobInput, leaves: dict[int, bytes]) -> bool:
        """Return whether these committed leaves prove the result wrong (exact check)."""

    def get_initial_leaf(self, job: JobInput) -> bytes:
        """Return leaf 0 as it must be (bisection kinds: the input state)."""

    def is_step_correct(self, job: JobInput, lo: int, lo_leaf: bytes, hi_leaf: bytes) -> bool:
        """Return whether ``hi_leaf`` is one step on from ``lo_leaf`` at step ``lo`` (bisection kinds)."""


# --- generic steps shared by every kind ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Commitment:
    """A provider's committed result: the leaves and their Merkle tree."""

    leaves: tuple[bytes, ...]
    levels: tuple[tuple[bytes, ...], ...]

    @property
    def root(self) -> bytes:
        return compute_root(self.levels)


def compute_commitment(leaves: Sequence[bytes]) -> Commitment:
    """Commit to ``leaves``: build the Merkle tree over their leaf hashes."""
    levels = build_levels([hash_leaf(leaf) for leaf in leaves])
    return Commitment(tuple(leaves), tuple(tuple(level) for level in levels))


def open_leaves(commitment: Commitment, indices: Sequence[int]) -> tuple[LeafOpening, ...]:
    """Return the openings of ``indices`` (leaf and path each), in the order given."""
    return tuple(
        LeafOpening(i, commitment.leaves[i], compute_proof(commitment.levels, i)) for i in indices
    )


def compute_sample_seed(job_id: bytes, root: bytes, block_entropy: bytes) -> bytes:
    """Return the seed of a slot's samples: fixed only after its commitment is on chain."""
    return tagged_hash(SAMPLE_TAG, job_id + root + block_entropy)


def derive_indices(sample_seed: bytes, size: int, count: int) -> tuple[int, ...]:
    """Return ``min(count, size)`` distinct indices in [0, size), sorted.

    Draws are little-endian u64 words of ``SHAKE-256(INDEX_TAG || seed)`` taken
    modulo ``size``; a word at or above the largest multiple of ``size`` below
    2^64 is skipped (exactly uniform), and a repeated draw is skipped.
    """
    k = min(count, size)
    if k == size:
        return tuple(range(size))
    limit = ((1 << 64) // size) * size
    chosen: dict[int, None] = {}
    words = 2 * k + 16
    while True:
        stream = hashlib.shake_256(INDEX_TAG + sample_seed).digest(8 * words)
        chosen.clear()
        for off in range(0, len(stream), 8):
            w = int.from_bytes(stream[off : off + 8], "little")
            if w >= limit:
                continue
            chosen.setdefault(w % size)
            if len(chosen) == k:
                return tuple(sorted(chosen))
        words *= 2


def verify_opened_leaves(
    root: bytes, size: int, openings: Sequence[LeafOpening]
) -> dict[int, bytes]:
    """Return index -> leaf for openings whose paths lead to ``root``; raise JobError otherwise."""
    if not openings:
        raise JobError("no leaves are opened")
    indices = [o.index for o in openings]
    if len(set(indices)) != len(indices):
        raise JobError("a leaf is opened twice")
    if not is_valid_batch(root, size, [(o.index, o.leaf, o.path) for o in openings]):
        raise JobError("the opened leaves are not in the committed result (a Merkle path fails)")
    return {o.index: o.leaf for o in openings}


def build_fraud_proof(
    kind: JobKind, job: JobInput, sample_seed: bytes, openings: Sequence[LeafOpening], count: int
) -> tuple[LeafOpening, ...] | None:
    """Check a slot's opened samples; return the openings of a fraud proof, or None if they pass."""
    leaves = {o.index: o.leaf for o in openings}
    bad = kind.check_samples(job, sample_seed, leaves, count)
    if bad is None:
        return None
    by_index = {o.index: o for o in openings}
    return tuple(by_index[i] for i in bad)
