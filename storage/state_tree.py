"""Incremental maintenance of the state trie over records in a key-value store.

The trie's format (hexary compressed sparse Merkle trie over SHA-256(key),
leaf entries inlined in their parent branch) is defined in
consensus/state_proof.py. Slot contents are ``None`` (empty), a 64-byte leaf
entry, or a 32-byte branch hash; the length tells them apart. The root's slot
content is kept under ``schema.TREE_ROOT_KEY``.

Storage groups branches into *pages* of two trie levels. The page at an even
depth ``d`` on a path is stored under ``schema.node_key(d, path)`` and holds
that path's branch record at depth ``d`` (its *top*), followed, when the top
has between 1 and ``EMBED_MAX_CHILDREN`` child branches, by those children's
records in slot order (each record self-delimits by its header). Otherwise the
child branches (depth ``d+1``) are stored on their own under
``schema.node_key(d+1, path)``. Why: LevelDB's cost per record dominates a
synced batch, and a leaf-heavy bottom branch has few, small child branches, so
embedding them saves a record per changed key at the price of a few hundred
bytes; a top full of child branches (an upper level of a large state) would
instead make every change rewrite all sixteen of them. A page with more bytes
than its top embeds its children; one without does not.

An update walks only the branches on the changed keys' paths, rewrites each
touched branch once by splicing its record, rehashes it once, then reassembles
the touched pages: cost grows with (keys changed) x log16(state size), never
with the state size. The pages to put and delete come back as data; the caller
writes them in the height's batch, so nothing changes on disk until the commit.
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
    get_nibble,
    get_slot_offset,
)
from storage import schema
from storage.errors import CorruptStoreError
from storage.kv import KVReader
from storage.trie_pages import (
    EMBED_MAX_CHILDREN,
    Page,
    check_record,
    read_branch,
    split_page,
    with_nibble,
)

#: Pages whose top is shallower than this stay cached in memory between
#: heights: the pages at depths 0 and 2 (257 at most, the trie's top four
#: levels; a few MiB even for a huge state).
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
    """Pages and standalone branches to put (bytes) or delete (None), by storage key."""
    cache_writes: dict[bytes, Page | None]
    """The parsed form of the shallow pages among ``node_writes``."""
    record_cache_writes: dict[bytes, bytes | None]
    """The shallow standalone branches among ``node_writes``."""


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


class StateTree:
    """Computes trie updates and proofs; caches the upper branches between heights."""

    def __init__(self) -> None:
        self._cache: dict[bytes, Page] = {}
        self._record_cache: dict[bytes, bytes] = {}

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
        if not items:
            return TreeUpdate(root_content, compute_content_root(root_content), {}, {}, {})
        walker = _Updater(reader, self._cache, self._record_cache, khs, entries)
        root_content = walker.update(0, root_content, 0, len(items))
        writes, pages, records = walker.assemble_pages()
        return TreeUpdate(root_content, compute_content_root(root_content), writes, pages, records)

    def on_committed(self, update: TreeUpdate) -> None:
        """Bring the cache in line with an update that is now on disk."""
        cache = self._cache
        for key, page in update.cache_writes.items():
            if page is None:
                cache.pop(key, None)
            else:
                cache[key] = page
        record_cache = self._record_cache
        for key, record in update.record_cache_writes.items():
            if record is None:
                record_cache.pop(key, None)
            else:
                record_cache[key] = record

    def clear_cache(self) -> None:
        self._cache.clear()
        self._record_cache.clear()

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
            record = read_branch(reader, depth, kh)
            if compute_branch_hash(record) != content:
                raise CorruptStoreError(
                    f"state trie branch at depth {depth} on {kh.hex()} does not match its hash"
                )
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
        # (depth, path sample, expected hash, the record if its page embeds it)
        stack: list[tuple[int, bytes, bytes, bytes | None]] = []
        if root_content is not None:
            if len(root_content) == ENTRY_LEN:
                leaves = 1
            else:
                stack.append((0, bytes(HASH_LEN), root_content, None))
        while stack:
            depth, path, expected, record = stack.pop()
            nk = schema.node_key(depth, path)
            embedded: dict[int, bytes] | None = {}
            if record is None:
                reached += 1
                if depth & 1:
                    record = check_record(nk, reader.get(nk))
                else:
                    record, embedded = split_page(nk, reader.get(nk))
            if compute_branch_hash(record) != expected:
                raise CorruptStoreError(f"state trie branch {nk.hex()} does not match its hash")
            bitmap = int.from_bytes(record[0:2], "big")
            leafmask = int.from_bytes(record[2:4], "big")
            if bitmap == 0 or (bitmap.bit_count() == 1 and leafmask):
                raise CorruptStoreError(f"state trie branch {nk.hex()} should have been collapsed")
            n_children = (bitmap & ~leafmask).bit_count()
            if not depth & 1 and (embedded is not None) != (n_children <= EMBED_MAX_CHILDREN):
                raise CorruptStoreError(f"state trie page {nk.hex()} has the wrong layout")
            off = RECORD_HEADER_LEN
            for nib in range(16):
                bit = 1 << nib
                if not bitmap & bit:
                    continue
                child_path = with_nibble(path, depth, nib)
                if leafmask & bit:
                    entry = record[off : off + ENTRY_LEN]
                    if not _shares_prefix(entry, child_path, depth + 1):
                        raise CorruptStoreError(f"a leaf under branch {nk.hex()} is misplaced")
                    leaves += 1
                    off += ENTRY_LEN
                else:
                    child = None if depth & 1 or embedded is None else embedded.get(nib)
                    if not depth & 1 and embedded is not None and child is None:
                        raise CorruptStoreError(f"state trie page {nk.hex()} lacks a child branch")
                    stack.append((depth + 1, child_path, record[off : off + HASH_LEN], child))
                    off += HASH_LEN
        stored = sum(1 for _ in reader.iterate(schema.NODE_PREFIX))
        if stored != reached:
            raise CorruptStoreError(
                f"{stored} state trie records are stored but {reached} are reachable"
            )
        return leaves


def _shares_prefix(a: bytes, b: bytes, nibbles: int) -> bool:
    return all(get_nibble(a, d) == get_nibble(b, d) for d in range(nibbles))


class _Updater:
    """One update's walk: reads pages, collects branch writes, then reassembles pages.

    The changes are two parallel lists sorted by key hash (``khs`` and their new
    leaf entries, None for a delete); a slot's changes are an index range.
    """

    __slots__ = (
        "_cache",
        "_children",
        "_entries",
        "_khs",
        "_pages",
        "_paths",
        "_reader",
        "_record_cache",
        "_tops",
    )

    def __init__(
        self,
        reader: KVReader,
        cache: dict[bytes, Page],
        record_cache: dict[bytes, bytes],
        khs: list[bytes],
        entries: list[bytes | None],
    ) -> None:
        self._reader = reader
        self._cache = cache
        self._record_cache = record_cache
        self._khs = khs
        self._entries = entries
        self._pages: dict[bytes, Page] = {}
        """Pages read by this walk, as they were before it."""
        self._paths: dict[bytes, bytes] = {}
        """Page key -> a key hash on the page's path."""
        self._tops: dict[bytes, tuple[int, bytes | None]] = {}
        """Page key -> (its depth, the new top record or None: deleted)."""
        self._children: dict[bytes, dict[int, bytes | None]] = {}
        """Page key -> slot -> the new child record or None: deleted."""

    def _standalone(self, key: bytes, depth: int) -> bytes:
        """Return the standalone branch record under ``key`` (cached when shallow)."""
        if depth < CACHED_DEPTH:
            record = self._record_cache.get(key)
            if record is None:
                record = check_record(key, self._reader.get(key))
                self._record_cache[key] = record
            return record
        return check_record(key, self._reader.get(key))

    def _read(self, depth: int, kh: bytes) -> bytes:
        top_depth = depth & ~1
        pk = schema.node_key(top_depth, kh)
        page = self._pages.get(pk)
        if page is None:
            cached = top_depth < CACHED_DEPTH
            page = self._cache.get(pk) if cached else None
            if page is None:
                page = split_page(pk, self._reader.get(pk))
                if cached:
                    self._cache[pk] = page
            self._pages[pk] = page
            self._paths[pk] = kh
        if top_depth == depth:
            return page[0]
        children = page[1]
        if children is None:
            return self._standalone(schema.node_key(depth, kh), depth)
        record = children.get(get_nibble(kh, top_depth))
        if record is None:
            raise CorruptStoreError(f"state trie page {pk.hex()} lacks a child branch")
        return record

    def _write(self, depth: int, kh: bytes, record: bytes | None) -> None:
        top_depth = depth & ~1
        pk = schema.node_key(top_depth, kh)
        self._paths.setdefault(pk, kh)
        if top_depth == depth:
            self._tops[pk] = (top_depth, record)
        else:
            self._children.setdefault(pk, {})[get_nibble(kh, top_depth)] = record

    def assemble_pages(
        self,
    ) -> tuple[dict[bytes, bytes | None], dict[bytes, Page | None], dict[bytes, bytes | None]]:
        """Return the records to write, and the shallow pages and branches to cache."""
        writes: dict[bytes, bytes | None] = {}
        page_cache: dict[bytes, Page | None] = {}
        record_cache: dict[bytes, bytes | None] = {}
        no_changes: dict[int, bytes | None] = {}

        for pk in {**self._tops, **self._children}:
            path = self._paths[pk]
            old = self._pages.get(pk)
            top_write = self._tops.get(pk)
            top: bytes | None
            if top_write is not None:
                top_depth, top = top_write
            elif old is not None:
                top_depth, top = pk[_NODE_DEPTH_AT], old[0]
            else:
                raise CorruptStoreError(f"state trie page {pk.hex()} changed without its top")
            child_depth = top_depth + 1
            old_children = old[1] if old is not None else {}
            changed = self._children.get(pk, no_changes)

            def child_key(nib: int, _path: bytes = path, _depth: int = top_depth) -> bytes:
                return schema.node_key(_depth + 1, with_nibble(_path, _depth, nib))

            def put_child(nib: int, record: bytes | None, _depth: int = child_depth) -> None:
                key = child_key(nib)
                writes[key] = record
                if _depth < CACHED_DEPTH:
                    record_cache[key] = record

            if top is None:
                writes[pk] = None
                if top_depth < CACHED_DEPTH:
                    page_cache[pk] = None
                if old_children is None:  # its standalone children went with it
                    for nib in changed:
                        put_child(nib, None)
                continue
            branches = int.from_bytes(top[0:2], "big") & ~int.from_bytes(top[2:4], "big")
            embed = branches.bit_count() <= EMBED_MAX_CHILDREN
            children: dict[int, bytes] = {}
            rest = branches
            while rest:  # the set bits, lowest slot first
                low = rest & -rest
                rest ^= low
                nib = low.bit_length() - 1
                child: bytes | None
                if nib in changed:
                    child = changed[nib]
                elif old_children is not None:
                    child = old_children.get(nib)
                elif embed:  # an unchanged standalone child moves into the page
                    child = self._standalone(child_key(nib), child_depth)
                else:
                    continue  # an unchanged standalone child stays where it is
                if child is None:
                    raise CorruptStoreError(f"state trie page {pk.hex()} lost a child branch")
                children[nib] = child
            if embed:
                writes[pk] = top + b"".join(children.values())
                if old_children is None:  # children were standalone: drop those records
                    for nib in {*children, *changed}:
                        put_child(nib, None)
                parsed: Page = (top, children)
            else:
                writes[pk] = top
                for nib, child_record in children.items():  # changed, or moving out
                    put_child(nib, child_record)
                if old_children is None:
                    for nib, maybe in changed.items():
                        if maybe is None:
                            put_child(nib, None)
                parsed = (top, None)
            if top_depth < CACHED_DEPTH:
                page_cache[pk] = parsed
        return writes, page_cache, record_cache

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
        first = khs[lo]
        record = self._read(depth, first)
        # Every branch an update touches is checked against its parent's hash,
        # so on-disk damage stops the commit instead of yielding a wrong root.
        if compute_branch_hash(record) != content:
            raise CorruptStoreError(
                f"state trie branch at depth {depth} on {first.hex()} does not match its hash"
            )
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
            self._write(depth, first, None)
            return None
        if leafmask == bitmap and bitmap.bit_count() == 1:
            # A branch left with one leaf collapses into that leaf.
            self._write(depth, first, None)
            return body
        record = _header(bitmap, leafmask) + body
        self._write(depth, first, record)
        return compute_branch_hash(record)

    def _build(self, depth: int, entries: list[bytes], lo: int = 0, hi: int = -1) -> bytes | None:
        """Return the content of a fresh slot holding sorted leaf ``entries[lo:hi]``.

        Nibble groups are found by bisection (a genesis builds millions of leaves).
        """
        if hi < 0:
            hi = len(entries)
        if hi - lo < 2:
            return entries[lo] if hi > lo else None
        bitmap = 0
        leafmask = 0
        parts: list[bytes] = []
        byte_at = depth >> 1
        odd = depth & 1
        i = lo
        while i < hi:
            entry = entries[i]
            byte = entry[byte_at]
            nib = byte & 0x0F if odd else byte >> 4
            if nib == 15:
                j = hi
            elif odd:
                j = bisect_left(entries, entry[:byte_at] + bytes(((byte & 0xF0) | (nib + 1),)), i + 1, hi)
            else:
                j = bisect_left(entries, entry[:byte_at] + bytes(((nib + 1) << 4,)), i + 1, hi)
            child = entry if j == i + 1 else self._build(depth + 1, entries, i, j)
            if child is not None:
                bitmap |= 1 << nib
                if len(child) == ENTRY_LEN:
                    leafmask |= 1 << nib
                parts.append(child)
            i = j
        record = _header(bitmap, leafmask) + b"".join(parts)
        self._write(depth, entries[lo], record)
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
