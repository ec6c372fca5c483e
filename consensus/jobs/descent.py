"""Merkle descent: proving one wrong leaf of a committed result that the samples missed.

For kinds whose leaves are independent (matrix rows), a challenger who
re-executed the job and got another root walks the provider's own Merkle tree
down to a wrong leaf. The dispute holds one node of the provider's tree (its
level, its index, its hash). Each round the provider reveals the node's two
children (their hashes must hash to the node), and the challenger picks the
child that differs from its own tree. At the leaf level the provider reveals
the leaf itself (its hash must match), and the chain checks that one leaf
exactly with the kind's ``is_fault``. A node with a single child (the odd
node promoted in ``consensus.poc.merkle``) has the same hash as that child,
so the descent passes through it without a round. The start counts as a round
and each choice as one, so a dispute over m leaves ends after at most
ceil(log2 m) + 1 rounds and one final reveal.
"""

from __future__ import annotations


def get_level_sizes(leaf_count: int) -> list[int]:
    """Return the number of nodes per level, the leaf level first and the root level (1) last."""
    sizes = [leaf_count]
    while sizes[-1] > 1:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def compute_descent_step(sizes: list[int], level: int, index: int) -> tuple[int, int]:
    """Return the node the descent stands on: skip single-child (promoted) nodes downward."""
    while level > 0 and 2 * index + 1 >= sizes[level - 1]:
        level -= 1
        index *= 2
    return level, index


def get_descent_start(leaf_count: int) -> tuple[int, int]:
    """Return (level, index) of the first node a descent disputes (the root, or below it)."""
    sizes = get_level_sizes(leaf_count)
    return compute_descent_step(sizes, len(sizes) - 1, 0)
