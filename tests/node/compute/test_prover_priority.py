"""Prover workers run below the node's CPU priority, so a challenge never starves consensus."""

from __future__ import annotations

import os

from node.compute.service import PROVER_NICE, NodeProver


def _niceness() -> int:
    return os.nice(0)


def test_prover_workers_yield_the_cpu_to_the_node() -> None:
    executor = NodeProver._new_executor()
    try:
        worker = executor.submit(_niceness).result(timeout=60)
    finally:
        executor.shutdown(wait=True)
    assert worker == min(19, _niceness() + PROVER_NICE)
    assert worker > _niceness()
