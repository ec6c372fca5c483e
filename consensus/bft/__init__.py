"""The BFT consensus engine: a pure Tendermint round machine and its vote sets.

``machine`` holds the handlers (``on_start``, ``on_proposal``, ``on_vote``,
``on_timeout``, ``on_block_built``), ``effects`` what they ask a driver to do,
``state`` the immutable round state, ``vote_set`` power-weighted tallies,
``validation`` the stateful message checks, ``evidence_pool`` the node's pool of
equivocation evidence, and ``config`` the timeouts.
"""
