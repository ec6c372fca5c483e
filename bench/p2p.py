"""p2p benchmark: four real processes on 127.0.0.1 talking libp2p (TCP, Noise, Yamux, GossipSub).

Prints publish-to-deliver latency (200 B and 100 KB), delivered messages per
second, transactions per second through batched gossip, and block-sync
throughput, beside a plain asyncio TCP echo between the same processes as
the limit of what the machine and Python can do. Every figure is measured in
this run; the load average is printed because the machine is shared.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

from tests.kit.p2p_node import HarnessProcess, percentile

N = 4
CHAIN = "bench"
BLOCKS = 2000
BLOCK_SIZE = 4096


def _ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f} ms" if v < 1 else f"{v:.1f} ms"


async def _cpu(nodes: list[HarnessProcess]) -> list[float]:
    return [(await n.cmd("stats"))["cpu_s"] for n in nodes]


async def _latency(nodes: list[HarnessProcess], kind: str, tag: str, size: int, count: int, rate: int, show: bool = True) -> None:
    pub = nodes[1]
    await pub.cmd("publish", kind=kind, tag=tag, size=size, count=count, rate=rate, timeout=60)
    lats: list[float] = []
    got = 0
    for n in nodes:
        if n is pub:
            continue
        await n.cmd("wait_msgs", tag=tag, n=count, timeout=15)
        r = await n.cmd("report", tag=tag, raw=True)
        lats += r["latencies_ms"] or []
        got += r["count"]
    if show:
        print(
            f"publish-to-deliver latency, {size:>7,} B at {rate}/s from one node: p50 {_ms(percentile(lats, 50))}, "
            f"p99 {_ms(percentile(lats, 99))} ({got}/{count * (N - 1)} delivered to {N - 1} receivers)"
        )


async def _throughput(nodes: list[HarnessProcess], count: int) -> None:
    pub = nodes[1]
    c0 = await _cpu(nodes)
    t0 = time.time_ns()
    res = await pub.cmd("publish", kind="vote", tag="burst", size=200, count=count, timeout=60)
    rates, total = [], 0
    for n in nodes:
        if n is pub:
            continue
        await n.cmd("wait_msgs", tag="burst", n=count, timeout=45)
        r = await n.cmd("report", tag="burst")
        total += r["count"]
        if r["count"]:
            rates.append(r["count"] / max(1e-9, (r["last_ns"] - t0) / 1e9))
    c1 = await _cpu(nodes)
    cpu_ms = sum(b - a for a, b in zip(c0, c1, strict=True)) * 1000 / count
    print(
        f"delivered messages/s, 200 B, one publisher unpaced ({res['sent']} published in {res['seconds']:.1f} s): "
        f"{min(rates, default=0):,.0f}-{max(rates, default=0):,.0f} msg/s per receiver, "
        f"{total}/{count * (N - 1)} delivered within 45 s; CPU {cpu_ms:.1f} ms per published message over all {N} processes"
    )


async def _txs(nodes: list[HarnessProcess], count: int) -> None:
    pub = nodes[2]
    res = await pub.cmd("submit_txs", count=count, size=120, timeout=60)
    rates, total = [], 0
    for n in nodes:
        if n is pub:
            continue
        w = await n.cmd("wait_txs", n=count, timeout=30)
        total += w["count"]
        if w["count"]:
            rates.append(w["count"] / max(1e-9, (w["last_ns"] - res["start_ns"]) / 1e9))
    print(
        f"transactions/s through batched gossip, 120 B txs ({count} in {res['stats']['batches_sent']} batches): "
        f"{min(rates, default=0):,.0f}-{max(rates, default=0):,.0f} tx/s per receiver end to end, "
        f"{total}/{count * (N - 1)} delivered (per-tx validator accepts; no signature check)"
    )


async def _sync(client: HarnessProcess) -> None:
    for verify in (False, True):
        r = await client.cmd("sync", start=1, end=BLOCKS, verify=verify, timeout=60)
        if not r["ok"]:
            print(f"block sync failed: {r['error']}")
            return
        label = "verifying each commit (4 Ed25519 signatures)" if verify else "transfer and decode only"
        print(
            f"block sync {r['n']} blocks of {BLOCK_SIZE} B with commits ({r['payload_bytes'] / 1e6:.1f} MB), {label}: "
            f"{r['payload_bytes'] / r['seconds'] / 1e6:.1f} MB/s, {r['n'] / r['seconds']:,.0f} blocks/s"
        )


async def _echo(server: HarnessProcess, client: HarnessProcess) -> None:
    port = (await server.cmd("echo_serve"))["port"]
    for size, count, stream in ((200, 2000, 20000), (100_000, 300, 300)):
        r = await client.cmd("echo_bench", port=port, size=size, count=count, stream=stream, timeout=60)
        print(
            f"limit, plain asyncio TCP echo between two of the processes, {size:>7,} B: round trip p50 {_ms(r['p50_ms'])}, "
            f"p99 {_ms(r['p99_ms'])}; streamed {r['mb_s'] * 1e6 / size:,.0f} msg/s ({r['mb_s']:.1f} MB/s)"
        )


async def _drops(nodes: list[HarnessProcess]) -> None:
    total: dict[str, int] = {}
    for n in nodes:
        for k, v in (await n.cmd("stats"))["stats"]["dropped"].items():
            total[k] = total.get(k, 0) + v
    print("drop counters summed over the 4 processes: " + ", ".join(f"{k} {v}" for k, v in total.items()))


async def _main() -> None:
    print(f"load average before start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as d:
        nodes: list[HarnessProcess] = []
        try:
            t0 = time.perf_counter()
            boot = HarnessProcess(
                os.path.join(d, "k0"), chain=CHAIN, extra=["--blocks", str(BLOCKS), "--block-size", str(BLOCK_SIZE)]
            )
            nodes.append(boot)
            await boot.start()
            rest = [HarnessProcess(os.path.join(d, f"k{i}"), chain=CHAIN, bootstrap=[boot.addrs[0]]) for i in range(1, N)]
            nodes += rest
            await asyncio.gather(*(n.start() for n in rest))
            ok = await asyncio.gather(*(n.cmd("wait_peers", n=N - 1, timeout=60) for n in nodes))
            mesh = await asyncio.gather(*(n.cmd("wait_mesh", kinds=["vote", "proposal"], n=N - 1, timeout=30) for n in nodes))
            print(
                f"{N} processes, one bootstrap address: full mesh in {time.perf_counter() - t0:.1f} s "
                f"(peers {[len(o['peers']) for o in ok]}, vote mesh {[m['mesh']['vote'] for m in mesh]})"
            )
            await _latency(nodes, "vote", "warm", 200, 40, 40, show=False)
            await _latency(nodes, "vote", "lat200", 200, 300, 20)
            await _latency(nodes, "proposal", "lat100k", 100_000, 100, 10)
            await _throughput(nodes, 1000)
            await _txs(nodes, 20_000)
            await _sync(nodes[3])
            await _echo(nodes[0], nodes[3])
            await _drops(nodes)
        finally:
            for n in nodes:
                try:
                    await n.quit(timeout=15)
                except Exception:
                    n.kill()
                await n.wait_exit(10)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def run() -> None:
    """Run the suite (called by ``python -m bench``)."""
    asyncio.run(_main())
