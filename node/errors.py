"""The node's errors: one root, ``NodeError``, and a leaf per thing an operator can act on.

Protocol failures stay ``consensus.errors.ConsensusError``, network failures
``p2p.errors.P2PError``, storage failures ``storage.errors.StorageError`` and
JSON-RPC answers ``node.rpc.errors.RPCError``; this tree covers what the daemon,
its services, the command line and the developer tools raise themselves. Names
never repeat a name of another layer, so an ``except`` clause always says which
layer it means. Messages say what failed and why, in words an operator can act on.
"""

from __future__ import annotations

from typing import Any


class NodeError(Exception):
    """Root of every error the node raises itself."""


# -- operator input -------------------------------------------------------------------


class InvalidConfig(NodeError):
    """A config.toml value or a command-line setting is missing, malformed or out of range."""


class InvalidKeyFile(NodeError):
    """A key file is missing, unreadable, malformed, readable by others, or would be overwritten."""


class HomeError(NodeError):
    """A node home cannot be created or is not a node home (``cstake init``)."""


class CommandError(NodeError):
    """A ``cstake`` command was given arguments it cannot act on."""


# -- the daemon and its services ----------------------------------------------------------


class GenesisMismatch(NodeError):
    """The data directory belongs to another chain than the home's genesis."""


class ServiceFailed(NodeError):
    """A supervised service of the daemon ended with an error; the node stops."""


class SignerError(NodeError):
    """The persistent signer cannot sign."""


class DoubleSignRefused(SignerError):
    """Signing would conflict with a message already signed at that height, round and step."""


class SignerStateCorrupt(SignerError):
    """The signer's last-signed state on disk cannot be read; it never signs from a guess."""


class WalError(NodeError):
    """The consensus write-ahead log cannot be written or read."""


class WalCorrupt(WalError):
    """A WAL record other than a torn tail fails its checksum or framing."""


class ProverError(NodeError):
    """The proof-of-compute prover could not compute or open a product."""


# -- clients and developer tools -------------------------------------------------------------


class RPCClientError(NodeError):
    """A JSON-RPC call from a client (the CLI, the load generator) failed."""


class NodeUnreachable(RPCClientError):
    """No node answers at the RPC address."""


class RPCCallError(RPCClientError):
    """The node answered the call with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method} failed: {message} (code {code})")
        self.method = method
        """The JSON-RPC method called."""
        self.code = code
        """The JSON-RPC error code (-32000 and below: application errors)."""
        self.message = message
        """The node's error message."""
        self.data = data
        """The error's ``data`` member, if the node sent one."""


class ProofError(RPCClientError):
    """A node's answer does not verify against the proof it carries or the header it must match."""


class DevnetError(NodeError):
    """A local devnet cannot be created, started or stopped."""


class LoadError(NodeError):
    """The load generator cannot run as asked."""
