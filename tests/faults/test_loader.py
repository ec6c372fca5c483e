"""Scenario files: every file of the set loads, mistakes are refused naming the key, random kills are seeded."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.loader import ScenarioError, all_scenarios, load_scenario, parse_scenario


def _doc(**extra: Any) -> dict[str, Any]:
    return {"name": "t", "validators": 4, "duration_s": 60, **extra}


def test_every_scenario_file_loads() -> None:
    names = {load_scenario(p).name for p in all_scenarios()}
    assert {"one_of_four", "split_2_2", "rolling_restarts", "kill9_100", "paused_validator", "clock_ahead",
            "wal_torn_tail", "join_from_scratch"} <= names


def test_load_scenario_by_name_and_faults_sorted_by_time() -> None:
    sc = load_scenario("rolling_restarts")
    assert [f.at for f in sc.faults] == sorted(f.at for f in sc.faults)
    assert all(f.kind == "restart" and f.heal_after == 5 for f in sc.faults)


def test_random_kills_are_seeded_and_one_down_at_a_time() -> None:
    a = load_scenario("kill9_100")
    b = load_scenario("kill9_100")
    c = load_scenario("kill9_100", seed=a.seed + 1)
    assert len(a.faults) == 100 and a.faults == b.faults and a.faults != c.faults
    for prev, nxt in zip(a.faults, a.faults[1:], strict=False):
        assert prev.heal_at is not None and prev.heal_at <= nxt.at
    assert all(0 <= f.nodes[0] < a.validators for f in a.faults)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"kind": "explode", "at": 1, "nodes": [0]}, "kind"),
        ({"kind": "pause", "at": 1, "nodes": [0]}, "heal_after"),
        ({"kind": "pause", "at": 1, "nodes": [7], "heal_after": 2}, "nodes"),
        ({"kind": "pause", "at": 1, "nodes": [0, 0], "heal_after": 2}, "twice"),
        ({"kind": "pause", "at": 50, "nodes": [0], "heal_after": 20}, "duration_s"),
        ({"kind": "wal_tail", "at": 1, "nodes": [0], "mode": "shred"}, "mode"),
        ({"kind": "wal_tail", "at": 1, "nodes": [0], "mode": "zeros", "heal_after": 3}, "no heal"),
        ({"kind": "partition", "at": 1, "groups": [[0, 1]], "heal_after": 2}, "two groups"),
        ({"kind": "partition", "at": 1, "groups": [[0, 1], [1, 2]], "heal_after": 2}, "two groups"),
        ({"kind": "loss", "at": 1, "nodes": [0], "percent": 0, "heal_after": 2}, "percent"),
        ({"kind": "bandwidth", "at": 1, "nodes": [0], "rate": "fast", "heal_after": 2}, "rate"),
        ({"kind": "clock", "at": 1, "nodes": [0], "offset_ms": 0, "heal_after": 2}, "offset_ms"),
        ({"kind": "stale_data", "at": 5, "nodes": [0], "snapshot_at": 9}, "snapshot_at"),
        ({"kind": "join", "at": 5, "nodes": [0]}, "full nodes"),
        ({"kind": "pause", "at": 1, "nodes": [0], "heal_after": 2, "colour": "red"}, "colour"),
    ],
)
def test_invalid_fault_is_refused_naming_the_problem(fault: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(_doc(fault=[fault]), "t.toml")


def test_invalid_random_kills_that_do_not_fit() -> None:
    with pytest.raises(ScenarioError, match="do not fit"):
        parse_scenario(_doc(random_kills={"count": 100, "interval_s": 6, "down_s": 2}), "t.toml")


def test_invalid_unknown_top_level_key() -> None:
    with pytest.raises(ScenarioError, match="unknown key 'validator'"):
        parse_scenario({"name": "t", "validator": 4, "duration_s": 10}, "t.toml")
