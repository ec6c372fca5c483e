"""Which peers a node keeps: connection slots, dial targets and the peer-exchange address book.

Pure bookkeeping shared by both transports; no sockets, no clock (``now`` is
passed in), so every rule here is tested without a network.

Connection slots (``ConnectionSlots``), against eclipse attacks: a node keeps
at most ``max_peers`` connections. Inbound connections of ordinary peers are
capped at ``max_peers - reserved_outbound``, so connections an attacker opens
to us can never take the slots we dial out on. Persistent peers (the
operator's bootstrap list) always get a slot, in or out: when the node is
full, the lowest-scored inbound non-persistent peer is evicted to make room
(newest first among equal scores: a long-lived peer has shown more than a
fresh one). Outbound and persistent peers are never evicted for another peer.

Dial targets (``DialTarget``): a peer we redial when its connection is lost,
with its backoff; persistent targets are kept forever, exchanged ones live in
the address book.

The address book (``PeerBook``): what peer exchange taught us, treated as
attacker-chosen. Each entry remembers who told us (its source), when it was
first and last advertised, and a score: a successful dial raises it (the
entry is then verified), a failed one lowers it, and below
``PX_DROP_SCORE`` it is forgotten. Entries unseen for ``PX_ENTRY_TTL`` expire;
the book holds at most ``max_entries``, at most ``PX_MAX_PER_ANSWER`` new
entries are taken from one answer and at most ``PX_MAX_PER_SOURCE`` unverified
entries from one source; when a source is penalised, the unverified entries it
gave us are dropped. When the book is full, a new entry replaces the worst one
(lowest score, then least recently seen) only if that one is not better than
a new entry; verified entries therefore survive a flood of fresh addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from p2p.errors import ConfigError

#: Outbound slots kept free of inbound peers when none is configured: a quarter of max_peers, at most this.
DEFAULT_OUTBOUND_SLOTS = 8
#: Seconds an exchanged address lives without being advertised again (or connected).
PX_ENTRY_TTL = 600.0
#: Most addresses the book holds.
PX_MAX_ENTRIES = 256
#: Most new entries taken from one peer-exchange answer (the rest are ignored).
PX_MAX_PER_ANSWER = 16
#: Most records of one answer looked at (refreshes included); an answer may list more.
PX_MAX_SCANNED = 64
#: Most unverified entries one source may have in the book at once.
PX_MAX_PER_SOURCE = 32
#: Score lost by an entry when dialling it fails, and gained when it succeeds (up to the cap).
PX_DIAL_FAILURE = 1.0
PX_DIAL_SUCCESS = 1.0
PX_MAX_SCORE = 5.0
#: An entry whose score falls below this is forgotten (three failed dials of a fresh entry).
PX_DROP_SCORE = -2.5

ScoreOf = Callable[[str], float]


def compute_reserved_outbound(max_peers: int, outbound_slots: int | None = None) -> int:
    """Slots kept for outbound connections: ``outbound_slots``, or a quarter of max_peers (at most 8)."""
    if max_peers < 1:
        raise ConfigError(f"max_peers must be at least 1 (got {max_peers})")
    if outbound_slots is None:
        return min(DEFAULT_OUTBOUND_SLOTS, max_peers // 4)
    # At least one slot must stay open to inbound peers, or nobody could ever dial us.
    if not 0 <= outbound_slots < max_peers:
        raise ConfigError(f"outbound_slots must be between 0 and max_peers - 1 = {max_peers - 1} (got {outbound_slots})")
    return outbound_slots


@dataclass(frozen=True, slots=True)
class Slot:
    """One connected peer as the slot manager sees it."""

    outbound: bool
    """We dialled it (True) or it dialled us (False)."""
    persistent: bool
    """A bootstrap peer: always gets a slot, never evicted."""
    since: float
    """When it got the slot (the caller's clock)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The slot manager's answer to a new connection."""

    accepted: bool
    """Keep the connection (False: close it)."""
    reason: str
    """``ok``, ``known``, ``persistent``, ``inbound_full`` or ``full``."""
    evict: str | None = None
    """A peer to disconnect to make room (only for a persistent peer on a full node)."""


class ConnectionSlots:
    """Who holds a connection slot, and who gets one next (see the module docstring)."""

    def __init__(self, max_peers: int, persistent: Iterable[str] = (), outbound_slots: int | None = None) -> None:
        self.max_peers = max_peers
        self.reserved_outbound = compute_reserved_outbound(max_peers, outbound_slots)
        self.persistent = frozenset(persistent)
        self._slots: dict[str, Slot] = {}
        self.evicted_total = 0
        self.refused_total = 0

    @property
    def inbound_limit(self) -> int:
        """Most inbound non-persistent peers at once."""
        return self.max_peers - self.reserved_outbound

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._slots

    def get(self, peer_id: str) -> Slot | None:
        """The slot ``peer_id`` holds, if any."""
        return self._slots.get(peer_id)

    def is_persistent(self, peer_id: str) -> bool:
        """Whether ``peer_id`` is one of the operator's persistent peers."""
        return peer_id in self.persistent

    def get_inbound_count(self) -> int:
        """Inbound non-persistent peers holding a slot (what ``inbound_limit`` caps)."""
        return sum(1 for s in self._slots.values() if not s.outbound and not s.persistent)

    def get_outbound_room(self) -> int:
        """How many more non-persistent peers we may dial now."""
        return max(0, self.max_peers - len(self._slots))

    def compute_eviction(self, score_of: ScoreOf) -> str | None:
        """The peer to evict for a persistent one: lowest score, newest first, among inbound non-persistent peers."""
        candidates = [(score_of(pid), -slot.since, pid) for pid, slot in self._slots.items() if not slot.outbound and not slot.persistent]
        if not candidates:
            return None
        return min(candidates)[2]

    def get_admission(self, peer_id: str, outbound: bool, score_of: ScoreOf) -> Admission:
        """Decide on a new connection of ``peer_id``, changing nothing."""
        if peer_id in self._slots:
            return Admission(True, "known")
        if peer_id in self.persistent:
            # Persistent peers always get in; if no inbound peer can make room they go
            # over max_peers (at most by the length of the operator's own list).
            evict = self.compute_eviction(score_of) if len(self._slots) >= self.max_peers else None
            return Admission(True, "persistent", evict)
        if len(self._slots) >= self.max_peers:
            return Admission(False, "full")
        if not outbound and self.get_inbound_count() >= self.inbound_limit:
            return Admission(False, "inbound_full")
        return Admission(True, "ok")

    def on_connected(self, peer_id: str, outbound: bool, now: float, score_of: ScoreOf) -> Admission:
        """Decide on a new connection and, if accepted, give it a slot (freeing the evicted peer's)."""
        admission = self.get_admission(peer_id, outbound, score_of)
        self.apply(admission, peer_id, outbound, now)
        return admission

    def apply(self, admission: Admission, peer_id: str, outbound: bool, now: float) -> None:
        """Carry out ``admission`` (from ``get_admission`` for this peer, nothing changed since)."""
        if not admission.accepted:
            self.refused_total += 1
            return
        if admission.reason == "known":
            return
        if admission.evict is not None:
            self._slots.pop(admission.evict, None)  # the caller may have disconnected it already
            self.evicted_total += 1
        self._slots[peer_id] = Slot(outbound, peer_id in self.persistent, now)

    def on_disconnected(self, peer_id: str) -> None:
        """Free ``peer_id``'s slot (nothing happens if it held none)."""
        self._slots.pop(peer_id, None)


# -- dial targets -------------------------------------------------------------------------------


@dataclass(slots=True)
class DialTarget:
    """A peer we keep (persistent) or may (exchanged) dial, with its backoff."""

    addrs: list[str]
    """Multiaddrs ending in ``/p2p/<peer id>``, tried in order."""
    keep: bool
    """Persistent: redialled forever, within ``persistent_reconnect_max``."""
    delay: float = 0.0
    """Current backoff (seconds); doubles after each failure."""
    next_try: float = 0.0
    """Earliest time of the next dial."""
    connected_at: float = 0.0
    """When the last connection came up (a long one resets the backoff)."""
    dialing: bool = False
    """A dial is in flight."""


def compute_backoff(delay: float, reconnect_min: float, cap: float) -> float:
    """The next backoff after ``delay``: doubled, at least ``reconnect_min``, at most ``cap``."""
    return min(cap, max(reconnect_min, delay * 2))


# -- the peer-exchange address book ----------------------------------------------------------------


@dataclass(slots=True)
class BookEntry:
    """One exchanged address: who told us, when, and how it has done."""

    peer_id: str
    source: str
    """The peer whose answer first listed it."""
    first_seen: float
    last_seen: float
    """Last time an answer listed it or we were connected to it."""
    target: DialTarget
    score: float = 0.0
    verified: bool = False
    """We have been connected to it at least once."""


@dataclass(frozen=True, slots=True)
class LearnResult:
    """What one answer did to the book."""

    added: int = 0
    refreshed: int = 0
    ignored: int = 0
    evicted: int = 0


@dataclass(slots=True)
class PeerBook:
    """Exchanged addresses, bounded, expiring and scored (see the module docstring)."""

    max_entries: int = PX_MAX_ENTRIES
    max_per_answer: int = PX_MAX_PER_ANSWER
    max_per_source: int = PX_MAX_PER_SOURCE
    ttl: float = PX_ENTRY_TTL
    entries: dict[str, BookEntry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_entries < 1 or self.max_per_answer < 1 or self.max_per_source < 1 or self.ttl <= 0:
            raise ConfigError("peer book: max_entries, max_per_answer and max_per_source >= 1, ttl > 0")

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self.entries

    def get(self, peer_id: str) -> BookEntry | None:
        """The entry of ``peer_id``, if any."""
        return self.entries.get(peer_id)

    def get_source_count(self, source: str) -> int:
        """Unverified entries ``source`` gave us."""
        return sum(1 for e in self.entries.values() if e.source == source and not e.verified)

    def learn(self, source: str, records: Iterable[tuple[str, list[str]]], now: float, skip: Callable[[str], bool]) -> LearnResult:
        """Take ``(peer_id, valid addrs)`` records of one answer from ``source``; ``skip(peer_id)`` vetoes a record."""
        added = refreshed = ignored = evicted = 0
        from_source = self.get_source_count(source)
        for n, (pid, addrs) in enumerate(records):
            if n >= PX_MAX_SCANNED:
                break
            entry = self.entries.get(pid)
            if entry is not None:
                # Listed again: still alive somewhere. Addresses are not replaced: the
                # first ones stay until they fail (a later answer cannot redirect them).
                entry.last_seen = now
                refreshed += 1
                continue
            if not addrs or pid == source or skip(pid) or added >= self.max_per_answer or from_source >= self.max_per_source:
                ignored += 1
                continue
            if len(self.entries) >= self.max_entries:
                if not self._evict_worst():
                    ignored += 1
                    continue
                evicted += 1
            self.entries[pid] = BookEntry(pid, source, now, now, DialTarget(list(addrs), keep=False))
            added += 1
            from_source += 1
        return LearnResult(added, refreshed, ignored, evicted)

    def _evict_worst(self) -> bool:
        idle = [(e.score, e.last_seen, e.peer_id) for e in self.entries.values() if not e.target.dialing]
        if not idle:
            return False
        score, _, pid = min(idle)
        if score > 0:
            return False  # every entry has proved itself; a fresh address is not worth more
        del self.entries[pid]
        return True

    def expire(self, now: float, alive: Callable[[str], bool]) -> list[str]:
        """Forget entries unseen for ``ttl`` (``alive(peer_id)``: connected now, counts as seen); return them."""
        gone = []
        for pid, entry in list(self.entries.items()):
            if alive(pid):
                entry.last_seen = now
            elif now - entry.last_seen > self.ttl and not entry.target.dialing:
                del self.entries[pid]
                gone.append(pid)
        return gone

    def on_connected(self, peer_id: str, now: float) -> None:
        """We are connected to ``peer_id``: its entry is verified and gains score."""
        entry = self.entries.get(peer_id)
        if entry is not None:
            entry.verified = True
            entry.last_seen = now
            entry.score = min(PX_MAX_SCORE, entry.score + PX_DIAL_SUCCESS)

    def on_dial_failed(self, peer_id: str) -> bool:
        """Dialling ``peer_id`` failed: lower its score; True if that dropped it from the book."""
        entry = self.entries.get(peer_id)
        if entry is None:
            return False
        entry.score -= PX_DIAL_FAILURE
        if entry.score < PX_DROP_SCORE:
            del self.entries[peer_id]
            return True
        return False

    def on_source_penalised(self, source: str) -> int:
        """``source`` was penalised: drop the unverified entries it gave us; return how many."""
        gone = [pid for pid, e in self.entries.items() if e.source == source and not e.verified and not e.target.dialing]
        for pid in gone:
            del self.entries[pid]
        return len(gone)

    def forget(self, peer_id: str) -> None:
        """Drop ``peer_id``'s entry (a banned peer)."""
        self.entries.pop(peer_id, None)

    def get_dial_candidates(self, now: float, exclude: Callable[[str], bool], limit: int) -> list[BookEntry]:
        """Up to ``limit`` entries due for a dial, best score first (then oldest)."""
        if limit <= 0:
            return []
        due = [e for e in self.entries.values() if not e.target.dialing and e.target.next_try <= now and not exclude(e.peer_id)]
        due.sort(key=lambda e: (-e.score, e.first_seen, e.peer_id))
        return due[:limit]
