"""JSON-RPC error codes and the RPC layer's error hierarchy.

Standard codes follow JSON-RPC 2.0. Application errors use -32000 and below,
each with a message that says what was wrong (and, where useful, ``data``).
"""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

#: The request ran past its deadline.
SERVER_TIMEOUT = -32000
#: The thing asked for (block, transaction, NFT, job) does not exist.
NOT_FOUND = -32001
#: The height is valid but not available here (above the head, or pruned).
HEIGHT_NOT_AVAILABLE = -32002
#: broadcast_tx mode=commit: the transaction was not included in time.
COMMIT_TIMEOUT = -32003
#: The node cannot serve this now (shutting down, not started).
UNAVAILABLE = -32004


class RPCError(Exception):
    """Base of the RPC layer's errors: carries a JSON-RPC code, a message and optional data."""

    code = INTERNAL_ERROR

    def __init__(self, message: str, *, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


class InvalidRequest(RPCError):
    code = INVALID_REQUEST


class MethodNotFound(RPCError):
    code = METHOD_NOT_FOUND


class InvalidParams(RPCError):
    code = INVALID_PARAMS


class NotFound(RPCError):
    code = NOT_FOUND


class HeightNotAvailable(RPCError):
    code = HEIGHT_NOT_AVAILABLE
