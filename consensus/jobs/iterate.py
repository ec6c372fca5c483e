"""Job kind 2: iterate a documented step function over a state for N steps, checked Truebit-style.

Spec: ``IterateSpec [steps, width]``. The state is ``width`` u64 words stored as
8·width little-endian bytes. Inline inputs are the initial state; seeded
inputs are ``SHAKE-256(b"cstake/job/iterate/v1" || seed)`` read for 8·width
bytes. The input hash is SHA-256 of the initial state.

Step ``t`` (0-based) maps state x to y, all arithmetic modulo 2^64::

    y[j] = rotl64((x[j] XOR (x[(j+1) mod width] >> 7)) * K + t * width + j, 23)

with K = 0x9E3779B97F4A7C15. Every word mixes with its neighbour, so after a
few steps each word depends on every input word.

The result's leaves are the ``steps + 1`` states s_0 (the input) .. s_N (the
output); the commitment is the Merkle root over them (checkpoints at every
step). Samples open s_0, s_N and, for k sampled steps i, the pair (s_i,
s_{i+1}); a fraud proof is s_0 differing from the input, or a pair that the
step function does not connect. A result whose wrong step escapes the samples
is disputed by bisection: the provider reveals midpoints, the challenger
says agree or disagree, and after ceil(log2 N) rounds the chain re-executes
the one disputed step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from consensus.codec import Encodable
from consensus.errors import DecodeError
from consensus.jobs.kinds import InvalidJobSpec, JobInput, derive_indices

SEED_TAG = b"cstake/job/iterate/v1"
MAX_STEPS = 1 << 20
MAX_WIDTH = 512
#: Word-steps per work unit.
OPS_PER_UNIT = 4096
K = 0x9E3779B97F4A7C15
ROT = 23
MASK = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class IterateSpec(Encodable):
    """Size of an iteration job."""

    steps: int
    width: int


def decode_spec(spec: bytes) -> IterateSpec:
    """Decode and range-check an iterate spec; raise InvalidJobSpec."""
    try:
        s = IterateSpec.decode(spec, max_bytes=64)
    except DecodeError as exc:
        raise InvalidJobSpec(f"bad iterate spec: {exc}") from exc
    if not 1 <= s.steps <= MAX_STEPS:
        raise InvalidJobSpec(f"iterate steps={s.steps} must be in [1, {MAX_STEPS}]")
    if not 1 <= s.width <= MAX_WIDTH:
        raise InvalidJobSpec(f"iterate width={s.width} must be in [1, {MAX_WIDTH}]")
    return s


def compute_step(state: bytes, t: int) -> bytes:
    """Return the state after step ``t`` (the reference, in Python integers)."""
    w = len(state) // 8
    x = [int.from_bytes(state[8 * j : 8 * j + 8], "little") for j in range(w)]
    out = bytearray()
    for j in range(w):
        v = (((x[j] ^ (x[(j + 1) % w] >> 7)) * K) + t * w + j) & MASK
        v = ((v << ROT) | (v >> (64 - ROT))) & MASK
        out += v.to_bytes(8, "little")
    return bytes(out)


def compute_trace(initial: bytes, steps: int) -> list[bytes]:
    """Return the states s_0 .. s_steps (numpy, vectorised over the words)."""
    w = len(initial) // 8
    x = np.frombuffer(initial, dtype="<u8").copy()
    j = np.arange(w, dtype=np.uint64)
    k = np.uint64(K)
    seven, rot, back = np.uint64(7), np.uint64(ROT), np.uint64(64 - ROT)
    out = [bytes(initial)]
    with np.errstate(over="ignore"):
        for t in range(steps):
            y = (x ^ (np.roll(x, -1) >> seven)) * k + (np.uint64(t * w) + j)
            x = (y << rot) | (y >> back)
            out.append(x.astype("<u8").tobytes())
    return out


class IterateKind:
    """A deterministic multi-step computation with bisection disputes (kind code 2)."""

    code = 2
    name = "iterate"
    supports_bisection = True

    def validate_input(self, job: JobInput, max_input_bytes: int) -> None:
        s = decode_spec(job.spec)
        if job.inputs and len(job.inputs) != 8 * s.width:
            raise InvalidJobSpec(f"the initial state of width {s.width} is {8 * s.width} bytes")

    def get_initial_leaf(self, job: JobInput) -> bytes:
        s = decode_spec(job.spec)
        if job.inputs:
            return job.inputs
        return hashlib.shake_256(SEED_TAG + job.input_seed).digest(8 * s.width)

    def compute_input_hash(self, job: JobInput) -> bytes:
        return hashlib.sha256(self.get_initial_leaf(job)).digest()

    def compute_work_units(self, job: JobInput) -> int:
        s = decode_spec(job.spec)
        return max(1, -(-(s.steps * s.width) // OPS_PER_UNIT))

    def get_leaf_count(self, job: JobInput) -> int:
        return decode_spec(job.spec).steps + 1

    def execute(self, job: JobInput) -> list[bytes]:
        return compute_trace(self.get_initial_leaf(job), decode_spec(job.spec).steps)

    def _sampled_steps(self, job: JobInput, sample_seed: bytes, count: int) -> tuple[int, ...]:
        return derive_indices(sample_seed, decode_spec(job.spec).steps, count)

    def compute_sample_indices(self, job: JobInput, sample_seed: bytes, count: int) -> tuple[int, ...]:
        steps = decode_spec(job.spec).steps
        chosen = {0, steps}
        for i in self._sampled_steps(job, sample_seed, count):
            chosen.update((i, i + 1))
        return tuple(sorted(chosen))

    def check_samples(
        self, job: JobInput, sample_seed: bytes, leaves: dict[int, bytes], count: int
    ) -> tuple[int, ...] | None:
        if any(i not in leaves for i in self.compute_sample_indices(job, sample_seed, count)):
            raise InvalidJobSpec("the openings do not cover the sampled states")
        if leaves[0] != self.get_initial_leaf(job):
            return (0,)
        for i in self._sampled_steps(job, sample_seed, count):
            if not self.is_step_correct(job, i, leaves[i], leaves[i + 1]):
                return (i, i + 1)
        return None

    def is_fault(self, job: JobInput, leaves: dict[int, bytes]) -> bool:
        steps = decode_spec(job.spec).steps
        keys = sorted(leaves)
        if keys == [0]:
            return leaves[0] != self.get_initial_leaf(job)
        if len(keys) == 2 and keys[1] == keys[0] + 1 and keys[1] <= steps:
            return not self.is_step_correct(job, keys[0], leaves[keys[0]], leaves[keys[1]])
        return False

    def is_step_correct(self, job: JobInput, lo: int, lo_leaf: bytes, hi_leaf: bytes) -> bool:
        width = decode_spec(job.spec).width
        if len(lo_leaf) != 8 * width:
            # Every correct state has exactly 8·width bytes: a committed one of another size is wrong.
            return False
        return compute_step(lo_leaf, lo) == hi_leaf
