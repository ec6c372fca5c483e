"""Peer scoring weights and the ban list, shared by both transports.

GossipSub's scorer (py-libp2p) does the per-topic bookkeeping on the libp2p
transport; these constants set its weights, and the in-memory transport uses
the same numbers in a small scorer of its own so simulations penalise peers
the way real nodes do. A peer whose score falls below ``DISCONNECT_SCORE`` is
disconnected and banned for ``BAN_SECONDS``.
"""

from __future__ import annotations

from collections import OrderedDict

#: Score lost per rejected gossip message (py-libp2p subtracts this positive weight).
INVALID_MESSAGE_WEIGHT = 20.0
#: Rejected messages counted at most (cap of the invalid-message counter).
INVALID_MESSAGE_CAP = 1000.0
#: Per-heartbeat decay of the invalid-message counter (1 s heartbeat: half-life ~70 s).
INVALID_MESSAGE_DECAY = 0.99
#: Score gained per first delivery of a valid message, and its cap.
FIRST_DELIVERY_WEIGHT = 1.0
FIRST_DELIVERY_CAP = 20.0
FIRST_DELIVERY_DECAY = 0.9
#: Time-in-mesh credit.
TIME_IN_MESH_WEIGHT = 0.1
TIME_IN_MESH_CAP = 10.0
#: Behaviour penalty (flooding, malformed frames, bad sync data): weight, free allowance, decay.
BEHAVIOUR_WEIGHT = 1.0
BEHAVIOUR_THRESHOLD = 10.0
BEHAVIOUR_DECAY = 0.95
#: Penalty units for one event of each kind. Every penalty names one of these entries
#: (a gate drop, a validator's ``Reject(reason)``, or ``report_peer``).
PENALTY = {
    "rate": 1.0,
    "malformed": 20.0,
    "oversize": 20.0,
    # A frame that is not even a pubsub protobuf: no honest implementation sends
    # one, so it alone crosses DISCONNECT_SCORE.
    "malformed_frame": 250.0,
    "bad_data": 100.0,
    "rejected": 20.0,
    # Consensus messages a forwarder could have checked against the same validator
    # set before relaying (node/engine/gossip.py): no honest node relays them.
    "bad_signature": 50.0,
    "not_validator": 50.0,
    "wrong_proposer": 50.0,
    # A proposal whose inline block is not the block it signs.
    "bad_block": 50.0,
}


def get_penalty(reason: str) -> float:
    """Units for one penalty of ``reason`` (an unknown reason counts as bad data)."""
    return PENALTY.get(reason, PENALTY["bad_data"])
#: Per-second decay of the penalty ledger (half-life about 70 s).
LEDGER_DECAY = 0.99
#: Below this we stop gossiping to / accepting gossip from the peer.
GOSSIP_THRESHOLD = -50.0
PUBLISH_THRESHOLD = -100.0
GRAYLIST_THRESHOLD = -200.0
#: Below this the peer is disconnected and banned.
DISCONNECT_SCORE = -200.0
BAN_SECONDS = 60.0


class BanList:
    """Peers refused until a deadline; bounded, oldest entries forgotten first."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries

    def ban(self, peer_id: str, now: float, seconds: float = BAN_SECONDS) -> None:
        """Refuse ``peer_id`` until ``now + seconds``."""
        self._until[peer_id] = now + seconds
        self._until.move_to_end(peer_id)
        while len(self._until) > self._max:
            self._until.popitem(last=False)

    def is_banned(self, peer_id: str, now: float) -> bool:
        """Return True while the peer's ban lasts."""
        until = self._until.get(peer_id)
        if until is None:
            return False
        if until <= now:
            del self._until[peer_id]
            return False
        return True

    def expired(self, now: float) -> list[str]:
        """Remove and return the peers whose ban has ended."""
        done = [p for p, t in self._until.items() if t <= now]
        for p in done:
            del self._until[p]
        return done


class PenaltyLedger:
    """Penalty units per peer id, decaying each second; bounded, oldest forgotten first.

    Kept apart from GossipSub's scorer, which drops a peer's counters whenever
    its pubsub stream ends, so a peer cannot wash its record by resetting.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._units: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries

    def add(self, peer_id: str, amount: float) -> float:
        """Add ``amount`` units to ``peer_id`` and return its total."""
        total = self._units.get(peer_id, 0.0) + amount
        self._units[peer_id] = total
        self._units.move_to_end(peer_id)
        while len(self._units) > self._max:
            self._units.popitem(last=False)
        return total

    def get(self, peer_id: str) -> float:
        """Return the units held against ``peer_id`` (0 when none)."""
        return self._units.get(peer_id, 0.0)

    def decay(self, factor: float = LEDGER_DECAY) -> None:
        """Multiply every entry by ``factor``; forget entries that fall below 0.01."""
        for pid in list(self._units):
            v = self._units[pid] * factor
            if v < 0.01:
                del self._units[pid]
            else:
                self._units[pid] = v
