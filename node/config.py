"""Operator configuration: typed, frozen sections loaded from config.toml and validated.

Protocol parameters live in genesis, never here; this file holds only what an
operator may choose for one node (addresses, limits, log settings). Every
value is checked on load, and an error names the key and the problem
(``rpc.max_batch: must be an integer in [1, 10000], got 0``). Unknown
sections and keys are refused too, so a typo never silently falls back to a
default. config/config.toml is the documented template.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
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


@dataclass(frozen=True, slots=True)
class P2PSection:
    """[p2p]: the libp2p host."""

    listen: str = "/ip4/127.0.0.1/tcp/26656"
    """Multiaddr to listen on."""
    bootstrap: tuple[str, ...] = ()
    """Peers to dial at start: multiaddrs ending in /p2p/<peer id>."""
    max_peers: int = 32


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
    """[consensus]: timeout overrides, for tests only (genesis params apply when unset)."""

    timeout_propose_ms: int | None = None
    timeout_vote_ms: int | None = None
    timeout_commit_ms: int | None = None


@dataclass(frozen=True, slots=True)
class LogSection:
    """[log]: logging."""

    level: str = "info"
    """debug, info, warning or error."""
    file: str = ""
    """Log file, relative to the home unless absolute; empty: logs/node.log (see ``NodeConfig.log_file``)."""


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
        )

    def log_file(self, root: str | Path) -> Path:
        """Return the log file of the home at ``root``: the one rule for ``[log] file``.

        A relative path resolves against the home, never the working directory;
        an absolute one (or ``~/...``) stays as written; empty means logs/node.log.
        """
        home = self.home(root)
        return home.root / Path(self.log.file).expanduser() if self.log.file else home.log_file


_SECTIONS: dict[str, type[Any]] = {
    "node": NodeSection,
    "rpc": RPCSection,
    "p2p": P2PSection,
    "mempool": MempoolSection,
    "consensus": ConsensusSection,
    "log": LogSection,
    "test": TestSection,
}
LOG_LEVELS = ("debug", "info", "warning", "error")
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

    lg = cfg.log
    if lg.level not in LOG_LEVELS:
        raise InvalidConfig(f"log.level: must be one of {', '.join(LOG_LEVELS)}, got {lg.level!r}")
    _check_str("log.file", lg.file)

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
    if name == "p2p" and "bootstrap" in values:
        if not isinstance(values["bootstrap"], list):
            raise InvalidConfig(f"p2p.bootstrap: must be a list of multiaddrs, got {values['bootstrap']!r}")
        values["bootstrap"] = tuple(values["bootstrap"])
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
    """Return config.toml text for ``cfg`` (loads back to an equal NodeConfig)."""
    validate_config(cfg)
    header = "# cstake node configuration (see config/config.toml for every key explained)\n\n"
    return header + tomli_w.dumps(config_to_dict(cfg))


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
        consensus=ConsensusSection(timeout_propose_ms=300, timeout_vote_ms=150, timeout_commit_ms=50),
        log=LogSection(level="debug"),
    )
    validate_config(cfg)
    return cfg


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
