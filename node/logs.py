"""Logging for the daemon: JSON lines to the home's log file, readable lines on stderr."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"))


def setup_logging(level: str, log_file: Path | None, *, stderr: bool = True) -> None:
    """Route every logger (libp2p's included) to a rotating JSON file and to stderr."""
    root = logging.getLogger()
    root.setLevel(LEVELS.get(level, logging.INFO))
    for h in list(root.handlers):
        root.removeHandler(h)
    if log_file is not None:
        add_file_logging(log_file)
    if stderr:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        root.addHandler(sh)


def add_file_logging(log_file: Path) -> None:
    """Also write every record to ``log_file`` as JSON lines (rotated at 50 MiB)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fh = logging.handlers.RotatingFileHandler(log_file, maxBytes=50 << 20, backupCount=3)
    fh.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(fh)
