"""Transactions: the signed envelope, the common payload, and one body type per kind.

Wire form of a transaction (``SignedTx``) is the canonical array
``[payload_bytes, signature]``. ``payload_bytes`` is the canonical encoding of
``TxPayload`` and is exactly what the signature covers (under the ``TX`` domain
tag and the chain id), so nothing is re-encoded before verifying. The
transaction id is SHA-256 of the whole wire form.

``TxPayload.body`` is the canonical encoding of the body type that ``kind``
names (see ``BODY_TYPES``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from consensus.codec import Encodable, Raw, pack_raw, unpack_raw
from consensus.crypto import PUBKEY_LEN, SIGNATURE_LEN, Domain, PrivateKey, compute_address
from consensus.errors import DecodeError, ValidationError
from consensus.hashing import HASH_LEN, hash32
from consensus.jobs.types import CancelJob as CancelJob
from consensus.jobs.types import JobChallenge as JobChallenge
from consensus.jobs.types import JobResult as JobResult
from consensus.jobs.types import SetPrice as SetPrice
from consensus.jobs.types import SubmitJob as SubmitJob
from consensus.poc.types import PocCommitment, PocFraudProof, PocOpenings
from consensus.records import HardwareSpec, validate_address, validate_amount

MAX_MONIKER_BYTES = 64
MAX_EVIDENCE_BYTES = 16 << 10
MAX_CHAIN_ID_LEN = 50


class TxKind:
    """Transaction kind codes."""

    TRANSFER = 1
    CREATE_VALIDATOR = 2
    BOND = 3
    UNBOND = 4
    DELEGATE = 5
    UNDELEGATE = 6
    REGISTER_COMPUTE = 7
    TRANSFER_NFT = 8
    BIND_NFT = 9
    UNBIND_NFT = 10
    UNJAIL = 11
    SUBMIT_EVIDENCE = 12
    POC_COMMIT = 13
    POC_OPEN = 14
    FRAUD_PROOF = 15
    SUBMIT_JOB = 16
    JOB_RESULT = 17
    JOB_CHALLENGE = 18
    CANCEL_JOB = 19
    SET_PRICE = 20
    ACCEPT_NFT = 21
    WITHDRAW_REWARDS = 22
    RETIRE_NFT = 23
    EDIT_VALIDATOR = 24

    NAMES: ClassVar[dict[int, str]] = {
        1: "transfer",
        2: "create_validator",
        3: "bond",
        4: "unbond",
        5: "delegate",
        6: "undelegate",
        7: "register_compute",
        8: "transfer_nft",
        9: "bind_nft",
        10: "unbind_nft",
        11: "unjail",
        12: "submit_evidence",
        13: "poc_commit",
        14: "poc_open",
        15: "fraud_proof",
        16: "submit_job",
        17: "job_result",
        18: "job_challenge",
        19: "cancel_job",
        20: "set_price",
        21: "accept_nft",
        22: "withdraw_rewards",
        23: "retire_nft",
        24: "edit_validator",
    }


#: Chain ids already found well formed. Every transaction's checks start with its chain
#: id, and the per-character test was a tenth of a transfer's execution; a node sees one
#: chain id (a few more in tests). Only valid ids enter, and at most this many.
_VALID_CHAIN_IDS: dict[str, None] = {}
_VALID_CHAIN_IDS_MAX = 64


def validate_chain_id(chain_id: str) -> None:
    """Raise ValidationError unless ``chain_id`` is 1-50 chars of [a-z0-9-]."""
    if chain_id in _VALID_CHAIN_IDS:
        return
    ok = 0 < len(chain_id) <= MAX_CHAIN_ID_LEN and all(
        c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in chain_id
    )
    if ok:
        if len(_VALID_CHAIN_IDS) >= _VALID_CHAIN_IDS_MAX:
            _VALID_CHAIN_IDS.pop(next(iter(_VALID_CHAIN_IDS)))
        _VALID_CHAIN_IDS[chain_id] = None
    else:
        raise ValidationError(
            f"chain id must be 1-{MAX_CHAIN_ID_LEN} characters of lowercase letters, digits and '-'"
        )


def _validate_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_LEN:
        raise ValidationError(f"{what} must be a {HASH_LEN}-byte hash")


# --- bodies -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transfer(Encodable):
    """Move ``amount`` tokens from the sender to ``to``."""

    to: bytes
    amount: int

    def validate_basic(self) -> None:
        validate_address(self.to, "transfer.to")
        validate_amount(self.amount, "transfer.amount")


@dataclass(frozen=True, slots=True)
class CreateValidator(Encodable):
    """Make the sender a validator with a consensus key and an initial self-bond."""

    consensus_pubkey: bytes
    self_bond: int
    commission_bps: int
    moniker: str

    def validate_basic(self) -> None:
        if len(self.consensus_pubkey) != PUBKEY_LEN:
            raise ValidationError("create_validator.consensus_pubkey must be 32 bytes")
        validate_amount(self.self_bond, "create_validator.self_bond")
        if not 0 <= self.commission_bps <= 10_000:
            raise ValidationError("create_validator.commission_bps must be in [0, 10000]")
        if len(self.moniker.encode("utf-8")) > MAX_MONIKER_BYTES:
            raise ValidationError(f"create_validator.moniker is at most {MAX_MONIKER_BYTES} bytes")


#: ``EditValidator.commission_bps`` that leaves the commission as it is.
KEEP_COMMISSION = 0xFFFF


@dataclass(frozen=True, slots=True)
class EditValidator(Encodable):
    """Change the sender's validator's public moniker and/or commission.

    ``moniker`` "" (empty) keeps the current one; ``commission_bps``
    ``KEEP_COMMISSION`` keeps the current rate. At least one must change.
    """

    moniker: str
    commission_bps: int

    def validate_basic(self) -> None:
        if len(self.moniker.encode("utf-8")) > MAX_MONIKER_BYTES:
            raise ValidationError(f"edit_validator.moniker is at most {MAX_MONIKER_BYTES} bytes")
        keep = self.commission_bps == KEEP_COMMISSION
        if not keep and not 0 <= self.commission_bps <= 10_000:
            raise ValidationError(f"edit_validator.commission_bps must be in [0, 10000] or {KEEP_COMMISSION} (keep)")
        if keep and not self.moniker:
            raise ValidationError("edit_validator changes nothing: give a moniker, a commission or both")


@dataclass(frozen=True, slots=True)
class Bond(Encodable):
    """Add ``amount`` to the sender's own validator's self-bond."""

    amount: int

    def validate_basic(self) -> None:
        validate_amount(self.amount, "bond.amount")


@dataclass(frozen=True, slots=True)
class Unbond(Encodable):
    """Start unbonding ``amount`` of the sender's self-bond."""

    amount: int

    def validate_basic(self) -> None:
        validate_amount(self.amount, "unbond.amount")


@dataclass(frozen=True, slots=True)
class Delegate(Encodable):
    """Bond ``amount`` of the sender's tokens to ``validator``."""

    validator: bytes
    amount: int

    def validate_basic(self) -> None:
        validate_address(self.validator, "delegate.validator")
        validate_amount(self.amount, "delegate.amount")


@dataclass(frozen=True, slots=True)
class Undelegate(Encodable):
    """Start unbonding ``amount`` of the sender's delegation to ``validator``."""

    validator: bytes
    amount: int

    def validate_basic(self) -> None:
        validate_address(self.validator, "undelegate.validator")
        validate_amount(self.amount, "undelegate.amount")


@dataclass(frozen=True, slots=True)
class WithdrawRewards(Encodable):
    """Withdraw the sender's pending delegation rewards from ``validator`` (b"": from all)."""

    validator: bytes

    def validate_basic(self) -> None:
        if self.validator:
            validate_address(self.validator, "withdraw_rewards.validator")


@dataclass(frozen=True, slots=True)
class RegisterCompute(Encodable):
    """Mint a compute NFT for the sender with its claimed units and a collateral bond."""

    spec: HardwareSpec
    claimed_units: int
    collateral: int

    def validate_basic(self) -> None:
        self.spec.validate_basic()
        validate_amount(self.claimed_units, "register_compute.claimed_units")
        validate_amount(self.collateral, "register_compute.collateral")


@dataclass(frozen=True, slots=True)
class TransferNFT(Encodable):
    """Give compute NFT ``nft_id`` to ``to`` (it stays bound to its validator)."""

    nft_id: int
    to: bytes

    def validate_basic(self) -> None:
        validate_amount(self.nft_id, "transfer_nft.nft_id", positive=False)
        validate_address(self.to, "transfer_nft.to")


@dataclass(frozen=True, slots=True)
class BindNFT(Encodable):
    """Ask to bind compute NFT ``nft_id`` to ``validator``.

    The request takes effect when the validator's operator sends ``AcceptNFT``;
    an owner that is the validator's operator binds at once.
    """

    nft_id: int
    validator: bytes

    def validate_basic(self) -> None:
        validate_amount(self.nft_id, "bind_nft.nft_id", positive=False)
        validate_address(self.validator, "bind_nft.validator")


@dataclass(frozen=True, slots=True)
class UnbindNFT(Encodable):
    """Unbind compute NFT ``nft_id`` (owner or bound validator), or cancel its pending request (owner)."""

    nft_id: int

    def validate_basic(self) -> None:
        validate_amount(self.nft_id, "unbind_nft.nft_id", positive=False)


@dataclass(frozen=True, slots=True)
class AcceptNFT(Encodable):
    """The sender's validator accepts the pending binding of compute NFT ``nft_id``."""

    nft_id: int

    def validate_basic(self) -> None:
        validate_amount(self.nft_id, "accept_nft.nft_id", positive=False)


@dataclass(frozen=True, slots=True)
class RetireNFT(Encodable):
    """Retire compute NFT ``nft_id``: unbound at once, its collateral returned after ``unbonding_blocks``."""

    nft_id: int

    def validate_basic(self) -> None:
        validate_amount(self.nft_id, "retire_nft.nft_id", positive=False)


@dataclass(frozen=True, slots=True)
class Unjail(Encodable):
    """Ask to return the sender's validator from jail (after ``jailed_until``)."""

    def validate_basic(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class SubmitEvidence(Encodable):
    """Submit evidence of a double-sign; the sender is the whistleblower."""

    #: 1 duplicate vote, 2 conflicting proposal.
    evidence_kind: int
    #: Canonical encoding of the evidence object.
    evidence: bytes

    def validate_basic(self) -> None:
        if self.evidence_kind not in (1, 2):
            raise ValidationError("submit_evidence.evidence_kind must be 1 or 2")
        if not 0 < len(self.evidence) <= MAX_EVIDENCE_BYTES:
            raise ValidationError(f"submit_evidence.evidence must be 1..{MAX_EVIDENCE_BYTES} bytes")


# Kinds 13-15 carry the proof-of-compute containers themselves (consensus.poc.types):
# PocCommitment (Merkle root over the rows of C), PocOpenings (the sampled rows with
# their paths, ~7 MB at most) and PocFraudProof (one committed row that is wrong; the
# sender is the whistleblower). The old names stay as aliases.
PocCommit = PocCommitment
PocOpen = PocOpenings
FraudProof = PocFraudProof


# Kinds 16-20 are the job marketplace's bodies (consensus/jobs/types.py, docs/jobs.md).
BODY_TYPES: dict[int, type[Encodable]] = {
    TxKind.TRANSFER: Transfer,
    TxKind.CREATE_VALIDATOR: CreateValidator,
    TxKind.BOND: Bond,
    TxKind.UNBOND: Unbond,
    TxKind.DELEGATE: Delegate,
    TxKind.UNDELEGATE: Undelegate,
    TxKind.REGISTER_COMPUTE: RegisterCompute,
    TxKind.TRANSFER_NFT: TransferNFT,
    TxKind.BIND_NFT: BindNFT,
    TxKind.UNBIND_NFT: UnbindNFT,
    TxKind.UNJAIL: Unjail,
    TxKind.SUBMIT_EVIDENCE: SubmitEvidence,
    TxKind.POC_COMMIT: PocCommitment,
    TxKind.POC_OPEN: PocOpenings,
    TxKind.FRAUD_PROOF: PocFraudProof,
    TxKind.SUBMIT_JOB: SubmitJob,
    TxKind.JOB_RESULT: JobResult,
    TxKind.JOB_CHALLENGE: JobChallenge,
    TxKind.CANCEL_JOB: CancelJob,
    TxKind.SET_PRICE: SetPrice,
    TxKind.ACCEPT_NFT: AcceptNFT,
    TxKind.WITHDRAW_REWARDS: WithdrawRewards,
    TxKind.RETIRE_NFT: RetireNFT,
    TxKind.EDIT_VALIDATOR: EditValidator,
}
KIND_OF_BODY: dict[type[Encodable], int] = {v: k for k, v in BODY_TYPES.items()}


# --- the envelope ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxPayload(Encodable):
    """What a transaction's signature covers."""

    chain_id: str
    #: Sender address; must be the address of ``pubkey``.
    sender: bytes
    #: Sender's Ed25519 public key.
    pubkey: bytes
    #: Must equal the sender account's nonce.
    nonce: int
    #: Tokens paid to the chain for inclusion.
    fee: int
    kind: int
    #: Canonical encoding of the body for ``kind``.
    body: bytes

    def validate_basic(self) -> None:
        """Raise ValidationError unless the payload is well formed (body included)."""
        validate_chain_id(self.chain_id)
        validate_address(self.sender, "tx.sender")
        if len(self.pubkey) != PUBKEY_LEN:
            raise ValidationError("tx.pubkey must be 32 bytes")
        if compute_address(self.pubkey) != self.sender:
            raise ValidationError("tx.sender is not the address of tx.pubkey")
        validate_amount(self.nonce, "tx.nonce", positive=False)
        validate_amount(self.fee, "tx.fee", positive=False)
        self.decode_body().validate_basic()  # type: ignore[attr-defined]

    def decode_body(self) -> Encodable:
        """Return the decoded body, raising ValidationError for an unknown kind."""
        return decode_tx_body(self.kind, self.body)


class _BodyMemo:
    """Recently decoded transaction bodies, by kind and canonical bytes.

    A node decodes each transaction's body several times (gossip validation,
    mempool admission, its cost, the proposer's dry run, block execution): 3 µs
    each for a transfer, but 2.6 ms for a 785 KB proof-of-compute openings chunk.
    The decoding is a pure function of the bytes and bodies are immutable, so the
    result is shared; a body that does not decode is not remembered. Bounded in
    entries and in body bytes, oldest forgotten first. consensus/ takes no locks:
    the node decodes transactions on its event loop only (the prover's threads
    and processes never decode them).
    """

    MAX_ENTRIES = 8192
    MAX_BYTES = 32 << 20

    def __init__(self) -> None:
        self._items: dict[tuple[int, bytes], Encodable] = {}
        self._bytes = 0

    def get(self, kind: int, body: bytes) -> Encodable | None:
        return self._items.get((kind, body))

    def put(self, kind: int, body: bytes, value: Encodable) -> None:
        if len(body) > self.MAX_BYTES // 4:
            return
        key = (kind, body)
        if key in self._items:
            return
        self._items[key] = value
        self._bytes += len(body)
        while len(self._items) > self.MAX_ENTRIES or self._bytes > self.MAX_BYTES:
            old = next(iter(self._items))  # insertion order: the oldest
            del self._items[old]
            self._bytes -= len(old[1])


_BODY_MEMO = _BodyMemo()


def decode_tx_body(kind: int, body: bytes) -> Encodable:
    """Return ``body`` decoded as ``kind``'s body type; raise ValidationError if it is not one."""
    hit = _BODY_MEMO.get(kind, body)
    if hit is not None:
        return hit
    body_type = BODY_TYPES.get(kind)
    if body_type is None:
        raise ValidationError(f"unknown transaction kind {kind}")
    try:
        value = body_type.decode(body)
    except DecodeError as exc:
        raise ValidationError(f"bad {TxKind.NAMES[kind]} body: {exc}") from exc
    _BODY_MEMO.put(kind, body, value)
    return value


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A transaction as it travels: payload bytes, signature, and their decoded form."""

    payload_bytes: bytes
    signature: bytes
    payload: TxPayload = field(compare=False)
    #: SHA-256 of the wire form.
    tx_hash: bytes = field(compare=False)
    #: The wire form.
    raw: bytes = field(compare=False, repr=False)

    @classmethod
    def decode(cls, data: bytes, *, max_bytes: int = 64 << 10) -> SignedTx:
        """Decode a wire-form transaction strictly (no signature check)."""
        raw = unpack_raw(data, max_bytes=max_bytes)
        if type(raw) is not list or len(raw) != 2:
            raise DecodeError("a signed transaction is [payload, signature]")
        payload_bytes, signature = raw
        if type(payload_bytes) is not bytes or type(signature) is not bytes:
            raise DecodeError("a signed transaction holds two byte strings")
        if len(signature) != SIGNATURE_LEN:
            raise DecodeError(f"a transaction signature is {SIGNATURE_LEN} bytes")
        payload = TxPayload.decode(payload_bytes, max_bytes=max_bytes)
        return cls(payload_bytes, signature, payload, hash32(data), data)

    @classmethod
    def create(cls, key: PrivateKey, payload: TxPayload) -> SignedTx:
        """Sign ``payload`` with ``key`` and return the transaction."""
        payload_bytes = payload.encode()
        signature = key.sign(Domain.TX, payload.chain_id, payload_bytes)
        raw: Raw = [payload_bytes, signature]
        data = pack_raw(raw)
        return cls(payload_bytes, signature, payload, hash32(data), data)

    def encode(self) -> bytes:
        """Return the wire form."""
        return self.raw


def get_body_spend(body: Encodable) -> int:
    """Tokens a transaction body moves out of its sender's balance, besides the fee.

    The mempool counts it per sender queue; a wallet checks it against the balance before signing.
    """
    if isinstance(body, Transfer | Bond | Delegate):
        return body.amount
    if isinstance(body, CreateValidator):
        return body.self_bond
    if isinstance(body, RegisterCompute):
        return body.collateral
    if isinstance(body, SubmitJob):
        return body.escrow
    return 0


def build_tx(
    key: PrivateKey, chain_id: str, nonce: int, fee: int, body: Encodable
) -> SignedTx:
    """Build and sign a transaction carrying ``body`` from ``key``'s account."""
    kind = KIND_OF_BODY[type(body)]
    payload = TxPayload(
        chain_id=chain_id,
        sender=key.address(),
        pubkey=key.public_key.raw,
        nonce=nonce,
        fee=fee,
        kind=kind,
        body=body.encode(),
    )
    return SignedTx.create(key, payload)
