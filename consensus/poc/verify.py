"""Checking openings with an exact Freivalds test, and checking fraud proofs exactly.

Openings: for the sampled rows i, check each Merkle path against the committed
root, then ``C_i · r == A_i · (B · r)`` in int64, with B·r computed once
(O(n²)) and each row in O(n). Int64 cannot overflow: an opened entry is first
bounded by 49·n (a correct C never exceeds it; a larger one is wrong outright),
r_j < 2^20 and n <= 2048, so |C_i · r| < 49·2^11 · 2^20 · 2^11 < 2^48; and
|(B·r)_j| <= 7 · 2^20 · 2^11 < 2^35, so |A_i · (B·r)| < 7 · 2^35 · 2^11 < 2^49.
The check has no false alarms: a correct row always passes, so a failing row is
a fault, and the verdict carries a fraud proof for it.

Openings may come in chunks: a ``PocOpenings`` carries the next consecutive
run of the sampled rows (in ascending order) after the ones already opened, and
each chunk is checked on its own. At n = 2048 the 800 rows are about 7 MB, over
what one gossip message carries; a chunk must hold at least
``get_min_chunk_rows`` rows unless it is the last, so a challenge is opened in
at most ``MAX_OPENING_CHUNKS`` transactions and its per-chunk O(n²) work (B·r)
is done at most that many times.

Fraud proofs: a committed row (with its Merkle path) that differs from the
exact integer product A_i·B. Anyone can check one in O(n²) without any
sampling or randomness, so a fraud proof convicts deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from consensus.poc.challenge import derive_sample_indices
from consensus.poc.errors import InvalidFraudProof, InvalidOpenings
from consensus.poc.matrices import (
    MATRIX_A,
    PRODUCT_BOUND_PER_N,
    generate_b,
    generate_rows,
)
from consensus.poc.merkle import ROW_DTYPE, ROW_ENTRY_BYTES, is_valid_batch, is_valid_proof
from consensus.poc.sampling import compute_sample_seed, derive_freivalds_vector
from consensus.poc.types import Challenge, PocFraudProof, PocOpenings, RowOpening

#: A challenge's sampled rows are opened in at most this many transactions.
MAX_OPENING_CHUNKS = 8


def get_min_chunk_rows(sample_count: int) -> int:
    """Return the fewest rows a chunk of openings may carry unless it ends the samples."""
    return -(-sample_count // MAX_OPENING_CHUNKS)


@dataclass(frozen=True, slots=True)
class OpeningsVerdict:
    """Outcome of well-formed openings: passed, or the rows that are wrong and a fraud proof."""

    passed: bool
    bad_indices: tuple[int, ...]
    fraud_proof: PocFraudProof | None
    #: Sampled rows still to open after this chunk (0: the openings are complete).
    rows_left: int = 0


def _check_paths(challenge: Challenge, root: bytes, openings: tuple[RowOpening, ...]) -> None:
    for opening in openings:
        if len(opening.row) != ROW_ENTRY_BYTES * challenge.n:
            raise InvalidOpenings(
                f"row {opening.index} has {len(opening.row)} bytes; a row of n={challenge.n} "
                f"entries has {ROW_ENTRY_BYTES * challenge.n}"
            )
    batch = [(o.index, o.row, o.path) for o in openings]
    if is_valid_batch(root, challenge.rows, batch):
        return
    # Name the first row at fault (only on this failure path, so cost does not matter).
    for opening in openings:
        if not is_valid_proof(root, opening.row, opening.index, challenge.rows, opening.path):
            raise InvalidOpenings(f"the Merkle path of row {opening.index} does not lead to the root")
    raise InvalidOpenings("the Merkle paths of the openings disagree with each other")


def _rows_as_int64(rows: list[bytes], n: int) -> npt.NDArray[np.int64]:
    return np.frombuffer(b"".join(rows), dtype=ROW_DTYPE).reshape(len(rows), n).astype(np.int64)


def verify_openings(
    challenge: Challenge,
    root: bytes,
    sample_block_hash: bytes,
    openings: PocOpenings,
    opened: int = 0,
) -> OpeningsVerdict:
    """Check a chunk of openings against the commitment ``root``; raise InvalidOpenings if malformed.

    ``opened`` is how many of the sampled rows earlier chunks opened. Malformed
    means: another challenge's id, not exactly the next sampled indices in
    ascending order, a chunk shorter than ``get_min_chunk_rows`` that does not
    end the samples, a row of the wrong length, or a Merkle path that fails.
    Well-formed openings give a verdict; a failed verdict carries a fraud proof
    for the first wrong row.
    """
    if openings.challenge_id != challenge.id:
        raise InvalidOpenings("the openings are for another challenge")
    sampled = derive_sample_indices(challenge, root, sample_block_hash)
    if not 0 <= opened < len(sampled):
        raise InvalidOpenings(f"{opened} of the {len(sampled)} sampled rows are already open")
    got = tuple(o.index for o in openings.openings)
    expected = sampled[opened:opened + len(got)]
    if got != expected:
        raise InvalidOpenings(
            f"expected the next {len(expected)} of the {len(sampled)} sampled rows (from sample "
            f"{opened}) in ascending order, got rows with other indices"
        )
    rows_left = len(sampled) - opened - len(got)
    if rows_left and len(got) < get_min_chunk_rows(len(sampled)):
        raise InvalidOpenings(
            f"a chunk of openings that does not end the samples carries at least "
            f"{get_min_chunk_rows(len(sampled))} rows, got {len(got)}"
        )
    _check_paths(challenge, root, openings.openings)
    n = challenge.n
    c_rows = _rows_as_int64([o.row for o in openings.openings], n)
    # A correct entry never exceeds 49·n; bounding first also keeps int64 safe.
    in_range = np.all(np.abs(c_rows) <= PRODUCT_BOUND_PER_N * n, axis=1)
    r = derive_freivalds_vector(compute_sample_seed(challenge.id, root, sample_block_hash), n)
    br = generate_b(challenge.seed, n).astype(np.int64) @ r
    a_rows = generate_rows(challenge.seed, MATRIX_A, n, list(expected)).astype(np.int64)
    bad = ~in_range | ((c_rows @ r) != (a_rows @ br))
    bad_positions = np.flatnonzero(bad).tolist()
    if not bad_positions:
        return OpeningsVerdict(passed=True, bad_indices=(), fraud_proof=None, rows_left=rows_left)
    first = openings.openings[bad_positions[0]]
    return OpeningsVerdict(
        passed=False,
        bad_indices=tuple(expected[p] for p in bad_positions),
        fraud_proof=PocFraudProof(challenge_id=challenge.id, opening=first),
        rows_left=rows_left,
    )


def compute_row(challenge: Challenge, index: int) -> npt.NDArray[np.int64]:
    """Return row ``index`` of C = A·B exactly, in int64 (O(n²))."""
    if type(index) is not int or not 0 <= index < challenge.rows:
        raise ValueError(f"row index {index!r} out of range for {challenge.rows} rows")
    a_row = generate_rows(challenge.seed, MATRIX_A, challenge.n, [index]).astype(np.int64)
    row: npt.NDArray[np.int64] = (a_row @ generate_b(challenge.seed, challenge.n).astype(np.int64))[0]
    return row


def is_row_correct(challenge: Challenge, index: int, row: bytes) -> bool:
    """Return whether ``row`` (leaf bytes) is exactly row ``index`` of C."""
    if len(row) != ROW_ENTRY_BYTES * challenge.n:
        return False
    got = np.frombuffer(row, dtype=ROW_DTYPE).astype(np.int64)
    return bool(np.array_equal(got, compute_row(challenge, index)))


def verify_fraud_proof_inclusion(challenge: Challenge, root: bytes, proof: PocFraudProof) -> None:
    """Return if ``proof``'s row is the committed row at its index (no recomputation); else raise.

    The cheap half of ``verify_fraud_proof``: the challenge, the index range,
    the row's length and its Merkle path to ``root``.
    """
    if proof.challenge_id != challenge.id:
        raise InvalidFraudProof("the fraud proof is for another challenge")
    opening = proof.opening
    if type(opening.index) is not int or not 0 <= opening.index < challenge.rows:
        raise InvalidFraudProof(f"row index {opening.index} is out of range")
    if len(opening.row) != ROW_ENTRY_BYTES * challenge.n:
        raise InvalidFraudProof("the row has the wrong length")
    if not is_valid_proof(root, opening.row, opening.index, challenge.rows, opening.path):
        raise InvalidFraudProof("the row is not in the commitment: its Merkle path fails")


def verify_fraud_proof(challenge: Challenge, root: bytes, proof: PocFraudProof) -> None:
    """Return if ``proof`` proves that the commitment ``root`` holds a wrong row; else raise.

    Raises InvalidFraudProof when the proof is for another challenge, its row is
    not in the commitment (bad length, index or path), or its row is correct
    (the O(n²) recomputation, done last).
    """
    verify_fraud_proof_inclusion(challenge, root, proof)
    opening = proof.opening
    if is_row_correct(challenge, opening.index, opening.row):
        raise InvalidFraudProof(f"row {opening.index} is correct: no fault to prove")
