"""``cstake devnet up|init|down|status``: a local multi-validator devnet, driven from the command line.

The mechanics (homes, genesis, processes, ``DIR/devnet.json``) live in
node/devtools/devnet.py; this module turns arguments into those calls and
prints what happened. ``up`` creates the devnet (or restarts the one in
``--dir``), waits until every node answers RPC, then either returns
(``--detach``) or prints each node's height every few seconds until Ctrl-C
and stops every node. ``init --docker DIR`` only writes the homes of the
repository's docker-compose.yml devnet (its init service runs it in the volume).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from node.cli.common import EXIT_ERROR, EXIT_OK, as_command, emit
from node.errors import CommandError, DevnetError
from node.home import NodeHome

STATUS_EVERY_S = 5.0
"""Seconds between the status lines of a foreground devnet."""


def _parse_byzantine(items: list[str]) -> dict[str, str]:
    """``--byzantine NODE=MODE`` options as {node name: mode}."""
    out = {}
    for item in items:
        name, sep, mode = item.partition("=")
        if not sep or not name or not mode:
            raise CommandError(f"--byzantine expects NODE=MODE, got '{item}'")
        out[name] = mode
    return out


def _parse_params(text: str | None) -> dict[str, int] | None:
    """``--params``: genesis parameter overrides as a JSON object of integers."""
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"--params is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not all(isinstance(v, int) for v in doc.values()):
        raise CommandError("--params must be a JSON object of integer parameters")
    return doc


def cmd_devnet_up(args: argparse.Namespace) -> int:
    """Create (or restart) and start a devnet; detach once it answers, or watch it until Ctrl-C."""
    from node.devtools.devnet import (
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
            raise CommandError(f"devnet in {directory} is already running ({', '.join(running)}); `cstake devnet down --dir {args.dir}` first")
        chain_id = doc["chain_id"]
        rows = [(n["name"], NodeHome.at(n["home"]), n["rpc"], n["p2p"]) for n in doc["nodes"]]
        print(f"restarting the devnet in {directory} ({len(rows)} nodes)", file=sys.stderr)
    else:
        print(f"creating a {args.validators}-validator devnet in {directory}", file=sys.stderr)
        chain_id, created = create_devnet(directory, args.validators, args.base_port, params=_parse_params(args.params),
                                          compute_units=args.compute_units)
        rows = [
            (name, home, f"http://127.0.0.1:{rpc}", f"/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer}")
            for name, home, p2p, rpc, peer in created
        ]
    unknown = set(byz) - {r[0] for r in rows}
    if unknown:
        raise CommandError(f"--byzantine names unknown node(s): {', '.join(sorted(unknown))}")
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
                raise CommandError(f"{n.name} exited during start; see {n.home}/logs/stdout.log")
            with contextlib.suppress(DevnetError):
                rpc_call(n.rpc, "status", timeout=1.0)
                pending.discard(n.name)
                print(f"  {n.name} up: {n.rpc}", file=sys.stderr)
        time.sleep(0.3)
    if pending:
        stop_pids([x.to_json() for x in nodes])
        raise CommandError(f"node(s) {', '.join(sorted(pending))} did not answer RPC within {args.timeout:.0f} s")
    summary = {"chain_id": chain_id, "dir": str(directory), "nodes": [n.to_json() for n in nodes]}
    emit(args, "\n".join([f"devnet {chain_id} is up ({directory}/devnet.json)"] + [f"  {n.name}: {n.rpc}  p2p {n.p2p}" for n in nodes]), summary)
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
        if time.monotonic() - last >= STATUS_EVERY_S:
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
    """Write the homes of the compose devnet into ``--docker DIR`` (starts nothing; keeps existing homes)."""
    from node.devtools.devnet import DOCKER_BOOTSTRAP, DOCKER_GENESIS, init_docker_devnet

    if not args.docker:
        raise CommandError("devnet init only prepares docker homes (--docker DIR); use `devnet up` for processes")
    directory = Path(args.docker).resolve()
    created = init_docker_devnet(directory, args.validators, params=_parse_params(args.params))
    what = "wrote" if created else "kept the existing"
    emit(args, f"{what} docker devnet homes in {directory} (genesis: {directory / DOCKER_GENESIS}, "
               f"bootstrap peers: {directory / DOCKER_BOOTSTRAP})",
         {"dir": str(directory), "created": created, "genesis": str(directory / DOCKER_GENESIS),
          "bootstrap": (directory / DOCKER_BOOTSTRAP).read_text().strip()})
    return EXIT_OK


def cmd_devnet_down(args: argparse.Namespace) -> int:
    """Stop the nodes of a devnet (``--reset``: and delete its homes)."""
    from node.devtools.devnet import load_devnet, stop_pids

    directory = Path(args.dir).resolve()
    doc = load_devnet(directory)
    stopped = stop_pids(doc["nodes"])
    if args.reset:
        shutil.rmtree(directory)
    emit(args, f"stopped {len(stopped)} node(s)" + (f"; removed {directory}" if args.reset else ""),
           {"stopped": stopped, "removed": bool(args.reset)})
    return EXIT_OK


def cmd_devnet_status(args: argparse.Namespace) -> int:
    """Show each node's height, peers and role; exit 1 unless every node answers."""
    from node.devtools.devnet import is_node_process, load_devnet, node_status

    doc = load_devnet(Path(args.dir).resolve())
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
    emit(args, "\n".join(lines), {"chain_id": doc["chain_id"], "nodes": rows})
    return EXIT_OK if all(st["up"] for st in rows) else EXIT_ERROR


# --- registration ---------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """Register ``devnet`` and its subcommands on the ``cstake`` subparsers."""
    dev = sub.add_parser("devnet", help="a local multi-validator devnet").add_subparsers(dest="devnet_cmd", required=True)
    p = dev.add_parser("up", help="create (or restart) and start a devnet")
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--dir", default=".devnet")
    p.add_argument("--base-port", type=int, default=26600)
    p.add_argument("--detach", action="store_true", help="return once every node answers RPC")
    p.add_argument("--byzantine", action="append", metavar="NODE=MODE",
                   help="start NODE (e.g. node1) with a test-only mode: double-sign, poc-cheat, poc-overclaim, job-cheat, time-warp, forge")
    p.add_argument("--timeout", type=float, default=90.0)
    p.add_argument("--params", help="genesis parameter overrides as a JSON object (new devnets only)")
    p.add_argument("--compute-units", type=int, metavar="N",
                   help="units each validator's genesis compute NFT claims (default 5; new devnets only)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(cmd_devnet_up))
    p = dev.add_parser("init", help="write the homes of the compose devnet (docker-compose.yml's init service)",
                       description="Write N validator homes, one genesis and the bootstrap list into DIR, "
                       "addressed for the network of the repository's docker-compose.yml. Does nothing "
                       "if DIR already holds them.")
    p.add_argument("--docker", metavar="DIR", required=True)
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--params", help="genesis parameter overrides as a JSON object (new devnets only)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(cmd_devnet_init))
    p = dev.add_parser("down", help="stop the nodes of a devnet")
    p.add_argument("--dir", default=".devnet")
    p.add_argument("--reset", action="store_true", help="also delete the devnet's homes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(cmd_devnet_down))
    p = dev.add_parser("status", help="height, peers and role of each node")
    p.add_argument("--dir", default=".devnet")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=as_command(cmd_devnet_status))
