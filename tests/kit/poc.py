"""Fixtures for the proof-of-compute tests: a challenge and its honest or cheating openings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from consensus.hashing import hash32
from consensus.poc import (
    DEVNET_POC_PARAMS,
    Challenge,
    PocOpenings,
    RowOpening,
    derive_challenge,
    derive_sample_indices,
)
from node.compute.prover import compute_commitment, compute_path, compute_rows

Build = Callable[..., tuple[Challenge, bytes, bytes, PocOpenings]]


def make_challenge(n: int, rows: int, claimed_units: int = 100) -> Challenge:
    """Return a challenge of the given shape (id and seed derived as the chain would)."""
    base = derive_challenge(hash32(b"epoch"), b"nft-1", claimed_units, 40, DEVNET_POC_PARAMS)
    return Challenge(id=base.id, nft_id=base.nft_id, height=base.height, seed=base.seed, n=n,
                     rows=rows, claimed_units=claimed_units, deadline_height=base.deadline_height)


@pytest.fixture
def build_openings() -> Build:
    """Return f(n, rows, cheat_fraction) -> (challenge, root, sample block hash, openings)."""

    def build(n: int, rows: int, cheat_fraction: float = 0.0) -> tuple[Challenge, bytes, bytes, PocOpenings]:
        ch = make_challenge(n, rows)
        work = compute_commitment(ch.seed, n, rows, cheat_fraction=cheat_fraction)
        block_hash = hash32(b"sample block" + ch.id)
        indices = derive_sample_indices(ch, work.root, block_hash)
        rows_bytes = compute_rows(ch.seed, n, rows, list(indices), cheat_fraction=cheat_fraction)
        openings = tuple(RowOpening(index=i, row=r, path=compute_path(work.levels, i))
                         for i, r in zip(indices, rows_bytes, strict=True))
        return ch, work.root, block_hash, PocOpenings(challenge_id=ch.id, openings=openings)

    return build
