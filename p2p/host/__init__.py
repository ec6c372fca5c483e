"""The libp2p implementation of the transport (py-libp2p under trio, in its own thread)."""

from p2p.host.transport import Libp2pTransport

__all__ = ["Libp2pTransport"]
