"""A standalone p2p node process for multi-process tests and benchmarks.

``python -m tests.kit.p2p_node --key FILE --chain ID [--port P] [--bootstrap ADDR ...]``
starts a ``Libp2pTransport`` on 127.0.0.1 (under uvloop, as the node runs),
prints one JSON line ``{"event": "ready", "peer_id", "addrs"}``, then reads
JSON commands from stdin, one per line, and answers each with one JSON line
carrying the same ``id``. Waits (``wait_peers``, ``wait_msgs``, ...) are
event-driven with a bounded timeout. Gossip payloads start with ``OK``,
``BAD`` (rejected) or ``IGN`` (ignored), then a 16-byte tag, the send time
and a sequence number, so receivers count deliveries and latency per tag.
``P2P_LOG=DEBUG`` sets the child's log level and ``P2P_STDERR=/path/prefix``
keeps each child's stderr in ``prefix.<key name>`` (both for debugging).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import multiaddr
from libp2p.peer.id import ID

from p2p.blocksync import BlockSyncClient, BlockSyncServer
from p2p.config import GOSSIP_KINDS, P2PConfig
from p2p.errors import P2PError
from p2p.host import Libp2pTransport
from p2p.host.router import IDONTWANT_MIN_BYTES
from p2p.interface import PeerEvent, PeerPenalised, Verdict
from p2p.txbatch import TxGossip
from tests.kit.p2p_synthetic import ChainVerifier, corrupt, make_chain

HDR = struct.Struct(">2s16sqI")  # verdict prefix, tag, send time (ns), sequence


def make_payload(prefix: bytes, tag: str, seq: int, size: int) -> bytes:
    """Return a gossip payload of ``size`` bytes (at least the header)."""
    head = HDR.pack(prefix[:2], tag.encode()[:16].ljust(16, b"\0"), time.time_ns(), seq)
    return head + b"x" * max(0, size - len(head))


def percentile(values: list[float], q: float) -> float | None:
    """Return the q-th percentile (nearest rank) of ``values``, or None when empty."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


class Harness:
    """One process's node: counts what it receives and answers commands."""

    def __init__(self, t: Libp2pTransport, args: argparse.Namespace) -> None:
        self.t = t
        self.args = args
        self.lat: dict[str, list[float]] = {}
        self.first_last: dict[str, list[int]] = {}
        self.tx_count = 0
        self.tx_first = 0
        self.tx_last = 0
        self.penalised: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        for kind in GOSSIP_KINDS:
            if kind != "tx":
                t.subscribe(kind, self.validate, self.deliver)
        self.txg = TxGossip(t, self.validate_tx, self.deliver_tx)
        t.add_event_handler(self.on_event)
        if args.blocks:
            rows = make_chain(args.chain, args.blocks, args.block_size)
            BlockSyncServer(t, _Provider(corrupt(rows) if args.corrupt_blocks else rows))
        self.echo_server: asyncio.Server | None = None

    def _poke(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def on_event(self, ev: PeerEvent) -> None:
        if isinstance(ev, PeerPenalised):
            self.penalised.append({"peer": ev.peer_id, "reason": ev.reason, "cut": ev.disconnected})
        self._poke()

    def validate(self, peer: str, payload: bytes) -> Verdict:
        if self.args.validate_delay and len(payload) >= IDONTWANT_MIN_BYTES:
            time.sleep(self.args.validate_delay)  # a busy node: its event loop is blocked meanwhile
        if payload[:2] == b"OK":
            return Verdict.ACCEPT
        if payload[:3] == b"IGN":
            return Verdict.IGNORE
        return Verdict.REJECT

    def deliver(self, peer: str, payload: bytes) -> None:
        now = time.time_ns()
        _, tag, sent, _ = HDR.unpack_from(payload)
        key = tag.rstrip(b"\0").decode()
        self.lat.setdefault(key, []).append((now - sent) / 1e6)
        fl = self.first_last.setdefault(key, [now, now])
        fl[1] = now
        self._poke()

    def validate_tx(self, peer: str, tx: bytes) -> Verdict:
        return Verdict.REJECT if tx.startswith(b"BADTX") else Verdict.ACCEPT

    def deliver_tx(self, peer: str, tx: bytes) -> None:
        now = time.time_ns()
        if not self.tx_count:
            self.tx_first = now
        self.tx_count += 1
        self.tx_last = now
        if self.tx_count % 500 == 0:
            self._poke()

    async def wait_for(self, cond: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))
        return True

    # -- commands ---------------------------------------------------------------

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            return {"error": f"unknown op {op}"}
        result: dict[str, Any] = await fn(cmd)
        return result

    async def op_peers(self, cmd: dict[str, Any]) -> dict[str, Any]:
        return {"peers": self.t.peers()}

    async def op_connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Dial ``addr`` (a multiaddr ending in /p2p/<id>) through the transport."""
        try:
            return {"ok": True, "peer": await self.t.connect(cmd["addr"])}
        except P2PError as exc:
            return {"ok": False, "error": str(exc)}

    async def op_learn_addr(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Put ``addr`` (no /p2p part) in the libp2p peerstore for ``peer``, as a learnt address would be."""
        svc = self.t._svc()

        async def learn() -> None:  # on the trio thread, where the peerstore lives
            if svc.host is None:
                raise P2PError("the host is not running")
            svc.host.get_peerstore().add_addrs(ID.from_base58(cmd["peer"]), [multiaddr.Multiaddr(cmd["addr"])], 3600)

        await self.t._thread.call(learn)
        return {"ok": True}

    async def op_wait_peers(self, cmd: dict[str, Any]) -> dict[str, Any]:
        n, exclude = cmd["n"], set(cmd.get("exclude", ()))
        ok = await self.wait_for(lambda: len(set(self.t.peers()) - exclude) >= n, cmd.get("timeout", 30))
        return {"ok": ok, "peers": self.t.peers()}

    async def op_wait_gone(self, cmd: dict[str, Any]) -> dict[str, Any]:
        ok = await self.wait_for(lambda: cmd["peer"] not in self.t.peers(), cmd.get("timeout", 30))
        return {"ok": ok, "peers": self.t.peers()}

    async def op_wait_mesh(self, cmd: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + cmd.get("timeout", 30)
        while True:
            sizes = {k: len(await self.t.mesh_peers(k)) for k in cmd["kinds"]}
            if all(v >= cmd.get("n", 1) for v in sizes.values()) or time.monotonic() > deadline:
                return {"ok": all(v >= cmd.get("n", 1) for v in sizes.values()), "mesh": sizes}
            # The mesh changes on the 1 s heartbeat; there is no event to await.
            await asyncio.sleep(0.1)

    async def op_publish(self, cmd: dict[str, Any]) -> dict[str, Any]:
        prefix = cmd.get("prefix", "OK").encode()
        count, rate = cmd.get("count", 1), cmd.get("rate", 0)
        t0 = time.perf_counter()
        errors = 0
        for i in range(count):
            if rate:
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            try:
                await self.t.publish(cmd["kind"], make_payload(prefix, cmd["tag"], i, cmd.get("size", 200)))
            except Exception as exc:
                errors += 1
                last = repr(exc)
        out = {"ok": errors == 0, "sent": count - errors, "seconds": time.perf_counter() - t0}
        if errors:
            out["error"] = last
        return out

    async def op_publish_raw(self, cmd: dict[str, Any]) -> dict[str, Any]:
        data = bytes.fromhex(cmd["hex"]) if "hex" in cmd else os.urandom(cmd["size"])
        for _ in range(cmd.get("count", 1)):
            await self.t.publish_raw(cmd["kind"], data)
        return {"ok": True}

    async def op_raw_frame(self, cmd: dict[str, Any]) -> dict[str, Any]:
        await self.t.send_raw_frame(cmd["peer"], bytes.fromhex(cmd["hex"]))
        return {"ok": True}

    async def op_wait_msgs(self, cmd: dict[str, Any]) -> dict[str, Any]:
        tag, n = cmd["tag"], cmd["n"]
        ok = await self.wait_for(lambda: len(self.lat.get(tag, ())) >= n, cmd.get("timeout", 30))
        return {"ok": ok, "count": len(self.lat.get(tag, ()))}

    async def op_report(self, cmd: dict[str, Any]) -> dict[str, Any]:
        lat = self.lat.get(cmd["tag"], [])
        fl = self.first_last.get(cmd["tag"], [0, 0])
        return {
            "count": len(lat),
            "latencies_ms": lat if cmd.get("raw") else None,
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
            "first_ns": fl[0],
            "last_ns": fl[1],
        }

    async def op_submit_txs(self, cmd: dict[str, Any]) -> dict[str, Any]:
        start_ns = time.time_ns()
        t0 = time.perf_counter()
        body = b"t" * max(0, cmd.get("size", 120) - 12)
        prefix = cmd.get("prefix", "TX").encode()
        for i in range(cmd["count"]):
            self.txg.submit(prefix + i.to_bytes(10, "big") + body)
            if i % 200 == 199:
                await asyncio.sleep(0)  # let the batches go out while we keep submitting
        await self.txg.flush()
        return {"ok": True, "start_ns": start_ns, "seconds": time.perf_counter() - t0, "stats": vars_of(self.txg.stats)}

    async def op_wait_txs(self, cmd: dict[str, Any]) -> dict[str, Any]:
        ok = await self.wait_for(lambda: self.tx_count >= cmd["n"], cmd.get("timeout", 30))
        return {"ok": ok, "count": self.tx_count, "first_ns": self.tx_first, "last_ns": self.tx_last}

    async def op_sync(self, cmd: dict[str, Any]) -> dict[str, Any]:
        client = BlockSyncClient(self.t)
        verifier = ChainVerifier(self.args.chain)
        b0 = self.t.stats.bytes_in
        t0 = time.perf_counter()
        try:
            frames = await client.fetch_range(cmd["start"], cmd["end"], verify=verifier if cmd.get("verify", True) else None)
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "verified": verifier.verified}
        dt = time.perf_counter() - t0
        size = sum(len(f.block) + len(f.commit) for f in frames)
        return {
            "ok": True,
            "n": len(frames),
            "verified": verifier.verified,
            "seconds": dt,
            "payload_bytes": size,
            "wire_bytes": self.t.stats.bytes_in - b0,
            "last_height": frames[-1].height if frames else 0,
        }

    async def op_stats(self, cmd: dict[str, Any]) -> dict[str, Any]:
        cpu = os.times()
        return {
            "stats": self.t.stats.snapshot(),
            "tx": vars_of(self.txg.stats),
            "penalised": self.penalised,
            "cpu_s": cpu.user + cpu.system,
        }

    async def op_wait_stat(self, cmd: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + cmd.get("timeout", 30)
        while True:
            value = self.t.stats.snapshot()[cmd["name"]]
            if value >= cmd["min"] or time.monotonic() > deadline:
                return {"ok": value >= cmd["min"], "value": value}
            # Counters change in the libp2p thread; there is no event to await.
            await asyncio.sleep(0.05)

    async def op_score(self, cmd: dict[str, Any]) -> dict[str, Any]:
        return {"score": self.t.get_peer_score(cmd["peer"])}

    async def op_echo_serve(self, cmd: dict[str, Any]) -> dict[str, Any]:
        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await r.readexactly(4)
                    body = await r.readexactly(int.from_bytes(head, "big"))
                    w.write(head + body)
                    await w.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                w.close()

        self.echo_server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        return {"port": self.echo_server.sockets[0].getsockname()[1]}

    async def op_echo_bench(self, cmd: dict[str, Any]) -> dict[str, Any]:
        r, w = await asyncio.open_connection("127.0.0.1", cmd["port"])
        body = b"e" * cmd["size"]
        lats = []
        t0 = time.perf_counter()
        for _ in range(cmd["count"]):
            t1 = time.perf_counter()
            w.write(len(body).to_bytes(4, "big") + body)
            await w.drain()
            head = await r.readexactly(4)
            await r.readexactly(int.from_bytes(head, "big"))
            lats.append((time.perf_counter() - t1) * 1e3)
        dt = time.perf_counter() - t0
        # Streaming throughput: many frames in flight, one reader.
        n_stream = cmd.get("stream", 0)
        mbps = None
        if n_stream:
            t2 = time.perf_counter()

            async def reader() -> None:
                for _ in range(n_stream):
                    head = await r.readexactly(4)
                    await r.readexactly(int.from_bytes(head, "big"))

            task = asyncio.create_task(reader())
            for _ in range(n_stream):
                w.write(len(body).to_bytes(4, "big") + body)
                await w.drain()
            await task
            mbps = n_stream * len(body) / (time.perf_counter() - t2) / 1e6
        w.close()
        return {"p50_ms": percentile(lats, 50), "p99_ms": percentile(lats, 99), "rtt_per_s": len(lats) / dt, "mb_s": mbps}

    async def op_quit(self, cmd: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        await self.txg.close()
        await self.t.stop()
        stop_s = time.perf_counter() - t0
        if self.echo_server is not None:
            self.echo_server.close()
        names = [th.name for th in threading.enumerate() if th is not threading.current_thread()]
        tasks = [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return {"ok": True, "threads": names, "tasks": tasks, "stop_s": stop_s}


class _Provider:
    def __init__(self, rows: list[tuple[bytes, bytes]]) -> None:
        self.rows = rows

    def get_status(self) -> tuple[int, bytes, int]:
        return (len(self.rows), b"\x00" * 32, 1)

    def get_blocks(self, start: int, end: int) -> list[tuple[bytes, bytes]]:
        return self.rows[start - 1 : end]


def vars_of(obj: Any) -> dict[str, Any]:
    """Return a dataclass-with-slots instance's fields as a dict."""
    return {k: getattr(obj, k) for k in obj.__slots__}


def emit(obj: dict[str, Any]) -> None:
    """Write one JSON line to stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def amain(args: argparse.Namespace) -> int:
    cfg = P2PConfig(
        chain_id=args.chain,
        key_path=args.key,
        listen_port=args.port,
        bootstrap=tuple(args.bootstrap),
        max_peers=args.max_peers,
        max_message_bytes=args.max_message_bytes,
        peer_exchange_interval=args.px_interval,
        gil_switch_interval=None if args.gil_switch <= 0 else args.gil_switch,
        max_request_blocks=args.max_request_blocks,
    )
    t = Libp2pTransport(cfg)
    h = Harness(t, args)
    await t.start()
    emit({"event": "ready", "peer_id": t.peer_id, "addrs": t.listen_addrs(), "pid": os.getpid()})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            await h.op_quit({})
            return 0
        cmd = json.loads(line)
        try:
            res = await h.handle(cmd)
        except Exception as exc:
            res = {"error": f"{type(exc).__name__}: {exc}"}
        res["id"] = cmd.get("id")
        emit(res)
        if cmd["op"] == "quit":
            return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tests.kit.p2p_node")
    p.add_argument("--key", required=True)
    p.add_argument("--chain", default="harness")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--bootstrap", nargs="*", default=[])
    p.add_argument("--max-peers", type=int, default=32)
    p.add_argument("--max-message-bytes", type=int, default=1 << 20)
    p.add_argument("--px-interval", type=float, default=2.0)
    p.add_argument("--max-request-blocks", type=int, default=500)
    p.add_argument("--blocks", type=int, default=0, help="serve a synthetic chain of this many blocks")
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--gil-switch", type=float, default=0.0005, help="0 keeps Python's default")
    p.add_argument("--corrupt-blocks", action="store_true", help="serve commits with bad signatures")
    p.add_argument("--validate-delay", type=float, default=0.0, help="seconds to validate a message of IDONTWANT_MIN_BYTES or more")
    args = p.parse_args()
    import logging

    import uvloop

    logging.basicConfig(level=os.environ.get("P2P_LOG", "WARNING"), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    return uvloop.run(amain(args))


if __name__ == "__main__":
    raise SystemExit(main())


class HarnessProcess:
    """Drives one ``python -m tests.kit.p2p_node`` child process from asyncio (tests, benchmarks)."""

    def __init__(self, key: str, *, chain: str = "harness", bootstrap: list[str] | None = None, extra: list[str] | None = None) -> None:
        self.key = key
        self.chain = chain
        self.bootstrap = bootstrap or []
        self.extra = extra or []
        self.proc: asyncio.subprocess.Process | None = None
        self.peer_id = ""
        self.addrs: list[str] = []
        self._ids = 0
        self._log: Any = None

    async def start(self, timeout: float = 60.0) -> HarnessProcess:
        """Start the child and wait for its ready line."""
        cmd = [sys.executable, "-m", "tests.kit.p2p_node", "--key", self.key, "--chain", self.chain, *self.extra]
        if self.bootstrap:
            cmd += ["--bootstrap", *self.bootstrap]
        self.proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr_target(),
            limit=16 << 20,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        )
        ready = await self._read(timeout)
        if ready.get("event") != "ready":
            raise RuntimeError(f"harness did not start: {ready}")
        self.peer_id = ready["peer_id"]
        self.addrs = ready["addrs"]
        return self

    def _stderr_target(self) -> Any:
        # P2P_STDERR=/path/prefix keeps each child's log (debugging); otherwise discard it.
        prefix = os.environ.get("P2P_STDERR")
        if not prefix:
            return asyncio.subprocess.DEVNULL
        self._log = open(f"{prefix}.{os.path.basename(self.key)}", "ab")  # noqa: SIM115 - closed in wait_exit
        return self._log

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else -1

    async def _read(self, timeout: float) -> dict[str, Any]:
        if self.proc is None or self.proc.stdout is None:
            raise RuntimeError("harness is not running")
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"harness {self.pid} exited (rc={await self.proc.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    async def cmd(self, op: str, **kw: Any) -> dict[str, Any]:
        """Send one command and return its answer (``timeout`` is also the child's own wait bound)."""
        timeout = float(kw.get("timeout", 30)) + 60.0
        if self.proc is None or self.proc.stdin is None:
            raise RuntimeError("harness is not running")
        self._ids += 1
        self.proc.stdin.write((json.dumps({"op": op, "id": self._ids, **kw}) + "\n").encode())
        await self.proc.stdin.drain()
        while True:
            res = await self._read(timeout)
            if res.get("id") == self._ids:
                return res

    async def quit(self, timeout: float = 20.0) -> dict[str, Any]:
        """Ask the child to stop cleanly; return its answer (threads and tasks left)."""
        res = await self.cmd("quit", timeout=timeout)
        if self.proc is not None:
            await asyncio.wait_for(self.proc.wait(), timeout)
        return res

    def kill(self) -> None:
        """SIGKILL the child (if still running)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    async def wait_exit(self, timeout: float = 20.0) -> int | None:
        """Wait for the child to exit; kill it if it does not."""
        if self.proc is None:
            return None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
