"""The devnet kit's port policy: reserved blocks never overlap, within a process or across processes.

A block is the ports of one devnet (p2p ``base + 10*i``, RPC ``base + 10*i + 1``),
below the ephemeral range, free to bind, and held through a lock file per
100-port slot that the kernel drops when its holder dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.kit import devnet as kit
from tests.kit import ports as port_kit


def test_reserve_ports_blocks_never_overlap_and_avoid_the_ephemeral_range() -> None:
    lo, hi = port_kit.get_ephemeral_range()
    blocks = [port_kit.reserve_ports(n) for n in (4, 4, 1, 12)]
    try:
        ports = [p for b in blocks for p in b.ports]
        assert len(ports) == len(set(ports)) == 2 * (4 + 4 + 1 + 12)
        assert all(p >= port_kit.PORT_FLOOR and not lo <= p <= hi for p in ports)
        # Each block lies inside its own slots: no two blocks share a slot (and so a lock).
        slots = [set(range(b.base // port_kit.SLOT_PORTS, b.ports[-1] // port_kit.SLOT_PORTS + 1)) for b in blocks]
        assert sum(len(s) for s in slots) == len(set().union(*slots))
        assert [len(b.lock_fds) for b in blocks] == [1, 1, 1, 2]
    finally:
        for b in blocks:
            b.release()
    assert all(b.lock_fds == [] for b in blocks)


def test_reserve_ports_skips_a_block_with_a_bound_port(monkeypatch: pytest.MonkeyPatch) -> None:
    first = port_kit.compute_port_slots()[0]
    with socket.socket() as s:
        # SO_REUSEADDR: a connection of an earlier test in TIME_WAIT on this port must not
        # stop us binding it (that once turned this test into a skip). Listening makes the
        # port unbindable for the reservation either way. If a live process already listens
        # there, the port is taken all the same: the assertion below holds just as well.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            s.bind(("127.0.0.1", first + 10 * 3 + 1))  # node3's RPC port of the first block
            s.listen()
        monkeypatch.setattr(port_kit, "_next_slot", 0)
        block = port_kit.reserve_ports(4)
        try:
            assert block.base != first
        finally:
            block.release()


@pytest.mark.multiprocess
def test_a_block_held_by_another_process_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from tests.kit.ports import reserve_ports; b = reserve_ports(4); "
         "print(b.base, flush=True); sys.stdin.read()"],
        cwd=kit.REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        held = int(holder.stdout.readline())
        # Its slot's lock is taken, so this process may not take the block, even when it tries it first.
        assert port_kit._lock_slot(held) is None
        monkeypatch.setattr(port_kit, "_next_slot", port_kit.compute_port_slots().index(held))
        mine = port_kit.reserve_ports(4)
        try:
            assert not set(mine.ports) & {held + k for k in range(port_kit.SLOT_PORTS)}
        finally:
            mine.release()
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
        # The kernel dropped the lock with its holder: the block is free again.
        fd = port_kit._lock_slot(held)
        assert fd is not None
        os.close(fd)
    finally:
        kit.stop_process(holder, sig=signal.SIGKILL)
