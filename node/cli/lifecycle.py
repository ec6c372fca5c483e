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
from node.config import NodeConfig, load_config
from node.errors import CommandError, InvalidConfig
from node.home import DEFAULT_HOME, NodeHome

NO_TERMINAL = f"the keystore is encrypted: set {PASSPHRASE_ENV} (or init with --unencrypted for dev keys)"
"""Why a node's keystore passphrase cannot be asked for (stdin is not a terminal)."""
SHUTDOWN_TIMEOUT_S = 9.0
"""Longest clean stop after a signal before the process exits anyway."""


# --- init ---------------------------------------------------------------------------------


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


def load_start_settings(home_arg: str) -> StartSettings:
    """Read the config.toml of the home ``--home`` names; raise CommandError naming what is wrong."""
    try:
        cfg = load_config(NodeHome.at(home_arg).config_file)
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

    settings = load_start_settings(args.home)
    home, cfg = settings.home, settings.config
    # The log file is opened only once the node holds its data directory's lock,
    # so a refused second start never writes into the running node's log.
    setup_logging(cfg.log.level, None)
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
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(cmd_init))

    p = sub.add_parser("start", help="run the node in the foreground")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--byzantine", metavar="MODE", help="test-only misbehaviour, refused unless genesis allows test faults: "
                   "double-sign, poc-cheat, poc-overclaim, job-cheat, time-warp, forge")
    p.set_defaults(func=as_command(cmd_start))
