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
