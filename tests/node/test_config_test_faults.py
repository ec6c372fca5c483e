"""The test-only ``[test]`` section: a clock offset, validated, rendered only when set, refused without genesis consent."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.cli.lifecycle import check_test_faults, make_clock
from node.clock import OffsetClock, SystemClock
from node.config import (
    NodeConfig,
    TestSection,
    load_config,
    parse_config,
    render_config,
    write_config,
)
from node.errors import CommandError, InvalidConfig


def test_clock_offset_parses_and_round_trips(tmp_path: Path) -> None:
    cfg = parse_config({"test": {"clock_offset_ms": 30_000}})
    assert cfg.test.clock_offset_ms == 30_000
    path = tmp_path / "config.toml"
    write_config(path, cfg)
    assert "[test]" in path.read_text()
    assert load_config(path) == cfg


def test_default_config_renders_no_test_section() -> None:
    assert "[test]" not in render_config(NodeConfig())
    assert NodeConfig().test == TestSection()


@pytest.mark.parametrize("value", [86_400_001, -86_400_001, 1.5, "30s", True])
def test_invalid_clock_offset_names_the_key(value: object) -> None:
    with pytest.raises(InvalidConfig, match="test.clock_offset_ms"):
        parse_config({"test": {"clock_offset_ms": value}})


def test_invalid_unknown_test_key() -> None:
    with pytest.raises(InvalidConfig, match="test.drop_votes: unknown key"):
        parse_config({"test": {"drop_votes": 1}})


def test_make_clock_applies_the_offset() -> None:
    assert isinstance(make_clock(NodeConfig()), SystemClock)
    clock = make_clock(parse_config({"test": {"clock_offset_ms": -2_000}}))
    assert isinstance(clock, OffsetClock) and clock.offset_ms == -2_000


def test_invalid_clock_offset_without_genesis_consent_is_refused() -> None:
    cfg = parse_config({"test": {"clock_offset_ms": 30_000}})
    with pytest.raises(CommandError, match="allow_test_faults"):
        check_test_faults(cfg, allowed=False)
    check_test_faults(cfg, allowed=True)
    check_test_faults(NodeConfig(), allowed=False)
