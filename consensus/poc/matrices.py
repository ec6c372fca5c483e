"""Challenge matrices: A (rows x n) and B (n x n) with entries in [-7, 7], from a hash stream.

Any implementation can reproduce them byte for byte. Row ``i`` of matrix ``M``
(``M`` is ``b"A"`` or ``b"B"``) is read from its own SHAKE-256 stream::

    stream(M, i) = SHAKE-256( b"cstake/poc/matrix/v1" || seed (32 bytes)
                              || M (1 byte, 0x41 or 0x42)
                              || u32_be(n) || u32_be(i) )

Each stream byte yields two 4-bit values, the low nibble first, then the high
nibble. A nibble of 15 is skipped (rejection keeps the mapping exactly uniform
over 15 values); any other nibble ``v`` gives the entry ``v - 7``. Row ``i`` is
the first ``n`` entries so obtained, in order; column ``j`` of that row is the
``j``-th. How many stream bytes an implementation reads is its own business:
the row is defined by the unbounded stream, and this one reads more only in the
(astronomically rare) case that its first read is short.

Per-row streams let a verifier generate just the rows of A it opens, and the
challenge's row count ``rows`` never changes any row.

Exactness: every entry of C = A·B is a sum of n products of magnitude at most
49, so every partial sum in any order is an integer of magnitude at most 49·n;
for n <= 2048 that is at most 100,352 < 2^24, exactly representable in float32
(and float64). So BLAS float32 products are exact integers on any hardware.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from consensus.poc.errors import InvalidChallengeParams

MATRIX_TAG = b"cstake/poc/matrix/v1"
MATRIX_A = b"A"
MATRIX_B = b"B"
SEED_LEN = 32
#: Entries lie in [-ENTRY_MAX, ENTRY_MAX].
ENTRY_MAX = 7
#: Largest inner dimension: keeps 49·n below 2^24, so float32 sums are exact.
MAX_N = 2048
#: Largest magnitude of any entry of C = A·B for inner dimension n.
PRODUCT_BOUND_PER_N = ENTRY_MAX * ENTRY_MAX
FLOAT32_EXACT_LIMIT = 1 << 24

Int8Matrix = npt.NDArray[np.int8]
Int64Matrix = npt.NDArray[np.int64]


def validate_shape(seed: bytes, n: int) -> None:
    """Raise InvalidChallengeParams unless ``seed`` is 32 bytes and 1 <= n <= MAX_N."""
    if type(seed) is not bytes or len(seed) != SEED_LEN:
        raise InvalidChallengeParams(f"a challenge seed is {SEED_LEN} bytes")
    if type(n) is not int or not 1 <= n <= MAX_N:
        raise InvalidChallengeParams(
            f"inner dimension n={n!r} must be in [1, {MAX_N}] so float32 products stay exact"
        )


def _row_prefix(seed: bytes, matrix: bytes, n: int) -> bytes:
    return MATRIX_TAG + seed + matrix + n.to_bytes(4, "big")


#: The nibble value that is skipped.
_REJECTED = 15


def _read_rows(prefix: bytes, indices: range | list[int], n: int, nbytes: int) -> Int8Matrix:
    """Return the rows ``indices`` of one matrix, reading ``nbytes`` per row stream first."""
    count = len(indices)
    base = hashlib.shake_256(prefix)
    chunks = []
    for i in indices:
        h = base.copy()
        h.update(i.to_bytes(4, "big"))
        chunks.append(h.digest(nbytes))
    raw = np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(count, nbytes)
    # Low nibble then high nibble of each byte: shape (count, 2 * nbytes).
    pairs = np.empty((count, nbytes, 2), dtype=np.int8)
    np.bitwise_and(raw, 0x0F, out=pairs[:, :, 0], casting="unsafe")
    np.right_shift(raw, 4, out=pairs[:, :, 1], casting="unsafe")
    values = pairs.reshape(count, 2 * nbytes)
    keep = values != _REJECTED
    kept = np.count_nonzero(keep, axis=1)
    out = np.empty((count, n), dtype=np.int8)
    short = np.flatnonzero(kept < n).tolist()
    if short:
        # Rare: a first read had too many rejected nibbles. Read those rows again
        # with a longer prefix of the same stream (the row is unchanged by this).
        redo = [indices[j] for j in short]
        out[short] = _read_rows(prefix, redo, n, nbytes * 2)
        keep[short] = False
        kept[short] = 0
    # Compact all kept values row-major, then take each row's first n of them.
    flat = values[keep]
    offsets = np.zeros(count, dtype=np.int64)
    np.cumsum(kept[:-1], out=offsets[1:])
    done = set(short)
    for j, off in enumerate(offsets.tolist()):
        if j not in done:
            out[j] = flat[off:off + n] - ENTRY_MAX
    return out


def _first_read_bytes(n: int) -> int:
    # 15/16 of nibbles are kept; n/8 + 64 spare nibbles make a short first read
    # a > 10-sigma event for every n, so the retry path almost never runs.
    return (n + n // 8 + 64 + 1) // 2


def generate_rows(seed: bytes, matrix: bytes, n: int, indices: range | list[int]) -> Int8Matrix:
    """Return rows ``indices`` of matrix ``matrix`` (b"A" or b"B") as an int8 array (len x n)."""
    validate_shape(seed, n)
    if matrix not in (MATRIX_A, MATRIX_B):
        raise InvalidChallengeParams("matrix must be b'A' or b'B'")
    for i in indices:
        if type(i) is not int or not 0 <= i < 1 << 32:
            raise InvalidChallengeParams(f"row index {i!r} is out of the u32 range")
    if len(indices) == 0:
        return np.empty((0, n), dtype=np.int8)
    return _read_rows(_row_prefix(seed, matrix, n), indices, n, _first_read_bytes(n))


def generate_a_rows(seed: bytes, n: int, start: int, stop: int) -> Int8Matrix:
    """Return rows start..stop-1 of A (int8, (stop-start) x n)."""
    return generate_rows(seed, MATRIX_A, n, range(start, stop))


def generate_b(seed: bytes, n: int) -> Int8Matrix:
    """Return the whole of B (int8, n x n)."""
    return generate_rows(seed, MATRIX_B, n, range(n))


def compute_reference_product(a: Int8Matrix, b: Int8Matrix) -> Int64Matrix:
    """Return A·B computed in int64 (the exact integer reference; slow, for checks and tests)."""
    result: Int64Matrix = np.matmul(a.astype(np.int64), b.astype(np.int64))
    return result


def compute_matrices_digest(seed: bytes, n: int, rows: int) -> bytes:
    """Return SHA-256 over A's rows then B's rows as int8 bytes (a compact test vector)."""
    h = hashlib.sha256()
    h.update(generate_a_rows(seed, n, 0, rows).tobytes())
    h.update(generate_b(seed, n).tobytes())
    return h.digest()
