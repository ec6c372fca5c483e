"""Log lines: ISO-8601 UTC times with milliseconds, structured fields, JSON to stdout on request."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from node.logs import format_time, setup_logging

ISO_MS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"


@pytest.fixture(autouse=True)
def _restore_root_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_format_time_is_utc_with_milliseconds() -> None:
    assert format_time(0.0) == "1970-01-01T00:00:00.000Z"
    assert format_time(1796400000.123456) == "2026-12-04T16:00:00.123Z"


def test_text_console_carries_time_level_and_fields(tmp_path: Path) -> None:
    out = io.StringIO()
    setup_logging("info", tmp_path / "node.log", stream=out)
    logging.getLogger("node.test").info("block committed", extra={"height": 7, "round": 1, "hash": "ab12"})
    logging.getLogger("node.test").debug("hidden at info")
    line = out.getvalue().strip()
    assert re.fullmatch(ISO_MS + r" INFO    node\.test: block committed height=7 round=1 hash=ab12", line), line
    doc = json.loads((tmp_path / "node.log").read_text().strip())
    assert doc["height"] == 7 and doc["round"] == 1 and doc["hash"] == "ab12"
    assert re.fullmatch(ISO_MS, doc["time"]) and doc["msg"] == "block committed" and doc["level"] == "info"


def test_json_console_writes_one_object_per_line() -> None:
    out = io.StringIO()
    setup_logging("debug", None, fmt="json", stream=out)
    log = logging.getLogger("node.test")
    log.warning("peer penalised", extra={"peer": "12D3", "reason": "bad_signature"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = out.getvalue().strip().splitlines()
    first = json.loads(lines[0])
    assert first["peer"] == "12D3" and first["reason"] == "bad_signature" and first["level"] == "warning"
    second = json.loads("\n".join(lines[1:]))
    assert "ValueError: boom" in second["exc"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        setup_logging("info", None, fmt="xml")
