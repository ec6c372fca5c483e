"""Scenario files: faults with their times, read from TOML and checked before anything starts.

A scenario file holds top-level settings and a list of ``[[fault]]`` tables::

    name = "one-of-four"
    validators = 4            # nodes 0..validators-1 are validators
    full_nodes = 0            # nodes after them are full nodes (not in genesis)
    duration_s = 40           # seconds of the fault phase (load runs throughout)
    recover_within_s = 30     # the chain must resume this soon after the last heal
    load_rate = 4             # transfers per second
    seed = 1                  # for random faults; printed with the report

    [[fault]]
    kind = "isolate"          # see KINDS
    at = 5                    # seconds after the fault phase starts
    nodes = [3]
    heal_after = 20           # seconds until it is undone (required unless the kind is instant)

``[random_kills]`` expands, with ``seed``, into ``count`` kill faults of
random validators (never one already down), ``interval_s`` apart on average
(uniform in half to one and a half times that), each restarted ``down_s``
later. Every mistake is a ScenarioError naming the file and the key.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

#: Fault kinds and whether they need ``heal_after`` (instant ones act once).
KINDS: dict[str, bool] = {
    "kill": True,          # kill -9 (process group), started again at the heal
    "restart": True,       # SIGTERM, started again at the heal
    "pause": True,         # SIGSTOP, SIGCONT at the heal
    "isolate": True,       # iptables: the nodes exchange nothing with the others
    "partition": True,     # iptables between ``groups`` (``one_way``: only the first group's packets dropped)
    "loss": True,          # iptables random drop of ``percent`` % in and out
    "bandwidth": True,     # tc tbf at ``rate`` on both ends of the link
    "clock": True,         # restarted with [test] clock_offset_ms = ``offset_ms``, restarted without at the heal
    "disk_full": True,     # restarted on a tmpfs data dir ``margin_kb`` larger than its data; moved back at the heal
    "wal_tail": False,     # kill -9, damage the WAL's last record (``mode``), start again
    "stale_data": False,   # kill -9, data dir replaced by the copy taken at ``snapshot_at``, start again
    "join": False,         # start a node not started yet (a full node with an empty home)
}
WAL_MODES = ("truncate", "corrupt", "zeros")


class ScenarioError(Exception):
    """A scenario file is unreadable or names an impossible fault."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of a scenario."""

    kind: str
    at: float
    """Seconds after the fault phase starts."""
    nodes: tuple[int, ...] = ()
    heal_after: float | None = None
    groups: tuple[tuple[int, ...], ...] = ()
    one_way: bool = False
    percent: int = 0
    rate: str = ""
    offset_ms: int = 0
    margin_kb: int = 0
    mode: str = ""
    snapshot_at: float | None = None

    @property
    def heal_at(self) -> float | None:
        return None if self.heal_after is None else self.at + self.heal_after

    def describe(self) -> str:
        what = {
            "partition": f"groups {[list(g) for g in self.groups]}{' one-way' if self.one_way else ''}",
            "loss": f"{self.percent}% on nodes {list(self.nodes)}",
            "bandwidth": f"{self.rate} on nodes {list(self.nodes)}",
            "clock": f"{self.offset_ms:+d} ms on nodes {list(self.nodes)}",
            "wal_tail": f"{self.mode} on nodes {list(self.nodes)}",
        }.get(self.kind, f"nodes {list(self.nodes)}")
        if self.kind == "stale_data":
            what = f"nodes {list(self.nodes)}, copy from t={self.snapshot_at} s"
        heal = f", healed at {self.heal_at:g} s" if self.heal_at is not None else ""
        return f"t={self.at:g} s {self.kind} {what}{heal}"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario: its nodes, load, faults and bounds."""

    name: str
    description: str
    validators: int
    full_nodes: int
    duration_s: float
    recover_within_s: float
    load_rate: float
    seed: int
    faults: tuple[Fault, ...] = field(default_factory=tuple)
    params: dict[str, int] = field(default_factory=dict)
    """Genesis parameter overrides."""

    @property
    def n_nodes(self) -> int:
        return self.validators + self.full_nodes

    def late_nodes(self) -> set[int]:
        """Nodes a ``join`` fault starts (not started with the others)."""
        return {i for f in self.faults if f.kind == "join" for i in f.nodes}


def _get(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    if key not in doc:
        if default is None:
            raise ScenarioError(f"{where}: missing key {key!r}")
        return default
    value = doc[key]
    if isinstance(value, bool) and kind is not bool:
        raise ScenarioError(f"{where}.{key}: expected {kind}, got {value!r}")
    if not isinstance(value, kind):
        raise ScenarioError(f"{where}.{key}: expected {kind}, got {value!r}")
    return value


def _nodes(value: Any, n: int, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(type(i) is int and 0 <= i < n for i in value):
        raise ScenarioError(f"{where}: must be a non-empty list of node indexes in [0, {n}), got {value!r}")
    if len(set(value)) != len(value):
        raise ScenarioError(f"{where}: a node is listed twice: {value!r}")
    return tuple(value)


_FAULT_KEYS = {"kind", "at", "nodes", "heal_after", "groups", "one_way", "percent", "rate", "offset_ms",
               "margin_kb", "mode", "snapshot_at"}


def parse_fault(doc: dict[str, Any], n: int, validators: int, where: str) -> Fault:
    """Build one fault from its table; ScenarioError on any mistake."""
    unknown = sorted(set(doc) - _FAULT_KEYS)
    if unknown:
        raise ScenarioError(f"{where}.{unknown[0]}: unknown key")
    kind = _get(doc, "kind", str, where)
    if kind not in KINDS:
        raise ScenarioError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    at = float(_get(doc, "at", (int, float), where))
    if at < 0:
        raise ScenarioError(f"{where}.at: must be >= 0, got {at}")
    heal_after = doc.get("heal_after")
    if KINDS[kind]:
        heal_after = float(_get(doc, "heal_after", (int, float), where))
        if heal_after <= 0:
            raise ScenarioError(f"{where}.heal_after: must be > 0, got {heal_after}")
    elif heal_after is not None:
        raise ScenarioError(f"{where}.heal_after: a {kind} fault acts once; it has no heal")
    f = Fault(kind=kind, at=at, heal_after=heal_after)
    if kind == "partition":
        raw = doc.get("groups")
        if not isinstance(raw, list) or len(raw) < 2:
            raise ScenarioError(f"{where}.groups: a partition needs at least two groups of nodes")
        groups = tuple(_nodes(g, n, f"{where}.groups[{i}]") for i, g in enumerate(raw))
        flat = [i for g in groups for i in g]
        if len(set(flat)) != len(flat):
            raise ScenarioError(f"{where}.groups: a node is in two groups")
        one_way = _get(doc, "one_way", bool, where, default=False)
        return replace(f, groups=groups, one_way=one_way, nodes=tuple(sorted(flat)))
    nodes = _nodes(doc.get("nodes"), n, f"{where}.nodes")
    f = replace(f, nodes=nodes)
    if kind == "loss":
        pct = _get(doc, "percent", int, where)
        if not 1 <= pct <= 100:
            raise ScenarioError(f"{where}.percent: must be in [1, 100], got {pct}")
        return replace(f, percent=pct)
    if kind == "bandwidth":
        rate = _get(doc, "rate", str, where)
        if not rate[:-4].isdigit() or not rate.endswith(("kbit", "mbit")):
            raise ScenarioError(f"{where}.rate: must be like '512kbit' or '2mbit', got {rate!r}")
        return replace(f, rate=rate)
    if kind == "clock":
        offset = _get(doc, "offset_ms", int, where)
        if offset == 0 or abs(offset) > 86_400_000:
            raise ScenarioError(f"{where}.offset_ms: must be non-zero and within a day, got {offset}")
        return replace(f, offset_ms=offset)
    if kind == "disk_full":
        margin = _get(doc, "margin_kb", int, where, default=256)
        if not 16 <= margin <= 1 << 20:
            raise ScenarioError(f"{where}.margin_kb: must be in [16, 1048576], got {margin}")
        return replace(f, margin_kb=margin)
    if kind == "wal_tail":
        mode = _get(doc, "mode", str, where)
        if mode not in WAL_MODES:
            raise ScenarioError(f"{where}.mode: must be one of {', '.join(WAL_MODES)}, got {mode!r}")
        return replace(f, mode=mode)
    if kind == "stale_data":
        snap = float(_get(doc, "snapshot_at", (int, float), where))
        if not 0 <= snap < at:
            raise ScenarioError(f"{where}.snapshot_at: must be before the fault's time {at}, got {snap}")
        return replace(f, snapshot_at=snap)
    if kind == "join" and any(i < validators for i in nodes):
        raise ScenarioError(f"{where}.nodes: only full nodes (index >= {validators}) can join later")
    return f


def expand_random_kills(doc: dict[str, Any], validators: int, duration: float, seed: int,
                        where: str) -> list[Fault]:
    """``count`` seeded kill -9 faults of random validators, one down at a time."""
    count = _get(doc, "count", int, where)
    interval = float(_get(doc, "interval_s", (int, float), where))
    down = float(_get(doc, "down_s", (int, float), where))
    start = float(_get(doc, "start_at", (int, float), where, default=5.0))
    if count < 1 or interval <= 0 or not 0 < down < interval / 2:
        raise ScenarioError(f"{where}: need count >= 1, interval_s > 0 and 0 < down_s < interval_s / 2")
    rng = random.Random(seed)
    faults = []
    t = start
    for _ in range(count):
        faults.append(Fault(kind="kill", at=round(t, 2), nodes=(rng.randrange(validators),), heal_after=down))
        # Uniform in [interval/2, 3*interval/2]: the next kill comes after this one's restart.
        t += interval * (0.5 + rng.random())
    if faults[-1].at + down > duration:
        raise ScenarioError(f"{where}: {count} kills {interval:g} s apart do not fit in duration_s = {duration:g}")
    return faults


_TOP_KEYS = {"name", "description", "validators", "full_nodes", "duration_s", "recover_within_s", "load_rate",
             "seed", "fault", "random_kills", "params"}


def parse_scenario(doc: dict[str, Any], where: str, *, seed: int | None = None) -> Scenario:
    """Build and check a scenario from a parsed TOML document (``seed`` overrides the file's)."""
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r}")
    validators = _get(doc, "validators", int, where)
    full_nodes = _get(doc, "full_nodes", int, where, default=0)
    if not 1 <= validators <= 16 or not 0 <= full_nodes <= 8:
        raise ScenarioError(f"{where}: validators must be in [1, 16] and full_nodes in [0, 8]")
    n = validators + full_nodes
    duration = float(_get(doc, "duration_s", (int, float), where))
    the_seed = seed if seed is not None else _get(doc, "seed", int, where, default=1)
    faults = [parse_fault(d, n, validators, f"{where}: fault[{i}]") for i, d in enumerate(doc.get("fault", []))]
    if "random_kills" in doc:
        faults += expand_random_kills(doc["random_kills"], validators, duration, the_seed, f"{where}: random_kills")
    for f in faults:
        end = f.heal_at if f.heal_at is not None else f.at
        if end > duration:
            raise ScenarioError(f"{where}: {f.describe()} ends after duration_s = {duration:g}")
    params = doc.get("params", {})
    if not isinstance(params, dict) or not all(type(v) is int for v in params.values()):
        raise ScenarioError(f"{where}.params: must be a table of integer genesis parameters")
    return Scenario(
        name=_get(doc, "name", str, where),
        description=_get(doc, "description", str, where, default=""),
        validators=validators,
        full_nodes=full_nodes,
        duration_s=duration,
        recover_within_s=float(_get(doc, "recover_within_s", (int, float), where, default=30.0)),
        load_rate=float(_get(doc, "load_rate", (int, float), where, default=4.0)),
        seed=the_seed,
        faults=tuple(sorted(faults, key=lambda f: f.at)),
        params=dict(params),
    )


def load_scenario(path_or_name: str | Path, *, seed: int | None = None) -> Scenario:
    """Read a scenario file by path, or by name from tests/faults/scenarios/."""
    path = Path(path_or_name)
    if not path.exists() and (SCENARIO_DIR / f"{path_or_name}.toml").exists():
        path = SCENARIO_DIR / f"{path_or_name}.toml"
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path} is not valid TOML: {exc}") from exc
    return parse_scenario(doc, str(path), seed=seed)


def all_scenarios() -> list[Path]:
    """The scenario files of the repository, in name order."""
    return sorted(SCENARIO_DIR.glob("*.toml"))
