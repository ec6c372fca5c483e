"""The compute room: the node's side of proof of compute and of the job market.

- ``service``: ``ComputeService`` answers the proof-of-compute challenges of the
  NFTs this node serves (commitment, then openings) and signs and gossips
  compute attestations.
- ``kernel``: the one product the prover runs and the benchmark measures, chosen
  by ``KernelConfig`` (device: CPU or an optional GPU; BLAS threads).
- ``prover``: the prover, computing products with that kernel in worker processes.
- ``calibrate``: what the prover delivers at the chain's challenge size, measured
  in a prover worker; the claim ``--from-bench`` registers; the node's start check.
- ``provider``: ``JobProvider``, the marketplace provider service.
- ``hwbench``: ``cstake bench``, hardware detection and measured compute units.
- ``ports``: the narrow protocols the services see of the node; ``host``:
  ``DaemonHost``, the daemon's implementation of them.
"""
