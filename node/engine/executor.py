"""The block executor: validates proposed blocks against the head state and commits decided ones.

It is the only writer of the store. A proposed block is executed once on the
committed head state (``validate_block``) and the result is kept by block
hash, so committing the decided block writes the cached change set instead
of executing it again. Everything a height writes goes to the store in one
synced batch (``NodeStore.commit_height``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from consensus.blocks import Block
from consensus.codec import Encodable
from consensus.errors import ConsensusError, InvalidBlock
from consensus.genesis import Genesis, compute_genesis_state
from consensus.hashing import hash32
from consensus.records import TxResult
from consensus.state import State
from consensus.transition import SigCache, TransitionResult, state_transition
from consensus.txs import SignedTx
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit, verify_commit
from node.errors import GenesisMismatch
from storage import Head, NodeStore

log = logging.getLogger(__name__)

#: Proposed blocks whose execution results are kept (a few rounds' worth).
MAX_CACHED_RESULTS = 8
#: Decoded head-state records shared by head overlays; the cache starts over past this.
MAX_DECODED_RECORDS = 100_000


@dataclass(frozen=True, slots=True)
class BlockCommitted:
    """Event: a block and its commit were written durably."""

    height: int
    block_hash: bytes
    block: Block
    commit: Commit
    state_root: bytes
    tx_hashes: tuple[bytes, ...]
    txs: tuple[SignedTx, ...]
    tx_results: tuple[TxResult, ...]
    events: tuple[object, ...]
    #: State keys the block wrote.
    changed_keys: tuple[bytes, ...]
    #: Seconds spent executing (0 when the cached result was used) and writing.
    execute_seconds: float
    write_seconds: float


#: Looks up a decoded transaction by id (the mempool's ``get``); None when absent.
TxSource = Callable[[bytes], SignedTx | None]


class BlockExecutor:
    """Executes blocks on the store's head state and commits them."""

    def __init__(
        self,
        store: NodeStore,
        genesis: Genesis,
        sig_cache: SigCache | None = None,
        tx_source: TxSource | None = None,
    ) -> None:
        self.store = store
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.sig_cache = sig_cache
        #: The mempool's decoded transactions by id: a peer's block is rebuilt from the
        #: mempool's wire bytes, so its transactions need not be decoded again.
        self.tx_source = tx_source
        self._results: OrderedDict[bytes, tuple[int, TransitionResult]] = OrderedDict()
        self._decoded: dict[bytes, Encodable | None] = {}
        self._decoded_head: Head | None = None

    # -- start-up --------------------------------------------------------------

    def init_genesis(self) -> None:
        """Write the genesis state if the store is empty; else check it is this chain."""
        head = self.store.head
        genesis_hash = self.genesis.hash()
        if head is None:
            root = self.store.commit_genesis(compute_genesis_state(self.genesis), genesis_hash)
            log.info("genesis committed: chain %s, state root %s", self.chain_id, root.hex())
            return
        info = State(self.store.state).get_chain_info()
        if info.chain_id != self.chain_id:
            raise GenesisMismatch(
                f"the data directory holds chain '{info.chain_id}' but genesis.json is for "
                f"'{self.chain_id}'; use the matching genesis or a fresh home"
            )
        if head.height == 0 and head.block_hash != genesis_hash:
            raise GenesisMismatch(
                "the data directory was initialised from a different genesis.json "
                "(genesis hash differs); use the matching genesis or a fresh home"
            )

    # -- reads ------------------------------------------------------------------

    @property
    def height(self) -> int:
        """Height of the last committed block (0 before the first)."""
        head = self.store.head
        return 0 if head is None else head.height

    def head_state(self) -> State:
        """Return a fresh overlay over the committed head state.

        Overlays of one head share their decoded reads (mempool admission, gossip
        validation and the driver read the same params and accounts thousands of times
        a block); a commit makes a new ``Head``, which starts a new cache.
        """
        head = self.store.head
        if head is not self._decoded_head or len(self._decoded) >= MAX_DECODED_RECORDS:
            self._decoded = {}
            self._decoded_head = head
        return State(self.store.state, self._decoded)

    def validator_set(self) -> ValidatorSet:
        """Return the validator set deciding the next height."""
        return self.head_state().get_validator_set()

    def last_block_hash(self) -> bytes:
        head = self.store.head
        if head is None or head.height == 0:
            return bytes(32)
        return head.block_hash

    # -- validation and commit -------------------------------------------------------

    def validate_block(self, block: Block, txs: list[SignedTx] | None = None) -> TransitionResult:
        """Execute ``block`` on the head state; raise InvalidBlock if it cannot follow it."""
        block_hash = block.hash()
        height = self.height
        cached = self._results.get(block_hash)
        if cached is not None and cached[0] == height:
            return cached[1]
        if block.header.state_root != self.store.state_root:
            raise InvalidBlock(
                f"block {block.header.height} carries state root {block.header.state_root.hex()}, "
                f"but the state after height {height} has root {self.store.state_root.hex()}"
            )
        if txs is None and self.tx_source is not None:
            txs = self._decoded_txs(block)
        result = state_transition(self.store.state, block, sig_cache=self.sig_cache, txs=txs)
        self._results[block_hash] = (height, result)
        while len(self._results) > MAX_CACHED_RESULTS:
            self._results.popitem(last=False)
        return result

    def _decoded_txs(self, block: Block) -> list[SignedTx] | None:
        """The block's transactions as the mempool holds them decoded; None unless it holds every one.

        Decoding is 8 of a transfer's 17 µs of execution, on the path from a proposal to
        our prevote. Looked up by id (the hash of the wire bytes), and the bytes must be
        the block's own: ``state_transition`` compares them before using any.
        """
        source = self.tx_source
        if source is None or not block.txs:
            return None
        out: list[SignedTx] = []
        for raw in block.txs:
            tx = source(hash32(raw))
            if tx is None or tx.raw != raw:
                return None
            out.append(tx)
        return out

    def is_valid_block(self, block: Block) -> bool:
        """Return True when ``block`` may follow the head (logging why not)."""
        try:
            self.validate_block(block)
        except ConsensusError as exc:
            log.warning("proposed block %d is invalid: %s", block.header.height, exc)
            return False
        return True

    def commit_block(self, block: Block, commit: Commit) -> BlockCommitted:
        """Execute (or reuse the cached execution of) ``block`` and write it with ``commit``."""
        t0 = time.perf_counter()
        block_hash = block.hash()
        cached = self._results.get(block_hash)
        result = cached[1] if cached is not None and cached[0] == self.height else None
        if result is None:
            result = self.validate_block(block)
        t1 = time.perf_counter()
        height = block.header.height
        entries = {
            h: (height, i, r.code, r.log)
            for i, (h, r) in enumerate(zip(result.tx_hashes, result.tx_results, strict=True))
        }
        root = self.store.commit_height(
            height, block_hash, block.encode(), commit.encode(), entries, result.changes
        )
        t2 = time.perf_counter()
        self._results.clear()
        return BlockCommitted(
            height=height,
            block_hash=block_hash,
            block=block,
            commit=commit,
            state_root=root,
            tx_hashes=result.tx_hashes,
            txs=result.txs,
            tx_results=result.tx_results,
            events=result.events,
            changed_keys=tuple(result.changes),
            execute_seconds=t1 - t0,
            write_seconds=t2 - t1,
        )

    def apply_synced_block(self, block: Block, commit: Commit) -> BlockCommitted:
        """Verify a block fetched from a peer by its commit, then commit it."""
        if block.header.height != self.height + 1:
            raise InvalidBlock(f"synced block {block.header.height} does not follow {self.height}")
        if commit.height != block.header.height or commit.block_hash != block.hash():
            raise InvalidBlock("the commit is not for this block")
        try:
            verify_commit(self.chain_id, self.validator_set(), commit)
        except ConsensusError as exc:
            raise InvalidBlock(f"synced block's commit does not verify: {exc}") from exc
        return self.commit_block(block, commit)
