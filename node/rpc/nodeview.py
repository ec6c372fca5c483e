"""The daemon's read-only view for RPC handlers, over the store, the mempool and the transport.

``StoreNodeView`` gets the parts it reads, each through the narrowest interface
that serves (``MempoolView``, ``PeerDirectory``, ``SyncProgress``, a transaction
intake callable), never the ``Node``; ``node.app`` builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from consensus.blocks import Block
from consensus.errors import ConsensusError
from consensus.jobs.store import get_job, iter_jobs
from consensus.records import TxResult
from consensus.state import State
from consensus.state_reader import StateReader
from consensus.txs import SignedTx
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit
from node.rpc.events import EventBus
from node.rpc.view import CommittedTx, MempoolView, PeerInfo, ProvedValue, SubmitResult
from storage import NodeStore
from storage.tx_index import AddressTxIndex

if TYPE_CHECKING:
    from node.compute.service import AttestationPool

#: Most recent jobs the ``jobs`` listing returns.
JOBS_LISTED = 200

#: Checks a raw transaction into the mempool and gossips it: (code, log, tx hash).
SubmitTx = Callable[[bytes | SignedTx], tuple[int, str, bytes | None]]


def prove_in_snapshot(store: NodeStore, key: bytes) -> ProvedValue:
    """``key``'s value and proof, with the height and root they belong to, read from one snapshot."""
    with store.snapshot() as snap:
        height = snap.height
        return ProvedValue(height or 0, snap.state_root, key, snap.get(key), snap.prove(key))


class PeerDirectory(Protocol):
    """What the view reports of the network (``p2p.interface.Transport`` satisfies it)."""

    @property
    def peer_id(self) -> str: ...

    def peers(self) -> list[str]: ...

    def listen_addrs(self) -> list[str]: ...


class SyncProgress(Protocol):
    """Whether block sync is catching up (``node.engine.sync.BlockSyncer`` satisfies it)."""

    @property
    def catching_up(self) -> bool: ...


class StoreNodeView:
    """Implements node.rpc.view.NodeView for the daemon, over its store and services."""

    def __init__(
        self,
        store: NodeStore,
        events: EventBus,
        *,
        chain_id: str,
        moniker: str,
        address: bytes,
        mempool: MempoolView,
        network: PeerDirectory,
        sync: SyncProgress,
        submit_tx: SubmitTx,
        attestation_pool: AttestationPool | None = None,
        tx_index: AddressTxIndex | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._chain_id = chain_id
        self._moniker = moniker
        self._address = address
        self._mempool = mempool
        self._network = network
        self._sync = sync
        self._submit_tx = submit_tx
        self._attestation_pool = attestation_pool
        self._tx_index = tx_index

    @property
    def tx_index(self) -> AddressTxIndex | None:
        return self._tx_index

    def prove_state(self, key: bytes) -> ProvedValue:
        return prove_in_snapshot(self._store, key)

    @property
    def chain_id(self) -> str:
        return self._chain_id

    @property
    def node_id(self) -> str:
        return self._network.peer_id

    @property
    def moniker(self) -> str:
        return self._moniker

    @property
    def validator_address(self) -> bytes | None:
        is_validator = State(self._store.state).get_validator(self._address) is not None
        return self._address if is_validator else None

    @property
    def events(self) -> EventBus:
        return self._events

    @property
    def mempool(self) -> MempoolView:
        return self._mempool

    def latest_height(self) -> int:
        head = self._store.head
        return 0 if head is None else head.height

    def latest_state_root(self) -> bytes:
        return self._store.state_root

    def earliest_height(self) -> int:
        return self._store.blocks.earliest_height() or 0

    def get_block(self, height: int) -> tuple[Block, bytes] | None:
        blocks = self._store.blocks
        raw = blocks.load_block(height)
        if raw is None:
            return None
        block = Block.decode(raw, max_bytes=len(raw))
        return block, block.hash()

    def get_block_by_hash(self, block_hash: bytes) -> tuple[Block, bytes] | None:
        raw = self._store.blocks.load_block_by_hash(block_hash)
        if raw is None:
            return None
        block = Block.decode(raw, max_bytes=len(raw))
        return block, block.hash()

    def get_commit(self, height: int) -> Commit | None:
        raw = self._store.blocks.load_commit(height)
        return None if raw is None else Commit.decode(raw, max_bytes=len(raw))

    def get_tx(self, tx_hash: bytes) -> CommittedTx | None:
        loc = self._store.blocks.load_tx(tx_hash)
        if loc is None:
            return None
        found = self.get_block(loc.height)
        if found is None or loc.index >= len(found[0].txs):
            return None
        raw = found[0].txs[loc.index]
        # A committed transaction is as large as its block allowed (openings exceed 1 MiB).
        tx = SignedTx.decode(raw, max_bytes=len(raw))
        return CommittedTx(tx, loc.height, loc.index, TxResult(loc.code, loc.log))

    def get_tx_result(self, tx_hash: bytes) -> TxResult | None:
        loc = self._store.blocks.load_tx(tx_hash)
        return None if loc is None else TxResult(loc.code, loc.log)

    def read_state(self) -> AbstractContextManager[StateReader]:
        @contextmanager
        def snap() -> Iterator[StateReader]:
            s = self._store.snapshot()
            try:
                yield s
            finally:
                s.close()

        return snap()

    def read_state_at(self, height: int) -> AbstractContextManager[StateReader] | None:
        if height == self.latest_height():
            return self.read_state()
        return None

    def validator_set(self, height: int) -> ValidatorSet | None:
        state = State(self._store.state)
        latest = self.latest_height()
        try:
            if height == latest + 1:
                return state.get_validator_set()
            if height == latest:
                return state.get_last_validator_set()
            return state.get_validator_set_at(height)
        except ConsensusError:
            return None

    def peers(self) -> list[PeerInfo]:
        return [PeerInfo(p) for p in self._network.peers()]

    def listen_addrs(self) -> list[str]:
        return self._network.listen_addrs()

    def catching_up(self) -> bool:
        return self._sync.catching_up

    async def submit_tx(self, tx: SignedTx) -> SubmitResult:
        code, log, tx_hash = self._submit_tx(tx)
        return SubmitResult(tx_hash or tx.tx_hash, code, log)

    def attestations(self, validator: bytes | None) -> list[dict[str, Any]] | None:
        from node.rpc.compute_format import list_attestations

        state = State(self._store.state)
        return list_attestations(state, self._attestation_pool, validator)

    def challenges(self, height: int | None, nft_id: int | None) -> list[dict[str, Any]] | None:
        from node.rpc.compute_format import list_challenges

        state = State(self._store.state)
        return list_challenges(state, self.latest_height(), height, nft_id)

    def jobs(self, status: str | None) -> list[dict[str, Any]] | None:
        from node.rpc.jobs_format import format_job, is_job_status

        state = State(self._store.state)
        found = [j for j in iter_jobs(state) if status is None or is_job_status(j, status)]
        found.sort(key=lambda j: j.seq)
        return [format_job(j, detail=False) for j in found[-JOBS_LISTED:]]

    def job(self, job_id: bytes) -> dict[str, Any] | None:
        from node.rpc.jobs_format import format_job

        job = get_job(State(self._store.state), job_id)
        return None if job is None else format_job(job, detail=True)
