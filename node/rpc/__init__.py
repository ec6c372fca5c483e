"""The node's JSON-RPC server: methods over a read-only NodeView, HTTP, WebSocket events.

Entry points: ``RPCServer`` (server.py), ``NodeView`` (view.py), ``EventBus`` (events.py).
"""

from node.rpc.errors import RPCError
from node.rpc.events import BlockCommitted, EventBus, TxCommitted
from node.rpc.server import RPCServer
from node.rpc.view import CommittedTx, MempoolView, NodeView, PeerInfo, SubmitResult

__all__ = [
    "BlockCommitted",
    "CommittedTx",
    "EventBus",
    "MempoolView",
    "NodeView",
    "PeerInfo",
    "RPCError",
    "RPCServer",
    "SubmitResult",
    "TxCommitted",
]
