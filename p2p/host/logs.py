"""Route py-libp2p's logs into the node's logging tree, rate-limited.

``import libp2p`` gives its logger level WARNING, no handlers and no
propagation, and some paths log one line per message. We attach one handler
to the ``libp2p`` logger that lets each (logger, message template) through at
most ``burst`` times per ``window`` seconds, reports how many it suppressed,
and hands records to the ``p2p.libp2p`` logger, where the node's handlers
see them.
"""

from __future__ import annotations

import logging
import threading
import time

TARGET = "p2p.libp2p"


class RateLimitedForwarder(logging.Handler):
    """Forwards records to ``p2p.libp2p``, at most ``burst`` per template per window."""

    def __init__(self, burst: int = 5, window: float = 10.0) -> None:
        super().__init__(logging.WARNING)
        self.burst = burst
        self.window = window
        self._counts: dict[tuple[str, str], tuple[float, int]] = {}
        self._suppressed = 0
        self._guard = threading.Lock()
        self.forwarded = 0

    def emit(self, record: logging.LogRecord) -> None:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._guard:
            start, n = self._counts.get(key, (now, 0))
            if now - start > self.window:
                start, n = now, 0
            n += 1
            self._counts[key] = (start, n)
            if len(self._counts) > 1000:
                self._counts.clear()
            if n > self.burst:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            record.msg = f"{record.msg} [{suppressed} similar libp2p log lines suppressed]"
        self.forwarded += 1
        logging.getLogger(TARGET).handle(record)


_installed: RateLimitedForwarder | None = None


def install_libp2p_logging() -> RateLimitedForwarder:
    """Attach the forwarder to the ``libp2p`` logger once per process."""
    global _installed
    if _installed is None:
        lg = logging.getLogger("libp2p")
        lg.setLevel(logging.WARNING)
        lg.propagate = False
        _installed = RateLimitedForwarder()
        lg.addHandler(_installed)
    return _installed
