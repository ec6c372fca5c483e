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
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Protocol

from consensus.codec import Encodable, unpack_raw
from consensus.crypto import Domain, PrivateKey, sign_bytes
from consensus.errors import ConsensusError
from consensus.hashing import hash32
from consensus.votes import Proposal, Vote, VoteType
from node.errors import DoubleSignRefused, SignerError, SignerStateCorrupt

STEP_PROPOSE: Final = 1
STEP_PREVOTE: Final = 2
STEP_PRECOMMIT: Final = 3

_MAGIC: Final = b"cstake-signer-v1\n"
_DIGEST_LEN: Final = 32
#: Index of the timestamp in the sign payload of both votes and proposals.
_TIMESTAMP_INDEX: Final = 5


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
