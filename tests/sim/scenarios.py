"""Seeded scenario generators shared by the simulation tests and the benchmark."""

from __future__ import annotations

import random

from .faults import EQUIVOCATE, INVALID_PROPOSER, SILENT
from .harness import SimConfig
from .network import NetworkRules, Partition

BYZANTINE_BEHAVIOURS = (EQUIVOCATE, SILENT, INVALID_PROPOSER)
POWERS_4 = (10, 20, 30, 40)
POWERS_7 = (5, 7, 9, 11, 13, 17, 19)


def pick_byzantine(rng: random.Random, powers: tuple[int, ...]) -> list[int]:
    """A random set of at most f validators holding less than a third of the power."""
    n = len(powers)
    total = sum(powers)
    order = list(range(n))
    rng.shuffle(order)
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= (n - 1) // 3:
            break
        if (sum(powers[j] for j in chosen) + powers[i]) * 3 < total:
            chosen.append(i)
    return sorted(chosen)


def agreement_config(seed: int) -> SimConfig:
    """4 or 7 validators of unequal random power, byzantine < 1/3, random faults."""
    rng = random.Random(seed * 7919 + 17)
    n = 4 if seed % 2 == 0 else 7
    powers = tuple(rng.randint(1, 60) for _ in range(n))
    while len(set(powers)) == 1:
        powers = tuple(rng.randint(1, 60) for _ in range(n))
    byz = pick_byzantine(rng, powers)
    behaviours = {i: rng.choice(BYZANTINE_BEHAVIOURS) for i in byz}
    partitions = []
    if rng.random() < 0.3:
        members = list(range(n))
        rng.shuffle(members)
        cut = rng.randint(1, n - 1)
        start = rng.randint(300, 2000)
        partitions.append(
            Partition(
                start,
                start + rng.randint(300, 2500),
                (frozenset(members[:cut]), frozenset(members[cut:])),
            )
        )
    rules = NetworkRules(
        min_delay_ms=rng.randint(1, 10),
        max_delay_ms=rng.randint(15, 80),
        drop_prob=rng.choice((0.0, 0.02, 0.05)),
        duplicate_prob=rng.choice((0.0, 0.03)),
        slow_prob=rng.choice((0.0, 0.05, 0.1)),
        partitions=partitions,
    )
    return SimConfig(seed=seed, powers=powers, behaviours=behaviours, rules=rules, target_height=10)


def faulty_config(seed: int) -> SimConfig:
    """The first scenario family of development: fixed powers, equivocators, lossy links.

    Seeds of it that once stalled are pinned in the tests.
    """
    powers = POWERS_7 if seed % 2 else POWERS_4
    if len(powers) == 7:
        behaviours = {0: EQUIVOCATE, 6: (SILENT, INVALID_PROPOSER, EQUIVOCATE)[seed % 3]}
    else:
        behaviours = {seed % 2: (EQUIVOCATE, SILENT, INVALID_PROPOSER)[seed % 3]}
    rules = NetworkRules(drop_prob=0.05, duplicate_prob=0.05, slow_prob=0.05)
    return SimConfig(seed=seed, powers=powers, behaviours=behaviours, rules=rules, target_height=12)


def partition_config(seed: int) -> SimConfig:
    """Three partitions: no side with quorum, the largest validator alone, the smallest alone."""
    powers = POWERS_7 if seed % 2 else POWERS_4
    n = len(powers)
    if n == 4:
        split = (frozenset({0, 3}), frozenset({1, 2}))
    else:
        split = (frozenset({0, 1, 2, 6}), frozenset({3, 4, 5}))
    parts = [
        Partition(1000, 3500, split),
        Partition(5000, 8000, (frozenset({n - 1}), frozenset(range(n - 1)))),
        Partition(9000, 10000, (frozenset({0}), frozenset(range(1, n)))),
    ]
    rules = NetworkRules(drop_prob=0.02, duplicate_prob=0.02, slow_prob=0.02, partitions=parts)
    return SimConfig(seed=seed, powers=powers, rules=rules, target_height=25)


def evidence_config(seed: int) -> SimConfig:
    """Equivocating validators (< 1/3 power) that turn honest at height 10; no message loss."""
    powers = POWERS_7 if seed % 2 else POWERS_4
    behaviours = {0: EQUIVOCATE, 6: EQUIVOCATE} if len(powers) == 7 else {seed % 4: EQUIVOCATE}
    rules = NetworkRules(duplicate_prob=0.05, slow_prob=0.1)
    return SimConfig(
        seed=seed,
        powers=powers,
        behaviours=behaviours,
        rules=rules,
        target_height=16,
        byzantine_until_height=10,
    )
