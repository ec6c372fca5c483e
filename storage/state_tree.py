"""Incremental maintenance of the state trie over branch records in a key-value store.

The trie's format (hexary compressed sparse Merkle trie over SHA-256(key),
leaf entries inlined in their parent branch) is defined in
consensus/state_proof.py; this module keeps one record per branch under
``schema.node_key(depth, path)`` and the root's slot content under
``schema.TREE_ROOT_KEY``. Slot contents are ``None`` (empty), a 64-byte leaf
entry, or a 32-byte branch hash; the length tells them apart.

An update walks only the branches on the changed keys' paths, rewrites each
touched branch once by splicing its record, and rehashes it once: cost grows
with (keys changed) x log16(state size), never with the state size. The
records to put and delete come back as data; the caller writes them in the
height's batch, so nothing changes on disk until the commit.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass

from consensus.hashing import hash32
from consensus.state_proof import (
    ENTRY_LEN,
    HASH_LEN,
    RECORD_HEADER_LEN,
    ProofBranch,
    StateProof,
    compute_branch_hash,
    compute_content_root,
    compute_record_len,
    get_nibble,
    get_slot_offset,
)
from storage import schema
from storage.errors import CorruptStoreError
from storage.kv import KVReader

#: Branches shallower than this stay cached in memory between heights
#: (1 + 16 + 256 + 4096 records at most: a few MiB even for a huge state).
CACHED_DEPTH = 4
_NODE_DEPTH_AT = len(schema.NODE_PREFIX)


@dataclass(frozen=True, slots=True)
class TreeUpdate:
    """The outcome of applying a change set to the trie, not yet written."""

    root_content: bytes | None
    """The new root slot: None (empty), a leaf entry, or the root branch hash."""
    root: bytes
    """The new state root."""
    node_writes: dict[bytes, bytes | None]
    """Branch records to put (bytes) or delete (None), keyed by storage key."""


def decode_root_content(data: bytes | None) -> bytes | None:
    """Return the root slot content stored under TREE_ROOT_KEY (absent or b"": empty)."""
    if not data:
        return None
    if len(data) not in (ENTRY_LEN, HASH_LEN):
        raise CorruptStoreError(
            f"the stored state trie root is {len(data)} bytes; expected {HASH_LEN} or {ENTRY_LEN}"
        )
    return data


def _header(bitmap: int, leafmask: int) -> bytes:
    return bitmap.to_bytes(2, "big") + leafmask.to_bytes(2, "big")


def check_record(key: bytes, record: bytes | None) -> bytes:
    """Return ``record`` if it is a well-formed branch record, else raise CorruptStoreError."""
    if record is None:
        raise CorruptStoreError(f"state trie branch {key.hex()} is missing")
    if len(record) < RECORD_HEADER_LEN:
        raise CorruptStoreError(f"state trie branch {key.hex()} is truncated")
    bitmap = int.from_bytes(record[0:2], "big")
    leafmask = int.from_bytes(record[2:4], "big")
    if leafmask & ~bitmap or len(record) != compute_record_len(bitmap, leafmask):
        raise CorruptStoreError(f"state trie branch {key.hex()} is malformed")
    return record


class StateTree:
    """Computes trie updates and proofs; caches the upper branches between heights."""

    def __init__(self) -> None:
        self._cache: dict[bytes, bytes] = {}

    def compute_update(
        self,
        reader: KVReader,
        root_content: bytes | None,
        changes: Mapping[bytes, bytes | None],
    ) -> TreeUpdate:
        """Return the trie after applying ``changes`` (key -> value, None deletes)."""
        items = sorted(
            (kh := hash32(k), None if v is None else kh + hash32(v)) for k, v in changes.items()
        )
        khs = [kh for kh, _ in items]
        entries = [entry for _, entry in items]
        writes: dict[bytes, bytes | None] = {}
        if items:
            walker = _Updater(reader, self._cache, writes, khs, entries)
            root_content = walker.update(0, root_content, 0, len(items))
        return TreeUpdate(root_content, compute_content_root(root_content), writes)

    def on_committed(self, update: TreeUpdate) -> None:
        """Bring the cache in line with an update that is now on disk."""
        cache = self._cache
        for key, record in update.node_writes.items():
            if key[_NODE_DEPTH_AT] < CACHED_DEPTH:
                if record is None:
                    cache.pop(key, None)
                else:
                    cache[key] = record

    def clear_cache(self) -> None:
        self._cache.clear()

    def prove(self, reader: KVReader, root_content: bytes | None, key: bytes) -> StateProof:
        """Return the inclusion or absence proof of ``key`` in the trie read from ``reader``.

        ``reader`` must be a consistent view (a snapshot) matching ``root_content``;
        the cache is not used, since it only tracks the latest state.
        """
        kh = hash32(key)
        content = root_content
        branches: list[ProofBranch] = []
        depth = 0
        while content is not None and len(content) == HASH_LEN:
            nk = schema.node_key(depth, kh)
            record = check_record(nk, reader.get(nk))
            if compute_branch_hash(record) != content:
                raise CorruptStoreError(f"state trie branch {nk.hex()} does not match its hash")
            bitmap = int.from_bytes(record[0:2], "big")
            leafmask = int.from_bytes(record[2:4], "big")
            nib = get_nibble(kh, depth)
            bit = 1 << nib
            off = get_slot_offset(bitmap, leafmask, nib)
            if bitmap & bit:
                end = off + (ENTRY_LEN if leafmask & bit else HASH_LEN)
                content = record[off:end]
                siblings = record[RECORD_HEADER_LEN:off] + record[end:]
            else:
                content = None
                siblings = record[RECORD_HEADER_LEN:]
            branches.append(ProofBranch(bitmap, leafmask, siblings))
            depth += 1
        other = None if content is None or content[:HASH_LEN] == kh else content
        return StateProof(tuple(branches), other)

    def verify_all(self, reader: KVReader, root_content: bytes | None) -> int:
        """Walk the whole trie, checking every record against its parent's hash.

        Returns the number of leaves. Raises CorruptStoreError on a missing,
        malformed or mismatching record, a misplaced leaf, a non-canonical
        shape, or branch records that the trie does not reach.
        """
        reached = 0
        leaves = 0
        stack: list[tuple[int, bytes, bytes]] = []  # (depth, path sample, expected hash)
        if root_content is not None:
            if len(root_content) == ENTRY_LEN:
                leaves = 1
            else:
                stack.append((0, bytes(HASH_LEN), root_content))
        while stack:
            depth, path, expected = stack.pop()
            nk = schema.node_key(depth, path)
            record = check_record(nk, reader.get(nk))
            reached += 1
            if compute_branch_hash(record) != expected:
                raise CorruptStoreError(f"state trie branch {nk.hex()} does not match its hash")
            bitmap = int.from_bytes(record[0:2], "big")
            leafmask = int.from_bytes(record[2:4], "big")
            if bitmap == 0 or (bitmap.bit_count() == 1 and leafmask):
                raise CorruptStoreError(f"state trie branch {nk.hex()} should have been collapsed")
            off = RECORD_HEADER_LEN
            for nib in range(16):
                bit = 1 << nib
                if not bitmap & bit:
                    continue
                child_path = _with_nibble(path, depth, nib)
                if leafmask & bit:
                    entry = record[off : off + ENTRY_LEN]
                    if not _shares_prefix(entry, child_path, depth + 1):
                        raise CorruptStoreError(f"a leaf under branch {nk.hex()} is misplaced")
                    leaves += 1
                    off += ENTRY_LEN
                else:
                    stack.append((depth + 1, child_path, record[off : off + HASH_LEN]))
                    off += HASH_LEN
        stored = sum(1 for _ in reader.iterate(schema.NODE_PREFIX))
        if stored != reached:
            raise CorruptStoreError(
                f"{stored} state trie branch records are stored but {reached} are reachable"
            )
        return leaves


def _with_nibble(path: bytes, depth: int, nib: int) -> bytes:
    """Return ``path`` with the nibble at ``depth`` set to ``nib``."""
    i = depth >> 1
    byte = path[i]
    byte = (byte & 0xF0) | nib if depth & 1 else (byte & 0x0F) | (nib << 4)
    return path[:i] + bytes((byte,)) + path[i + 1 :]


def _shares_prefix(a: bytes, b: bytes, nibbles: int) -> bool:
    return all(get_nibble(a, d) == get_nibble(b, d) for d in range(nibbles))


class _Updater:
    """One update's walk: reads branches, collects record writes.

    The changes are two parallel lists sorted by key hash (``khs`` and their new
    leaf entries, None for a delete); a slot's changes are an index range.
    """

    __slots__ = ("_cache", "_entries", "_khs", "_reader", "_writes")

    def __init__(
        self,
        reader: KVReader,
        cache: dict[bytes, bytes],
        writes: dict[bytes, bytes | None],
        khs: list[bytes],
        entries: list[bytes | None],
    ) -> None:
        self._reader = reader
        self._cache = cache
        self._writes = writes
        self._khs = khs
        self._entries = entries

    def _read(self, nk: bytes, depth: int) -> bytes:
        if depth < CACHED_DEPTH:
            record = self._cache.get(nk)
            if record is None:
                record = check_record(nk, self._reader.get(nk))
                self._cache[nk] = record
            return record
        return check_record(nk, self._reader.get(nk))

    def update(self, depth: int, content: bytes | None, lo: int, hi: int) -> bytes | None:
        """Return the new content of the slot at ``depth`` nibbles after changes [lo, hi).

        The range is non-empty and every key hash in it shares the slot's prefix.
        This is the hot loop of a commit, so nibbles and offsets are inline and
        nibble groups are found by bisection instead of a scan.
        """
        khs = self._khs
        entries = self._entries
        if content is None or len(content) == ENTRY_LEN:
            return self._build(depth, _merge(content, khs[lo:hi], entries[lo:hi]))
        nk = schema.node_key(depth, khs[lo])
        record = self._read(nk, depth)
        # Every branch an update touches is checked against its parent's hash,
        # so on-disk damage stops the commit instead of yielding a wrong root.
        if compute_branch_hash(record) != content:
            raise CorruptStoreError(f"state trie branch {nk.hex()} does not match its hash")
        bitmap = int.from_bytes(record[0:2], "big")
        leafmask = int.from_bytes(record[2:4], "big")
        body = record[RECORD_HEADER_LEN:]
        byte_at = depth >> 1
        odd = depth & 1
        changed = False
        i = lo
        while i < hi:
            kh = khs[i]
            if odd:
                nib = kh[byte_at] & 0x0F
                j = i + 1
                if j < hi and nib < 15:
                    bound = kh[:byte_at] + bytes(((kh[byte_at] & 0xF0) | (nib + 1),))
                    j = bisect_left(khs, bound, j, hi)
                elif j < hi:
                    j = hi
            else:
                nib = kh[byte_at] >> 4
                j = i + 1
                if j < hi and nib < 15:
                    j = bisect_left(khs, kh[:byte_at] + bytes(((nib + 1) << 4,)), j, hi)
                elif j < hi:
                    j = hi
            bit = 1 << nib
            below = bit - 1
            off = HASH_LEN * ((bitmap & below).bit_count() + (leafmask & below).bit_count())
            old: bytes | None
            if not bitmap & bit:
                old = None
                # Fast path: one key lands in an empty slot.
                new = entries[i] if j == i + 1 else self.update(depth + 1, None, i, j)
            elif leafmask & bit:
                old = body[off : off + ENTRY_LEN]
                # Fast path: the slot's own leaf is updated or deleted.
                if j == i + 1 and old[:HASH_LEN] == kh:
                    new = entries[i]
                else:
                    new = self.update(depth + 1, old, i, j)
            else:
                old = body[off : off + HASH_LEN]
                new = self.update(depth + 1, old, i, j)
            if new != old:
                changed = True
                if new is None:
                    bitmap &= ~bit
                    leafmask &= ~bit
                elif len(new) == ENTRY_LEN:
                    bitmap |= bit
                    leafmask |= bit
                else:
                    bitmap |= bit
                    leafmask &= ~bit
                old_len = 0 if old is None else len(old)
                body = body[:off] + (new or b"") + body[off + old_len :]
            i = j
        if not changed:
            return content
        if bitmap == 0:
            self._writes[nk] = None
            return None
        if leafmask == bitmap and bitmap.bit_count() == 1:
            # A branch left with one leaf collapses into that leaf.
            self._writes[nk] = None
            return body
        record = _header(bitmap, leafmask) + body
        self._writes[nk] = record
        return compute_branch_hash(record)

    def _build(self, depth: int, entries: list[bytes]) -> bytes | None:
        """Return the content of a fresh slot holding sorted leaf ``entries``."""
        if not entries:
            return None
        if len(entries) == 1:
            return entries[0]
        bitmap = 0
        leafmask = 0
        parts: list[bytes] = []
        n = len(entries)
        i = 0
        while i < n:
            nib = get_nibble(entries[i], depth)
            j = i + 1
            while j < n and get_nibble(entries[j], depth) == nib:
                j += 1
            child = entries[i] if j == i + 1 else self._build(depth + 1, entries[i:j])
            if child is not None:
                bitmap |= 1 << nib
                if len(child) == ENTRY_LEN:
                    leafmask |= 1 << nib
                parts.append(child)
            i = j
        record = _header(bitmap, leafmask) + b"".join(parts)
        self._writes[schema.node_key(depth, entries[0])] = record
        return compute_branch_hash(record)


def _merge(content: bytes | None, khs: list[bytes], entries: list[bytes | None]) -> list[bytes]:
    """Return the sorted leaf entries of a slot holding ``content`` after the changes."""
    merged = [entry for entry in entries if entry is not None]
    if content is not None:
        kh = content[:HASH_LEN]
        if kh not in khs:
            merged.append(content)
            merged.sort()
    return merged
