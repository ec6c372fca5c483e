"""An in-memory twin of the node as the compute room's services see it.

``MemoryComputeHost`` implements ``node.compute.ports.ComputeHost`` and
``ProviderHost`` (the same protocols ``node.compute.host.DaemonHost`` implements
for the daemon) over a ``tests.kit.chain.TestChain``: the chain's head, one
validator's account and consensus keys, and a real ``Mempool``. Submitted
transactions go through the same decode and mempool check as the daemon's
``Node.submit_tx``; what would leave on the network is kept in lists
(``gossiped_txs``, ``published``), and ``deliver`` hands a gossip message to the
subscribed topic's validator, then to its handler when accepted, as the
transport does.
"""

from __future__ import annotations

import inspect

from consensus.crypto import PrivateKey
from consensus.state import State
from consensus.txs import SignedTx
from node.mempool.pool import Mempool
from p2p.errors import MessageTooLarge
from p2p.interface import Handler, Validator, Verdict
from tests.kit.chain import TestChain


class MemoryComputeHost:
    """The compute service's and job provider's view of validator ``index`` of a TestChain."""

    def __init__(
        self,
        chain: TestChain,
        index: int = 0,
        *,
        mempool: Mempool | None = None,
        max_gossip_bytes: int | None = None,
    ) -> None:
        self.chain = chain
        self.mempool = mempool if mempool is not None else Mempool()
        self.max_gossip_bytes = max_gossip_bytes
        """Transactions larger than this are kept in the mempool but refused by gossip (None: no cap)."""
        self._account_key = chain.operator_keys[index]
        self._consensus_key = chain.consensus_keys[index]
        self._topics: dict[str, tuple[Validator, Handler]] = {}
        self.gossiped_txs: list[bytes] = []
        """Transactions sent on transaction gossip, in order (re-gossip included)."""
        self.published: list[tuple[str, bytes]] = []
        """Messages published on other topics, as (kind, payload)."""

    # -- NodeAccount --------------------------------------------------------------------------

    @property
    def chain_id(self) -> str:
        return self.chain.chain_id

    @property
    def address(self) -> bytes:
        return self._account_key.address()

    @property
    def account_key(self) -> PrivateKey:
        return self._account_key

    @property
    def consensus_key(self) -> PrivateKey:
        return self._consensus_key

    # -- ChainHead ------------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self.chain.height

    def head_state(self) -> State:
        return self.chain.view()

    # -- TxOutbox and the mempool ---------------------------------------------------------------

    def next_nonce(self, sender: bytes, account_nonce: int) -> int:
        return self.mempool.next_nonce(sender, account_nonce)

    def submit_tx(self, raw: bytes) -> tuple[int, str, bytes | None]:
        state = self.head_state()
        try:
            tx = SignedTx.decode(raw, max_bytes=state.get_params().max_tx_bytes)
        except Exception as exc:
            return 7, f"malformed transaction: {exc}", None
        result = self.mempool.add(tx, state)
        if result.accepted:
            self.regossip_tx(tx.raw)
        return result.code, result.log, tx.tx_hash

    def drop_stale_txs(self, sender: bytes, state: State) -> None:
        self.mempool.update((), state, changed_accounts=[sender])

    def has_tx(self, tx_hash: bytes) -> bool:
        return tx_hash in self.mempool

    def regossip_tx(self, raw: bytes) -> None:
        if self.max_gossip_bytes is not None and len(raw) > self.max_gossip_bytes:
            raise MessageTooLarge(f"transaction of {len(raw)} bytes cannot fit one gossip message")
        self.gossiped_txs.append(raw)

    # -- gossip topics ----------------------------------------------------------------------------

    def subscribe(self, kind: str, validator: Validator, handler: Handler) -> None:
        self._topics[kind] = (validator, handler)

    async def publish(self, kind: str, payload: bytes) -> None:
        self.published.append((kind, payload))

    async def deliver(self, kind: str, peer: str, payload: bytes) -> Verdict:
        """Receive a gossip message from ``peer``: validate it, hand it on if accepted."""
        validator, handler = self._topics[kind]
        result = validator(peer, payload)
        verdict = await result if inspect.isawaitable(result) else result
        if verdict == Verdict.ACCEPT:
            handled = handler(peer, payload)
            if inspect.isawaitable(handled):
                await handled
        return verdict

    # -- the chain moves on ---------------------------------------------------------------------

    def commit_mempool(self) -> None:
        """Put every queued transaction in the chain's next block, then update the mempool."""
        txs = self.mempool.list_txs(len(self.mempool))
        self.chain.next_block(txs)
        self.mempool.update([tx.tx_hash for tx in txs], self.head_state())
