"""Operator configuration: typed, frozen sections loaded from config.toml and validated.

Protocol parameters live in genesis, never here; this file holds only what an
operator may choose for one node (addresses, limits, log settings). Every
value is checked on load, and an error names the key and the problem
(``rpc.max_batch: must be an integer in [1, 10000], got 0``). Unknown
sections and keys are refused too, so a typo never silently falls back to a
default. node/config_template.toml is the documented template; ``cstake init``
writes it, comments and all, with the home's values (``render_config``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from node.errors import InvalidConfig
from node.home import NodeHome
from p2p.config import P2PConfig


@dataclass(frozen=True, slots=True)
class NodeSection:
    """[node]: identity and the home-relative paths."""

    moniker: str = "node"
    """Human name shown in status and peer lists."""
    genesis_file: str = "genesis.json"
    data_dir: str = "data"
    keys_dir: str = "keys"
    logs_dir: str = "logs"


@dataclass(frozen=True, slots=True)
class RPCSection:
    """[rpc]: the JSON-RPC server."""

    listen: str = "127.0.0.1:26657"
    """host:port; 127.0.0.1 by default (RPC is not meant for the open internet)."""
    max_body_bytes: int = 1 << 20
    """Largest request body; larger ones get 413 before being read."""
    max_batch: int = 100
    """Most calls in one JSON-RPC batch."""
    max_connections: int = 200
    """Most open HTTP/WebSocket connections; further ones are closed at once."""
    request_timeout_s: float = 10.0
    """Deadline of one request (a whole batch)."""
    broadcast_commit_timeout_s: float = 30.0
    """Longest wait of broadcast_tx mode=commit for inclusion."""
    ws_max_subscriptions: int = 16
    """Subscriptions per WebSocket connection."""
    ws_queue_size: int = 1000
    """Events queued per WebSocket connection; a consumer that falls further behind is dropped."""
    health_stall_s: float = 30.0
    """GET /health answers 503 when no block was committed for this long."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the RPC (``*``: any); empty: no CORS headers."""
    metrics_listen: str = ""
    """host:port serving GET /metrics as well (empty: only on the RPC address)."""


@dataclass(frozen=True, slots=True)
class P2PSection:
    """[p2p]: the libp2p host."""

    listen: str = "/ip4/127.0.0.1/tcp/26656"
    """Multiaddr to listen on."""
    bootstrap: tuple[str, ...] = ()
    """Peers to dial at start: multiaddrs ending in /p2p/<peer id>."""
    max_peers: int = 32
    outbound_slots: int | None = None
    """Connections kept for this node's own dials (None: a quarter of max_peers, at most 8)."""


@dataclass(frozen=True, slots=True)
class MempoolSection:
    """[mempool]: bounds and rules of the transaction pool."""

    max_txs: int = 20_000
    max_bytes: int = 64 << 20
    max_txs_per_sender: int = 1_000
    """Most queued transactions from one sender (consecutive nonces)."""
    replace_bump_percent: int = 10
    """A replacement for the same sender and nonce must pay at least this much more fee (%)."""
    recheck: bool = True
    """Re-check every remaining transaction against the new state after each commit."""
    sig_cache_size: int = 100_000
    """Transaction ids whose signature was verified, kept for block execution."""


@dataclass(frozen=True, slots=True)
class ConsensusSection:
    """[consensus]: timeout overrides, for tests only (genesis params apply when unset), and the start guard."""

    timeout_propose_ms: int | None = None
    timeout_vote_ms: int | None = None
    timeout_commit_ms: int | None = None
    startup_sync_timeout_ms: int = 5_000
    """At start a validator signs nothing until peers say it is not behind, or none answers for this long."""


@dataclass(frozen=True, slots=True)
class ComputeSection:
    """[compute]: the proof-of-compute prover's kernel (``cstake bench`` must measure the same)."""

    prover_device: str = "cpu"
    """``cpu``, or ``gpu`` / ``gpu:N`` (through torch or cupy, when installed)."""
    prover_threads: int = 1
    """BLAS threads of each prover worker process."""


@dataclass(frozen=True, slots=True)
class LogSection:
    """[log]: logging."""

    level: str = "info"
    """debug, info, warning or error."""
    file: str = ""
    """Log file, relative to the home unless absolute; empty: logs/node.log (see ``NodeConfig.log_file``)."""
    format: str = "text"
    """Console output: text on stderr, or json lines on stdout (the file is always JSON lines)."""


@dataclass(frozen=True, slots=True)
class TestSection:
    """[test]: faults injected into this one node, for fault tests only.

    Refused at start unless the chain's genesis sets ``params.allow_test_faults``
    (node/cli/lifecycle.py). Left out of a rendered config while at its defaults.
    """

    __test__ = False  # not a pytest test class

    clock_offset_ms: int = 0
    """Shift of the node's wall clock in milliseconds (positive: ahead), as if the host clock were wrong."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """The whole operator configuration of one node."""

    node: NodeSection = field(default_factory=NodeSection)
    rpc: RPCSection = field(default_factory=RPCSection)
    p2p: P2PSection = field(default_factory=P2PSection)
    mempool: MempoolSection = field(default_factory=MempoolSection)
    consensus: ConsensusSection = field(default_factory=ConsensusSection)
    compute: ComputeSection = field(default_factory=ComputeSection)
    log: LogSection = field(default_factory=LogSection)
    test: TestSection = field(default_factory=TestSection)

    def validate(self) -> None:
        """Raise InvalidConfig naming the first bad value."""
        validate_config(self)

    def home(self, root: str | Path) -> NodeHome:
        """Return the paths of the home at ``root`` as this configuration places them."""
        n = self.node
        return NodeHome.at(
            root,
            genesis_file=n.genesis_file,
            data_dir=n.data_dir,
            keys_dir=n.keys_dir,
            logs_dir=n.logs_dir,
        )

    @property
    def rpc_host_port(self) -> tuple[str, int]:
        return parse_host_port(self.rpc.listen, "rpc.listen")

    @property
    def rpc_url(self) -> str:
        """The URL a local client uses to reach this node's RPC."""
        host, port = self.rpc_host_port
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    @property
    def p2p_host_port(self) -> tuple[str, int]:
        return parse_multiaddr_tcp(self.p2p.listen, "p2p.listen")

    def p2p_config(self, chain_id: str, root: str | Path) -> P2PConfig:
        """Return the p2p layer's configuration for this node (defaults for the rest)."""
        host, port = self.p2p_host_port
        return P2PConfig(
            chain_id=chain_id,
            key_path=str(self.home(root).node_key_file),
            listen_host=host,
            listen_port=port,
            bootstrap=self.p2p.bootstrap,
            max_peers=self.p2p.max_peers,
            outbound_slots=self.p2p.outbound_slots,
        )

    def log_file(self, root: str | Path) -> Path:
        """Return the log file of the home at ``root``: the one rule for ``[log] file``.

        A relative path resolves against the home, never the working directory;
        an absolute one (or ``~/...``) stays as written; empty means logs/node.log.
        """
        home = self.home(root)
        return home.root / Path(self.log.file).expanduser() if self.log.file else home.log_file


#: Keys whose TOML value is an array (held as tuples).
_LIST_KEYS: dict[str, tuple[str, ...]] = {"p2p": ("bootstrap",), "rpc": ("cors_origins",)}

_SECTIONS: dict[str, type[Any]] = {
    "node": NodeSection,
    "rpc": RPCSection,
    "p2p": P2PSection,
    "mempool": MempoolSection,
    "consensus": ConsensusSection,
    "compute": ComputeSection,
    "log": LogSection,
    "test": TestSection,
}
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
MAX_CLOCK_OFFSET_MS = 86_400_000
"""Largest ``[test] clock_offset_ms`` either way: one day."""
_MONIKER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
_MULTIADDR_RE = re.compile(r"^/ip4/([0-9.]+)/tcp/([0-9]+)$")


# --- parsing helpers ---------------------------------------------------------------


def parse_host_port(text: str, key: str) -> tuple[str, int]:
    """Return ``(host, port)`` of ``host:port`` (IPv4 or ``localhost``); raise InvalidConfig."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise InvalidConfig(f"{key}: must be host:port (e.g. 127.0.0.1:26657), got {text!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise InvalidConfig(f"{key}: port {port} is outside [0, 65535]")
    if host != "localhost":
        try:
            ipaddress.IPv4Address(host)
        except ValueError as exc:
            raise InvalidConfig(f"{key}: host {host!r} is not an IPv4 address") from exc
    return host, port


def parse_multiaddr_tcp(text: str, key: str) -> tuple[str, int]:
    """Return ``(host, port)`` of ``/ip4/H/tcp/P``; raise InvalidConfig."""
    m = _MULTIADDR_RE.match(text)
    if m is None:
        raise InvalidConfig(f"{key}: must be a multiaddr /ip4/<address>/tcp/<port>, got {text!r}")
    try:
        ipaddress.IPv4Address(m.group(1))
    except ValueError as exc:
        raise InvalidConfig(f"{key}: {m.group(1)!r} is not an IPv4 address") from exc
    port = int(m.group(2))
    if not 0 <= port <= 65535:
        raise InvalidConfig(f"{key}: port {port} is outside [0, 65535]")
    return m.group(1), port


def _check_int(key: str, value: Any, lo: int, hi: int) -> None:
    if type(value) is not int or not lo <= value <= hi:
        raise InvalidConfig(f"{key}: must be an integer in [{lo}, {hi}], got {value!r}")


def _check_seconds(key: str, value: Any, lo: float, hi: float) -> None:
    if type(value) not in (int, float) or not lo <= value <= hi:
        raise InvalidConfig(f"{key}: must be a number of seconds in [{lo}, {hi}], got {value!r}")


def _check_str(key: str, value: Any) -> None:
    if type(value) is not str:
        raise InvalidConfig(f"{key}: must be a string, got {value!r}")


def _check_relpath(key: str, value: Any) -> None:
    _check_str(key, value)
    if not value or "\x00" in value:
        raise InvalidConfig(f"{key}: must be a non-empty path, got {value!r}")


def validate_config(cfg: NodeConfig) -> None:
    """Raise InvalidConfig naming the first bad value of ``cfg``."""
    n = cfg.node
    _check_str("node.moniker", n.moniker)
    if not _MONIKER_RE.match(n.moniker):
        raise InvalidConfig(
            f"node.moniker: must be 1-64 characters of letters, digits, space, '.', '_' or '-', "
            f"starting with a letter or digit, got {n.moniker!r}"
        )
    for name in ("genesis_file", "data_dir", "keys_dir", "logs_dir"):
        _check_relpath(f"node.{name}", getattr(n, name))

    r = cfg.rpc
    _check_str("rpc.listen", r.listen)
    parse_host_port(r.listen, "rpc.listen")
    _check_int("rpc.max_body_bytes", r.max_body_bytes, 1024, 64 << 20)
    _check_int("rpc.max_batch", r.max_batch, 1, 10_000)
    _check_int("rpc.max_connections", r.max_connections, 1, 100_000)
    _check_seconds("rpc.request_timeout_s", r.request_timeout_s, 0.01, 3600)
    _check_seconds("rpc.broadcast_commit_timeout_s", r.broadcast_commit_timeout_s, 0.01, 3600)
    _check_int("rpc.ws_max_subscriptions", r.ws_max_subscriptions, 1, 1000)
    _check_int("rpc.ws_queue_size", r.ws_queue_size, 1, 1_000_000)
    _check_seconds("rpc.health_stall_s", r.health_stall_s, 0.1, 86_400)
    if type(r.cors_origins) is not tuple:
        raise InvalidConfig(f"rpc.cors_origins: must be a list of origins, got {r.cors_origins!r}")
    for i, origin in enumerate(r.cors_origins):
        _check_str(f"rpc.cors_origins[{i}]", origin)
        if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
            raise InvalidConfig(f"rpc.cors_origins[{i}]: must be \"*\" or scheme://host[:port], got {origin!r}")
    _check_str("rpc.metrics_listen", r.metrics_listen)
    if r.metrics_listen:
        parse_host_port(r.metrics_listen, "rpc.metrics_listen")
        if r.metrics_listen == r.listen:
            raise InvalidConfig("rpc.metrics_listen: must differ from rpc.listen (metrics are served there anyway)")

    p = cfg.p2p
    _check_str("p2p.listen", p.listen)
    parse_multiaddr_tcp(p.listen, "p2p.listen")
    if type(p.bootstrap) is not tuple:
        raise InvalidConfig(f"p2p.bootstrap: must be a list of multiaddrs, got {p.bootstrap!r}")
    for i, addr in enumerate(p.bootstrap):
        key = f"p2p.bootstrap[{i}]"
        _check_str(key, addr)
        if not addr.startswith("/") or "/p2p/" not in addr:
            raise InvalidConfig(f"{key}: must be a multiaddr ending in /p2p/<peer id>, got {addr!r}")
    _check_int("p2p.max_peers", p.max_peers, 1, 10_000)
    if p.outbound_slots is not None:
        _check_int("p2p.outbound_slots", p.outbound_slots, 0, p.max_peers - 1)

    m = cfg.mempool
    _check_int("mempool.max_txs", m.max_txs, 1, 10_000_000)
    _check_int("mempool.max_bytes", m.max_bytes, 1024, 16 << 30)
    _check_int("mempool.max_txs_per_sender", m.max_txs_per_sender, 1, 1_000_000)
    _check_int("mempool.replace_bump_percent", m.replace_bump_percent, 0, 1000)
    if type(m.recheck) is not bool:
        raise InvalidConfig(f"mempool.recheck: must be true or false, got {m.recheck!r}")
    _check_int("mempool.sig_cache_size", m.sig_cache_size, 1, 100_000_000)

    c = cfg.consensus
    for name in ("timeout_propose_ms", "timeout_vote_ms", "timeout_commit_ms"):
        value = getattr(c, name)
        if value is not None:
            _check_int(f"consensus.{name}", value, 1, 3_600_000)
    _check_int("consensus.startup_sync_timeout_ms", c.startup_sync_timeout_ms, 0, 3_600_000)

    cp = cfg.compute
    _check_str("compute.prover_device", cp.prover_device)
    if not re.match(r"^(cpu|gpu(:[0-9]{1,2})?)$", cp.prover_device):
        raise InvalidConfig(f"compute.prover_device: must be cpu, gpu or gpu:N, got {cp.prover_device!r}")
    _check_int("compute.prover_threads", cp.prover_threads, 1, 1024)

    lg = cfg.log
    if lg.level not in LOG_LEVELS:
        raise InvalidConfig(f"log.level: must be one of {', '.join(LOG_LEVELS)}, got {lg.level!r}")
    _check_str("log.file", lg.file)
    if lg.format not in LOG_FORMATS:
        raise InvalidConfig(f"log.format: must be one of {', '.join(LOG_FORMATS)}, got {lg.format!r}")

    _check_int("test.clock_offset_ms", cfg.test.clock_offset_ms, -MAX_CLOCK_OFFSET_MS, MAX_CLOCK_OFFSET_MS)


# --- loading and writing ---------------------------------------------------------------


def _build_section(name: str, cls: type[Any], raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"[{name}] must be a table, got {raw!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise InvalidConfig(
            f"{name}.{unknown[0]}: unknown key (known keys of [{name}]: {', '.join(sorted(fields))})"
        )
    values = dict(raw)
    for key in _LIST_KEYS.get(name, ()):
        if key in values:
            if not isinstance(values[key], list):
                raise InvalidConfig(f"{name}.{key}: must be a list, got {values[key]!r}")
            values[key] = tuple(values[key])
    return cls(**values)


def parse_config(doc: dict[str, Any]) -> NodeConfig:
    """Build and validate a NodeConfig from a parsed TOML document."""
    unknown = sorted(set(doc) - set(_SECTIONS))
    if unknown:
        raise InvalidConfig(
            f"{unknown[0]}: unknown section (known: {', '.join(_SECTIONS)})"
        )
    sections = {name: _build_section(name, cls, doc.get(name, {})) for name, cls in _SECTIONS.items()}
    cfg = NodeConfig(**sections)
    validate_config(cfg)
    return cfg


def load_config(path: str | Path) -> NodeConfig:
    """Read, parse and validate config.toml at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidConfig(f"cannot read config file {p}: {exc.strerror or exc}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"{p} is not valid TOML: {exc}") from exc
    try:
        return parse_config(doc)
    except InvalidConfig as exc:
        raise InvalidConfig(f"{p}: {exc}") from exc


# --- overrides: environment and flags ---------------------------------------------------------

ENV_PREFIX = "CSTAKE_"


def get_env_overrides(env: Mapping[str, str]) -> dict[str, str]:
    """``CSTAKE_<SECTION>_<KEY>`` variables as ``{"section.key": text}``.

    A variable naming a known section but no key of it is refused (a typo must
    not fall back to the file's value); ``CSTAKE_*`` variables of other tools
    (``CSTAKE_PASSPHRASE``, ``CSTAKE_HOME``...) name no section and are left alone.
    """
    out: dict[str, str] = {}
    for name, text in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in _SECTIONS or not key:
            continue
        if key not in {f.name for f in dataclasses.fields(_SECTIONS[section])}:
            raise InvalidConfig(f"{name}: [{section}] has no key {key!r}")
        out[f"{section}.{key}"] = text
    return out


def apply_overrides(cfg: NodeConfig, overrides: Mapping[str, str], source: str) -> NodeConfig:
    """``cfg`` with ``{"section.key": text}`` applied (typed, validated); errors name ``source``."""
    sections: dict[str, Any] = {name: getattr(cfg, name) for name in _SECTIONS}
    for dotted, text in overrides.items():
        section, _, key = dotted.partition(".")
        cls = _SECTIONS.get(section)
        if cls is None or key not in {f.name for f in dataclasses.fields(cls)}:
            raise InvalidConfig(f"{source}: unknown config key {dotted!r}")
        hint = typing.get_type_hints(cls)[key]
        try:
            value = _parse_override(hint, text)
        except ValueError as exc:
            raise InvalidConfig(f"{source}: {dotted}: {exc}") from exc
        sections[section] = dataclasses.replace(sections[section], **{key: value})
    out = NodeConfig(**sections)
    try:
        validate_config(out)
    except InvalidConfig as exc:
        raise InvalidConfig(f"{source}: {exc}") from exc
    return out


def _parse_override(hint: Any, text: str) -> Any:
    if hint is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if hint is int:
        return int(text, 10)
    if hint == int | None:
        return None if text == "" else int(text, 10)
    if hint is float:
        return float(text)
    if hint == tuple[str, ...]:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return text


def config_to_dict(cfg: NodeConfig) -> dict[str, Any]:
    """Return the configuration as a TOML-ready dict (unset optional values left out)."""
    out: dict[str, Any] = {}
    for name in _SECTIONS:
        section = getattr(cfg, name)
        if name == "test" and section == TestSection():
            continue  # test-only faults appear in a config file only when set
        table: dict[str, Any] = {}
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if value is None:
                continue
            table[f.name] = list(value) if isinstance(value, tuple) else value
        out[name] = table
    return out


def render_config(cfg: NodeConfig) -> str:
    """Return config.toml text for ``cfg``: the commented template with ``cfg``'s values.

    Every key of the template keeps its comment; a key left unset (None) stays
    commented out; a set key the template has only as a comment is written in
    its place. The text loads back to an equal NodeConfig.
    """
    validate_config(cfg)
    values = config_to_dict(cfg)
    out: list[str] = []
    section = ""
    written: set[tuple[str, str]] = set()

    def flush_missing() -> None:
        for key, value in values.get(section, {}).items():
            if (section, key) not in written:
                out.append(_toml_line(key, value))
                written.add((section, key))

    for line in _template_text().splitlines():
        header = re.match(r"^\[(\w+)\]\s*$", line)
        if header:
            flush_missing()
            if out and out[-1] != "":
                out.append("")
            section = header.group(1)
            out.append(line)
            continue
        entry = re.match(r"^(#\s*)?(\w+)\s*=", line)
        if entry and section and (section, entry.group(2)) not in written:
            key = entry.group(2)
            if key in values.get(section, {}):
                trailing = re.search(r"\s+#[^\"\]]*$", line)  # a note after the value stays
                out.append(_toml_line(key, values[section][key]) + (trailing.group(0) if trailing else ""))
                written.add((section, key))
                continue
            if entry.group(1) is None and key in {f.name for f in dataclasses.fields(_SECTIONS[section])}:
                out.append("# " + line)  # unset in cfg: leave the example as a comment
                continue
        out.append(line)
    flush_missing()
    for name, table in values.items():
        if name not in {s for s, _ in written} and table:
            out += ["", f"[{name}]"] + [_toml_line(k, v) for k, v in table.items()]
    return "\n".join(out).rstrip() + "\n"


def _toml_line(key: str, value: Any) -> str:
    return tomli_w.dumps({key: value}).strip()


def _template_text() -> str:
    return (Path(__file__).resolve().parent / "config_template.toml").read_text(encoding="utf-8")


def write_config(path: str | Path, cfg: NodeConfig) -> None:
    """Write ``cfg`` to ``path`` (replacing it)."""
    Path(path).write_text(render_config(cfg), encoding="utf-8")


# --- presets -------------------------------------------------------------------------------


def default_config(
    moniker: str = "node",
    *,
    rpc_listen: str = "127.0.0.1:26657",
    p2p_listen: str = "/ip4/127.0.0.1/tcp/26656",
    bootstrap: tuple[str, ...] = (),
) -> NodeConfig:
    """Return the production defaults for a node called ``moniker``."""
    cfg = NodeConfig(
        node=NodeSection(moniker=moniker),
        rpc=RPCSection(listen=rpc_listen),
        p2p=P2PSection(listen=p2p_listen, bootstrap=tuple(bootstrap)),
    )
    validate_config(cfg)
    return cfg


def test_config(
    moniker: str = "test",
    *,
    rpc_port: int = 0,
    p2p_port: int = 0,
    bootstrap: tuple[str, ...] = (),
) -> NodeConfig:
    """Return a configuration for tests: tiny consensus timeouts, small bounds, debug logs."""
    cfg = NodeConfig(
        node=NodeSection(moniker=moniker),
        rpc=RPCSection(
            listen=f"127.0.0.1:{rpc_port}",
            request_timeout_s=5.0,
            broadcast_commit_timeout_s=10.0,
            health_stall_s=10.0,
        ),
        p2p=P2PSection(listen=f"/ip4/127.0.0.1/tcp/{p2p_port}", bootstrap=tuple(bootstrap)),
        mempool=MempoolSection(max_txs=5_000, max_bytes=16 << 20),
        consensus=ConsensusSection(
            timeout_propose_ms=300, timeout_vote_ms=150, timeout_commit_ms=50, startup_sync_timeout_ms=1_000
        ),
        log=LogSection(level="debug"),
    )
    validate_config(cfg)
    return cfg


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
