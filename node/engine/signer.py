"""The validator's persistent signer: it never signs two conflicting messages.

Before a signature leaves this object, the signer stores the height, round and
step it signed at, the exact payload and the signature, atomically (write a
temporary file, fsync it, rename it over the state file, fsync the directory).
Then, like CometBFT's file signer, it refuses:

- a regression: a height, round or step below the last one signed;
- a conflict: different bytes at the same height, round and step.

Signing the identical payload again returns the stored signature (a restarted
validator replaying its WAL asks again), and a payload that differs only in
its timestamp gets the stored signature with the stored timestamp, since the
message itself is the same. A process killed at any point either never let
the signature out, or had already persisted it; so across restarts no two
conflicting signatures can exist. A corrupt state file stops the signer with a
clear error: guessing would risk a double sign.

A signer state can still be stale: an operator may restart the validator on an
old copy of its data directory (a backup), which rolls the signer state back
with the block store, or run the key in a second process. Since a signature
leaves this object only once its height is stored, a verified commit holding
our precommit at a height above the stored one proves the state is stale
(``observe_commit``). The signer then stores a floor, a state at height h+2
with a round and step beyond any real one (``compute_floor_state``), which the
same rules turn into a refusal of every height up to h+2: the old process may
have signed up to the height after the proven one, and skipping a height's
votes is cheap where a double sign is not. The floor is an ordinary
``LastSignState``, so the file format is unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Protocol

from consensus.codec import Encodable, unpack_raw
from consensus.crypto import Domain, PrivateKey, sign_bytes
from consensus.errors import ConsensusError
from consensus.hashing import hash32
from consensus.votes import Commit, Proposal, Vote, VoteType
from node.errors import DoubleSignRefused, SignerError, SignerStateCorrupt

log = logging.getLogger(__name__)

STEP_PROPOSE: Final = 1
STEP_PREVOTE: Final = 2
STEP_PRECOMMIT: Final = 3

_MAGIC: Final = b"cstake-signer-v1\n"
_DIGEST_LEN: Final = 32
#: Index of the timestamp in the sign payload of both votes and proposals.
_TIMESTAMP_INDEX: Final = 5
#: Round and step of a floor state: beyond any real round and step, so every step of its height is refused.
FLOOR_ROUND: Final = 2**31 - 1
FLOOR_STEP: Final = 255
#: Heights past a proven signature that a floor also refuses (the old process may have gone one further).
FLOOR_MARGIN: Final = 2


@dataclass(frozen=True, slots=True)
class LastSignState(Encodable):
    """What the signer last signed (height 0: nothing yet)."""

    height: int
    round: int
    step: int
    sign_payload: bytes
    """Canonical payload that was signed (without domain and chain id)."""
    signature: bytes


EMPTY_STATE: Final = LastSignState(0, 0, 0, b"", b"")


def compute_floor_state(height: int) -> LastSignState:
    """Return the state that refuses every height up to and including ``height``, and nothing above."""
    return LastSignState(height, FLOOR_ROUND, FLOOR_STEP, b"", b"")


def is_floor_state(state: LastSignState) -> bool:
    """Return True when ``state`` is a floor (stored on proof of a stale state), not a real signature."""
    return state.round == FLOOR_ROUND and state.step == FLOOR_STEP


class SignerStore(Protocol):
    """Where the last signed state lives."""

    def load(self) -> LastSignState:
        """Return the stored state (``EMPTY_STATE`` when nothing was signed yet)."""
        ...

    def save(self, state: LastSignState) -> None:
        """Store ``state`` durably before returning."""
        ...


class MemorySignerStore:
    """A store in memory: same rules, no durability (simulations and unit tests)."""

    def __init__(self) -> None:
        self.state = EMPTY_STATE

    def load(self) -> LastSignState:
        return self.state

    def save(self, state: LastSignState) -> None:
        self.state = state


class FileSignerStore:
    """The state in one file, replaced atomically and fsynced; locked against a second process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            raise SignerError(
                f"signer state {self.path} is in use by another process (lock held)"
            ) from exc

    def close(self) -> None:
        """Release the lock."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def load(self) -> LastSignState:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return EMPTY_STATE
        except OSError as exc:
            raise SignerStateCorrupt(f"cannot read signer state {self.path}: {exc}") from exc
        head = len(_MAGIC)
        if len(data) < head + _DIGEST_LEN or data[:head] != _MAGIC:
            raise SignerStateCorrupt(
                f"signer state {self.path} is not a signer state file (bad header); "
                "refusing to sign rather than risk a double sign"
            )
        digest, body = data[head : head + _DIGEST_LEN], data[head + _DIGEST_LEN :]
        if hash32(body) != digest:
            raise SignerStateCorrupt(
                f"signer state {self.path} is corrupt (checksum mismatch); "
                "refusing to sign rather than risk a double sign"
            )
        try:
            return LastSignState.decode(body)
        except ConsensusError as exc:
            raise SignerStateCorrupt(f"signer state {self.path} does not decode: {exc}") from exc

    def save(self, state: LastSignState) -> None:
        body = state.encode()
        data = _MAGIC + hash32(body) + body
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        # The rename is durable only once the directory entry is on disk.
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class PersistentSigner:
    """Signs votes and proposals with one key, persisting before releasing each signature."""

    def __init__(
        self, key: PrivateKey, chain_id: str, store: SignerStore, address: bytes | None = None
    ) -> None:
        self.key = key
        self.chain_id = chain_id
        # The validator's identity in votes: its operator address when that differs from the key's.
        self.address = key.address() if address is None else address
        self.store = store
        # Read (and check) the state once at start: a corrupt file stops us here.
        self._last = store.load()

    @property
    def last(self) -> LastSignState:
        """What was last signed."""
        return self._last

    def observe_commit(self, commit: Commit, where: str) -> int | None:
        """Note a verified, committed ``commit`` (found in ``where``); return the new floor height, if any.

        Our precommit in it at a height above the last one stored (or above
        the one a stored floor was proven by) proves the stored state stale:
        store the floor ``commit.height + FLOOR_MARGIN`` durably before returning.
        """
        last = self._last
        floor = commit.height + FLOOR_MARGIN
        # Above a floor, a proof raises it while it proves a height the floor's margin only guessed.
        known = last.height - FLOOR_MARGIN if is_floor_state(last) else last.height
        if commit.height <= known or all(s.validator != self.address for s in commit.signatures):
            return None
        if is_floor_state(last):
            # Already warned: catching up through a long stale stretch raises it block by block.
            log.info("signer floor raised to height %d: our precommit for height %d is in %s",
                     floor, commit.height, where)
        else:
            log.warning(
                "signer state is stale: our precommit for height %d is in %s but the signer state says "
                "last signed height %d (a data directory restored from an older copy, or this key signing "
                "in another process); refusing to sign at heights <= %d",
                commit.height, where, last.height, floor,
            )
        state = compute_floor_state(floor)
        self.store.save(state)
        self._last = state
        return floor

    def sign_vote(self, vote: Vote) -> Vote:
        """Return ``vote`` signed, or raise DoubleSignRefused."""
        if vote.validator != self.address:
            raise SignerError("vote is for another validator's address")
        step = STEP_PREVOTE if vote.vote_type == VoteType.PREVOTE else STEP_PRECOMMIT
        payload, signature = self._sign(
            vote.height, vote.round, step, Domain.VOTE, vote.sign_payload()
        )
        timestamp = _timestamp_of(payload)
        return replace(vote, timestamp_ms=timestamp, signature=signature)

    def sign_proposal(self, proposal: Proposal) -> Proposal:
        """Return ``proposal`` signed, or raise DoubleSignRefused."""
        if proposal.proposer != self.address:
            raise SignerError("proposal is for another validator's address")
        payload, signature = self._sign(
            proposal.height, proposal.round, STEP_PROPOSE, Domain.PROPOSAL, proposal.sign_payload()
        )
        return replace(proposal, timestamp_ms=_timestamp_of(payload), signature=signature)

    def _sign(
        self, height: int, round_: int, step: int, domain: bytes, payload: bytes
    ) -> tuple[bytes, bytes]:
        last = self._last
        hrs, last_hrs = (height, round_, step), (last.height, last.round, last.step)
        if hrs < last_hrs and is_floor_state(last):
            raise DoubleSignRefused(
                f"refusing to sign at height/round/step {hrs}: the signer state was found stale, "
                f"no signing at heights <= {last.height}"
            )
        if hrs < last_hrs:
            raise DoubleSignRefused(
                f"refusing to sign at height/round/step {hrs}: already signed at {last_hrs}"
            )
        if hrs == last_hrs:
            if payload == last.sign_payload:
                return last.sign_payload, last.signature
            if _same_but_timestamp(payload, last.sign_payload):
                return last.sign_payload, last.signature
            raise DoubleSignRefused(f"refusing to sign conflicting data at height/round/step {hrs}")
        signature = self.key.sign_raw(sign_bytes(domain, self.chain_id, payload))
        new_state = LastSignState(height, round_, step, payload, signature)
        # Persist first: a signature is released only once it is on disk.
        self.store.save(new_state)
        self._last = new_state
        return payload, signature


def _fields(payload: bytes) -> list[object]:
    raw = unpack_raw(payload)
    if type(raw) is not list:
        raise SignerStateCorrupt("stored sign payload is not an array")
    return list(raw)


def _timestamp_of(payload: bytes) -> int:
    value = _fields(payload)[_TIMESTAMP_INDEX]
    if type(value) is not int:
        raise SignerStateCorrupt("stored sign payload has no integer timestamp")
    return value


def _same_but_timestamp(a: bytes, b: bytes) -> bool:
    """Return True when two payloads differ at most in their timestamp."""
    with contextlib.suppress(ConsensusError, SignerStateCorrupt, IndexError):
        fa, fb = _fields(a), _fields(b)
        if len(fa) != len(fb) or len(fa) <= _TIMESTAMP_INDEX:
            return False
        fa[_TIMESTAMP_INDEX] = fb[_TIMESTAMP_INDEX] = 0
        return fa == fb
    return False
