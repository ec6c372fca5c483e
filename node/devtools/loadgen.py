"""``cstake load``: fund N accounts, send signed transfers at a rate, measure inclusion.

1. Derive N load accounts from the home's account key (deterministic) and
   fund them from it in JSON-RPC batches; wait until the funding is included.
2. Send transfers at ``--rate`` per second for ``--duration`` seconds: every
   50 ms the transactions due are signed and sent as JSON-RPC batches
   (``broadcast_tx`` mode sync). Accounts are spread round-robin over the RPC
   URLs and each account always uses the same URL and the same sending lane
   (lanes send their batches one at a time), so its nonces reach one mempool
   in order. At most ``--max-in-flight`` requests are outstanding; when every
   lane is behind, the sender waits (the achieved rate is reported).
3. Count *committed* transactions by reading committed blocks from the first
   URL (never from our own bookkeeping), and measure inclusion latency both
   as block time minus send time and as the time we observed the block: the
   first URL's ``new_block`` WebSocket events wake the reader (polling every
   0.2 s is the fallback), which then fetches the block's transaction ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

from consensus.crypto import PrivateKey, encode_address
from consensus.hashing import tagged_hash
from consensus.txs import SignedTx, Transfer, build_tx
from node.client import RPCClient
from node.errors import LoadError, NodeUnreachable, RPCCallError, RPCClientError

#: Seconds between sends. Each send is a JSON-RPC batch per lane; at 20 ms they held about
#: five transactions each, and the nodes' per-request HTTP work was a third of their RPC time.
TICK_S = 0.05
MAX_BATCH = 100
#: Consecutive accounts (per RPC URL) that share a sending lane.
LANE_RUN = 25


def derive_load_key(funder: PrivateKey, index: int) -> PrivateKey:
    return PrivateKey.from_seed(tagged_hash(b"cstake/load-account", funder.seed() + index.to_bytes(4, "big")))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` in [0, 100] (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class _Account:
    key: PrivateKey
    address: str
    client: RPCClient
    nonce: int = 0
    resync: bool = False


@dataclass
class LoadStats:
    sent: int = 0
    accepted: int = 0
    committed: int = 0
    #: Accepted transactions found in a block (each counted once).
    committed_accepted: int = 0
    #: Sent transactions found in more than one block (a node must never commit a tx twice).
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    latency_block_ms: list[float] = field(default_factory=list)
    latency_observed_ms: list[float] = field(default_factory=list)
    blocks_seen: int = 0

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + n


class LoadRun:
    """One load run against one or more nodes."""

    def __init__(
        self,
        urls: list[str],
        funder: PrivateKey,
        *,
        rate: float,
        duration: float,
        n_accounts: int,
        fee: int | None = None,
        amount: int = 1,
        max_in_flight: int = 64,
        drain_s: float = 30.0,
        progress_every: float = 3.0,
        progress_out: TextIO | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.urls = urls
        self.funder = funder
        self.rate = rate
        self.duration = duration
        self.n_accounts = n_accounts
        self.fee = fee
        self.amount = amount
        self.max_in_flight = max_in_flight
        self.drain_s = drain_s
        self.progress_every = progress_every
        self.progress_out = progress_out
        self.timeout = timeout
        self.stats = LoadStats()
        self._sent_at: dict[bytes, tuple[int, float]] = {}
        self._accepted: set[bytes] = set()
        self._committed: set[bytes] = set()
        self._t0 = 0.0
        self._start_height = 0
        self._next_height = 1
        self._end_height = 0
        self._watcher: RPCClient | None = None
        self._announced = 0
        self._block_event = asyncio.Event()

    # -- phases ---------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.max_in_flight + 16))
        try:
            clients = [RPCClient(u, timeout=self.timeout, session=session) for u in self.urls]
            self.main = clients[0]
            self._clients = clients
            status = await self.main.call("status")
            params = await self.main.call("params")
            self.chain_id = status["chain_id"]
            fee = self.fee if self.fee is not None else int(params["min_fee"])
            self.fee = fee
            accounts = [
                _Account(k, encode_address(k.address()), clients[i % len(clients)])
                for i, k in enumerate(derive_load_key(self.funder, i) for i in range(self.n_accounts))
            ]
            await self._fund(accounts)
            await self._sync_nonces(accounts)
            self._start_height = int((await self.main.call("status"))["latest_height"])
            self._next_height = self._start_height + 1
            watcher = asyncio.get_running_loop().create_task(self._watch_blocks())
            progress = asyncio.get_running_loop().create_task(self._progress())
            try:
                send_s = await self._send(accounts)
                await self._drain()
            finally:
                watcher.cancel()
                progress.cancel()
                await asyncio.gather(watcher, progress, return_exceptions=True)
            await self._catch_up_blocks()
            return self._report(send_s)
        finally:
            await session.close()

    async def _fund(self, accounts: list[_Account]) -> None:
        fee = self.fee or 1
        per_account = math.ceil(self.rate * self.duration / max(1, len(accounts)) + 10) * (fee + self.amount) * 2
        funder_addr = encode_address(self.funder.address())
        acct = await self.main.call("account", {"address": funder_addr})
        need = len(accounts) * (per_account + fee)
        if acct["balance"] < need:
            raise LoadError(
                f"the home's account {funder_addr} holds {acct['balance']}; funding "
                f"{len(accounts)} accounts needs {need}"
            )
        nonce = int(acct.get("next_nonce", acct["nonce"]))
        txs: list[SignedTx] = []
        for a in accounts:
            txs.append(build_tx(self.funder, self.chain_id, nonce, fee, Transfer(a.key.address(), per_account)))
            nonce += 1
        for i in range(0, len(txs), MAX_BATCH):
            chunk = txs[i : i + MAX_BATCH]
            results = await self.main.batch([("broadcast_tx", {"tx": "0x" + t.raw.hex()}) for t in chunk])
            for r in results:
                if isinstance(r, RPCCallError):
                    raise LoadError(f"funding transaction refused: {r}")
                if r["code"] != 0:
                    raise LoadError(f"funding transaction {r['hash']} refused (code {r['code']}): {r['log']}")
        last = "0x" + txs[-1].tx_hash.hex()
        deadline = time.monotonic() + max(60.0, self.timeout)
        while True:
            try:
                done = await self.main.call("tx", {"hash": last})
                if done.get("status") == "committed":
                    if done["result"]["code"] != 0:
                        raise LoadError(f"funding transaction {last} failed: {done['result']['log']}")
                    return
            except RPCCallError as exc:
                if exc.code != -32001:
                    raise
            if time.monotonic() > deadline:
                raise LoadError("the funding transactions were not included within 60 s")
            await asyncio.sleep(0.25)

    async def _sync_nonces(self, accounts: list[_Account]) -> None:
        by_client: dict[int, list[_Account]] = {}
        for a in accounts:
            by_client.setdefault(id(a.client), []).append(a)
        for group in by_client.values():
            for i in range(0, len(group), MAX_BATCH):
                chunk = group[i : i + MAX_BATCH]
                results = await chunk[0].client.batch([("account", {"address": a.address}) for a in chunk])
                for a, r in zip(chunk, results, strict=True):
                    if isinstance(r, RPCCallError):
                        raise LoadError(f"cannot read load account {a.address}: {r}")
                    a.nonce = int(r.get("next_nonce", r["nonce"]))
                    a.resync = False

    async def _send(self, accounts: list[_Account]) -> float:
        # One lane per (client, slot): a lane sends its batches one after another, and an
        # account always uses the same lane, so its nonces reach the node in order even
        # though several requests are in flight at once. Accounts are used round-robin,
        # so a run of LANE_RUN consecutive accounts per client shares a lane: a tick's
        # transactions go out in a few batches, not one HTTP request per transaction
        # (each request costs the node and the generator far more than a transfer does).
        clients = self._clients
        n_clients = len(clients)
        runs = -(-len(accounts) // (n_clients * LANE_RUN))
        per_client = max(1, min(self.max_in_flight // n_clients, runs))
        lanes: list[asyncio.Queue[list[SignedTx] | None]] = [
            asyncio.Queue(maxsize=4) for _ in range(n_clients * per_client)
        ]
        lane_of: dict[bytes, int] = {}
        for i, a in enumerate(accounts):
            c = i % n_clients
            lane_of[a.key.address()] = c + n_clients * ((i // (n_clients * LANE_RUN)) % per_client)
        workers = [
            asyncio.get_running_loop().create_task(self._lane(clients[j % n_clients], q, accounts))
            for j, q in enumerate(lanes)
        ]
        self._t0 = time.monotonic()
        generated = 0
        rr = 0
        last_resync = self._t0
        try:
            while True:
                now = time.monotonic()
                elapsed = now - self._t0
                if elapsed >= self.duration:
                    break
                due = int(self.rate * elapsed) - generated
                by_lane: dict[int, list[SignedTx]] = {}
                for _ in range(max(0, due)):
                    sender: _Account | None = None
                    for _ in range(len(accounts)):
                        cand = accounts[rr % len(accounts)]
                        rr += 1
                        if not cand.resync:
                            sender = cand
                            break
                    generated += 1
                    if sender is None:
                        self.stats.reject("no_ready_account")
                        continue
                    t = build_tx(sender.key, self.chain_id, sender.nonce, self.fee or 1,
                                 Transfer(self.funder.address(), self.amount))
                    sender.nonce += 1
                    by_lane.setdefault(lane_of[sender.key.address()], []).append(t)
                for j, txs in by_lane.items():
                    for k in range(0, len(txs), MAX_BATCH):
                        await lanes[j].put(txs[k : k + MAX_BATCH])  # waits when the lane is behind
                if now - last_resync > 0.5 and any(a.resync for a in accounts):
                    last_resync = now
                    await self._sync_nonces([a for a in accounts if a.resync])
                await asyncio.sleep(TICK_S)
        finally:
            for q in lanes:
                await q.put(None)
            await asyncio.gather(*workers, return_exceptions=True)
        return time.monotonic() - self._t0

    async def _lane(self, client: RPCClient, q: asyncio.Queue[list[SignedTx] | None],
                    accounts: list[_Account]) -> None:
        while True:
            batch = await q.get()
            if batch is None:
                return
            await self._send_batch(client, batch, accounts)

    async def _send_batch(self, client: RPCClient, txs: list[SignedTx], accounts: list[_Account]) -> None:
        wall_ms = time.time_ns() // 1_000_000
        mono = time.monotonic()
        for tx in txs:
            self._sent_at[tx.tx_hash] = (wall_ms, mono)
        self.stats.sent += len(txs)
        try:
            results = await client.batch([("broadcast_tx", {"tx": "0x" + t.raw.hex()}) for t in txs])
        except NodeUnreachable:
            self.stats.reject("unreachable", len(txs))
            self._mark_resync(txs, accounts)
            return
        except RPCClientError as exc:
            self.stats.reject(f"error: {exc}"[:60], len(txs))
            self._mark_resync(txs, accounts)
            return
        failed = []
        for tx, r in zip(txs, results, strict=True):
            if isinstance(r, RPCCallError):
                self.stats.reject(f"rpc_error_{r.code}")
                failed.append(tx)
            elif r["code"] != 0:
                self.stats.reject(f"code_{r['code']}")
                failed.append(tx)
            else:
                self.stats.accepted += 1
                self._accepted.add(tx.tx_hash)
        if failed:
            self._mark_resync(failed, accounts)

    def _mark_resync(self, txs: list[SignedTx], accounts: list[_Account]) -> None:
        senders = {t.payload.sender for t in txs}
        for a in accounts:
            if a.key.address() in senders:
                a.resync = True

    # -- counting committed transactions from blocks -----------------------------------------

    async def _read_new_blocks(self, announced: int = 0) -> None:
        watcher = self._watcher or self.main
        latest = announced if announced >= self._next_height else int((await watcher.call("status"))["latest_height"])
        while self._next_height <= latest:
            h = self._next_height
            block = await watcher.call("block", {"height": h, "txs": "hashes"})
            seen = time.monotonic()
            block_ms = int(block["header"]["time"])
            for text in block["txs"]:
                tx_hash = bytes.fromhex(text[2:])
                sent = self._sent_at.get(tx_hash)
                if sent is None:
                    continue
                if tx_hash in self._committed:
                    self.stats.duplicates += 1
                    continue
                self._committed.add(tx_hash)
                if tx_hash in self._accepted:
                    self.stats.committed_accepted += 1
                self.stats.committed += 1
                self.stats.latency_block_ms.append(float(block_ms - sent[0]))
                self.stats.latency_observed_ms.append((seen - sent[1]) * 1000)
            self.stats.blocks_seen += 1
            self._end_height = h
            self._next_height = h + 1

    async def _watch_blocks(self) -> None:
        # Woken by the first node's new_block events, as a subscribed client would be,
        # and read over a connection of its own (not queued behind the broadcast
        # batches); every 0.2 s without an event it asks for the height instead.
        async with aiohttp.ClientSession() as session:
            self._watcher = RPCClient(self.main.url, timeout=self.timeout, session=session)
            subscriber = asyncio.get_running_loop().create_task(self._subscribe_blocks(session))
            try:
                while True:
                    announced, self._announced = self._announced, 0
                    # The node may be busy or restarting: try again next time.
                    with contextlib.suppress(RPCClientError):
                        await self._read_new_blocks(announced)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._block_event.wait(), 0.2)
                    self._block_event.clear()
            finally:
                subscriber.cancel()
                await asyncio.gather(subscriber, return_exceptions=True)
                self._watcher = None

    async def _subscribe_blocks(self, session: aiohttp.ClientSession) -> None:
        """Set ``_block_event`` at each new_block event of the first node; give up quietly on errors."""
        with contextlib.suppress(aiohttp.ClientError, OSError, ValueError, TypeError, KeyError):
            async with session.ws_connect(self.main.url.rstrip("/") + "/ws") as ws:
                await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                                    "params": {"event": "new_block"}})
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    doc = msg.json()
                    if doc.get("method") == "event":
                        self._announced = max(self._announced, int(doc["params"]["data"]["height"]))
                        self._block_event.set()

    async def _drain(self) -> None:
        """Wait until every accepted transaction is counted, or no progress for a while."""
        deadline = time.monotonic() + self.drain_s
        last = -1
        idle_since = time.monotonic()
        while time.monotonic() < deadline and self.stats.committed_accepted < self.stats.accepted:
            if self.stats.committed != last:
                last = self.stats.committed
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > 10.0:
                break
            await asyncio.sleep(0.2)

    async def _catch_up_blocks(self) -> None:
        with contextlib.suppress(RPCClientError):
            await self._read_new_blocks()

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(self.progress_every)
            if self.progress_out is not None:
                s = self.stats
                print(
                    f"[{time.monotonic() - self._t0:6.1f}s] sent {s.sent}  accepted {s.accepted}  "
                    f"committed {s.committed}  rejected {sum(s.rejected.values())}  "
                    f"height {self._end_height}",
                    file=self.progress_out,
                    flush=True,
                )

    def _report(self, send_s: float) -> dict[str, Any]:
        s = self.stats

        def pct(values: list[float]) -> dict[str, float | None]:
            return {"p50": percentile(values, 50), "p99": percentile(values, 99),
                    "max": max(values) if values else None}

        return {
            "urls": self.urls,
            "accounts": self.n_accounts,
            "target_rate_tps": self.rate,
            "duration_s": self.duration,
            "send_seconds": round(send_s, 3),
            "sent": s.sent,
            "accepted": s.accepted,
            "rejected": dict(sorted(s.rejected.items())),
            "committed": s.committed,
            "committed_accepted": s.committed_accepted,
            "duplicates": s.duplicates,
            "sent_rate_tps": round(s.sent / send_s, 1) if send_s > 0 else None,
            "accepted_not_committed": s.accepted - s.committed_accepted,
            "blocks": s.blocks_seen,
            "start_height": self._start_height,
            "end_height": self._end_height,
            "latency_ms": {"block_time": pct(s.latency_block_ms), "observed": pct(s.latency_observed_ms)},
        }


def format_report(r: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f} ms"

    lb, lo = r["latency_ms"]["block_time"], r["latency_ms"]["observed"]
    rejected = ", ".join(f"{k}: {v}" for k, v in r["rejected"].items()) or "none"
    return "\n".join([
        f"target            {r['target_rate_tps']:g} tx/s for {r['duration_s']:g} s over {len(r['urls'])} node(s), "
        f"{r['accounts']} accounts",
        f"sent              {r['sent']} ({r['sent_rate_tps']} tx/s achieved)",
        f"accepted          {r['accepted']}",
        f"rejected          {rejected}",
        f"committed         {r['committed']} (counted from blocks {r['start_height'] + 1}..{r['end_height']})",
        f"latency to block time   p50 {ms(lb['p50'])}  p99 {ms(lb['p99'])}  max {ms(lb['max'])}",
        f"latency to observed     p50 {ms(lo['p50'])}  p99 {ms(lo['p99'])}  max {ms(lo['max'])}",
    ])
