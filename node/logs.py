"""Logging for the daemon: JSON lines to the home's log file, and a console stream.

Times are ISO-8601 UTC with milliseconds (``2026-12-05T13:58:01.123Z``)
everywhere. Structured fields travel as ``extra`` (``log.info("committed",
extra={"height": h, "round": r, "hash": x})``): the JSON lines carry them as
keys, the text console shows them as ``key=value`` after the message. The
console is stderr in text (for an operator's terminal) or, with ``--log-format
json``, stdout in JSON lines (for containers and log shippers).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any, TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("text", "json")

#: ``extra`` keys shown as structured fields (others stay out, so a typo cannot shadow a record attribute).
FIELDS = ("height", "round", "hash", "peer", "validator", "tx", "nft_id", "job", "reason", "duration_ms",
          "rpc", "p2p", "address", "chain_id", "version")


def format_time(created: float) -> str:
    """ISO-8601 UTC with milliseconds: ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    ms = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{ms:03d}Z"


def get_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record carries (from ``extra``)."""
    return {k: getattr(record, k) for k in FIELDS if hasattr(record, k)}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, structured fields (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "time": format_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(get_fields(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in get_fields(record).items())
        line = f"{format_time(record.created)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line += " " + fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(
    level: str, log_file: Path | None, *, stderr: bool = True, fmt: str = "text", stream: TextIO | None = None
) -> None:
    """Route every logger (libp2p's included) to a rotating JSON file and to the console.

    ``fmt`` "text" writes readable lines to stderr; "json" writes JSON lines to stdout.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root = logging.getLogger()
    root.setLevel(LEVELS.get(level, logging.INFO))
    for h in list(root.handlers):
        root.removeHandler(h)
    if log_file is not None:
        add_file_logging(log_file)
    if stderr:
        out = stream if stream is not None else (sys.stdout if fmt == "json" else sys.stderr)
        sh = logging.StreamHandler(out)
        sh.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
        root.addHandler(sh)


def add_file_logging(log_file: Path) -> None:
    """Also write every record to ``log_file`` as JSON lines (rotated at 50 MiB)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fh = logging.handlers.RotatingFileHandler(log_file, maxBytes=50 << 20, backupCount=3)
    fh.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(fh)
