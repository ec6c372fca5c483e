"""The narrow, read-only view of a node that RPC handlers see.

Handlers never touch the round state, the store's write side or the network:
they get a ``NodeView``. The daemon implements it over its NodeStore, mempool
and transport; ``tests.kit.memview.MemoryNodeView`` implements it over a
``tests.kit.chain.TestChain`` for tests.

Feature providers (attestations, challenges, jobs) return None while the
feature does not exist on this node; the RPC result then says so
(``"available": false``) instead of returning made-up data.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from consensus.blocks import Block
from consensus.records import TxResult
from consensus.state_proof import StateProof
from consensus.state_reader import StateReader
from consensus.txs import SignedTx
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit
from node.rpc.events import EventBus
from storage.tx_index import AddressTxIndex


@dataclass(frozen=True, slots=True)
class CommittedTx:
    """A transaction in a committed block, with its result."""

    tx: SignedTx
    height: int
    index: int
    result: TxResult


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """The answer of the node to a submitted transaction (code 0: in the mempool)."""

    tx_hash: bytes
    code: int
    log: str


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A connected peer."""

    node_id: str
    addrs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProvedValue:
    """A state entry with its Merkle proof, all from one committed height."""

    height: int
    #: The state root after ``height`` (the header of ``height + 1`` carries it).
    state_root: bytes
    key: bytes
    value: bytes | None
    proof: StateProof


class MempoolView(Protocol):
    """What RPC reads of the mempool (``node.mempool.pool.Mempool`` satisfies it)."""

    @property
    def size(self) -> int: ...

    @property
    def total_bytes(self) -> int: ...

    def list_txs(self, limit: int) -> list[SignedTx]: ...

    def next_nonce(self, sender: bytes, account_nonce: int) -> int: ...

    def get(self, tx_hash: bytes) -> SignedTx | None:
        """The pending transaction with this hash, or None."""


class NodeView(Protocol):
    """Read-only access to a running node, for the RPC server."""

    @property
    def chain_id(self) -> str: ...

    @property
    def node_id(self) -> str:
        """The libp2p peer id."""
        ...

    @property
    def moniker(self) -> str: ...

    @property
    def validator_address(self) -> bytes | None:
        """This node's validator (operator) address, or None when it is not a validator."""
        ...

    @property
    def events(self) -> EventBus:
        """Where committed blocks and transactions are announced."""
        ...

    @property
    def mempool(self) -> MempoolView: ...

    def latest_height(self) -> int:
        """Height of the last committed block (0 before the first)."""
        ...

    def latest_state_root(self) -> bytes:
        """State root after the last committed block (the genesis root before the first)."""
        ...

    def earliest_height(self) -> int:
        """Lowest height whose block is still stored (1 unless pruned; 0 before the first)."""
        ...

    def get_block(self, height: int) -> tuple[Block, bytes] | None:
        """Return ``(block, block hash)`` at ``height``, or None."""
        ...

    def get_block_by_hash(self, block_hash: bytes) -> tuple[Block, bytes] | None: ...

    def get_commit(self, height: int) -> Commit | None:
        """Return the commit that finalised the block at ``height``, or None."""
        ...

    def get_tx(self, tx_hash: bytes) -> CommittedTx | None:
        """Return the committed transaction with this id, or None."""
        ...

    def get_tx_result(self, tx_hash: bytes) -> TxResult | None:
        """How a committed transaction ended (from the tx index alone), or None."""

    def read_state(self) -> AbstractContextManager[StateReader]:
        """A consistent snapshot of the latest committed state, released on exit."""
        ...

    def read_state_at(self, height: int) -> AbstractContextManager[StateReader] | None:
        """The state after ``height`` if this node keeps it, else None."""
        ...

    def validator_set(self, height: int) -> ValidatorSet | None:
        """The validator set that decided ``height`` (None if unknown)."""
        ...

    def peers(self) -> list[PeerInfo]: ...

    def listen_addrs(self) -> list[str]: ...

    def catching_up(self) -> bool: ...

    async def submit_tx(self, tx: SignedTx) -> SubmitResult:
        """Check ``tx`` into the mempool (and gossip it when accepted)."""
        ...

    def attestations(self, validator: bytes | None) -> list[dict[str, Any]] | None:
        """Latest compute attestations, JSON-ready; None when this node has no such feature."""
        ...

    def challenges(self, height: int | None, nft_id: int | None) -> list[dict[str, Any]] | None:
        """Proof-of-compute challenges and status, JSON-ready; None when unavailable."""
        ...

    def jobs(self, status: str | None) -> list[dict[str, Any]] | None:
        """Compute jobs, JSON-ready; None when unavailable."""
        ...

    def prove_state(self, key: bytes) -> ProvedValue:
        """``key``'s value (or absence) with its proof against the latest committed state root."""

    @property
    def tx_index(self) -> AddressTxIndex | None:
        """The address index (None where this node keeps none)."""

    def job(self, job_id: bytes) -> dict[str, Any] | None:
        """One job, JSON-ready; None when not found (or unavailable: see ``jobs``)."""
        ...
