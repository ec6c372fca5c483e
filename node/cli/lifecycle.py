"""``cstake init`` and ``cstake start``: create one node's home, then run that node in the foreground.

``init`` writes config.toml, the keys (encrypted unless ``--unencrypted``) and,
without ``--genesis``, a one-validator dev genesis. ``start`` reads the
home's config.toml (which may move data/, keys/ and logs/, and name the log
file: ``NodeConfig.log_file`` is the one rule, relative to the home), asks
for the keystore passphrase only when the keys are encrypted, runs the node
until SIGINT/SIGTERM (a second signal forces the exit) and stops it within
a bounded time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    PASSPHRASE_ENV,
    as_command,
    emit,
    read_passphrase,
)
from node.clock import Clock, OffsetClock, SystemClock
from node.config import NodeConfig, apply_overrides, get_env_overrides, load_config
from node.errors import CommandError, InvalidConfig
from node.home import DEFAULT_HOME, NodeHome

NO_TERMINAL = f"the keystore is encrypted: set {PASSPHRASE_ENV} (or init with --unencrypted for dev keys)"
"""Why a node's keystore passphrase cannot be asked for (stdin is not a terminal)."""
SHUTDOWN_TIMEOUT_S = 9.0
"""Longest clean stop after a signal before the process exits anyway."""


# --- init ---------------------------------------------------------------------------------


def parse_bootstrap(values: list[str] | None) -> tuple[str, ...]:
    """The ``--bootstrap`` peers: each option may hold a comma-separated list of multiaddrs.

    Each must name its peer (``/p2p/PEER_ID``): the node dials it and checks who answers.
    """
    peers: list[str] = []
    for value in values or ():
        for item in value.split(","):
            addr = item.strip()
            if not addr:
                continue
            if not addr.startswith("/") or "/p2p/" not in addr:
                raise CommandError(f"--bootstrap {addr!r} is not a multiaddr with a peer id "
                                   "(like /ip4/10.0.0.2/tcp/26656/p2p/12D3KooW...)")
            peers.append(addr)
    return tuple(peers)


def cmd_init(args: argparse.Namespace) -> int:
    """Create a node home: config, keys and (without ``--genesis``) a dev genesis."""
    from consensus.crypto import encode_address
    from consensus.genesis import load_genesis
    from node.init import init_home, make_genesis, write_genesis

    passphrase = None if args.unencrypted else read_passphrase(confirm=True, no_terminal=NO_TERMINAL)
    result = init_home(
        Path(args.home), moniker=args.moniker, passphrase=passphrase,
        p2p_port=args.p2p_port, rpc_port=args.rpc_port,
        genesis_file=Path(args.genesis) if args.genesis else None,
        bootstrap=parse_bootstrap(args.bootstrap),
        rpc_host=args.rpc_host, p2p_host=args.p2p_host,
    )
    if not args.genesis:
        doc = make_genesis(args.chain_id, [result], monikers=[args.moniker])
        write_genesis(result.home, doc)
    genesis = load_genesis(result.home.genesis_file.read_text())
    emit(
        args,
        f"initialised {result.home.root}\n  chain id: {genesis.chain_id}\n"
        f"  address:  {encode_address(result.address)}\n  peer id:  {result.peer_id}\n"
        f"  keys:     {'UNENCRYPTED (dev mode)' if passphrase is None else 'encrypted'}",
        {"home": str(result.home.root), "chain_id": genesis.chain_id,
         "address": encode_address(result.address), "peer_id": result.peer_id},
    )
    return EXIT_OK


# --- start --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartSettings:
    """What ``cstake start`` reads from a home before it starts the node."""

    config: NodeConfig
    """The home's config.toml, validated."""
    home: NodeHome
    """The home's paths as the config places them."""
    log_file: Path
    """Where the node's JSON log goes (``NodeConfig.log_file``: relative to the home)."""


#: ``cstake start`` flags that override config keys (flag dest -> section.key).
START_FLAGS = {
    "moniker": "node.moniker", "rpc_listen": "rpc.listen", "p2p_listen": "p2p.listen",
    "bootstrap": "p2p.bootstrap", "log_level": "log.level", "log_format": "log.format",
}


def load_start_settings(
    home_arg: str, *, env: Mapping[str, str] | None = None, flags: Mapping[str, str | None] | None = None
) -> StartSettings:
    """Read the config.toml of the home ``--home`` names, then apply ``CSTAKE_*`` and flag overrides.

    Raise CommandError naming what is wrong (the file's key, the variable or the flag).
    """
    try:
        cfg = load_config(NodeHome.at(home_arg).config_file)
        cfg = apply_overrides(cfg, get_env_overrides(os.environ if env is None else env), "environment")
        given = {START_FLAGS[k]: v for k, v in (flags or {}).items() if v is not None}
        if given:
            cfg = apply_overrides(cfg, given, "flags")
    except InvalidConfig as exc:
        raise CommandError(f"config: {exc}") from exc
    return StartSettings(cfg, cfg.home(home_arg), cfg.log_file(home_arg))


def make_clock(cfg: NodeConfig) -> Clock:
    """The node's clock: the system's, shifted by ``[test] clock_offset_ms`` when that is set."""
    offset = cfg.test.clock_offset_ms
    return OffsetClock(SystemClock(), offset) if offset else SystemClock()


def check_test_faults(cfg: NodeConfig, allowed: bool) -> None:
    """Refuse a config that injects test faults into a chain whose genesis does not allow them."""
    if cfg.test.clock_offset_ms and not allowed:
        raise CommandError(
            f"config: test.clock_offset_ms = {cfg.test.clock_offset_ms} is refused: this chain's genesis "
            "does not set params.allow_test_faults (test-only faults)"
        )


def cmd_start(args: argparse.Namespace) -> int:
    """Run the node of ``--home`` in the foreground until SIGINT or SIGTERM."""
    import uvloop

    from consensus.errors import ConsensusError
    from consensus.keystore import is_encrypted_keystore
    from node.app import Node
    from node.errors import NodeError
    from node.keyfiles import read_private_file
    from node.logs import add_file_logging, setup_logging
    from storage import StorageError

    settings = load_start_settings(args.home, flags={k: getattr(args, k, None) for k in START_FLAGS})
    home, cfg = settings.home, settings.config
    # The log file is opened only once the node holds its data directory's lock,
    # so a refused second start never writes into the running node's log.
    setup_logging(cfg.log.level, None, fmt=cfg.log.format)
    encrypted = is_encrypted_keystore(read_private_file(home.account_key_file).decode())
    passphrase = read_passphrase(no_terminal=NO_TERMINAL) if encrypted else None

    async def run() -> int:
        node = Node(home, cfg, passphrase=passphrase, byzantine=args.byzantine, clock=make_clock(cfg))
        check_test_faults(cfg, bool(node.genesis.params.allow_test_faults))
        stop = asyncio.Event()
        signals = {"count": 0}

        def on_signal() -> None:
            signals["count"] += 1
            if signals["count"] > 1:
                os._exit(130)  # a second signal forces the exit
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            await node.start()
        except (StorageError, ConsensusError, NodeError, OSError) as exc:
            await node.stop()
            raise CommandError(str(exc)) from exc
        add_file_logging(settings.log_file)
        waiter = asyncio.create_task(node.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        code = EXIT_OK
        if waiter.done() and not waiter.cancelled() and waiter.exception() is not None:
            code = EXIT_ERROR
        waiter.cancel()
        stopper.cancel()
        try:
            await asyncio.wait_for(node.stop(), timeout=SHUTDOWN_TIMEOUT_S)
        except TimeoutError:
            print("error: shutdown took too long; exiting", file=sys.stderr)
            os._exit(EXIT_ERROR)
        if code != EXIT_OK:
            print(f"error: {node.exit_error}", file=sys.stderr)
        return code

    return uvloop.run(run())


# --- registration ---------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """Register ``init`` and ``start`` on the ``cstake`` subparsers."""
    p = sub.add_parser("init", help="create a node home: config, keys, genesis")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--moniker", default="node")
    p.add_argument("--chain-id", default="cstake-dev")
    p.add_argument("--genesis", help="genesis file to use (default: a one-validator dev chain)")
    p.add_argument("--unencrypted", action="store_true", help="write keys unencrypted (development only)")
    p.add_argument("--p2p-port", type=int, default=26656)
    p.add_argument("--rpc-port", type=int, default=26657)
    p.add_argument("--bootstrap", action="append", metavar="MULTIADDR",
                   help="a peer to join through, /ip4/HOST/tcp/PORT/p2p/PEER_ID (repeat it, or a comma list)")
    p.add_argument("--p2p-host", default="127.0.0.1", help="address the p2p listener binds (0.0.0.0 in a container)")
    p.add_argument("--rpc-host", default="127.0.0.1", help="address the RPC server binds (0.0.0.0 in a container)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(cmd_init))

    p = sub.add_parser("start", help="run the node in the foreground")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--moniker", help="override node.moniker")
    p.add_argument("--rpc-listen", metavar="HOST:PORT", help="override rpc.listen")
    p.add_argument("--p2p-listen", metavar="MULTIADDR", help="override p2p.listen")
    p.add_argument("--bootstrap", metavar="ADDRS", help="override p2p.bootstrap (comma-separated multiaddrs)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="override log.level")
    p.add_argument("--log-format", choices=("text", "json"),
                   help="override log.format: json writes JSON lines to stdout (containers)")
    p.add_argument("--byzantine", metavar="MODE", help="test-only misbehaviour, refused unless genesis allows test faults: "
                   "double-sign, poc-cheat, poc-overclaim, job-cheat, time-warp, forge")
    p.set_defaults(func=as_command(cmd_start))
