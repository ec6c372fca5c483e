"""Client commands of ``cstake``: ``tx ...``, ``query ...``, ``keys show`` and ``load``.

``add_client_commands(subparsers)`` registers them on the main parser; each
sets ``func`` to a handler ``(args) -> exit code``. Handlers print human
output (or JSON with ``--json``) and turn every failure into one line on
stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consensus.codec import Encodable
from consensus.crypto import PrivateKey, compute_address, decode_address, encode_address
from consensus.errors import ConsensusError, InvalidAddress, KeystoreError
from consensus.keystore import is_encrypted_keystore
from consensus.records import DeviceKind, HardwareSpec
from consensus.txs import (
    BindNFT,
    Bond,
    Delegate,
    RegisterCompute,
    SubmitJob,
    Transfer,
    TransferNFT,
    UnbindNFT,
    Unbond,
    Undelegate,
    Unjail,
    build_tx,
)
from node.client import RPCCallError, RPCClient, RPCClientError
from node.config import ConfigError, load_config
from node.home import DEFAULT_HOME, NodeHome
from node.keyfiles import KeyFileError, load_keystore, read_private_file

EXIT_OK = 0
EXIT_ERROR = 1


class ClientError(Exception):
    """A client command failed; printed as one line."""


# --- shared helpers ------------------------------------------------------------------------


def _home(args: argparse.Namespace) -> NodeHome:
    root = Path(args.home).expanduser()
    cfg_file = root / "config.toml"
    if cfg_file.exists():
        try:
            return load_config(cfg_file).home(root)
        except ConfigError as exc:
            raise ClientError(str(exc)) from exc
    return NodeHome.at(root)


def resolve_rpc_url(args: argparse.Namespace) -> str:
    """``--rpc`` if given, else the home's own ``rpc.listen``, else the default port."""
    if getattr(args, "rpc", None):
        return str(args.rpc)
    cfg_file = Path(args.home).expanduser() / "config.toml"
    if cfg_file.exists():
        try:
            return load_config(cfg_file).rpc_url
        except ConfigError as exc:
            raise ClientError(str(exc)) from exc
    return "http://127.0.0.1:26657"


def read_passphrase() -> str:
    """The keystore passphrase: CSTAKE_PASSPHRASE, else asked on the terminal."""
    env = os.environ.get("CSTAKE_PASSPHRASE")
    if env:
        return env
    if not sys.stdin.isatty():
        raise ClientError("the keystore is encrypted: set CSTAKE_PASSPHRASE or run from a terminal")
    return getpass.getpass("keystore passphrase: ")


def load_account_key(home: NodeHome) -> PrivateKey:
    """Load the home's account key (asking for the passphrase only if it is encrypted)."""
    path = home.account_key_file
    try:
        text = read_private_file(path).decode("utf-8")
        passphrase = read_passphrase() if is_encrypted_keystore(text) else None
        return load_keystore(path, passphrase)
    except (KeyFileError, KeystoreError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot load the account key {path}: {exc}") from exc


def _keystore_pubkey(path: Path) -> bytes:
    """The public key recorded in a keystore (no passphrase needed)."""
    try:
        doc = json.loads(read_private_file(path).decode("utf-8"))
        text = doc["pubkey"]
        if not isinstance(text, str) or not text.startswith("0x"):
            raise ValueError("pubkey is not 0x-hex")
        pub = bytes.fromhex(text[2:])
    except (KeyFileError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read the keystore {path}: {exc}") from exc
    if len(pub) != 32:
        raise ClientError(f"keystore {path} holds a public key of {len(pub)} bytes, not 32")
    return pub


def parse_address(text: str, what: str) -> bytes:
    try:
        return decode_address(text)
    except InvalidAddress as exc:
        raise ClientError(f"{what} {text!r} is not a valid address: {exc}") from exc


def parse_amount(text: str, what: str) -> int:
    try:
        value = int(text, 10)
    except ValueError as exc:
        raise ClientError(f"{what} must be a whole number of base units, got {text!r}") from exc
    if not 0 < value < 1 << 64:
        raise ClientError(f"{what} must be positive and below 2^64, got {value}")
    return value


def _emit(args: argparse.Namespace, human: str, data: Any) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(human)


def _run(fn: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    """Wrap a handler: one line on stderr and exit 1 on any client-side failure."""

    def handler(args: argparse.Namespace) -> int:
        try:
            result = fn(args)
        except (ClientError, RPCClientError, ConsensusError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        return EXIT_OK if result is None else int(result)

    return handler


def render(value: Any, indent: int = 0) -> str:
    """A readable, YAML-like rendering of a JSON value."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}"
        lines = []
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                lines.append(f"{pad}{k}:")
                lines.append(render(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return pad + "[]"
        lines = []
        for item in value:
            if isinstance(item, dict | list) and item:
                body = render(item, indent + 1).lstrip()
                lines.append(f"{pad}- {body}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict | list):
        return "{}" if isinstance(v, dict) else "[]"
    return str(v)


# --- tx ------------------------------------------------------------------------------------


async def _send_tx(args: argparse.Namespace, key: PrivateKey, body: Encodable) -> dict[str, Any]:
    url = resolve_rpc_url(args)
    address = encode_address(key.address())
    async with RPCClient(url, timeout=args.timeout) as client:
        status, account, params = await client.batch(
            [("status", None), ("account", {"address": address}), ("params", None)]
        )
        for item in (status, account, params):
            if isinstance(item, RPCCallError):
                raise item
        fee = args.fee if args.fee is not None else int(params["min_fee"])
        nonce = int(account.get("next_nonce", account["nonce"]))
        tx = build_tx(key, status["chain_id"], nonce, fee, body)
        mode = "commit" if args.wait else "sync"
        result: dict[str, Any] = await client.call(
            "broadcast_tx", {"tx": "0x" + tx.raw.hex(), "mode": mode}, timeout=args.timeout
        )
    if isinstance(body, SubmitJob):
        from consensus.jobs.handlers import compute_job_id

        result["job_id"] = "0x" + compute_job_id(key.address(), nonce).hex()
    return result


def _tx_command(build: Callable[[argparse.Namespace, PrivateKey], Encodable]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        home = _home(args)
        key = load_account_key(home)
        body = build(args, key)
        result = asyncio.run(_send_tx(args, key, body))
        code = int(result.get("code", 0))
        if args.json:
            print(json.dumps(result, indent=2, sort_keys=True))
        elif code == 0:
            where = f" in block {result['height']}" if "height" in result else " (in the mempool)"
            print(f"tx {result['hash']} {'committed' if 'height' in result else 'accepted'}{where}")
            if "job_id" in result:
                print(f"job {result['job_id']}")
        if code != 0:
            what = "failed in block " + str(result["height"]) if "height" in result else "refused"
            raise ClientError(f"transaction {result['hash']} {what} (code {code}): {result.get('log', '')}")
        return EXIT_OK

    return _run(run)


def _b_send(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return Transfer(parse_address(args.to, "recipient"), parse_amount(args.amount, "AMOUNT"))


def _b_bond(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return Bond(parse_amount(args.amount, "AMOUNT"))


def _b_unbond(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return Unbond(parse_amount(args.amount, "AMOUNT"))


def _b_delegate(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return Delegate(parse_address(args.validator, "validator"), parse_amount(args.amount, "AMOUNT"))


def _b_undelegate(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return Undelegate(parse_address(args.validator, "validator"), parse_amount(args.amount, "AMOUNT"))


def _b_transfer_nft(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return TransferNFT(_nft_id(args.id), parse_address(args.to, "recipient"))


def _b_bind_nft(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return BindNFT(_nft_id(args.id), parse_address(args.validator, "validator"))


def _b_unbind_nft(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return UnbindNFT(_nft_id(args.id))


def _b_unjail(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return Unjail()


def _b_set_price(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    from consensus.jobs.types import SetPrice

    return SetPrice(_nft_id(args.id), args.price, 0 if args.stop else 1)


def _nft_id(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError as exc:
        raise ClientError(f"NFT id must be a whole number, got {text!r}") from exc
    if not 0 <= value < 1 << 64:
        raise ClientError(f"NFT id out of range: {value}")
    return value


def _b_register_compute(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    device = args.device
    units, model, cores, memory_mb = args.units, args.model, args.cores, args.memory_mb
    if args.from_bench:
        from node.compute.hwbench import run_benchmark

        report = run_benchmark(args.bench_seconds)
        if not args.json:
            print(f"benchmarked: {report.units} compute units ({report.cpu_model})", file=sys.stderr)
        units = units if units is not None else report.units
        if device == "gpu" and report.gpus:
            model = model or report.gpus[0].name
            memory_mb = memory_mb if memory_mb is not None else report.gpus[0].memory_mib
        model = model or report.cpu_model
        cores = cores if cores is not None else report.logical_cores
        memory_mb = memory_mb if memory_mb is not None else report.memory_bytes >> 20
    missing = [n for n, v in (("--units", units), ("--model", model), ("--cores", cores),
                              ("--memory-mb", memory_mb)) if v is None]
    if missing:
        raise ClientError(f"register-compute needs {', '.join(missing)} (or --from-bench)")
    if args.collateral is None:
        raise ClientError("register-compute needs --collateral (at least the chain's min_nft_collateral)")
    spec = HardwareSpec(
        device_kind=DeviceKind.GPU if device == "gpu" else DeviceKind.CPU,
        model=str(model)[:128],
        cores=int(cores or 0),
        memory_mb=int(memory_mb or 0),
    )
    body = RegisterCompute(spec, int(units or 0), int(args.collateral))
    try:
        body.validate_basic()
    except ConsensusError as exc:
        raise ClientError(f"register-compute: {exc}") from exc
    return body


def _b_submit_job(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    from consensus.jobs.iterate import IterateSpec
    from consensus.jobs.kinds import JobInput
    from consensus.jobs.matmul import MatmulSpec
    from consensus.jobs.registry import KIND_BY_NAME, get_kind

    kind = KIND_BY_NAME.get(args.kind) or (get_kind(int(args.kind)) if args.kind.isdigit() else None)
    if kind is None:
        raise ClientError(f"--kind must be one of {', '.join(KIND_BY_NAME)} (or a kind code), got {args.kind!r}")
    inputs = b""
    seed = b""
    if args.inputs_file:
        try:
            inputs = Path(args.inputs_file).read_bytes()
        except OSError as exc:
            raise ClientError(f"cannot read --inputs-file {args.inputs_file}: {exc.strerror}") from exc
    else:
        text = args.input_seed or ""
        try:
            seed = bytes.fromhex(text.removeprefix("0x"))
        except ValueError as exc:
            raise ClientError("--input-seed must be 32 bytes of hex") from exc
        if len(seed) != 32:
            raise ClientError("submit-job needs --inputs-file or a 32-byte --input-seed (hex)")
    if kind.name == "matmul":
        if args.rows is None or args.n is None:
            raise ClientError("a matmul job needs --rows and --n (and --p for inline inputs; seeded p = n)")
        spec = MatmulSpec(args.rows, args.n, args.p if args.p is not None else args.n).encode()
    else:
        if args.steps is None or args.width is None:
            raise ClientError("an iterate job needs --steps and --width")
        spec = IterateSpec(args.steps, args.width).encode()
    ji = JobInput(spec, inputs, seed)
    try:
        kind.validate_input(ji, 1 << 62)
        work_units = kind.compute_work_units(ji)
        input_hash = kind.compute_input_hash(ji)
    except ConsensusError as exc:
        raise ClientError(f"submit-job: {exc}") from exc
    escrow = args.escrow if args.escrow is not None else args.bid_per_unit * work_units * args.redundancy
    body = SubmitJob(
        job_kind=kind.code, spec=spec, inputs=inputs, input_seed=seed, input_hash=input_hash,
        min_units=args.min_units, bid_per_unit=args.bid_per_unit, escrow=escrow,
        redundancy=args.redundancy, deadline_blocks=args.deadline_blocks,
    )
    try:
        body.validate_basic()
    except ConsensusError as exc:
        raise ClientError(f"submit-job: {exc}") from exc
    return body


def _add_tx_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", default=DEFAULT_HOME, help="node home holding keys/account.json")
    p.add_argument("--rpc", help="node RPC URL (default: the home's rpc.listen)")
    p.add_argument("--fee", type=int, help="fee in base units (default: the chain's min_fee)")
    p.add_argument("--wait", action="store_true", help="wait until the transaction is in a block")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the node")
    p.add_argument("--json", action="store_true")


def _add_tx_commands(sub: Any) -> None:
    tx = sub.add_parser("tx", help="build, sign and broadcast a transaction").add_subparsers(
        dest="tx_cmd", required=True
    )
    p = tx.add_parser("send", help="transfer tokens")
    p.add_argument("to")
    p.add_argument("amount")
    p.set_defaults(func=_tx_command(_b_send))
    for name, helptext, build in (("bond", "add to your validator's self-bond", _b_bond),
                                  ("unbond", "start unbonding self-bond", _b_unbond)):
        p = tx.add_parser(name, help=helptext)
        p.add_argument("amount")
        p.set_defaults(func=_tx_command(build))
    for name, helptext, build in (("delegate", "bond tokens to a validator", _b_delegate),
                                  ("undelegate", "start unbonding a delegation", _b_undelegate)):
        p = tx.add_parser(name, help=helptext)
        p.add_argument("validator")
        p.add_argument("amount")
        p.set_defaults(func=_tx_command(build))
    p = tx.add_parser("register-compute", help="mint a compute NFT for your hardware")
    p.add_argument("--from-bench", action="store_true", help="measure this machine with cstake bench")
    p.add_argument("--bench-seconds", type=float, default=10.0)
    p.add_argument("--units", type=int)
    p.add_argument("--collateral", type=int)
    p.add_argument("--model")
    p.add_argument("--cores", type=int)
    p.add_argument("--memory-mb", type=int)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.set_defaults(func=_tx_command(_b_register_compute))
    p = tx.add_parser("transfer-nft", help="give a compute NFT to another account")
    p.add_argument("id")
    p.add_argument("to")
    p.set_defaults(func=_tx_command(_b_transfer_nft))
    p = tx.add_parser("bind-nft", help="bind a compute NFT to a validator")
    p.add_argument("id")
    p.add_argument("validator")
    p.set_defaults(func=_tx_command(_b_bind_nft))
    p = tx.add_parser("unbind-nft", help="unbind a compute NFT")
    p.add_argument("id")
    p.set_defaults(func=_tx_command(_b_unbind_nft))
    p = tx.add_parser("unjail", help="return your validator from jail")
    p.set_defaults(func=_tx_command(_b_unjail))
    p = tx.add_parser("submit-job", help="buy verified compute: submit a job with escrow")
    p.add_argument("--kind", required=True, help="matmul, iterate, or a kind code")
    p.add_argument("--rows", type=int, help="matmul: rows of A (m)")
    p.add_argument("--n", type=int, help="matmul: columns of A = rows of B")
    p.add_argument("--p", type=int, help="matmul: columns of B (seeded inputs: p = n)")
    p.add_argument("--steps", type=int, help="iterate: number of steps")
    p.add_argument("--width", type=int, help="iterate: state words (u64)")
    p.add_argument("--bid-per-unit", type=int, required=True)
    p.add_argument("--escrow", type=int, help="default: bid x work units x redundancy")
    p.add_argument("--min-units", type=int, default=0, help="smallest verified units of a provider NFT")
    p.add_argument("--redundancy", type=int, default=1)
    p.add_argument("--deadline-blocks", type=int, default=20)
    p.add_argument("--input-seed", help="32-byte hex seed the inputs are generated from")
    p.add_argument("--inputs-file", help="file holding the inline inputs")
    p.set_defaults(func=_tx_command(_b_submit_job))
    p = tx.add_parser("set-price", help="set a compute NFT's asking price per job work unit")
    p.add_argument("id")
    p.add_argument("price", type=int)
    p.add_argument("--stop", action="store_true", help="stop taking new jobs")
    p.set_defaults(func=_tx_command(_b_set_price))
    for p in tx.choices.values():
        _add_tx_common(p)


# --- query ---------------------------------------------------------------------------------


def _query(method: str, params: Callable[[argparse.Namespace], Any],
           human: Callable[[Any], str] = render) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        url = resolve_rpc_url(args)

        async def go() -> Any:
            async with RPCClient(url, timeout=args.timeout) as client:
                return await client.call(method, params(args))

        result = asyncio.run(go())
        _emit(args, human(result), result)
        return EXIT_OK

    return _run(run)


def _human_status(r: dict[str, Any]) -> str:
    rows = [
        ("chain id", r["chain_id"]), ("moniker", r["moniker"]), ("node id", r["node_id"]),
        ("height", r["latest_height"]), ("block hash", r["latest_block_hash"]),
        ("block time (ms)", r["latest_block_time"]), ("state root", r["latest_state_root"]),
        ("catching up", r["catching_up"]), ("validator", r["validator_address"]),
    ]
    return "\n".join(f"{k:<17}{_scalar(v)}" for k, v in rows)


def _human_validators(r: dict[str, Any]) -> str:
    lines = [f"validator set of height {r['height']} (total power {r['total_power']})",
             f"{'address':<46}{'power':>10}{'stake':>16}{'compute':>9}{'jailed':>8}  moniker"]
    for v in r["validators"]:
        lines.append(f"{v['address']:<46}{v['voting_power']:>10}{_scalar(v['stake']):>16}"
                     f"{v['compute_units']:>9}{_scalar(v['jailed']):>8}  {_scalar(v['moniker'])}")
    for v in r.get("inactive", []):
        lines.append(f"{v['address']:<46}{0:>10}{v['stake']:>16}{'-':>9}{_scalar(v['jailed']):>8}  "
                     f"{v['moniker']} (inactive)")
    return "\n".join(lines)


def _human_peers(r: dict[str, Any]) -> str:
    if not r["peers"]:
        return "no peers connected"
    return f"{r['n_peers']} peer(s)\n" + "\n".join(
        f"  {p['node_id']}  {' '.join(p['addrs'])}" for p in r["peers"]
    )


def _check_addr(text: str | None) -> str | None:
    if text is not None:
        parse_address(text, "address")
    return text


def _height_param(args: argparse.Namespace) -> Any:
    if args.height is None:
        return None
    if args.height < 1:
        raise ClientError(f"heights start at 1, got {args.height}")
    return {"height": args.height}


def _add_query_commands(sub: Any) -> None:
    q = sub.add_parser("query", help="ask a node over JSON-RPC").add_subparsers(dest="query_cmd", required=True)
    p = q.add_parser("status", help="node and chain head")
    p.set_defaults(func=_query("status", lambda a: None, _human_status))
    p = q.add_parser("block", help="a block (latest by default)")
    p.add_argument("height", nargs="?", type=int)
    p.set_defaults(func=_query("block", _height_param))
    p = q.add_parser("tx", help="a committed transaction")
    p.add_argument("hash")
    p.set_defaults(func=_query("tx", lambda a: {"hash": a.hash}))
    p = q.add_parser("account", help="balance, nonce, bonds")
    p.add_argument("address")
    p.set_defaults(func=_query("account", lambda a: {"address": _check_addr(a.address)}))
    p = q.add_parser("validators", help="the validator set")
    p.add_argument("height", nargs="?", type=int)
    p.set_defaults(func=_query("validators", _height_param, _human_validators))
    p = q.add_parser("nft", help="a compute NFT")
    p.add_argument("id", type=int)
    p.set_defaults(func=_query("nft", lambda a: {"id": a.id}))
    p = q.add_parser("nfts", help="compute NFTs")
    p.add_argument("--owner")
    p.add_argument("--validator")
    p.set_defaults(func=_query("nfts", lambda a: {k: v for k, v in (
        ("owner", _check_addr(a.owner)), ("validator", _check_addr(a.validator))) if v is not None}))
    p = q.add_parser("slashing", help="slashing records")
    p.add_argument("address", nargs="?")
    p.set_defaults(func=_query("slashing_records", lambda a: None if a.address is None
                               else {"validator": _check_addr(a.address)}))
    p = q.add_parser("jobs", help="compute jobs")
    p.add_argument("--status")
    p.set_defaults(func=_query("jobs", lambda a: None if a.status is None else {"status": a.status}))
    p = q.add_parser("job", help="one compute job with its slots and opened results")
    p.add_argument("id", help="job id (0x + 64 hex)")
    p.set_defaults(func=_query("job", lambda a: {"id": a.id}))
    p = q.add_parser("params", help="protocol parameters in force")
    p.set_defaults(func=_query("params", lambda a: None))
    p = q.add_parser("peers", help="connected peers")
    p.set_defaults(func=_query("net_info", lambda a: None, _human_peers))
    p = q.add_parser("mempool", help="pending transactions")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=_query("mempool", lambda a: {"limit": a.limit}))
    for p in q.choices.values():
        p.add_argument("--home", default=DEFAULT_HOME)
        p.add_argument("--rpc", help="node RPC URL (default: the home's rpc.listen)")
        p.add_argument("--timeout", type=float, default=10.0)
        p.add_argument("--json", action="store_true")


# --- keys show -----------------------------------------------------------------------------


def keys_show(args: argparse.Namespace) -> int:
    home = _home(args)
    pub = _keystore_pubkey(home.account_key_file)
    cons = _keystore_pubkey(home.consensus_key_file) if home.consensus_key_file.exists() else None
    peer_id = None
    if home.node_key_file.exists():
        from p2p.errors import KeyFileError as PeerKeyError
        from p2p.keys import load_peer_key, peer_id_from_seed

        try:
            peer_id = peer_id_from_seed(load_peer_key(home.node_key_file))
        except PeerKeyError as exc:
            raise ClientError(str(exc)) from exc
    data = {
        "address": encode_address(compute_address(pub)),
        "pubkey": "0x" + pub.hex(),
        "consensus_pubkey": None if cons is None else "0x" + cons.hex(),
        "peer_id": peer_id,
    }
    _emit(args, "\n".join(f"{k:<17}{_scalar(v)}" for k, v in data.items()), data)
    return EXIT_OK


def _add_keys_commands(sub: Any) -> None:
    k = sub.add_parser("keys", help="the keys of a node home").add_subparsers(dest="keys_cmd", required=True)
    p = k.add_parser("show", help="account address and public keys")
    p.add_argument("--home", default=DEFAULT_HOME)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run(keys_show))


# --- registration --------------------------------------------------------------------------


def add_client_commands(subparsers: Any) -> None:
    """Register ``tx``, ``query``, ``keys`` and ``load`` on the ``cstake`` subparsers."""
    from node.devtools.loadgen import add_load_command

    _add_tx_commands(subparsers)
    _add_query_commands(subparsers)
    _add_keys_commands(subparsers)
    add_load_command(subparsers, _run)
