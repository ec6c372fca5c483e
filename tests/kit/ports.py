"""Port reservation for devnets: one policy for every test and bench that starts nodes.

A devnet lays node i out on p2p ``base + 10*i`` and RPC ``base + 10*i + 1``.
``reserve_ports`` hands out a whole block of 100-port slots from 20000 up,
outside the kernel's ephemeral range (so outgoing connections, whose source
ports the kernel draws from that range, can never take a node's port, not even
while the node restarts); it holds an exclusive ``flock`` on one lock file per
slot for the devnet's lifetime (so devnets of parallel test processes never
share a block; the kernel drops the lock when its holder dies, so nothing
stale is left); and it checks every port the nodes will use by binding it on
127.0.0.1 before handing the block out.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


class PortsUnavailable(Exception):
    """No free block of ports could be reserved."""


#: Ports per reservation slot: ten nodes of a devnet's layout (p2p base+10*i, RPC base+10*i+1).
SLOT_PORTS = 100
#: Lowest port handed out: clear of the well-known and commonly configured low ports.
PORT_FLOOR = 20_000
LOCK_DIR = Path(tempfile.gettempdir()) / "cstake-devnet-ports"
_next_slot: int | None = None


def get_ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' source ports (inclusive)."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default


def compute_port_slots() -> list[int]:
    """First port of every reservation slot outside the ephemeral range, ascending."""
    lo, hi = get_ephemeral_range()
    ranges = [(PORT_FLOOR, lo), (hi + 1, 65_536)]
    slots = []
    for start, end in ranges:
        first = max(start, PORT_FLOOR)
        first += -first % SLOT_PORTS
        slots += list(range(first, end - SLOT_PORTS + 1, SLOT_PORTS))
    return slots


@dataclass
class PortBlock:
    """Ports reserved for one devnet until ``release``: node i uses ``p2p_port(i)`` and ``rpc_port(i)``."""

    base: int
    n_nodes: int
    lock_fds: list[int] = field(default_factory=list)

    def p2p_port(self, i: int) -> int:
        return self.base + 10 * i

    def rpc_port(self, i: int) -> int:
        return self.base + 10 * i + 1

    @property
    def ports(self) -> list[int]:
        return [p for i in range(self.n_nodes) for p in (self.p2p_port(i), self.rpc_port(i))]

    def release(self) -> None:
        """Drop the reservation (closing the lock files releases their locks)."""
        while self.lock_fds:
            os.close(self.lock_fds.pop())


def _lock_slot(base: int) -> int | None:
    """Take the slot's lock file without waiting; its descriptor, or None when another process holds it."""
    if not LOCK_DIR.is_dir():
        with contextlib.suppress(OSError):
            LOCK_DIR.mkdir(parents=True)
            LOCK_DIR.chmod(0o1777)  # one directory for every user: ports are shared by all
    try:
        # flock needs no write access, so a lock file another user created serves too.
        fd = os.open(LOCK_DIR / f"{base}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _all_bindable(ports: Iterable[int]) -> bool:
    """Whether every port binds on 127.0.0.1 (all held at once, then closed)."""
    with contextlib.ExitStack() as stack:
        for port in ports:
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def reserve_ports(n_nodes: int) -> PortBlock:
    """Reserve a block of ports for an ``n_nodes`` devnet (see the module docstring); E2EError if none is free.

    Successive reservations of one process move on through the slots (starting
    at an offset drawn from the pid), so a devnet never reuses the ports of
    the one just torn down, whose connections may linger in TIME_WAIT.
    """
    global _next_slot
    if n_nodes < 1:
        raise ValueError(f"a devnet needs at least one node, not {n_nodes}")
    slots = compute_port_slots()
    need = -(-10 * n_nodes // SLOT_PORTS)
    # Blocks of `need` consecutive slots that do not cross a gap between ranges.
    starts = [k for k in range(len(slots) - need + 1) if slots[k + need - 1] - slots[k] == (need - 1) * SLOT_PORTS]
    if not starts:
        raise PortsUnavailable(f"no port range outside the ephemeral range {get_ephemeral_range()} fits {n_nodes} nodes")
    if _next_slot is None:
        _next_slot = os.getpid() % len(starts)
    for step in range(len(starts)):
        k = starts[(_next_slot + step) % len(starts)]
        fds: list[int] = []
        for s in range(k, k + need):
            fd = _lock_slot(slots[s])
            if fd is None:
                break
            fds.append(fd)
        block = PortBlock(slots[k], n_nodes, fds)
        if len(fds) == need and _all_bindable(block.ports):
            _next_slot = (_next_slot + step + need) % len(starts)
            return block
        block.release()
    raise PortsUnavailable(f"found no free block of ports for a {n_nodes}-node devnet (lock files in {LOCK_DIR})")


