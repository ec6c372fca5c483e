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

The cost part (``python -m bench.incentives cost``, also run by the suite;
lives here to stay one suite) calibrates
``consensus/costs.py``: per transaction kind, the measured execution time
(``process_transaction`` with the signature verified) against its cost
units; then the worst valid blocks the budget allows (most heavy work of
each kind, and the most transactions), each executed in full by
``state_transition``, with the slowest reported.
"""

from __future__ import annotations

import bisect
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    run_cost()


# --- cost calibration (consensus/costs.py) ------------------------------------------------------


def _cost_chain(**params: int) -> Any:
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    from tests.kit.chain import TestChain

    chain = TestChain(n_accounts=8, params=params)
    chain.next_block()
    return chain


def _time_tx(chain: Any, tx: Any, reps: int) -> tuple[float, float]:
    """Best of ``reps`` (wall, CPU) seconds to execute ``tx`` on the chain's head (signature verified).

    CPU time (``time.process_time``) leaves out the time this process waited
    for a core, so it is the figure of a quiet machine even on a shared one.
    """
    from consensus.transition import process_transaction
    from consensus.tx_context import TxContext

    view = chain.view()
    ctx = TxContext(chain_id=chain.chain_id, height=chain.height + 1,
                    time_ms=chain.time_ms + 1_000, proposer=bytes(20), params=view.get_params())
    wall = cpu = float("inf")
    for _ in range(reps):
        st = State(chain.state)
        t0, c0 = time.perf_counter(), time.process_time()
        result = process_transaction(st, tx, ctx)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    if result.code not in (0, 44):
        raise RuntimeError(f"calibration transaction failed: {result.log}")
    return wall, cpu


def calibration_cases(chain: Any) -> list[tuple[str, Any]]:
    """(label, signed transaction) for each measured kind, signed from fresh nonces each."""
    import hashlib

    from consensus.jobs.matmul import MatmulSpec
    from consensus.jobs.types import SubmitJob
    from consensus.poc import PocFraudProof, RowOpening
    from consensus.poc.merkle import compute_proof
    from consensus.records import HardwareSpec
    from consensus.txs import (
        Bond,
        CreateValidator,
        Delegate,
        RegisterCompute,
        Transfer,
        WithdrawRewards,
    )
    from tests.kit.chain import put_committed_challenge
    from tests.kit.jobs import iterate_body, matmul_body

    c = chain
    acct = c.account_keys
    ops = c.operator_keys
    inline = bytes(range(256)) * 2048  # A and B of a 512 x 512 x 512 job
    spec = MatmulSpec(512, 512, 512).encode()
    cases: list[tuple[str, Any]] = [
        ("transfer", (acct[0], Transfer(acct[1].address(), 5))),
        ("bond", (ops[0], Bond(5))),
        ("delegate", (acct[0], Delegate(ops[0].address(), 5))),
        ("create_validator", (acct[1], CreateValidator(b"\x09" * 32, 5_000, 100, "bench"))),
        ("register_compute", (acct[0], RegisterCompute(HardwareSpec(0, "cpu", 4, 1024), 10, 1_000))),
        ("withdraw_rewards (all)", (acct[0], WithdrawRewards(b""))),
        ("submit_job seeded 16x64", (acct[2], matmul_body(m=16, n=64, bid=1, escrow=10_000))),
        ("submit_job seeded 256x256", (acct[2], matmul_body(m=256, n=256, bid=1, escrow=10_000))),
        ("submit_job seeded 1024x1024", (acct[2], matmul_body(m=1024, n=1024, bid=1, escrow=10**7))),
        ("submit_job seeded 3072x1024 (devnet max)", (acct[2], matmul_body(m=3072, n=1024, bid=1, escrow=10**7))),
        ("submit_job iterate 1000x512", (acct[2], iterate_body(1000, 512, bid=1, escrow=10**7))),
        ("submit_job inline 512 KiB", (acct[2], SubmitJob(1, spec, inline, b"", hashlib.sha256(inline).digest(),
                                                          0, 1, 10**7, 1, 6))),
    ]
    for n in (256, 1024, 2048):
        ch, levels, leaves = put_committed_challenge(c, n, 64)
        proof = PocFraudProof(ch.id, RowOpening(3, leaves[3], tuple(compute_proof(levels, 3))))
        cases.append((f"fraud_proof n={n} (correct row)", (acct[3], proof)))
    return cases


def run_cost_table() -> None:
    from consensus.costs import get_tx_cost
    from consensus.txs import build_tx

    chain = _cost_chain()
    params = chain.view().get_params()
    print("cost calibration (devnet preset): execution with the signature verified, best of 5 (wall and CPU)")
    print(f"  {'transaction':<42} {'bytes':>8} {'units':>7} {'wall us':>9} {'CPU us':>9} {'CPU us/unit':>11}")
    for label, (key, body) in calibration_cases(chain):
        nonce = chain.view().get_account(key.address()).nonce
        tx = build_tx(key, chain.chain_id, nonce, 10**6, body)
        wall, cpu = _time_tx(chain, tx, 5)
        units = get_tx_cost(tx, params)
        print(f"  {label:<42} {len(tx.raw):>8} {units:>7} {wall * 1e6:>9.0f} {cpu * 1e6:>9.0f} {cpu * 1e6 / units:>11.2f}")


def worst_blocks(chain: Any) -> list[tuple[str, list[Any]]]:
    """The heaviest valid blocks of each shape the devnet budget allows, as transaction lists."""
    from consensus.costs import CostBudget
    from consensus.poc import PocFraudProof, RowOpening
    from consensus.poc.merkle import compute_proof
    from consensus.txs import Transfer
    from tests.kit.chain import put_committed_challenge
    from tests.kit.jobs import matmul_body

    c = chain
    params = c.view().get_params()
    keys = c.account_keys + c.operator_keys

    def fill(bodies: list[Any], fee: int) -> list[Any]:
        budget = CostBudget(params)
        out: list[Any] = []
        for i, body in enumerate(bodies):
            if len(out) >= params.max_block_txs:
                break
            tx = c.tx(keys[i % len(keys)], body, fee=fee)
            if not budget.try_take(tx):
                c.nonces[tx.payload.sender] -= 1
                break
            out.append(tx)
        return out

    ch, levels, leaves = put_committed_challenge(c, 2048, 64)
    proofs = [PocFraudProof(ch.id, RowOpening(i, leaves[i], tuple(compute_proof(levels, i)))) for i in range(64)]
    to = keys[0].address()
    shapes: list[tuple[str, list[Any]]] = []
    shapes.append(("seeded submit_job, devnet max size", fill([matmul_body(m=3072, n=1024, bid=1, escrow=10**7)] * 100, 100)))
    c.nonces.clear()
    shapes.append(("fraud proofs of correct rows, n=2048", fill(proofs, 100)))
    c.nonces.clear()
    shapes.append(("transfers (max_block_txs)", fill([Transfer(to, 1)] * 10_000, 1)))
    c.nonces.clear()
    return shapes


def time_block(chain: Any, txs: list[Any]) -> tuple[float, float, int]:
    """(wall, CPU) seconds to execute a block of ``txs`` with ``state_transition`` (signatures verified), and its cost."""
    from consensus.costs import compute_block_cost
    from consensus.transition import state_transition

    block = chain.build_block(txs)
    t0, c0 = time.perf_counter(), time.process_time()
    state_transition(chain.state, block)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, compute_block_cost(txs, chain.view().get_params()).total


def run_cost_blocks() -> float:
    """Print the worst blocks' execution times; return the slowest CPU time (seconds)."""
    chain = _cost_chain()
    params = chain.view().get_params()
    print(f"worst valid blocks (devnet: max_block_cost {params.max_block_cost}, "
          f"{params.max_heavy_txs_per_block} heavy), full state_transition, best of 3 (wall and CPU)")
    slowest = 0.0
    for label, txs in worst_blocks(chain):
        runs = [time_block(chain, txs) for _ in range(3)]
        wall, cpu, cost = min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]
        slowest = max(slowest, cpu)
        print(f"  {label:<40} {len(txs):>5} txs, {cost:>8} units: wall {wall * 1e3:7.1f} ms,"
              f" CPU {cpu * 1e3:7.1f} ms ({cpu * 1e6 / cost:.2f} us/unit)")
    return slowest


def run_cost() -> None:
    run_cost_table()
    slowest = run_cost_blocks()
    print(f"  slowest worst-case block: {slowest * 1e3:.1f} ms of CPU (bound: 1000 ms)")


if __name__ == "__main__":
    if sys.argv[1:] == ["cost"]:
        run_cost()
    else:
        run()
