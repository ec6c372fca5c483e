"""The compute room: the node's side of proof of compute and of the job market.

- ``service``: ``ComputeService`` answers the proof-of-compute challenges of the
  NFTs this node serves (commitment, then openings) and signs and gossips
  compute attestations.
- ``prover``: the prover, computing products with BLAS in worker processes.
- ``provider``: ``JobProvider``, the marketplace provider service.
- ``hwbench``: ``cstake bench``, hardware detection and measured compute units.
- ``ports``: the narrow protocols the services see of the node; ``host``:
  ``DaemonHost``, the daemon's implementation of them.
"""
