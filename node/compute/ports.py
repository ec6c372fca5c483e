"""What the compute room's services use of the node: narrow ports, never the ``Node``.

The compute service (service.py) and the job provider (provider.py) read the
committed head, sign transactions with the node's account key and send them
through this node's mempool; the compute service also signs attestations with
the consensus key and gossips them on its own topic. Each service states
exactly what it uses as a protocol here; neither may import ``node.app``.

Implementations: ``node.compute.host.DaemonHost`` over the daemon's executor,
mempool, transaction gossip and transport (built in ``node.app``), and
``tests.kit.compute_host.MemoryComputeHost`` over a ``tests.kit.chain.TestChain``
and a real ``Mempool`` for tests.
"""

from __future__ import annotations

from typing import Protocol

from consensus.crypto import PrivateKey
from consensus.state import State
from p2p.interface import Handler, Validator


class ChainHead(Protocol):
    """The last committed block's height and the state after it (``BlockExecutor`` satisfies it)."""

    @property
    def height(self) -> int:
        """Height of the last committed block (0 before the first)."""
        ...

    def head_state(self) -> State:
        """A fresh overlay over the committed head state."""
        ...


class TxOutbox(Protocol):
    """Sends the transactions the node signs itself: into its mempool, then out on gossip."""

    def next_nonce(self, sender: bytes, account_nonce: int) -> int:
        """The nonce of ``sender``'s next transaction, after those already in the mempool."""
        ...

    def submit_tx(self, raw: bytes) -> tuple[int, str, bytes | None]:
        """Check a signed transaction into the mempool and gossip it; return (code, log, tx hash).

        Code 0 means accepted. It may raise after the mempool kept the transaction
        (gossip refuses messages above its cap).
        """
        ...


class NodeAccount(Protocol):
    """The chain this node follows and the account that signs its transactions."""

    @property
    def chain_id(self) -> str: ...

    @property
    def address(self) -> bytes:
        """The account (and validator operator) address."""
        ...

    @property
    def account_key(self) -> PrivateKey:
        """Signs the node's own transactions."""
        ...


class ProviderHost(NodeAccount, ChainHead, TxOutbox, Protocol):
    """Everything the job provider uses of the node: the head, its account, its mempool."""


class ComputeHost(NodeAccount, ChainHead, TxOutbox, Protocol):
    """Everything the compute service uses of the node."""

    @property
    def consensus_key(self) -> PrivateKey:
        """Signs attestations (``consensus.attestation``)."""
        ...

    def drop_stale_txs(self, sender: bytes, state: State) -> None:
        """Forget ``sender``'s queued transactions that ``state`` made invalid (stale nonces)."""
        ...

    def has_tx(self, tx_hash: bytes) -> bool:
        """Whether the mempool holds the transaction."""
        ...

    def regossip_tx(self, raw: bytes) -> None:
        """Gossip a transaction already in the mempool again; raise if gossip refuses it."""
        ...

    def subscribe(self, kind: str, validator: Validator, handler: Handler) -> None:
        """Receive gossip of ``kind``: ``validator`` decides, ``handler`` gets accepted payloads."""
        ...

    async def publish(self, kind: str, payload: bytes) -> None:
        """Gossip ``payload`` on ``kind``'s topic."""
        ...
