"""The JSON-RPC 2.0 server (aiohttp): POST /, GET /health, GET /metrics, WebSocket /ws.

Limits, so that no request can hurt the node: a body larger than
``max_body_bytes`` is refused with 413 from its Content-Length, or as soon as
a chunked body passes the limit (aiohttp stops reading there); batches hold
at most ``max_batch`` calls; every call has a deadline; at most
``max_connections`` connections are open (further ones are closed on accept);
each WebSocket subscriber has a bounded event queue and is disconnected with
close code 1008 when it falls behind. Any failure inside a method becomes a
JSON-RPC error; the server itself keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST

from node.config import RPCSection
from node.metrics import NodeMetrics
from node.rpc import errors as E
from node.rpc import format as fmt
from node.rpc.events import EVENT_KINDS, BlockCommitted, Event, Subscription, TxCommitted
from node.rpc.methods import METHODS, MethodContext
from node.rpc.params import bind_params, get_address
from node.rpc.view import NodeView

log = logging.getLogger("node.rpc")

_JSON_HEADERS = {"Content-Type": "application/json"}


def _error(id_: Any, err: E.RPCError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": err.to_json()}


def _valid_id(value: Any) -> bool:
    # Infinity/NaN parse from JSON but cannot be echoed back as valid JSON.
    return value is None or type(value) in (str, int) or (type(value) is float and math.isfinite(value))


def encode_event(event: Event) -> dict[str, Any]:
    """Return the JSON of an event pushed to WebSocket subscribers."""
    if isinstance(event, BlockCommitted):
        h = event.block.header
        data: dict[str, Any] = {
            "height": h.height,
            "hash": fmt.hex0x(event.block_hash),
            "time": h.time_ms,
            "round": h.round,
            "proposer": fmt.addr(h.proposer),
            "num_txs": len(event.tx_hashes),
        }
        kind = "new_block"
    elif isinstance(event, TxCommitted):
        data = {
            **fmt.format_tx_summary(event.tx),
            "height": event.height,
            "index": event.index,
            "code": event.result.code,
            "log": event.result.log,
            "block_time": event.block_time_ms,
        }
        kind = "tx"
    else:
        data = {"name": event.name, "height": event.height, **event.data}
        kind = event.kind
    return {"jsonrpc": "2.0", "method": "event", "params": {"event": kind, "data": data}}


class RPCServer:
    """Serves one node's RPC on 127.0.0.1 (by default)."""

    def __init__(
        self,
        view: NodeView,
        config: RPCSection | None = None,
        *,
        metrics: NodeMetrics | None = None,
        last_commit_monotonic: Callable[[], float | None] | None = None,
        max_tx_bytes: int = 64 << 10,
    ) -> None:
        """``last_commit_monotonic`` returns ``time.monotonic()`` of the last commit (None: none yet);
        without it, the server watches the event bus."""
        self.view = view
        self.config = config if config is not None else RPCSection()
        self.metrics = metrics
        self._last_commit_fn = last_commit_monotonic
        self._started_mono = time.monotonic()
        self._last_seen_height = -1
        self._last_seen_mono = self._started_mono
        self.ctx = MethodContext(
            view=view,
            commit_timeout_s=self.config.broadcast_commit_timeout_s,
            max_tx_bytes=max_tx_bytes,
        )
        middlewares = [self._cors] if self.config.cors_origins else []
        self.app = web.Application(client_max_size=self.config.max_body_bytes, middlewares=middlewares)
        self.app.router.add_post("/", self.handle_jsonrpc)
        if self.config.cors_origins:
            self.app.router.add_route("OPTIONS", "/", self.handle_preflight)
        self.app.router.add_get("/health", self.handle_health)
        self.app.router.add_get("/metrics", self.handle_metrics)
        self.app.router.add_get("/ws", self.handle_ws)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._metrics_runner: web.AppRunner | None = None
        self.metrics_port: int | None = None
        # Request handlers of the open connections (aiohttp's are slotted: no attributes to tag).
        self._counted: set[Any] = set()
        self.connections_refused = 0
        self._ws: set[web.WebSocketResponse] = set()
        self.port: int | None = None
        self.host: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        """Bind and start serving (``rpc.listen`` unless host/port are given; port 0 picks one)."""
        cfg_host, _, cfg_port = self.config.listen.rpartition(":")
        host = host if host is not None else cfg_host
        port = port if port is not None else int(cfg_port)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._limit_connections(self._runner)
        self._site = web.TCPSite(self._runner, host, port, backlog=128, reuse_address=True)
        await self._site.start()
        server = self._site._server
        sockets = getattr(server, "sockets", None) or []
        self.host = host
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("RPC listening on http://%s:%d", host, self.port)
        if self.config.metrics_listen:
            await self._start_metrics_site()

    async def _start_metrics_site(self) -> None:
        """GET /metrics (only) on ``rpc.metrics_listen``: a scraper elsewhere never reaches the RPC."""
        m_host, _, m_port = self.config.metrics_listen.rpartition(":")
        app = web.Application()
        app.router.add_get("/metrics", self.handle_metrics)
        self._metrics_runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._metrics_runner.setup()
        site = web.TCPSite(self._metrics_runner, m_host, int(m_port), backlog=16, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.metrics_port = sockets[0].getsockname()[1] if sockets else int(m_port)
        log.info("metrics on http://%s:%d/metrics", m_host, self.metrics_port)

    # -- CORS (rpc.cors_origins) ---------------------------------------------------------------

    def _allowed_origin(self, request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        allowed = self.config.cors_origins
        if "*" in allowed:
            return "*"
        return origin if origin in allowed else None

    @web.middleware
    async def _cors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        origin = self._allowed_origin(request)
        if origin is not None and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    async def handle_preflight(self, request: web.Request) -> web.StreamResponse:
        """A browser's preflight for POST /: allowed origins get the methods and headers they may use."""
        if self._allowed_origin(request) is None:
            return web.Response(status=403, text="origin not allowed (rpc.cors_origins)")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        })

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Close WebSockets and connections, stop listening."""
        for ws in list(self._ws):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"node shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
            self._metrics_runner = None

    def _limit_connections(self, runner: web.AppRunner) -> None:
        # aiohttp has no connection cap; wrap the low-level server's accept hooks.
        server = runner.server
        if server is None:
            return
        made, lost = server.connection_made, server.connection_lost
        limit = self.config.max_connections

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            if len(self._counted) >= limit:
                self.connections_refused += 1
                if self.metrics is not None:
                    self.metrics.rpc_connections_refused.inc()
                transport.close()
                return
            self._counted.add(handler)
            made(handler, transport)

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            self._counted.discard(handler)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    # -- JSON-RPC ---------------------------------------------------------------------------

    async def handle_jsonrpc(self, request: web.Request) -> web.StreamResponse:
        limit = self.config.max_body_bytes
        too_big = E.InvalidRequest(f"request body exceeds the limit of {limit} bytes")
        if request.content_length is not None and request.content_length > limit:
            return web.json_response(_error(None, too_big), status=413)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response(_error(None, too_big), status=413)
        result = await self.process_body(body)
        if result is None:
            return web.Response(status=204)
        return web.Response(body=json.dumps(result, separators=(",", ":")), headers=_JSON_HEADERS)

    async def process_body(self, body: bytes) -> Any:
        """Return the JSON-RPC response for a raw request body (None: nothing to answer)."""
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError) as exc:
            self._count_error(E.PARSE_ERROR)
            return _error(None, E.RPCError(f"parse error: {exc}", code=E.PARSE_ERROR))
        if isinstance(doc, list):
            if not doc:
                self._count_error(E.INVALID_REQUEST)
                return _error(None, E.InvalidRequest("empty batch"))
            if len(doc) > self.config.max_batch:
                self._count_error(E.INVALID_REQUEST)
                return _error(
                    None,
                    E.InvalidRequest(f"batch of {len(doc)} calls exceeds the limit of {self.config.max_batch}"),
                )
            # The whole batch shares one deadline: calls left when it passes time out at once.
            deadline = time.monotonic() + self.config.request_timeout_s + self.config.broadcast_commit_timeout_s
            out = []
            for item in doc:
                resp = await self.process_call(item, deadline=deadline)
                if resp is not None:
                    out.append(resp)
            return out or None
        return await self.process_call(doc)

    async def process_call(self, call: Any, *, deadline: float | None = None) -> dict[str, Any] | None:
        """Run one JSON-RPC call object; return its response (None for a notification)."""
        if not isinstance(call, dict):
            self._count_error(E.INVALID_REQUEST)
            return _error(None, E.InvalidRequest("a request must be a JSON object"))
        id_ = call.get("id")
        is_notification = "id" not in call
        if not _valid_id(id_):
            self._count_error(E.INVALID_REQUEST)
            return _error(None, E.InvalidRequest("'id' must be a string, a number or null"))
        method = call.get("method")
        if call.get("jsonrpc") != "2.0":
            err: E.RPCError = E.InvalidRequest("'jsonrpc' must be \"2.0\"")
        elif type(method) is not str:
            err = E.InvalidRequest("'method' must be a string")
        elif "params" in call and not isinstance(call["params"], dict | list):
            err = E.InvalidRequest("'params' must be an object or an array")
        else:
            try:
                result = await self.call_method(method, call.get("params"), deadline=deadline)
            except E.RPCError as exc:
                err = exc
            else:
                return None if is_notification else {"jsonrpc": "2.0", "id": id_, "result": result}
        self._count_error(err.code)
        return None if is_notification else _error(id_, err)

    async def call_method(self, method: str, params: Any, *, deadline: float | None = None) -> Any:
        """Run ``method`` with ``params`` under the request deadline; raise RPCError."""
        entry = METHODS.get(method)
        if entry is None:
            raise E.MethodNotFound(f"method '{method}' not found")
        if self.metrics is not None:
            self.metrics.rpc_requests.labels(method=method).inc()
        handler, names = entry
        bound = bind_params(method, names, params)
        timeout = self.config.request_timeout_s
        if method == "broadcast_tx" and bound.get("mode") == "commit":
            timeout += self.config.broadcast_commit_timeout_s
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        try:
            async with asyncio.timeout(timeout):
                return await handler(self.ctx, bound)
        except E.RPCError:
            raise
        except TimeoutError as exc:
            raise E.RPCError(f"{method} did not finish within {timeout:g} s", code=E.SERVER_TIMEOUT) from exc
        except Exception as exc:  # the RPC boundary: report, never crash the server
            log.exception("RPC method %s failed", method)
            raise E.RPCError(f"internal error in {method}: {type(exc).__name__}: {exc}") from exc

    def _count_error(self, code: int) -> None:
        if self.metrics is not None:
            self.metrics.rpc_errors.labels(code=str(code)).inc()

    # -- health and metrics -------------------------------------------------------------------

    def _last_commit(self) -> float:
        if self._last_commit_fn is not None:
            value = self._last_commit_fn()
            return self._started_mono if value is None else value
        height = self.view.latest_height()
        if height != self._last_seen_height:
            self._last_seen_height = height
            self._last_seen_mono = time.monotonic()
        return self._last_seen_mono

    async def handle_health(self, request: web.Request) -> web.Response:
        age = time.monotonic() - self._last_commit()
        stalled = age > self.config.health_stall_s
        body = {
            "status": "stalled" if stalled else "ok",
            "height": self.view.latest_height(),
            "seconds_since_last_commit": round(age, 3),
            "stall_after_s": self.config.health_stall_s,
            "catching_up": self.view.catching_up(),
        }
        return web.json_response(body, status=503 if stalled else 200)

    async def handle_metrics(self, request: web.Request) -> web.Response:
        data = self.metrics.render() if self.metrics is not None else b""
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- WebSocket -----------------------------------------------------------------------------

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=self.config.max_body_bytes)
        await ws.prepare(request)
        sub = self.view.events.subscribe(self.config.ws_queue_size)
        self._ws.add(ws)
        pump = asyncio.get_running_loop().create_task(self._pump_events(ws, sub))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        await ws.send_json(_error(None, E.InvalidRequest("send JSON text frames")))
                    continue
                reply = await self._ws_message(sub, msg.data)
                if reply is not None and not ws.closed:
                    await ws.send_str(json.dumps(reply, separators=(",", ":")))
        finally:
            self.view.events.unsubscribe(sub)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._ws.discard(ws)
        return ws

    async def _ws_message(self, sub: Subscription, text: str) -> Any:
        try:
            call = json.loads(text)
        except (ValueError, RecursionError) as exc:
            return _error(None, E.RPCError(f"parse error: {exc}", code=E.PARSE_ERROR))
        if isinstance(call, dict) and call.get("method") in ("subscribe", "unsubscribe"):
            id_ = call.get("id")
            try:
                return {"jsonrpc": "2.0", "id": id_, "result": self._ws_subscription(sub, call)}
            except E.RPCError as exc:
                return _error(id_ if _valid_id(id_) else None, exc)
        return await self.process_body(text.encode())

    def _ws_subscription(self, sub: Subscription, call: dict[str, Any]) -> Any:
        params = bind_params(call["method"], ("event", "address"), call.get("params"))
        event = params.get("event")
        if event not in EVENT_KINDS:
            raise E.InvalidParams(f"'event' must be one of {', '.join(EVENT_KINDS)}, got {event!r}")
        address = get_address(params, "address", required=False)
        if address is not None and event == "new_block":
            raise E.InvalidParams("new_block events take no 'address' filter")
        key = (event, address)
        answer: dict[str, Any] = {}
        if address is not None:
            answer["address"] = params["address"]
        if call["method"] == "subscribe":
            if key not in sub.filters and len(sub.filters) >= self.config.ws_max_subscriptions:
                raise E.InvalidRequest(
                    f"at most {self.config.ws_max_subscriptions} subscriptions per connection"
                )
            sub.filters.add(key)
            return {"subscribed": event, **answer}
        sub.filters.discard(key)
        return {"unsubscribed": event, **answer}

    async def _pump_events(self, ws: web.WebSocketResponse, sub: Subscription) -> None:
        overflow = asyncio.ensure_future(sub.overflow_event.wait())
        get: asyncio.Future[Any] | None = None
        try:
            while not ws.closed:
                get = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait({get, overflow}, return_when=asyncio.FIRST_COMPLETED)
                if overflow in done:
                    if self.metrics is not None:
                        self.metrics.ws_dropped.inc()
                    reason = f"slow consumer: more than {self.config.ws_queue_size} events queued"
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode())
                    return
                event = get.result()
                get = None
                await ws.send_str(json.dumps(encode_event(event), separators=(",", ":")))
        finally:
            overflow.cancel()
            if get is not None:
                get.cancel()
