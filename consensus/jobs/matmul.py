"""Job kind 1: exact integer matrix multiplication C = A·B, checked by Freivalds on opened rows.

Spec: ``MatmulSpec [m, n, p]``: A is m x n, B is n x p, entries int8.
Inputs inline are A's bytes then B's bytes, row-major int8 (m·n + n·p bytes).
Seeded inputs reuse the proof-of-compute matrices (``consensus.poc.matrices``):
A is rows 0..m-1 of the challenge stream's A, B its n x n B (so p = n, n <= 2048,
entries in [-7, 7]). The input hash is SHA-256 over A's bytes then B's bytes.

The result's leaves are C's m rows, each p little-endian int32 (the
``consensus.poc.merkle`` row encoding): every entry is at most 128·128·n =
16,384·n in magnitude, far inside int32 for n <= 4096. A provider computes C
with float64 BLAS, exact here since every partial sum is below 2^53.

Checking samples: with r (p entries below 2^20) from the sample seed, B·r once
(O(n·p)), then each opened row i in O(n + p): ``C_i·r == A_i·(B·r)`` in int64
after bounding the entries (|C_i·r| < 2^58, |A_i·(B·r)| < 2^58: no overflow).
A correct row always passes; a wrong one fails with probability at least
1 - 2^-20. A fraud proof is one opened row that differs from A_i·B exactly
(O(n·p), no randomness), so it convicts deterministically.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from consensus.codec import Encodable
from consensus.errors import DecodeError
from consensus.jobs.kinds import InvalidJobSpec, JobInput, derive_indices
from consensus.poc.matrices import MATRIX_A, MAX_N, generate_b, generate_rows
from consensus.poc.merkle import ROW_DTYPE, ROW_ENTRY_BYTES, encode_row
from consensus.poc.sampling import derive_freivalds_vector

#: Largest dimension of a matrix job.
MAX_DIM = 4096
#: Multiply-adds per work unit.
OPS_PER_UNIT = 1 << 20
#: Seeded inputs may have this many times more entries than inline inputs have bytes.
SEEDED_INPUT_FACTOR = 4
#: Largest entry magnitude of an int8 matrix.
ENTRY_BOUND = 128


@dataclass(frozen=True, slots=True)
class MatmulSpec(Encodable):
    """Shape of a matrix job: A is m x n, B is n x p."""

    m: int
    n: int
    p: int


def decode_spec(spec: bytes) -> MatmulSpec:
    """Decode and range-check a matmul spec; raise InvalidJobSpec."""
    try:
        s = MatmulSpec.decode(spec, max_bytes=64)
    except DecodeError as exc:
        raise InvalidJobSpec(f"bad matmul spec: {exc}") from exc
    for name, value in (("m", s.m), ("n", s.n), ("p", s.p)):
        if not 1 <= value <= MAX_DIM:
            raise InvalidJobSpec(f"matmul {name}={value} must be in [1, {MAX_DIM}]")
    return s


def _a_rows(job: JobInput, s: MatmulSpec, indices: list[int]) -> npt.NDArray[np.int64]:
    if job.inputs:
        a = np.frombuffer(job.inputs, dtype=np.int8, count=s.m * s.n).reshape(s.m, s.n)
        return a[indices].astype(np.int64)
    return generate_rows(job.input_seed, MATRIX_A, s.n, indices).astype(np.int64)


def _b(job: JobInput, s: MatmulSpec) -> npt.NDArray[np.int8]:
    if job.inputs:
        raw = np.frombuffer(job.inputs, dtype=np.int8, offset=s.m * s.n)
        return raw.reshape(s.n, s.p)
    return generate_b(job.input_seed, s.n)


def get_matrices(job: JobInput) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """Return A and B as int8 arrays."""
    s = decode_spec(job.spec)
    if job.inputs:
        a = np.frombuffer(job.inputs, dtype=np.int8, count=s.m * s.n).reshape(s.m, s.n)
    else:
        a = generate_rows(job.input_seed, MATRIX_A, s.n, range(s.m))
    return a, _b(job, s)


def _row_ok(row: bytes, expected: npt.NDArray[np.int64]) -> bool:
    if len(row) != ROW_ENTRY_BYTES * expected.shape[0]:
        return False
    got = np.frombuffer(row, dtype=ROW_DTYPE).astype(np.int64)
    return bool(np.array_equal(got, expected))


class MatmulKind:
    """Exact integer matrix multiplication (kind code 1)."""

    code = 1
    name = "matmul"
    supports_bisection = False

    def validate_input(self, job: JobInput, max_input_bytes: int) -> None:
        s = decode_spec(job.spec)
        if job.inputs:
            size = s.m * s.n + s.n * s.p
            if len(job.inputs) != size:
                raise InvalidJobSpec(f"inline inputs of a {s.m}x{s.n} by {s.n}x{s.p} job are {size} bytes")
            if size > max_input_bytes:
                raise InvalidJobSpec(f"inline inputs of {size} bytes exceed the limit {max_input_bytes}")
        else:
            if s.p != s.n or s.n > MAX_N:
                raise InvalidJobSpec(f"seeded inputs need p = n <= {MAX_N} (B is the n x n seeded matrix)")
            # The chain generates seeded inputs to check their hash: bound that work too.
            if s.m * s.n + s.n * s.p > SEEDED_INPUT_FACTOR * max_input_bytes:
                raise InvalidJobSpec(
                    f"seeded inputs of {s.m * s.n + s.n * s.p} entries exceed "
                    f"{SEEDED_INPUT_FACTOR} x the input limit {max_input_bytes}"
                )

    def compute_input_hash(self, job: JobInput) -> bytes:
        if job.inputs:
            return hashlib.sha256(job.inputs).digest()
        a, b = get_matrices(job)
        return hashlib.sha256(a.tobytes() + b.tobytes()).digest()

    def compute_work_units(self, job: JobInput) -> int:
        s = decode_spec(job.spec)
        return max(1, -(-(s.m * s.n * s.p) // OPS_PER_UNIT))

    def get_leaf_count(self, job: JobInput) -> int:
        return decode_spec(job.spec).m

    def execute(self, job: JobInput) -> list[bytes]:
        a, b = get_matrices(job)
        c = np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
        return [encode_row(row) for row in c]

    def compute_sample_indices(self, job: JobInput, sample_seed: bytes, count: int) -> tuple[int, ...]:
        return derive_indices(sample_seed, decode_spec(job.spec).m, count)

    def check_samples(
        self, job: JobInput, sample_seed: bytes, leaves: dict[int, bytes], count: int
    ) -> tuple[int, ...] | None:
        s = decode_spec(job.spec)
        indices = list(self.compute_sample_indices(job, sample_seed, count))
        if any(i not in leaves for i in indices):
            raise InvalidJobSpec("the openings do not cover the sampled rows")
        # Bad lengths are faults outright; bounding entries keeps int64 exact.
        bound = ENTRY_BOUND * ENTRY_BOUND * s.n
        r = derive_freivalds_vector(sample_seed, s.p)
        br = _b(job, s).astype(np.int64) @ r
        a_rows = _a_rows(job, s, indices)
        for pos, i in enumerate(indices):
            row = leaves[i]
            if len(row) != ROW_ENTRY_BYTES * s.p:
                return (i,)
            c = np.frombuffer(row, dtype=ROW_DTYPE).astype(np.int64)
            if int(np.max(np.abs(c))) > bound or int(c @ r) != int(a_rows[pos] @ br):
                return (i,)
        return None

    def is_fault(self, job: JobInput, leaves: dict[int, bytes]) -> bool:
        s = decode_spec(job.spec)
        if len(leaves) != 1:
            return False
        ((i, row),) = leaves.items()
        if not 0 <= i < s.m:
            return False
        expected = _a_rows(job, s, [i])[0] @ _b(job, s).astype(np.int64)
        return not _row_ok(row, expected)

    def get_initial_leaf(self, job: JobInput) -> bytes:
        raise InvalidJobSpec("matrix jobs are not bisected: a wrong row is proven directly")

    def is_step_correct(self, job: JobInput, lo: int, lo_leaf: bytes, hi_leaf: bytes) -> bool:
        raise InvalidJobSpec("matrix jobs are not bisected: a wrong row is proven directly")
