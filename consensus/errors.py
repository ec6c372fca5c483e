"""The consensus layer's error hierarchy: every rejection is a named, explained error.

Leaves are grouped under a few meaningful bases so callers can catch what they
can handle (a bad encoding, a bad signature, an invalid transaction) and let
everything else propagate.
"""

from __future__ import annotations


class ConsensusError(Exception):
    """Base of every error raised by consensus/."""


# --- encoding -------------------------------------------------------------


class DecodeError(ConsensusError):
    """Bytes are not a canonical, bounded encoding of the expected object."""


class EncodeError(ConsensusError):
    """A value cannot be canonically encoded (wrong type, out of range)."""


# --- keys and signatures --------------------------------------------------


class CryptoError(ConsensusError):
    """Base for key and signature problems."""


class InvalidSignature(CryptoError):
    """A signature does not verify for the stated key and message."""


class InvalidKey(CryptoError):
    """Key bytes are malformed."""


class InvalidAddress(CryptoError):
    """An address string or bytes value is malformed or has a bad checksum."""


class KeystoreError(CryptoError):
    """A key file cannot be read, decrypted or trusted."""


# --- validation -----------------------------------------------------------


class ValidationError(ConsensusError):
    """A value fails its stateless (validate_basic) checks."""


class GenesisError(ConsensusError):
    """A genesis document is malformed or inconsistent."""


# --- state transition -----------------------------------------------------


class InvalidTransaction(ConsensusError):
    """A transaction cannot be applied to the current state."""


class InvalidBlock(ConsensusError):
    """A block cannot be applied to the current state."""


# --- transaction rejections (each with a stable result code) -----------------
#
# Codes 1-19 are authentication failures: a transaction that fails them cannot
# be charged a fee, so a block carrying one is invalid. Codes 20 and above are
# execution failures: the fee is charged, the nonce advances, nothing else
# changes, and the transaction is recorded with its code and message.


class TxAuthError(InvalidTransaction):
    """The transaction cannot be authenticated or cannot pay its fee."""

    code = 1


class WrongChainId(TxAuthError):
    code = 2


class BadNonce(TxAuthError):
    code = 3


class FeeTooLow(TxAuthError):
    code = 4


class CannotPayFee(TxAuthError):
    code = 5


class BadTxSignature(TxAuthError):
    code = 6


class MalformedTx(TxAuthError):
    code = 7


class TxExecutionError(InvalidTransaction):
    """The transaction was charged its fee but its body could not be applied."""

    code = 20


class InsufficientFunds(TxExecutionError):
    code = 21


class UnknownValidator(TxExecutionError):
    code = 22


class ValidatorExists(TxExecutionError):
    code = 23


class InsufficientBond(TxExecutionError):
    code = 24


class UnknownNFT(TxExecutionError):
    code = 25


class NotNFTOwner(TxExecutionError):
    code = 26


class NFTBindingError(TxExecutionError):
    code = 27


class CollateralTooLow(TxExecutionError):
    code = 28


class CommissionTooHigh(TxExecutionError):
    code = 29


class UnjailRefused(TxExecutionError):
    code = 30


class InvalidEvidence(TxExecutionError):
    code = 31


class FaultAlreadySlashed(TxExecutionError):
    code = 32


class ValidatorTombstoned(TxExecutionError):
    code = 33


class UnsupportedTransaction(TxExecutionError):
    """The kind is defined but its handling is not part of this protocol version."""

    code = 34


class InvalidProof(TxExecutionError):
    code = 35


class JobError(TxExecutionError):
    code = 36


class NFTRetireRefused(TxExecutionError):
    """A compute NFT cannot be retired now (faulty or retired, an open challenge, job slots held)."""

    code = 37


# --- proof of compute (consensus/poc_state.py) ----------------------------------


class UnknownChallenge(TxExecutionError):
    """No proof-of-compute challenge with this id exists."""

    code = 40


class ChallengeClosed(TxExecutionError):
    """The challenge is not at the stage this transaction needs (late, already committed, ...)."""

    code = 41


class NotChallengeProver(TxExecutionError):
    """Only the challenged NFT's owner or its bound validator may answer a challenge."""

    code = 42


class MalformedOpenings(InvalidProof):
    """Openings that are not the sampled rows with valid Merkle paths (not itself a fault)."""

    code = 43


class RejectedFraudProof(InvalidProof):
    """A fraud proof that proves nothing (wrong path, or the row is in fact correct)."""

    code = 44
