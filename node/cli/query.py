"""``cstake query ...``: one JSON-RPC call to a node, its answer printed for people or as JSON.

Each subcommand names an RPC method and how its params come from the
arguments (addresses and heights are checked before anything is sent); the
answer is rendered by a per-method formatter or, by default, as indented
``key: value`` lines (``common.render``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from node.cli.common import (
    EXIT_OK,
    Handler,
    as_command,
    emit,
    format_amount,
    format_time_ms,
    parse_address,
    render,
    render_scalar,
    resolve_rpc_url,
)
from node.client import RPCClient, verify_account_proof
from node.errors import CommandError, RPCCallError
from node.home import DEFAULT_HOME


def query_command(method: str, params: Callable[[argparse.Namespace], Any],
                  human: Callable[[Any], str] = render) -> Handler:
    """The handler of one query subcommand: call ``method`` with ``params(args)`` and print the answer."""

    def run(args: argparse.Namespace) -> int:
        url = resolve_rpc_url(args)

        async def go() -> Any:
            async with RPCClient(url, timeout=args.timeout) as client:
                return await client.call(method, params(args))

        result = asyncio.run(go())
        emit(args, human(result), result)
        return EXIT_OK

    return as_command(run)


def _human_status(r: dict[str, Any]) -> str:
    rows = [
        ("chain id", r["chain_id"]), ("moniker", r["moniker"]), ("node id", r["node_id"]),
        ("height", r["latest_height"]), ("block hash", r["latest_block_hash"]),
        ("block time", format_time_ms(r["latest_block_time"])), ("state root", r["latest_state_root"]),
        ("catching up", r["catching_up"]), ("validator", r["validator_address"]),
    ]
    return "\n".join(f"{k:<17}{render_scalar(v)}" for k, v in rows)


def _human_validators(r: dict[str, Any]) -> str:
    lines = [f"validator set of height {r['height']} (total power {r['total_power']})",
             f"{'address':<46}{'power':>10}{'stake':>16}{'compute':>9}{'jailed':>8}  moniker"]
    for v in r["validators"]:
        lines.append(f"{v['address']:<46}{v['voting_power']:>10}{render_scalar(v['stake']):>16}"
                     f"{v['compute_units']:>9}{render_scalar(v['jailed']):>8}  {render_scalar(v['moniker'])}")
    for v in r.get("inactive", []):
        lines.append(f"{v['address']:<46}{0:>10}{v['stake']:>16}{'-':>9}{render_scalar(v['jailed']):>8}  "
                     f"{v['moniker']} (inactive)")
    return "\n".join(lines)


def _human_peers(r: dict[str, Any]) -> str:
    if not r["peers"]:
        return "no peers connected"
    return f"{r['n_peers']} peer(s)\n" + "\n".join(
        f"  {p['node_id']}  {' '.join(p['addrs'])}" for p in r["peers"]
    )


def _query_account(args: argparse.Namespace) -> int:
    """``query account``; with --prove, verify the answer against the header of the proof's next block."""
    address = parse_address(args.address, "address")
    url = resolve_rpc_url(args)

    async def go() -> Any:
        async with RPCClient(url, timeout=args.timeout) as client:
            if not args.prove:
                return await client.call("account", {"address": args.address})
            answer = await client.call("account", {"address": args.address, "prove": True})
            # The root after height H is in the header of H + 1: wait for that block.
            want = int(answer["proof"]["height"]) + 1
            deadline = asyncio.get_running_loop().time() + args.timeout
            while True:
                try:
                    block = await client.call("block", {"height": want, "txs": "hashes"})
                    break
                except RPCCallError as exc:
                    if exc.code != -32002 or asyncio.get_running_loop().time() > deadline:
                        raise
                await asyncio.sleep(0.2)
            verify_account_proof(address, answer, bytes.fromhex(block["header"]["state_root"][2:]))
            answer["proof"]["verified_against_block"] = want
            return answer

    result = asyncio.run(go())
    if args.prove:
        human = (f"{result['address']}\n  balance: {format_amount(result['balance'])}\n  nonce:   {result['nonce']}\n"
                 f"  proof verified against the state root in block {result['proof']['verified_against_block']}")
    else:
        human = _human_account(result)
    emit(args, human, result)
    return EXIT_OK


def _human_account(r: dict[str, Any]) -> str:
    lines = [
        f"{r['address']}{'  (validator)' if r.get('is_validator') else ''}",
        f"  balance:         {format_amount(r['balance'])}",
        f"  nonce:           {r['nonce']} (next {r.get('next_nonce', r['nonce'])})",
        f"  bonded:          {format_amount(r.get('bonded', 0))}",
        f"  pending rewards: {format_amount(r.get('pending_rewards', 0))}",
    ]
    for d in r.get("delegations", []):
        lines.append(f"  delegated {format_amount(d['amount'])} to {d['validator']} (rewards {format_amount(d['rewards'])})")
    for u in r.get("unbonding", []):
        lines.append(f"  unbonding {format_amount(u['amount'])} from {u['validator']} until height {u['completion_height']}")
    return "\n".join(lines)


def _check_addr(text: str | None) -> str | None:
    if text is not None:
        parse_address(text, "address")
    return text


def _height_param(args: argparse.Namespace) -> Any:
    if args.height is None:
        return None
    if args.height < 1:
        raise CommandError(f"heights start at 1, got {args.height}")
    return {"height": args.height}


def add_commands(sub: Any) -> None:
    """Register ``query`` and its subcommands on the ``cstake`` subparsers."""
    q = sub.add_parser("query", help="ask a node over JSON-RPC").add_subparsers(dest="query_cmd", required=True)
    p = q.add_parser("status", help="node and chain head")
    p.set_defaults(func=query_command("status", lambda a: None, _human_status))
    p = q.add_parser("block", help="a block (latest by default)")
    p.add_argument("height", nargs="?", type=int)
    p.set_defaults(func=query_command("block", _height_param))
    p = q.add_parser("tx", help="a committed transaction")
    p.add_argument("hash")
    p.set_defaults(func=query_command("tx", lambda a: {"hash": a.hash}))
    p = q.add_parser("account", help="balance, nonce, bonds (--prove: verified balance and nonce)")
    p.add_argument("address")
    p.add_argument("--prove", action="store_true",
                   help="ask for a Merkle proof and verify it against the next block's header before printing")
    p.set_defaults(func=as_command(_query_account))
    p = q.add_parser("validators", help="the validator set")
    p.add_argument("height", nargs="?", type=int)
    p.set_defaults(func=query_command("validators", _height_param, _human_validators))
    p = q.add_parser("nft", help="a compute NFT")
    p.add_argument("id", type=int)
    p.set_defaults(func=query_command("nft", lambda a: {"id": a.id}))
    p = q.add_parser("nfts", help="compute NFTs")
    p.add_argument("--owner")
    p.add_argument("--validator")
    p.set_defaults(func=query_command("nfts", lambda a: {k: v for k, v in (
        ("owner", _check_addr(a.owner)), ("validator", _check_addr(a.validator))) if v is not None}))
    p = q.add_parser("slashing", help="slashing records")
    p.add_argument("address", nargs="?")
    p.set_defaults(func=query_command("slashing_records", lambda a: None if a.address is None
                               else {"validator": _check_addr(a.address)}))
    p = q.add_parser("jobs", help="compute jobs")
    p.add_argument("--status")
    p.set_defaults(func=query_command("jobs", lambda a: None if a.status is None else {"status": a.status}))
    p = q.add_parser("job", help="one compute job with its slots and opened results")
    p.add_argument("id", help="job id (0x + 64 hex)")
    p.set_defaults(func=query_command("job", lambda a: {"id": a.id}))
    p = q.add_parser("params", help="protocol parameters in force")
    p.set_defaults(func=query_command("params", lambda a: None))
    p = q.add_parser("peers", help="connected peers")
    p.set_defaults(func=query_command("net_info", lambda a: None, _human_peers))
    p = q.add_parser("mempool", help="pending transactions")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=query_command("mempool", lambda a: {"limit": a.limit}))
    for p in q.choices.values():
        p.add_argument("--home", default=DEFAULT_HOME)
        p.add_argument("--rpc", help="node RPC URL (default: the home's rpc.listen)")
        p.add_argument("--timeout", type=float, default=10.0)
        p.add_argument("--json", action="store_true")
