"""The storage layer's errors: each says what is wrong and what the operator can do."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error raised by storage/."""


class StoreLockedError(StorageError):
    """Another process holds the data directory (a second node on the same data)."""


class CorruptStoreError(StorageError):
    """The data on disk is inconsistent or unreadable; the node must not start on it."""


class SchemaVersionError(StorageError):
    """The data directory was written by an incompatible version of the storage schema."""


class CommitError(StorageError):
    """A commit was refused (wrong height, stale preparation, malformed arguments)."""


class StoreClosedError(StorageError):
    """The store was used after it was closed."""
