"""Test scaffolding, kept out of the shipped packages.

- ``chain``: ``TestChain``, a deterministic chain builder over the real state transition.
- ``jobs``, ``poc``: builders for job-market and proof-of-compute tests.
- ``memview``: ``MemoryNodeView``, the RPC view over a ``TestChain`` (RPC and CLI tests).
- ``compute_host``: an in-memory host for the compute service and job provider.
- ``devnet``, ``ports``: the one devnet kit of every end-to-end test and bench.
- ``p2p_node``, ``p2p_synthetic``: a standalone p2p node (``python -m tests.kit.p2p_node``)
  and synthetic chains with real commits, for the multi-process p2p tests.
"""
