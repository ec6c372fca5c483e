"""A small seeded mutator for the smoke test: libFuzzer's simplest moves, without atheris."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\xc0", b"\xc4", b"\xcf" + b"\xff" * 8, b"\x90", b"\x9f", b"\xdc\xff\xff",
                b"\xdd\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff", b"\xd3\x80" + b"\0" * 7, b"\x91" * 16)


def mutate(data: bytes, rnd: random.Random, others: Sequence[bytes]) -> bytes:
    """Return ``data`` changed by one to four random edits (flip, insert, erase, copy, splice)."""
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(7)
        pos = rnd.randrange(len(buf) + 1)
        if op == 0 and buf:
            i = rnd.randrange(len(buf))
            buf[i] ^= 1 << rnd.randrange(8)
        elif op == 1 and buf:
            buf[rnd.randrange(len(buf))] = rnd.randrange(256)
        elif op == 2:
            buf[pos:pos] = rnd.choice(_INTERESTING)
        elif op == 3 and buf:
            end = min(len(buf), pos + rnd.randint(1, 16))
            del buf[pos:end]
        elif op == 4 and buf:
            start = rnd.randrange(len(buf))
            chunk = buf[start : start + rnd.randint(1, 32)]
            buf[pos:pos] = chunk
        elif op == 5 and others:
            other = rnd.choice(others)
            cut = rnd.randrange(len(other) + 1)
            buf = buf[:pos] + bytearray(other[cut:])
        else:
            buf[pos:pos] = rnd.randbytes(rnd.randint(1, 8))
    return bytes(buf)


def smoke_inputs(seeds: Sequence[bytes], n: int, seed: int) -> Iterator[bytes]:
    """Yield the seeds, then ``n`` inputs: mostly mutated seeds, some random bytes."""
    rnd = random.Random(seed)
    yield from seeds
    for _ in range(n):
        if not seeds or rnd.random() < 0.1:
            yield rnd.randbytes(rnd.randrange(64))
        else:
            yield mutate(rnd.choice(seeds), rnd, seeds)
