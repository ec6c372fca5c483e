"""Developer tools that ship with the node: the local devnet launcher and the load generator.

- ``devnet``: ``cstake devnet up/init/down/status``, N homes sharing one genesis,
  one process each on 127.0.0.1, and the docker compose layout.
- ``loadgen``: ``cstake load``, funded load accounts sending signed transfers at
  a rate, with inclusion latency measured from the client.
"""
