"""The consensus engine: the node's I/O shell around the pure BFT round machine, one concept per module.

- ``driver``: the one owner of the round state; one queue of inputs, each
  logged to the WAL, handed to the machine, its effects carried out.
- ``inputs``: the inputs, their WAL records and the pure replay fold, shared
  by the driver and the simulation's replay check.
- ``proposer``: the block this validator proposes.
- ``executor``: validates proposed blocks and commits decided ones (the only
  writer of the store).
- ``wal``, ``signer``: the write-ahead log and the double-sign-proof signer.
- ``sync``: block sync, which fetches blocks and hands them to the driver's queue.
- ``gossip``: the network adapter (the driver's ``Network`` on a p2p transport);
  its topic validators authenticate every message before it is accepted or relayed.
- ``auth``: authentication of network messages against the validator set of
  their height, cheapest checks first, faults named for the penalty table.
- ``sigcache``: the consensus signature cache, the ``verify`` of the machine,
  the evidence pool and authentication alike: one verification per signature.
- ``faults``: test-only misbehaviour (``cstake start --byzantine``), wrapped
  around the driver's collaborators, never inside it.
- ``forge``: the test-only ``forge`` mode, a stream of forged consensus
  messages next to the node's honest traffic.

Time comes from ``node.clock``: the driver arms every timeout on the clock it
is given, so tests/sim runs many drivers on one manual clock.
"""
