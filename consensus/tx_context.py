"""The block a transaction runs in, as its handler sees it: ``TxContext``.

Every ``process_<kind>(state, ctx, sender, body)`` handler takes one, whether it
lives in ``consensus.tx_handlers``, ``consensus.jobs.handlers`` or
``consensus.poc_state``. It sits below all of them so that each can name it and
``consensus.tx_handlers`` can gather them into one dispatch table without an
import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.params import Params


@dataclass(frozen=True, slots=True)
class TxContext:
    """What a handler may know about the block it runs in."""

    chain_id: str
    height: int
    time_ms: int
    proposer: bytes
    params: Params
