"""State records: the values the state transition keeps under its keys.

Every record is a frozen, canonically encoded dataclass. Addresses are 20
bytes; an absent optional address is ``b""``. Amounts are token base units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from consensus.codec import Encodable
from consensus.crypto import ADDRESS_LEN, PUBKEY_LEN
from consensus.errors import ValidationError

NO_ADDRESS = b""


class Fault:
    """Slashable faults (codes are stored in slashing records)."""

    DOUBLE_SIGN = 1
    DOWNTIME = 2
    FAULTY_COMPUTE = 3
    MISSED_CHALLENGE = 4
    JOB_FAULT = 5
    MISSED_JOB = 6

    NAMES: ClassVar[dict[int, str]] = {
        1: "double_sign",
        2: "downtime",
        3: "faulty_compute",
        4: "missed_challenge",
        5: "job_fault",
        6: "missed_job",
    }


class NFTStatus:
    """Life cycle of a compute NFT."""

    UNVERIFIED = 0
    ACTIVE = 1
    FAULTY = 2
    RETIRED = 3

    NAMES: ClassVar[dict[int, str]] = {0: "unverified", 1: "active", 2: "faulty", 3: "retired"}


class DeviceKind:
    """Kind of hardware behind a compute NFT."""

    CPU = 0
    GPU = 1

    NAMES: ClassVar[dict[int, str]] = {0: "cpu", 1: "gpu"}


def validate_address(value: bytes, what: str) -> None:
    """Raise ValidationError unless ``value`` is a 20-byte address."""
    if type(value) is not bytes or len(value) != ADDRESS_LEN:
        raise ValidationError(f"{what} must be a {ADDRESS_LEN}-byte address")


def validate_amount(value: int, what: str, *, positive: bool = True) -> None:
    """Raise ValidationError unless ``value`` is a (positive) 64-bit amount."""
    if type(value) is not int or value < 0 or value >= 1 << 64:
        raise ValidationError(f"{what} must be an integer in [0, 2^64)")
    if positive and value == 0:
        raise ValidationError(f"{what} must be positive")


@dataclass(frozen=True, slots=True)
class Account(Encodable):
    """A token account."""

    #: Spendable tokens.
    balance: int
    #: Number of transactions this account has had included (the next nonce).
    nonce: int


EMPTY_ACCOUNT = Account(balance=0, nonce=0)


@dataclass(frozen=True, slots=True)
class Validator(Encodable):
    """A validator: an operator account with a consensus key and bonded stake."""

    #: The operator's account address; the validator's identity everywhere.
    address: bytes
    #: Ed25519 key that signs votes and proposals.
    consensus_pubkey: bytes
    #: Total bonded tokens: the self-bond plus all delegations.
    stake: int
    #: The operator's own bonded tokens (part of ``stake``).
    self_bond: int
    #: Share of delegators' rewards kept by the operator (bps).
    commission_bps: int
    #: Human name shown in queries (not unique).
    moniker: str
    #: 1 while jailed (out of the active set).
    jailed: int
    #: Block time (ms) before which ``unjail`` is refused.
    jailed_until_ms: int
    #: 1 after a double-sign: jailed forever, never usable again.
    tombstoned: int
    #: Reputation in [0, 1,000,000]; scales compute rewards and job assignment.
    reputation: int
    #: Height at which the validator was created.
    created_height: int

    def validate_basic(self) -> None:
        """Raise ValidationError unless the record is well formed."""
        validate_address(self.address, "validator.address")
        if len(self.consensus_pubkey) != PUBKEY_LEN:
            raise ValidationError("validator.consensus_pubkey must be 32 bytes")
        if self.self_bond > self.stake:
            raise ValidationError("validator.self_bond exceeds its stake")


@dataclass(frozen=True, slots=True)
class Delegation(Encodable):
    """Tokens bonded by ``delegator`` to ``validator`` (the self-bond is a delegation too)."""

    delegator: bytes
    validator: bytes
    amount: int
    #: Bonded amount when rewards were last settled (``amount`` before the
    #: validator's slashes since then; see ``consensus.incentives``).
    start_amount: int = 0
    #: The validator's cumulative reward ratio (``RATIO_BYTES`` big-endian,
    #: scaled by ``REWARD_SCALE``) when rewards were last settled.
    start_ratio: bytes = b""
    #: Number of the validator's slash events when rewards were last settled.
    start_slash: int = 0


#: Fixed-point scale of reward ratios: tokens per bonded token, times 10^18.
REWARD_SCALE = 10**18
#: Width of an encoded ratio (unsigned big-endian).
RATIO_BYTES = 32


def encode_ratio(value: int) -> bytes:
    """Return a non-negative ratio as ``RATIO_BYTES`` big-endian bytes."""
    return value.to_bytes(RATIO_BYTES, "big")


def decode_ratio(data: bytes) -> int:
    """Return the ratio stored in ``data`` (b"" reads as 0)."""
    if data and len(data) != RATIO_BYTES:
        raise ValidationError(f"a reward ratio is {RATIO_BYTES} bytes")
    return int.from_bytes(data, "big")


@dataclass(frozen=True, slots=True)
class ValidatorRewards(Encodable):
    """A validator's lazy delegator-reward accounting (F1 distribution)."""

    #: Cumulative delegator reward per bonded token, scaled by ``REWARD_SCALE``
    #: (``RATIO_BYTES`` big-endian).
    ratio: bytes
    #: Allocated but not yet expressed in ``ratio``: scaled tokens (below the stake).
    carry: bytes
    #: Tokens allocated to the delegators and not yet withdrawn (part of supply).
    outstanding: int
    #: Number of slash events recorded for this validator.
    slash_count: int


EMPTY_VALIDATOR_REWARDS = ValidatorRewards(b"", b"", 0, 0)


@dataclass(frozen=True, slots=True)
class SlashEvent(Encodable):
    """A slash of a validator's delegations, as the reward computation needs it."""

    #: The validator's cumulative ratio when the slash happened.
    ratio: bytes
    #: Fraction of every delegation taken (``amount * slash_bps // BPS``).
    slash_bps: int
    height: int


@dataclass(frozen=True, slots=True)
class UnbondingEntry(Encodable):
    """Tokens leaving a bond; still slashable for faults before ``creation_height``."""

    delegator: bytes
    validator: bytes
    #: Tokens still to be returned (reduced by slashes).
    amount: int
    #: Height at which unbonding began.
    creation_height: int
    #: Height at whose end the tokens return to the delegator.
    completion_height: int
    #: Unique sequence number (orders entries maturing at one height).
    seq: int


@dataclass(frozen=True, slots=True)
class HardwareSpec(Encodable):
    """The hardware a compute NFT stands for, as reported by ``cstake bench``."""

    #: DeviceKind code.
    device_kind: int
    #: Model name (CPU or GPU), at most 128 bytes.
    model: str
    #: CPU cores or GPU streaming multiprocessors.
    cores: int
    #: Memory in MiB.
    memory_mb: int

    def validate_basic(self) -> None:
        """Raise ValidationError unless the spec is well formed."""
        if self.device_kind not in DeviceKind.NAMES:
            raise ValidationError("spec.device_kind must be 0 (cpu) or 1 (gpu)")
        if len(self.model.encode("utf-8")) > 128:
            raise ValidationError("spec.model is at most 128 bytes")
        if not 0 < self.cores < 1 << 20:
            raise ValidationError("spec.cores must be positive")
        if not 0 <= self.memory_mb < 1 << 40:
            raise ValidationError("spec.memory_mb out of range")


@dataclass(frozen=True, slots=True)
class ComputeNFT(Encodable):
    """Tokenised hardware: claimed compute becomes verified through challenges."""

    id: int
    owner: bytes
    #: Validator address this NFT counts toward, or b"" when unbound. Set only
    #: with the validator's consent: its operator's ``accept_nft`` (or its own
    #: ``bind_nft`` when the owner is that operator), or at genesis.
    bound_validator: bytes
    spec: HardwareSpec
    #: Units the owner claimed from its local benchmark (never counts toward power).
    claimed_units: int
    #: Units proven to the network (counts toward power at the next epoch).
    verified_units: int
    #: Bonded collateral, slashable for faulty or missed proofs.
    collateral: int
    #: NFTStatus code.
    status: int
    #: Height of the last passed challenge (0 if never).
    last_verified_height: int
    #: Height at which the NFT was minted.
    registered_height: int
    #: Validator the owner asked to bind to (``bind_nft``), awaiting that validator's
    #: ``accept_nft``; b"" when no request is pending. A pending request has no
    #: effect: no power, no challenge answers or liability, no jobs.
    pending_validator: bytes


@dataclass(frozen=True, slots=True)
class SlashingRecord(Encodable):
    """A slash that happened: kept in state forever and queryable."""

    height: int
    validator: bytes
    #: Fault code.
    fault: int
    #: Tokens taken from stake, delegations, unbonding entries and collateral.
    amount: int
    #: Hash identifying the fault (evidence hash, challenge id, ...); never slashed twice.
    evidence_hash: bytes
    #: Account paid the whistleblower share, or b"".
    whistleblower: bytes
    #: Tokens paid to the whistleblower (the rest of ``amount`` is burned).
    whistleblower_reward: int


@dataclass(frozen=True, slots=True)
class ChainMeta(Encodable):
    """Chain-wide counters kept in state."""

    #: Total tokens in existence (balances, stake, unbonding, collateral, escrow).
    total_supply: int
    #: Tokens ever minted after genesis.
    minted: int
    #: Tokens ever burned.
    burned: int
    #: Next compute NFT id.
    next_nft_id: int
    #: Next unbonding entry sequence number.
    next_unbonding_seq: int
    #: Next slashing record sequence number.
    next_slash_seq: int


@dataclass(frozen=True, slots=True)
class ChainHead(Encodable):
    """The last executed block, as the state remembers it."""

    height: int
    block_hash: bytes
    time_ms: int


@dataclass(frozen=True, slots=True)
class TxResult(Encodable):
    """Outcome of one included transaction: code 0 is success."""

    code: int
    log: str


@dataclass(frozen=True, slots=True)
class ChainInfo(Encodable):
    """Identity of the chain, fixed at genesis."""

    chain_id: str
    genesis_time_ms: int
