"""The asyncio <-> trio bridge: py-libp2p runs under trio in its own thread.

py-libp2p 0.8.1 only runs on trio, and the node runs on asyncio. ``TrioThread``
runs ``trio.run`` in a dedicated OS thread and offers bounded, thread-safe
hand-offs both ways:

* asyncio -> trio: ``await call(afn, *args)`` runs a trio coroutine in the
  thread's nursery (``TrioToken.run_sync_soon``) and returns its result; at
  most ``max_inflight`` calls are in flight (an ``asyncio.Semaphore``).
* trio -> asyncio: ``await to_asyncio(fn, *args)`` calls ``fn(*args, done)``
  on the loop (``call_soon_threadsafe``) and waits for ``done(result)``; at
  most ``max_inflight`` are in flight (a ``trio.CapacityLimiter``);
  ``post(fn, *args)`` is fire-and-forget for rare events.

Nothing outside p2p/ sees trio; exceptions cross back as themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from p2p.errors import TransportClosed

T = TypeVar("T")
log = logging.getLogger("p2p.host.bridge")

#: Seconds the libp2p clean-up may take at stop before it is cancelled.
STOP_GRACE = 5.0


class TrioThread:
    """One trio run in one OS thread, with bounded hand-offs to and from asyncio."""

    def __init__(self, name: str, max_inflight: int = 1024) -> None:
        self.name = name
        self.max_inflight = max_inflight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop_event: trio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._to_trio: asyncio.Semaphore | None = None
        self._to_asyncio: trio.CapacityLimiter | None = None
        self._main_scope: trio.CancelScope | None = None

    @property
    def running(self) -> bool:
        """True between a successful start and stop."""
        return self._token is not None and self._done is not None and not self._done.done()

    # -- lifecycle (asyncio side) ---------------------------------------------

    async def start(self, main: Callable[[TrioThread], Awaitable[None]]) -> None:
        """Run ``main(self)`` under trio; return once it calls ``ready()`` (or raise its error)."""
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._done = self._loop.create_future()
        self._to_trio = asyncio.Semaphore(self.max_inflight)
        self._thread = threading.Thread(target=self._thread_main, args=(main,), name=self.name, daemon=True)
        self._thread.start()
        try:
            await self._ready
        except BaseException:
            await self._join()
            raise

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Ask ``main`` to finish; after ``grace`` seconds cancel whatever is left; join the thread."""
        if self._token is not None and self._stop_event is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._request_stop, grace)
        await self._join(grace + STOP_GRACE)

    def _request_stop(self, grace: float) -> None:  # trio thread
        if self._stop_event is not None:
            self._stop_event.set()
        if self._main_scope is not None:
            # Library clean-up (closing connections, services) gets ``grace`` seconds, then is cancelled.
            self._main_scope.deadline = min(self._main_scope.deadline, trio.current_time() + grace)

    async def _join(self, timeout: float | None = None) -> None:
        if self._done is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._done), timeout)
            except TimeoutError:
                log.error("the libp2p thread did not stop within %.0f s; leaving it (daemon) behind", timeout)
                self._token = None
                return
            except Exception:  # already reported through start()
                pass
        if self._thread is not None:
            # trio.run has returned (done was posted as its last act): the join is immediate.
            self._thread.join(timeout=5.0)
            self._thread = None
        self._token = None

    def _thread_main(self, main: Callable[[TrioThread], Awaitable[None]]) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            trio.run(self._trio_main, main)
        except BaseException as exc:
            loop.call_soon_threadsafe(self._fail, exc)
        else:
            loop.call_soon_threadsafe(self._finish)

    def _fail(self, exc: BaseException) -> None:
        for fut in (self._ready, self._done):
            if fut is not None and not fut.done():
                fut.set_exception(exc)

    def _finish(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(TransportClosed("the libp2p thread ended before it was ready"))
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    # -- trio side ---------------------------------------------------------------

    async def _trio_main(self, main: Callable[[TrioThread], Awaitable[None]]) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop_event = trio.Event()
        self._to_asyncio = trio.CapacityLimiter(self.max_inflight)
        with trio.CancelScope() as scope:
            self._main_scope = scope
            await main(self)

    def ready(self, nursery: trio.Nursery) -> None:
        """Called by ``main`` once set up: calls from asyncio now run in ``nursery``."""
        self._nursery = nursery
        self.post(self._set_ready)

    def _set_ready(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    async def wait_stop(self) -> None:
        """Called by ``main``: returns when ``stop()`` is requested."""
        if self._stop_event is not None:
            await self._stop_event.wait()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """From trio: run ``fn(*args)`` on the asyncio loop soon (fire and forget)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # The loop may close between the check and the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)

    async def to_asyncio(self, fn: Callable[..., None], *args: Any, timeout: float = 10.0) -> Any:
        """From trio: call ``fn(*args, done)`` on the asyncio loop and wait for ``done(result)``."""
        token = self._token
        limiter = self._to_asyncio
        if token is None or limiter is None:
            raise TransportClosed("the trio thread is not running")
        event = trio.Event()
        box: list[Any] = []

        def done(result: Any) -> None:  # asyncio thread
            box.append(result)
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

        async with limiter:
            self.post(fn, *args, done)
            with trio.move_on_after(timeout):
                await event.wait()
        if not box:
            raise TimeoutError(f"asyncio side did not answer within {timeout} s")
        return box[0]

    # -- asyncio -> trio -----------------------------------------------------------

    async def call(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From asyncio: run trio coroutine ``afn(*args)`` in the thread and return its result."""
        if not self.running or self._to_trio is None or self._loop is None:
            raise TransportClosed("the libp2p thread is not running")
        async with self._to_trio:
            loop = self._loop
            fut: asyncio.Future[T] = loop.create_future()
            scope_box: list[trio.CancelScope] = []

            def spawn() -> None:  # trio thread
                if self._nursery is None:
                    loop.call_soon_threadsafe(_settle_exc, fut, TransportClosed("libp2p is not ready"))
                    return
                self._nursery.start_soon(self._run_call, fut, scope_box, afn, args)

            token = self._token
            if token is None:
                raise TransportClosed("the libp2p thread is not running")
            try:
                token.run_sync_soon(spawn)
            except trio.RunFinishedError as exc:
                raise TransportClosed("the libp2p thread has stopped") from exc
            try:
                return await fut
            except asyncio.CancelledError:
                if scope_box and self._token is not None:
                    with contextlib.suppress(trio.RunFinishedError):
                        self._token.run_sync_soon(scope_box[0].cancel)
                raise

    async def _run_call(
        self, fut: asyncio.Future[Any], scope_box: list[trio.CancelScope], afn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        with trio.CancelScope() as scope:
            scope_box.append(scope)
            try:
                result = await afn(*args)
            except trio.Cancelled:
                self.post(_settle_exc, fut, TransportClosed("the libp2p call was cancelled"))
                raise
            except BaseException as exc:
                self.post(_settle_exc, fut, _plain(exc))
                return
            self.post(_settle, fut, result)
            return
        self.post(_settle_exc, fut, TransportClosed("the libp2p call was cancelled"))

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """From asyncio: run plain ``fn(*args)`` in the trio thread soon (fire and forget)."""
        token = self._token
        if token is None:
            raise TransportClosed("the libp2p thread is not running")
        try:
            token.run_sync_soon(fn, *args)
        except trio.RunFinishedError as exc:
            raise TransportClosed("the libp2p thread has stopped") from exc


def _plain(exc: BaseException) -> BaseException:
    """Unwrap single-exception groups (trio nurseries wrap errors) for the asyncio caller."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _settle_exc(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class _Slot:
    __slots__ = ("event", "result")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.result: Any = None


class BatchedHandOff:
    """Trio -> asyncio requests, coalesced: one thread wake-up per scheduling round each way.

    Under load many gossip messages wait for validation at once; handing them
    over one by one costs a thread wake-up (and a GIL hand-over) each. Here
    requests queued in one trio scheduling round cross together, and answers
    produced in one asyncio loop iteration come back together. ``fn(item,
    done)`` runs on the asyncio loop and calls ``done(result)`` now or later.
    At most ``max_inflight`` requests wait at once.
    """

    def __init__(self, bridge: TrioThread, fn: Callable[[Any, Callable[[Any], None]], None], max_inflight: int = 1024) -> None:
        self._bridge = bridge
        self._fn = fn
        self._limiter = trio.CapacityLimiter(max_inflight)
        self._pending: list[tuple[Any, _Slot]] = []
        self._wake = trio.Event()
        self._answers: list[tuple[_Slot, Any]] = []  # asyncio thread only
        self.batches = 0

    async def call(self, item: Any, timeout: float) -> Any:
        """From trio: hand ``item`` to ``fn`` on the asyncio loop; return its result (TimeoutError)."""
        slot = _Slot()
        async with self._limiter:
            self._pending.append((item, slot))
            self._wake.set()
            with trio.move_on_after(timeout):
                await slot.event.wait()
        if not slot.event.is_set():
            raise TimeoutError(f"asyncio side did not answer within {timeout} s")
        return slot.result

    async def run(self) -> None:
        """The flusher task (run it in the trio nursery)."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await trio.lowlevel.checkpoint()  # let the rest of this round queue up too
            batch, self._pending = self._pending, []
            if batch:
                self.batches += 1
                self._bridge.post(self._run_batch, batch)

    # asyncio thread
    def _run_batch(self, batch: list[tuple[Any, _Slot]]) -> None:
        for item, slot in batch:
            self._fn(item, functools.partial(self._answer, slot))

    def _answer(self, slot: _Slot, result: Any) -> None:
        if not self._answers and self._bridge._loop is not None:
            self._bridge._loop.call_soon(self._send_answers)
        self._answers.append((slot, result))

    def _send_answers(self) -> None:
        answers, self._answers = self._answers, []
        token = self._bridge._token
        if token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(_resolve, answers)


def _resolve(answers: list[tuple[_Slot, Any]]) -> None:
    for slot, result in answers:
        slot.result = result
        slot.event.set()
