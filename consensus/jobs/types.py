"""Job marketplace containers: the transaction bodies (kinds 16-20) and the job records in state.

A job is bought with ``SubmitJob``: its kind, a kind-specific ``spec`` (sizes),
inputs inline or by seed (with the hash of the inputs either way), the smallest
verified units a provider NFT must have, a bid per work unit, an escrow, a
redundancy (independent providers whose results must agree) and a deadline
per assignment. The state keeps one ``Job`` record per job with one
``JobSlot`` per provider; a slot under dispute holds a ``Dispute``.

Every result is a Merkle root over the job's *leaves* (matrix rows, or the
states of a multi-step computation), so openings, fraud proofs and bisection
steps are all ``LeafOpening`` lists checked against that root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from consensus.codec import Encodable
from consensus.errors import ValidationError
from consensus.hashing import HASH_LEN
from consensus.records import validate_amount

#: Most leaves opened in one transaction.
MAX_OPENINGS = 256
#: Longest Merkle path (2^32 leaves).
MAX_PATH = 32
#: Largest leaf (one matrix row of 4096 int32 entries, or one state).
MAX_LEAF_BYTES = 16 << 10


def _validate_hash(value: bytes, what: str) -> None:
    if type(value) is not bytes or len(value) != HASH_LEN:
        raise ValidationError(f"{what} must be a {HASH_LEN}-byte hash")


class JobStatus:
    """Life cycle of a job."""

    SUBMITTED = 0
    ASSIGNED = 1
    COMMITTED = 2
    CHALLENGED = 3
    SETTLED = 4
    FAILED = 5
    CANCELLED = 6

    NAMES: ClassVar[dict[int, str]] = {
        0: "submitted",
        1: "assigned",
        2: "committed",
        3: "challenged",
        4: "settled",
        5: "failed",
        6: "cancelled",
    }
    FINAL: ClassVar[tuple[int, ...]] = (4, 5, 6)


class SlotStatus:
    """Life cycle of one provider's share of a job."""

    EMPTY = 0
    ASSIGNED = 1
    COMMITTED = 2
    OPENED = 3
    DISPUTED = 4
    DONE = 5
    LOST = 6

    NAMES: ClassVar[dict[int, str]] = {
        0: "empty",
        1: "assigned",
        2: "committed",
        3: "opened",
        4: "disputed",
        5: "done",
        6: "lost",
    }


class ChallengeAction:
    """What a ``JobChallenge`` transaction does."""

    #: A fraud proof: opened leaves that the kind's check convicts (one round).
    FRAUD = 1
    #: Start a dispute: a bisection over the states, or a Merkle descent over the rows.
    START = 2
    #: The provider reveals the midpoint state, or the disputed node's children, or the leaf.
    REVEAL = 3
    #: The challenger agrees (1) or disagrees (0) with the revealed midpoint; in a descent,
    #: 1 keeps the left child (the right one is disputed) and 0 disputes the left one.
    CHOOSE = 4

    ALL: ClassVar[tuple[int, ...]] = (1, 2, 3, 4)


@dataclass(frozen=True, slots=True)
class LeafOpening(Encodable):
    """One committed leaf with its Merkle path (``consensus.poc.merkle`` layout)."""

    index: int
    leaf: bytes
    path: tuple[bytes, ...]

    def validate_basic(self) -> None:
        validate_amount(self.index, "opening.index", positive=False)
        if len(self.leaf) > MAX_LEAF_BYTES:
            raise ValidationError(f"an opened leaf is at most {MAX_LEAF_BYTES} bytes")
        if len(self.path) > MAX_PATH:
            raise ValidationError(f"a Merkle path has at most {MAX_PATH} hashes")
        for h in self.path:
            _validate_hash(h, "opening.path entry")


def _validate_openings(openings: tuple[LeafOpening, ...]) -> None:
    if len(openings) > MAX_OPENINGS:
        raise ValidationError(f"at most {MAX_OPENINGS} leaves are opened at once")
    for o in openings:
        o.validate_basic()


# --- transaction bodies -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitJob(Encodable):
    """Buy verified compute: a job of ``job_kind`` paid from ``escrow``."""

    job_kind: int
    #: Kind-specific sizes (canonical encoding of the kind's spec).
    spec: bytes
    #: Inline inputs (empty when generated from ``input_seed``).
    inputs: bytes
    #: 32-byte seed the inputs are generated from (empty with inline inputs).
    input_seed: bytes
    #: SHA-256 over the inputs (the chain checks it against the inputs it derives).
    input_hash: bytes
    #: Smallest verified units of a provider NFT.
    min_units: int
    #: Most the submitter pays per work unit per provider.
    bid_per_unit: int
    #: Tokens locked for the job; at least bid x work units x redundancy.
    escrow: int
    #: Independent providers whose results must agree (1-8).
    redundancy: int
    #: Blocks an assigned provider has to commit and open its result.
    deadline_blocks: int

    def validate_basic(self) -> None:
        if self.job_kind <= 0:
            raise ValidationError("submit_job.job_kind must be positive")
        if bool(self.inputs) == bool(self.input_seed):
            raise ValidationError("submit_job needs inline inputs or a 32-byte input seed, not both")
        if self.input_seed and len(self.input_seed) != HASH_LEN:
            raise ValidationError("submit_job.input_seed must be 32 bytes")
        _validate_hash(self.input_hash, "submit_job.input_hash")
        validate_amount(self.min_units, "submit_job.min_units", positive=False)
        validate_amount(self.bid_per_unit, "submit_job.bid_per_unit")
        validate_amount(self.escrow, "submit_job.escrow")
        if not 1 <= self.redundancy <= 8:
            raise ValidationError("submit_job.redundancy must be in [1, 8]")
        # Commit, then the next block fixes the samples, then open: three blocks at least.
        if not 3 <= self.deadline_blocks <= 1 << 20:
            raise ValidationError("submit_job.deadline_blocks must be in [3, 2^20]")


@dataclass(frozen=True, slots=True)
class JobResult(Encodable):
    """A provider's result: first the commitment (no openings), then the sampled openings."""

    job_id: bytes
    nft_id: int
    #: Merkle root over the result's leaves.
    result_root: bytes
    #: Empty for the commitment; the sampled leaves with paths for the openings.
    openings: tuple[LeafOpening, ...]

    def validate_basic(self) -> None:
        _validate_hash(self.job_id, "job_result.job_id")
        validate_amount(self.nft_id, "job_result.nft_id", positive=False)
        _validate_hash(self.result_root, "job_result.result_root")
        _validate_openings(self.openings)


@dataclass(frozen=True, slots=True)
class JobChallenge(Encodable):
    """Dispute a provider's result: a fraud proof, or one step of a bisection."""

    job_id: bytes
    nft_id: int
    #: ChallengeAction code.
    action: int
    #: CHOOSE only: 1 agrees with the revealed midpoint, 0 disagrees.
    agree: int
    #: FRAUD: the leaves proving the fault; REVEAL: the midpoint leaf.
    openings: tuple[LeafOpening, ...]

    def validate_basic(self) -> None:
        _validate_hash(self.job_id, "job_challenge.job_id")
        validate_amount(self.nft_id, "job_challenge.nft_id", positive=False)
        if self.action not in ChallengeAction.ALL:
            raise ValidationError("job_challenge.action must be 1 (fraud), 2 (start), 3 (reveal) or 4 (choose)")
        if self.agree not in (0, 1):
            raise ValidationError("job_challenge.agree is 0 or 1")
        _validate_openings(self.openings)


@dataclass(frozen=True, slots=True)
class CancelJob(Encodable):
    """Cancel a job no provider was assigned to, refunding its escrow."""

    job_id: bytes

    def validate_basic(self) -> None:
        _validate_hash(self.job_id, "cancel_job.job_id")


@dataclass(frozen=True, slots=True)
class SetPrice(Encodable):
    """Set the asking price per work unit of a compute NFT (the sender owns it)."""

    nft_id: int
    price_per_unit: int
    #: 1 to take jobs, 0 to stop being assigned new ones.
    offering: int

    def validate_basic(self) -> None:
        validate_amount(self.nft_id, "set_price.nft_id", positive=False)
        validate_amount(self.price_per_unit, "set_price.price_per_unit")
        if self.offering not in (0, 1):
            raise ValidationError("set_price.offering is 0 or 1")


# --- records in state ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderPrice(Encodable):
    """A compute NFT's offer (absent: the chain's ``job_default_price``, offering)."""

    nft_id: int
    price_per_unit: int
    offering: int


@dataclass(frozen=True, slots=True)
class Dispute(Encodable):
    """A bisection between a challenger and a slot's provider over the committed states.

    Both agree on the state at ``lo`` and disagree on the one at ``hi``; each
    round the provider reveals the midpoint and the challenger says whether
    it agrees, halving the range until one step is left, which the chain
    re-executes.

    A Merkle descent (``consensus.jobs.descent``) uses the same record: ``lo``
    is the disputed node's level, ``hi`` its index, ``hi_leaf`` its hash and
    ``mid_leaf`` its two revealed children.
    """

    challenger: bytes
    lo: int
    hi: int
    lo_leaf: bytes
    hi_leaf: bytes
    #: The revealed midpoint (empty while the provider has to reveal it).
    mid_leaf: bytes
    #: 0: the provider must reveal; 1: the challenger must choose.
    turn: int
    #: Last height at which the party whose turn it is may move.
    turn_deadline: int
    #: Rounds played (the start counts as one, each choice as one).
    rounds: int


@dataclass(frozen=True, slots=True)
class JobSlot(Encodable):
    """One provider's share of a job."""

    index: int
    #: SlotStatus code.
    status: int
    nft_id: int
    #: NFT owner at assignment: paid, and may post the result.
    provider: bytes
    #: Validator the NFT was bound to at assignment (slashed for a proven fault).
    validator: bytes
    #: Asking price per work unit at assignment (paid per unit on settlement).
    price: int
    assigned_height: int
    #: Last height for the commitment and the openings.
    deadline_height: int
    result_root: bytes
    committed_height: int
    #: Sample seed fixed by the first block after the commitment (empty before).
    sample_seed: bytes
    openings: tuple[LeafOpening, ...]
    #: Last height at which the opened result may be challenged.
    window_end: int
    dispute: Dispute | None
    #: Account that signed the result commitment (b"" before it): the slot's
    #: validator's stake answers for the result only if this is the validator.
    committer: bytes


@dataclass(frozen=True, slots=True)
class Job(Encodable):
    """A job and its whole accounting: ``escrow = paid + verifier + burned + refunded + locked``."""

    id: bytes
    #: Submission order (the open-jobs index, and so assignment priority, follows it).
    seq: int
    submitter: bytes
    job_kind: int
    spec: bytes
    inputs: bytes
    input_seed: bytes
    input_hash: bytes
    #: Work size in units (from the kind and the spec).
    work_units: int
    min_units: int
    bid_per_unit: int
    #: Tokens escrowed at submission.
    escrow: int
    redundancy: int
    deadline_blocks: int
    #: JobStatus code.
    status: int
    submitted_height: int
    #: The job fails (refund) if not settled at this height.
    expires_height: int
    slots: tuple[JobSlot, ...]
    #: NFTs never assigned to this job again (missed or faulty).
    excluded: tuple[int, ...]
    #: The agreed result root once settled.
    result_root: bytes
    settled_height: int
    #: Escrow still locked.
    locked: int
    #: Paid to providers.
    paid: int
    #: Paid as verifier shares.
    verifier_paid: int
    #: Burned as the protocol fee.
    burned: int
    #: Returned to the submitter.
    refunded: int


@dataclass(frozen=True, slots=True)
class JobMeta(Encodable):
    """Marketplace counters."""

    #: Next submission sequence number.
    next_seq: int
    #: Jobs not yet settled, failed or cancelled.
    open_jobs: int
