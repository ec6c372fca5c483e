"""Storage: all on-disk state of a node, in LevelDB through plyvel.

``NodeStore`` is the entry point: it opens and locks a data directory, checks
it, and commits each height (block, commit, tx index, state changes, state trie,
head) in one synced write batch. See storage/node_store.py.
"""

from storage.block_store import BlockStore, TxLocation
from storage.errors import (
    CommitError,
    CorruptStoreError,
    SchemaVersionError,
    StorageError,
    StoreClosedError,
    StoreLockedError,
)
from storage.kv import KVSnapshot, KVStore, MemoryKV, WriteBatch
from storage.leveldb import LevelDBKV, LevelDBOptions
from storage.lock import DirectoryLock
from storage.node_store import NodeStore, PreparedHeight
from storage.state_store import Head, StateSnapshot, StateView

__all__ = [
    "BlockStore",
    "CommitError",
    "CorruptStoreError",
    "DirectoryLock",
    "Head",
    "KVSnapshot",
    "KVStore",
    "LevelDBKV",
    "LevelDBOptions",
    "MemoryKV",
    "NodeStore",
    "PreparedHeight",
    "SchemaVersionError",
    "StateSnapshot",
    "StateView",
    "StorageError",
    "StoreClosedError",
    "StoreLockedError",
    "TxLocation",
    "WriteBatch",
]
