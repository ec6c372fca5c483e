"""Fault scenarios on real processes: ``python -m tests.faults [SCENARIO ...]`` (root only).

Each node of a scenario is a real ``cstake start`` process in its own network
namespace on a bridge (tests/kit/netns.py). A scenario file
(``tests/faults/scenarios/*.toml``, read by ``loader.py``) lists faults
with their times; the runner (``runner.py``) starts the nodes, sends
transfers in the background (``load.py``; proof-of-compute runs by itself),
injects and heals the faults (``faults.py`` on a ``cluster.py`` of nodes),
waits for the chain to recover, and then checks (``checks.py``):

* no fork: every node holds the same block hash at every height;
* no committed block lost by a restarted node;
* no double-sign: one precommit per validator in every commit, no
  double-sign evidence or slashing record;
* every accepted transaction committed exactly once, every refused one never;
* the chain resumed within the scenario's bound after the last heal;
* slashing records only for what was injected (downtime or a missed
  challenge of a validator taken out by a fault; nothing else).

The runner removes every namespace, link, mount and process it made on every
path (try/finally, SIGINT/SIGTERM handlers), and refuses to start without root.
"""
