"""The p2p layer's error hierarchy: every failure names what went wrong and why.

Callers in node/ catch ``P2PError`` (or a leaf they can handle, such as
``RequestFailed`` to retry elsewhere); nothing from py-libp2p or trio leaks
out of p2p/.
"""

from __future__ import annotations


class P2PError(Exception):
    """Base of every error raised by p2p/."""


class ConfigError(P2PError):
    """A p2p configuration value is missing, malformed or inconsistent."""


class KeyFileError(P2PError):
    """The peer key file cannot be created, read or trusted (e.g. wrong mode)."""


class MessageTooLarge(P2PError):
    """A message exceeds its size cap; it is refused before it is sent or decoded."""


class MalformedMessage(P2PError):
    """Bytes received from a peer are not a well-formed p2p message."""


class TransportClosed(P2PError):
    """The transport is not running (not started yet, or already stopped)."""


class RequestFailed(P2PError):
    """A request to one peer failed; the caller may retry on another peer."""


class RequestTimeout(RequestFailed):
    """A peer did not answer a request in time."""


class PeerUnavailable(RequestFailed):
    """The peer is not connected or does not speak the requested protocol."""


class BadPeerData(RequestFailed):
    """A peer answered with data that is malformed or fails verification."""


class NoPeersAvailable(P2PError):
    """No connected peer can serve a request (all failed or none connected)."""
