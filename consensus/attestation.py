"""Compute attestations: a validator's signed report of the hardware behind one of its NFTs.

An ``Attestation`` names the NFT, its bound validator, the hardware spec, the
units the node measured on its last challenge (or benchmark), and the height
it was made at. It is signed with the **bound validator's consensus key**
under ``Domain.ATTESTATION``: that key is in state (the validator record),
so every node can check it; account keys are not kept in state. Attestations
are informational — voting power uses only verified units from challenges —
but they are carried in blocks so the chain keeps, per NFT, the freshest
report its validator stands behind (``Keys.attestation(nft_id)``).

Rules (``validate_attestation``), checked on gossip and again in blocks:
the NFT exists and is bound to ``validator``; the signature verifies under
that validator's consensus key; the height is not in the future and at most
``attestation_max_age_blocks`` old; and at most one attestation per NFT per
``attestation_min_interval_blocks`` (the rate limit), newer than the one kept.
A block carrying an attestation that fails them, or two for one NFT, is invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.blocks import Block
from consensus.codec import Encodable
from consensus.crypto import SIGNATURE_LEN, Domain, PrivateKey, is_valid_signature, sign_bytes
from consensus.errors import ConsensusError, DecodeError, InvalidBlock, ValidationError
from consensus.params import Params
from consensus.records import HardwareSpec, validate_address
from consensus.state import Keys, State

MAX_ATTESTATIONS_PER_BLOCK = 256
MAX_ATTESTATION_BYTES = 1024


class AttestationError(ConsensusError):
    """An attestation breaks a rule; ``stale`` ones are merely useless, the others are bad."""

    def __init__(self, message: str, *, stale: bool = False, forged: bool = False) -> None:
        super().__init__(message)
        self.stale = stale
        #: The signature fails under the key our state names: proof of a bad sender.
        self.forged = forged


@dataclass(frozen=True, slots=True)
class Attestation(Encodable):
    """A signed report of one compute NFT's hardware and measured units."""

    MAX_BYTES = MAX_ATTESTATION_BYTES

    nft_id: int
    #: The bound validator whose consensus key signs.
    validator: bytes
    spec: HardwareSpec
    #: Units the node measured (its last challenge's rate, or its benchmark).
    measured_units: int
    #: Height of the latest block the node had committed when it signed.
    height: int
    signature: bytes

    def sign_payload(self) -> bytes:
        """The canonical bytes the signature covers (the record with an empty signature)."""
        return Attestation(self.nft_id, self.validator, self.spec, self.measured_units,
                           self.height, b"").encode()

    def validate_basic(self) -> None:
        """Raise ValidationError unless the attestation is well formed."""
        for name in ("nft_id", "measured_units", "height"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value < 1 << 63:
                raise ValidationError(f"attestation.{name} must be a non-negative 63-bit integer")
        validate_address(self.validator, "attestation.validator")
        self.spec.validate_basic()
        if len(self.signature) != SIGNATURE_LEN:
            raise ValidationError(f"attestation.signature must be {SIGNATURE_LEN} bytes")


def make_attestation(
    key: PrivateKey, chain_id: str, *, nft_id: int, validator: bytes, spec: HardwareSpec,
    measured_units: int, height: int,
) -> Attestation:
    """Return an attestation signed with the validator's consensus ``key``."""
    unsigned = Attestation(nft_id, validator, spec, measured_units, height, b"")
    return Attestation(nft_id, validator, spec, measured_units, height,
                       key.sign(Domain.ATTESTATION, chain_id, unsigned.sign_payload()))


def decode_attestation(raw: bytes) -> Attestation:
    """Decode and check the shape of an attestation; raise AttestationError."""
    try:
        att = Attestation.decode(raw)
        att.validate_basic()
    except (DecodeError, ValidationError) as exc:
        raise AttestationError(f"malformed attestation: {exc}") from exc
    return att


def get_attestation(state: State, nft_id: int) -> Attestation | None:
    """Return the freshest attestation the chain kept for ``nft_id``."""
    return state.get_record(Keys.attestation(nft_id), Attestation)


def validate_attestation(
    state: State, att: Attestation, chain_id: str, height: int, params: Params
) -> None:
    """Raise AttestationError unless ``att`` may enter a block at ``height`` over ``state``."""
    if att.height >= height:
        raise AttestationError(f"attestation height {att.height} is not below {height}")
    if att.height + params.attestation_max_age_blocks < height:
        raise AttestationError(
            f"attestation from height {att.height} is older than "
            f"{params.attestation_max_age_blocks} blocks", stale=True,
        )
    nft = state.get_nft(att.nft_id)
    if nft is None or nft.bound_validator != att.validator:
        raise AttestationError(f"compute NFT {att.nft_id} is not bound to the attesting validator")
    validator = state.get_validator(att.validator)
    if validator is None:
        raise AttestationError("the attesting validator does not exist")
    msg = sign_bytes(Domain.ATTESTATION, chain_id, att.sign_payload())
    if not is_valid_signature(validator.consensus_pubkey, msg, att.signature):
        raise AttestationError(
            "attestation signature does not verify under the validator's key", forged=True
        )
    kept = get_attestation(state, att.nft_id)
    if kept is not None and att.height < kept.height + params.attestation_min_interval_blocks:
        raise AttestationError(
            f"NFT {att.nft_id} was attested at height {kept.height}; the next may be from height "
            f"{kept.height + params.attestation_min_interval_blocks}", stale=True,
        )


def process_block_attestations(state: State, block: Block, chain_id: str, params: Params) -> None:
    """Check every attestation the block carries and keep each as its NFT's latest."""
    if len(block.attestations) > MAX_ATTESTATIONS_PER_BLOCK:
        raise InvalidBlock(f"more than {MAX_ATTESTATIONS_PER_BLOCK} attestations in one block")
    seen: set[int] = set()
    for index, raw in enumerate(block.attestations):
        try:
            att = decode_attestation(raw)
            if att.nft_id in seen:
                raise AttestationError(f"a second attestation for NFT {att.nft_id}")
            validate_attestation(state, att, chain_id, block.header.height, params)
        except AttestationError as exc:
            raise InvalidBlock(f"attestation {index} is invalid: {exc}") from exc
        seen.add(att.nft_id)
        state.put_record(Keys.attestation(att.nft_id), att)
