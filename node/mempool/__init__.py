"""The mempool room: transactions checked against the head state, waiting for a block.

- ``pool``: ``Mempool``, bounded and ordered by fee, with its admission,
  replacement, eviction and reaping rules.
- ``sigcache``: ``SignatureCache``, the ids of transactions whose signatures
  verified, shared with block execution so each is verified once per node.
"""
