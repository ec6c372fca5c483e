"""The ``cstake`` command line: node life cycle (init, start, devnet, bench) plus client commands.

Human output by default, ``--json`` for scripts; a failure prints one line on
stderr and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from node.home import DEFAULT_HOME, NodeHome

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class CLIError(Exception):
    """A command failed; the message is printed as one line."""


def _print(args: argparse.Namespace, human: str, data: Any) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(human)


def _passphrase(confirm: bool = False) -> str:
    env = os.environ.get("CSTAKE_PASSPHRASE")
    if env:
        return env
    if not sys.stdin.isatty():
        raise CLIError("the keystore is encrypted: set CSTAKE_PASSPHRASE (or init with --unencrypted for dev keys)")
    first = getpass.getpass("keystore passphrase: ")
    if confirm and getpass.getpass("repeat passphrase: ") != first:
        raise CLIError("passphrases do not match")
    return first


# --- init ---------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from consensus.genesis import load_genesis
    from node.init import InitError, init_home, make_genesis, write_genesis

    passphrase = None if args.unencrypted else _passphrase(confirm=True)
    try:
        result = init_home(
            Path(args.home), moniker=args.moniker, passphrase=passphrase,
            p2p_port=args.p2p_port, rpc_port=args.rpc_port,
            genesis_file=Path(args.genesis) if args.genesis else None,
        )
    except InitError as exc:
        raise CLIError(str(exc)) from exc
    if not args.genesis:
        doc = make_genesis(args.chain_id, [result], monikers=[args.moniker])
        write_genesis(result.home, doc)
    genesis = load_genesis(result.home.genesis_file.read_text())
    from consensus.crypto import encode_address

    _print(
        args,
        f"initialised {result.home.root}\n  chain id: {genesis.chain_id}\n"
        f"  address:  {encode_address(result.address)}\n  peer id:  {result.peer_id}\n"
        f"  keys:     {'UNENCRYPTED (dev mode)' if passphrase is None else 'encrypted'}",
        {"home": str(result.home.root), "chain_id": genesis.chain_id,
         "address": encode_address(result.address), "peer_id": result.peer_id},
    )
    return EXIT_OK


# --- start --------------------------------------------------------------------------------


def cmd_start(args: argparse.Namespace) -> int:
    import uvloop

    from consensus.errors import ConsensusError
    from consensus.keystore import is_encrypted_keystore
    from node.app import Node, NodeError
    from node.config import ConfigError, load_config
    from node.keyfiles import KeyFileError, read_private_file
    from node.logs import add_file_logging, setup_logging
    from storage import StorageError

    home = NodeHome.at(args.home)
    try:
        cfg = load_config(home.config_file)
    except ConfigError as exc:
        raise CLIError(f"config: {exc}") from exc
    except OSError as exc:
        raise CLIError(f"cannot read {home.config_file}: {exc.strerror} (run `cstake init --home {args.home}`)") from exc
    home = NodeHome.at(
        args.home, genesis_file=cfg.node.genesis_file, data_dir=cfg.node.data_dir,
        keys_dir=cfg.node.keys_dir, logs_dir=cfg.node.logs_dir,
    )
    log_file = Path(cfg.log.file) if cfg.log.file else home.log_file
    # The log file is opened only once the node holds its data directory's lock,
    # so a refused second start never writes into the running node's log.
    setup_logging(cfg.log.level, None)
    try:
        encrypted = is_encrypted_keystore(read_private_file(home.account_key_file).decode())
    except (KeyFileError, ConsensusError) as exc:
        raise CLIError(str(exc)) from exc
    passphrase = _passphrase() if encrypted else None

    async def run() -> int:
        try:
            node = Node(home, cfg, passphrase=passphrase, byzantine=args.byzantine)
        except (NodeError, ConsensusError, KeyFileError) as exc:
            raise CLIError(str(exc)) from exc
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
            raise CLIError(str(exc)) from exc
        add_file_logging(log_file)
        waiter = asyncio.create_task(node.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        code = EXIT_OK
        if waiter.done() and not waiter.cancelled() and waiter.exception() is not None:
            code = EXIT_ERROR
        waiter.cancel()
        stopper.cancel()
        try:
            await asyncio.wait_for(node.stop(), timeout=9.0)
        except TimeoutError:
            print("error: shutdown took too long; exiting", file=sys.stderr)
            os._exit(EXIT_ERROR)
        if code != EXIT_OK:
            print(f"error: {node.exit_error}", file=sys.stderr)
        return code

    return uvloop.run(run())


# --- devnet ---------------------------------------------------------------------------------


def _parse_byzantine(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, mode = item.partition("=")
        if not sep or not name or not mode:
            raise CLIError(f"--byzantine expects NODE=MODE, got '{item}'")
        out[name] = mode
    return out


def _parse_params(text: str | None) -> dict[str, int] | None:
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"--params is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not all(isinstance(v, int) for v in doc.values()):
        raise CLIError("--params must be a JSON object of integer parameters")
    return doc


def cmd_devnet_up(args: argparse.Namespace) -> int:
    from consensus.errors import ConsensusError
    from node.devtools.devnet import (
        DevnetError,
        DevnetNode,
        create_devnet,
        is_node_process,
        load_devnet,
        node_status,
        rpc_call,
        save_devnet,
        start_node_process,
        stop_pids,
    )

    directory = Path(args.dir).resolve()
    byz = _parse_byzantine(args.byzantine or [])
    existing = directory / "devnet.json"
    if existing.exists():
        doc = load_devnet(directory)
        running = [n["name"] for n in doc["nodes"] if is_node_process(int(n.get("pid", 0)), n["home"])]
        if running:
            raise CLIError(f"devnet in {directory} is already running ({', '.join(running)}); `cstake devnet down --dir {args.dir}` first")
        chain_id = doc["chain_id"]
        rows = [(n["name"], NodeHome.at(n["home"]), n["rpc"], n["p2p"]) for n in doc["nodes"]]
        print(f"restarting the devnet in {directory} ({len(rows)} nodes)", file=sys.stderr)
    else:
        print(f"creating a {args.validators}-validator devnet in {directory}", file=sys.stderr)
        try:
            chain_id, created = create_devnet(directory, args.validators, args.base_port, params=_parse_params(args.params))
        except (DevnetError, ConsensusError) as exc:
            raise CLIError(str(exc)) from exc
        rows = [
            (name, home, f"http://127.0.0.1:{rpc}", f"/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer}")
            for name, home, p2p, rpc, peer in created
        ]
    unknown = set(byz) - {r[0] for r in rows}
    if unknown:
        raise CLIError(f"--byzantine names unknown node(s): {', '.join(sorted(unknown))}")
    nodes = []
    for name, home, rpc, p2p in rows:
        pid = start_node_process(home.root, byz.get(name))
        nodes.append(DevnetNode(name, str(home.root), rpc, p2p, pid))
    save_devnet(directory, chain_id, nodes)
    deadline = time.monotonic() + args.timeout
    pending = {n.name for n in nodes}
    while pending and time.monotonic() < deadline:
        for n in nodes:
            if n.name not in pending:
                continue
            if not is_node_process(n.pid, n.home):
                stop_pids([x.to_json() for x in nodes])
                raise CLIError(f"{n.name} exited during start; see {n.home}/logs/stdout.log")
            with contextlib.suppress(DevnetError):
                rpc_call(n.rpc, "status", timeout=1.0)
                pending.discard(n.name)
                print(f"  {n.name} up: {n.rpc}", file=sys.stderr)
        time.sleep(0.3)
    if pending:
        stop_pids([x.to_json() for x in nodes])
        raise CLIError(f"node(s) {', '.join(sorted(pending))} did not answer RPC within {args.timeout:.0f} s")
    summary = {"chain_id": chain_id, "dir": str(directory), "nodes": [n.to_json() for n in nodes]}
    _print(args, "\n".join([f"devnet {chain_id} is up ({directory}/devnet.json)"] + [f"  {n.name}: {n.rpc}  p2p {n.p2p}" for n in nodes]), summary)
    if args.detach:
        return EXIT_OK
    # Foreground: one status line per node every few seconds until Ctrl-C.
    stop = {"flag": False}

    def handler(signum: int, frame: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    print("press Ctrl-C to stop every node", file=sys.stderr)
    last = 0.0
    while not stop["flag"]:
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            for n in nodes:
                st = node_status(n.to_json())
                line = (f"  {st['name']}: height {st['height']}, peers {st['peers']}, validator {st['validator']}"
                        if st["up"] else f"  {st['name']}: DOWN ({st['error']})")
                print(line, flush=True)
        time.sleep(0.2)
    print("stopping the devnet...", file=sys.stderr)
    stopped = stop_pids([n.to_json() for n in nodes])
    print(f"stopped {len(stopped)} node(s)", file=sys.stderr)
    return EXIT_OK


def cmd_devnet_init(args: argparse.Namespace) -> int:
    from node.devtools.devnet import DevnetError, create_docker_devnet

    if not args.docker:
        raise CLIError("devnet init only prepares docker homes (--docker DIR); use `devnet up` for processes")
    directory = Path(args.docker).resolve()
    if directory.exists() and any(directory.iterdir()):
        raise CLIError(f"{directory} is not empty; choose a new directory")
    try:
        path = create_docker_devnet(directory, args.validators)
    except DevnetError as exc:
        raise CLIError(str(exc)) from exc
    _print(args, f"docker devnet homes in {directory}\nrun: docker compose -f {path} up --build",
           {"dir": str(directory), "compose": str(path)})
    return EXIT_OK


def cmd_devnet_down(args: argparse.Namespace) -> int:
    from node.devtools.devnet import DevnetError, load_devnet, stop_pids

    directory = Path(args.dir).resolve()
    try:
        doc = load_devnet(directory)
    except DevnetError as exc:
        raise CLIError(str(exc)) from exc
    stopped = stop_pids(doc["nodes"])
    if args.reset:
        shutil.rmtree(directory)
    _print(args, f"stopped {len(stopped)} node(s)" + (f"; removed {directory}" if args.reset else ""),
           {"stopped": stopped, "removed": bool(args.reset)})
    return EXIT_OK


def cmd_devnet_status(args: argparse.Namespace) -> int:
    from node.devtools.devnet import DevnetError, is_node_process, load_devnet, node_status

    try:
        doc = load_devnet(Path(args.dir).resolve())
    except DevnetError as exc:
        raise CLIError(str(exc)) from exc
    rows = []
    for n in doc["nodes"]:
        st = node_status(n)
        st["running"] = is_node_process(int(n.get("pid", 0)), n["home"])
        rows.append(st)
    lines = [f"devnet {doc['chain_id']}"]
    for st in rows:
        if st["up"]:
            lines.append(f"  {st['name']}: height {st['height']}, peers {st['peers']}, validator {st['validator']}  {st['rpc']}")
        else:
            lines.append(f"  {st['name']}: {'running, RPC not answering' if st['running'] else 'stopped'}  {st['rpc']}")
    _print(args, "\n".join(lines), {"chain_id": doc["chain_id"], "nodes": rows})
    return EXIT_OK if all(st["up"] for st in rows) else EXIT_ERROR


# --- bench ----------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from node.compute.hwbench import format_report, report_to_json, run_benchmark

    if args.seconds <= 0:
        raise CLIError("--seconds must be positive")
    report = run_benchmark(args.seconds)
    _print(args, format_report(report), report_to_json(report))
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cstake", description="compute-staking blockchain node")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create a node home: config, keys, genesis")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--moniker", default="node")
    p.add_argument("--chain-id", default="cstake-dev")
    p.add_argument("--genesis", help="genesis file to use (default: a one-validator dev chain)")
    p.add_argument("--unencrypted", action="store_true", help="write keys unencrypted (development only)")
    p.add_argument("--p2p-port", type=int, default=26656)
    p.add_argument("--rpc-port", type=int, default=26657)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("start", help="run the node in the foreground")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--byzantine", help="test-only misbehaviour (refused unless genesis allows test faults)")
    p.set_defaults(func=cmd_start)

    dev = sub.add_parser("devnet", help="a local multi-validator devnet").add_subparsers(dest="devnet_cmd", required=True)
    p = dev.add_parser("up", help="create (or restart) and start a devnet")
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--dir", default=".devnet")
    p.add_argument("--base-port", type=int, default=26600)
    p.add_argument("--detach", action="store_true", help="return once every node answers RPC")
    p.add_argument("--byzantine", action="append", metavar="NODE=MODE")
    p.add_argument("--timeout", type=float, default=90.0)
    p.add_argument("--params", help="genesis parameter overrides as a JSON object (new devnets only)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devnet_up)
    p = dev.add_parser("init", help="prepare homes and a compose file for a docker devnet")
    p.add_argument("--docker", metavar="DIR", required=True)
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devnet_init)
    p = dev.add_parser("down", help="stop the nodes of a devnet")
    p.add_argument("--dir", default=".devnet")
    p.add_argument("--reset", action="store_true", help="also delete the devnet's homes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devnet_down)
    p = dev.add_parser("status", help="height, peers and role of each node")
    p.add_argument("--dir", default=".devnet")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devnet_status)

    p = sub.add_parser("bench", help="benchmark this machine's compute")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    from node.cli.client_commands import add_client_commands

    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
