"""The daemon's implementation of the compute room's ports (ports.py).

``node.app`` builds one ``DaemonHost`` over its executor, mempool, transaction
gossip and transport, and hands it to the compute service and the job
provider: they see the calls their protocol names and nothing else of the node.
"""

from __future__ import annotations

from collections.abc import Callable

from consensus.crypto import PrivateKey
from consensus.state import State
from node.compute.ports import ChainHead
from node.mempool.pool import Mempool
from p2p.interface import Handler, Transport, Validator
from p2p.txbatch import TxGossip


class DaemonHost:
    """Implements ``ComputeHost`` and ``ProviderHost`` over the running daemon's parts."""

    def __init__(
        self,
        *,
        chain_id: str,
        account_key: PrivateKey,
        consensus_key: PrivateKey,
        head: ChainHead,
        mempool: Mempool,
        submit_tx: Callable[[bytes], tuple[int, str, bytes | None]],
        tx_gossip: TxGossip,
        transport: Transport,
    ) -> None:
        self._chain_id = chain_id
        self._account_key = account_key
        self._address = account_key.address()
        self._consensus_key = consensus_key
        self._head = head
        self._mempool = mempool
        self._submit_tx = submit_tx
        self._tx_gossip = tx_gossip
        self._transport = transport

    # -- NodeAccount --------------------------------------------------------------------------

    @property
    def chain_id(self) -> str:
        return self._chain_id

    @property
    def address(self) -> bytes:
        return self._address

    @property
    def account_key(self) -> PrivateKey:
        return self._account_key

    @property
    def consensus_key(self) -> PrivateKey:
        return self._consensus_key

    # -- ChainHead ------------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self._head.height

    def head_state(self) -> State:
        return self._head.head_state()

    # -- TxOutbox and the mempool ---------------------------------------------------------------

    def next_nonce(self, sender: bytes, account_nonce: int) -> int:
        return self._mempool.next_nonce(sender, account_nonce)

    def submit_tx(self, raw: bytes) -> tuple[int, str, bytes | None]:
        return self._submit_tx(raw)

    def drop_stale_txs(self, sender: bytes, state: State) -> None:
        self._mempool.update((), state, changed_accounts=[sender])

    def has_tx(self, tx_hash: bytes) -> bool:
        return tx_hash in self._mempool

    def regossip_tx(self, raw: bytes) -> None:
        self._tx_gossip.submit(raw)

    # -- gossip topics ----------------------------------------------------------------------------

    def subscribe(self, kind: str, validator: Validator, handler: Handler) -> None:
        self._transport.subscribe(kind, validator, handler)

    async def publish(self, kind: str, payload: bytes) -> None:
        await self._transport.publish(kind, payload)
