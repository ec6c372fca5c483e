"""p2p benchmark: four real processes on 127.0.0.1 talking libp2p (TCP, Noise, Yamux, GossipSub).

Prints publish-to-deliver latency (200 B and 100 KB), delivered messages per
second, transactions per second through batched gossip, and block-sync
throughput, beside a plain asyncio TCP echo between the same processes as
the limit of what the machine and Python can do. Every figure is measured
in this run.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

from p2p.harness import HarnessProcess, percentile

N = 4
CHAIN = "bench"


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} ms"


async def _latency(nodes: list[HarnessProcess], kind: str, tag: str, size: int, count: int, rate: int) -> None:
    pub = nodes[1]
    await pub.cmd("publish", kind=kind, tag=tag, size=size, count=count, rate=rate, timeout=120)
    lats: list[float] = []
    got = 0
    for n in nodes:
        if n is pub:
            continue
        await n.cmd("wait_msgs", tag=tag, n=count, timeout=20)
        r = await n.cmd("report", tag=tag, raw=True)
        lats += r["latencies_ms"] or []
        got += r["count"]
    print(
        f"gossip latency {size:>7,} B at {rate}/s: p50 {_ms(percentile(lats, 50))}, p99 {_ms(percentile(lats, 99))}"
        f"  ({got}/{count * (N - 1)} deliveries to {N - 1} receivers)"
    )


async def _throughput(nodes: list[HarnessProcess], count: int) -> None:
    pub = nodes[1]
    t0 = time.time_ns()
    res = await pub.cmd("publish", kind="vote", tag="burst", size=200, count=count, timeout=120)
    rates, total = [], 0
    for n in nodes:
        if n is pub:
            continue
        await n.cmd("wait_msgs", tag="burst", n=count, timeout=30)
        r = await n.cmd("report", tag="burst")
        total += r["count"]
        if r["count"]:
            rates.append(r["count"] / max(1e-9, (r["last_ns"] - t0) / 1e9))
    print(
        f"gossip throughput 200 B, one publisher, unpaced: published {res['sent']} in {res['seconds']:.2f} s; "
        f"delivered {total}/{count * (N - 1)}; per receiver {min(rates, default=0):,.0f}-{max(rates, default=0):,.0f} msg/s"
    )


async def _txs(nodes: list[HarnessProcess], count: int) -> None:
    pub = nodes[2]
    res = await pub.cmd("submit_txs", count=count, size=120, timeout=120)
    rates, total = [], 0
    for n in nodes:
        if n is pub:
            continue
        w = await n.cmd("wait_txs", n=count, timeout=60)
        total += w["count"]
        if w["count"]:
            rates.append(w["count"] / max(1e-9, (w["last_ns"] - res["start_ns"]) / 1e9))
    st = res["stats"]
    print(
        f"batched tx gossip, 120 B txs: {count} submitted in {st['batches_sent']} batches; delivered {total}/{count * (N - 1)}; "
        f"per receiver {min(rates, default=0):,.0f}-{max(rates, default=0):,.0f} tx/s end to end (validator: accept, no signature check)"
    )


async def _sync(client: HarnessProcess, blocks: int) -> None:
    for verify in (False, True):
        r = await client.cmd("sync", start=1, end=blocks, verify=verify, timeout=120)
        if not r["ok"]:
            print(f"block sync failed: {r['error']}")
            return
        label = "with commit verification (4 Ed25519 signatures per block)" if verify else "transfer only"
        print(
            f"block sync {r['n']} blocks ({r['payload_bytes'] / 1e6:.1f} MB) {label}: {r['seconds']:.2f} s, "
            f"{r['payload_bytes'] / r['seconds'] / 1e6:.1f} MB/s, {r['n'] / r['seconds']:,.0f} blocks/s"
        )


async def _echo(server: HarnessProcess, client: HarnessProcess) -> None:
    port = (await server.cmd("echo_serve"))["port"]
    for size, count, stream in ((200, 2000, 20000), (100_000, 300, 300)):
        r = await client.cmd("echo_bench", port=port, size=size, count=count, stream=stream, timeout=120)
        print(
            f"limit: asyncio TCP echo {size:>7,} B: round trip p50 {_ms(r['p50_ms'])}, p99 {_ms(r['p99_ms'])} "
            f"(one way ~half); {r['rtt_per_s']:,.0f} round trips/s; streaming {r['mb_s']:.1f} MB/s "
            f"= {r['mb_s'] * 1e6 / size:,.0f} msg/s"
        )


async def _main() -> None:
    blocks = 2000
    with tempfile.TemporaryDirectory() as d:
        nodes: list[HarnessProcess] = []
        try:
            t0 = time.perf_counter()
            boot = HarnessProcess(os.path.join(d, "k0"), chain=CHAIN, extra=["--blocks", str(blocks), "--block-size", "4096"])
            nodes.append(boot)
            await boot.start()
            rest = [HarnessProcess(os.path.join(d, f"k{i}"), chain=CHAIN, bootstrap=[boot.addrs[0]]) for i in range(1, N)]
            nodes += rest
            await asyncio.gather(*(n.start() for n in rest))
            ok = await asyncio.gather(*(n.cmd("wait_peers", n=N - 1, timeout=60) for n in nodes))
            mesh = await asyncio.gather(*(n.cmd("wait_mesh", kinds=["vote", "proposal"], n=N - 1, timeout=30) for n in nodes))
            print(
                f"{N} processes up and fully meshed in {time.perf_counter() - t0:.1f} s "
                f"(peers {[len(o['peers']) for o in ok]}, vote mesh {[m['mesh']['vote'] for m in mesh]})"
            )
            await _latency(nodes, "vote", "warm", 200, 50, 50)  # warm-up, not reported separately
            await _latency(nodes, "vote", "lat200", 200, 500, 100)
            await _latency(nodes, "proposal", "lat100k", 100_000, 100, 20)
            await _throughput(nodes, 3000)
            await _txs(nodes, 30_000)
            await _sync(nodes[3], blocks)
            await _echo(nodes[0], nodes[3])
        finally:
            for n in nodes:
                try:
                    await n.quit(timeout=15)
                except Exception:
                    n.kill()
                await n.wait_exit(10)


def run() -> None:
    """Run the suite (called by ``python -m bench``)."""
    asyncio.run(_main())
