"""``cstake tx ...``: build a transaction body from arguments, sign it with the home's key, broadcast it.

Every subcommand is a builder ``(args, key) -> body``; ``tx_command`` wraps
it into a handler that reads the chain id, the account's next nonce and the
minimum fee from the node (one JSON-RPC batch), signs, sends with
``broadcast_tx`` (mode ``commit`` with ``--wait``, else ``sync``) and prints
the hash and where the transaction landed. A transaction the chain refuses
or that fails in its block is an error (exit code 1) naming the chain's log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consensus.codec import Encodable
from consensus.costs import get_min_fee
from consensus.crypto import PrivateKey, encode_address
from consensus.errors import ConsensusError
from consensus.params import Params
from consensus.records import DeviceKind, HardwareSpec
from consensus.txs import (
    KEEP_COMMISSION,
    AcceptNFT,
    BindNFT,
    Bond,
    CreateValidator,
    Delegate,
    EditValidator,
    RegisterCompute,
    RetireNFT,
    SubmitJob,
    Transfer,
    TransferNFT,
    UnbindNFT,
    Unbond,
    Undelegate,
    Unjail,
    WithdrawRewards,
    build_tx,
    get_body_spend,
)
from node.cli.common import (
    EXIT_OK,
    Handler,
    as_command,
    load_account_key,
    parse_address,
    read_keystore_pubkey,
    resolve_home,
    resolve_rpc_url,
)
from node.client import RPCClient
from node.errors import CommandError, NodeError, RPCCallError
from node.home import DEFAULT_HOME, NodeHome

if TYPE_CHECKING:
    from node.compute.hwbench import HardwareReport


def parse_amount(text: str, what: str) -> int:
    """A positive amount of base units below 2^64; ``what`` names it in the error."""
    try:
        value = int(text, 10)
    except ValueError as exc:
        raise CommandError(f"{what} must be a whole number of base units, got {text!r}") from exc
    if not 0 < value < 1 << 64:
        raise CommandError(f"{what} must be positive and below 2^64, got {value}")
    return value


async def _send_tx(args: argparse.Namespace, key: PrivateKey, body: Encodable) -> dict[str, Any]:
    """Sign ``body`` with the account's next nonce and broadcast it; return the node's answer."""
    url = resolve_rpc_url(args)
    address = encode_address(key.address())
    async with RPCClient(url, timeout=args.timeout) as client:
        status, account, params = await client.batch(
            [("status", None), ("account", {"address": address}), ("params", None)]
        )
        for item in (status, account, params):
            if isinstance(item, RPCCallError):
                raise item
        chain_params = Params.from_json(params)
        least = get_min_fee(body, chain_params)
        fee = args.fee if args.fee is not None else least
        if fee < least:
            raise CommandError(f"--fee {fee} is below this transaction's price {least} "
                               f"(min_fee {chain_params.min_fee}, or its cost x min_fee_per_cost)")
        spend = fee + get_body_spend(body)
        if spend > int(account["balance"]):
            raise CommandError(
                f"insufficient balance: {address} holds {account['balance']:,} and this transaction needs "
                f"{spend:,} ({fee:,} fee + {spend - fee:,} spent); nothing was sent"
            )
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


def tx_command(build: Callable[[argparse.Namespace, PrivateKey], Encodable]) -> Handler:
    """The handler of one tx subcommand: build the body, then sign, send and report it."""

    def run(args: argparse.Namespace) -> int:
        home = resolve_home(args)
        key = load_account_key(home, args.from_key)
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
            raise CommandError(f"transaction {result['hash']} {what} (code {code}): {result.get('log', '')}")
        return EXIT_OK

    return as_command(run)


def _b_send(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return Transfer(parse_address(args.to, "recipient"), parse_amount(args.amount, "AMOUNT"))


def _b_create_validator(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    """Become a validator: the home's consensus key, a self-bond, a commission and a moniker."""
    home = resolve_home(args)
    if not home.consensus_key_file.exists():
        raise CommandError(f"{home.consensus_key_file} does not exist: create-validator signs blocks with the "
                           "home's consensus key (cstake init makes one)")
    if not 0 <= args.commission <= 10_000:
        raise CommandError(f"--commission is in basis points, 0..10000, got {args.commission}")
    moniker = args.moniker if args.moniker is not None else _home_moniker(home)
    body = CreateValidator(read_keystore_pubkey(home.consensus_key_file), parse_amount(args.stake, "--stake"),
                           args.commission, moniker)
    try:
        body.validate_basic()
    except ConsensusError as exc:
        raise CommandError(f"create-validator: {exc}") from exc
    return body


def _b_edit_validator(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    """Change this account's validator's moniker and/or commission (what is not given stays)."""
    commission = KEEP_COMMISSION if args.commission is None else args.commission
    if args.commission is not None and not 0 <= args.commission <= 10_000:
        raise CommandError(f"--commission is in basis points, 0..10000, got {args.commission}")
    body = EditValidator(args.moniker or "", commission)
    try:
        body.validate_basic()
    except ConsensusError as exc:
        raise CommandError(f"edit-validator: {exc}") from exc
    return body


def _home_moniker(home: NodeHome) -> str:
    from node.config import load_config

    try:
        return load_config(home.config_file).node.moniker
    except NodeError:
        return "validator"


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


def _b_retire_nft(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return RetireNFT(_nft_id(args.id))


def _b_accept_nft(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return AcceptNFT(_nft_id(args.id))


def _b_unjail(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return Unjail()


def _b_withdraw_rewards(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    return WithdrawRewards(b"" if args.validator is None else parse_address(args.validator, "validator"))


def _b_set_price(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    from consensus.jobs.types import SetPrice

    return SetPrice(_nft_id(args.id), args.price, 0 if args.stop else 1)


def _nft_id(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError as exc:
        raise CommandError(f"NFT id must be a whole number, got {text!r}") from exc
    if not 0 <= value < 1 << 64:
        raise CommandError(f"NFT id out of range: {value}")
    return value


def _bench_claim(args: argparse.Namespace) -> tuple[HardwareReport, int]:
    """Measure this machine's prover at the chain's challenge size; return (report, claim).

    The kernel is the node's prover's (``--device``, ``--threads``), the sizes come
    from the chain's parameters (``--genesis``, else the node's RPC), and the claim
    is ``--margin-percent`` of the measured units. Both figures go to stderr.
    """
    from node.compute.calibrate import compute_claim, resolve_poc_params
    from node.compute.hwbench import run_benchmark
    from node.compute.kernel import KernelConfig, format_kernel_info

    if args.bench_seconds <= 0:
        raise CommandError("--bench-seconds must be positive")
    if not 1 <= args.margin_percent <= 100:
        raise CommandError(f"--margin-percent must be in [1, 100], got {args.margin_percent}")
    kernel = KernelConfig.from_options(args.device, args.threads)
    poc, source = resolve_poc_params(args.genesis, resolve_rpc_url(args), args.timeout)
    report = run_benchmark(args.bench_seconds, kernel=kernel, poc=poc,
                           margin_percent=args.margin_percent)
    claim = compute_claim(report.units, args.margin_percent)
    cal = report.device.prover
    where = (f"{cal.gflops:.1f} GFLOP/s at n={cal.n}, {cal.challenge_rows} rows: the chain's "
             f"challenge for {cal.challenge_ms} ms, timed on {len(cal.run_seconds)} runs of "
             f"{cal.rows} rows" if cal is not None else "the kernel is not exact: nothing counted")
    print(f"measured: {report.units} compute units ({where}; params from {source}; "
          f"kernel {format_kernel_info(report.kernel)})", file=sys.stderr)
    if args.units is None:
        print(f"claiming: {claim} compute units ({args.margin_percent}% of measured)", file=sys.stderr)
    else:
        print(f"claiming: {args.units} compute units (--units; {args.margin_percent}% of measured "
              f"would be {claim})", file=sys.stderr)
        if args.units > report.units:
            print(f"warning: --units {args.units} exceeds what this machine's prover measured "
                  f"({report.units}): its challenges will be verified below the claim or missed",
                  file=sys.stderr)
    if claim < 1 and args.units is None:
        raise CommandError("register-compute --from-bench: the measured claim is 0 units")
    return report, claim


def _b_register_compute(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    from node.compute.kernel import KernelConfig

    device = KernelConfig.from_options(args.device, args.threads).device
    units, model, cores, memory_mb = args.units, args.model, args.cores, args.memory_mb
    if args.from_bench:
        report, claim = _bench_claim(args)
        units = units if units is not None else claim
        if device != "cpu" and report.gpus:
            model = model or report.gpus[0].name
            memory_mb = memory_mb if memory_mb is not None else report.gpus[0].memory_mib
        model = model or report.cpu_model
        cores = cores if cores is not None else report.logical_cores
        memory_mb = memory_mb if memory_mb is not None else report.memory_bytes >> 20
    missing = [n for n, v in (("--units", units), ("--model", model), ("--cores", cores),
                              ("--memory-mb", memory_mb)) if v is None]
    if missing:
        raise CommandError(f"register-compute needs {', '.join(missing)} (or --from-bench)")
    if args.collateral is None:
        raise CommandError("register-compute needs --collateral (at least the chain's min_nft_collateral)")
    spec = HardwareSpec(
        device_kind=DeviceKind.CPU if device == "cpu" else DeviceKind.GPU,
        model=str(model)[:128],
        cores=int(cores or 0),
        memory_mb=int(memory_mb or 0),
    )
    body = RegisterCompute(spec, int(units or 0), int(args.collateral))
    try:
        body.validate_basic()
    except ConsensusError as exc:
        raise CommandError(f"register-compute: {exc}") from exc
    return body


def _b_submit_job(args: argparse.Namespace, key: PrivateKey) -> Encodable:
    from consensus.jobs.iterate import IterateSpec
    from consensus.jobs.kinds import JobInput
    from consensus.jobs.matmul import MatmulSpec
    from consensus.jobs.registry import KIND_BY_NAME, get_kind

    kind = KIND_BY_NAME.get(args.kind) or (get_kind(int(args.kind)) if args.kind.isdigit() else None)
    if kind is None:
        raise CommandError(f"--kind must be one of {', '.join(KIND_BY_NAME)} (or a kind code), got {args.kind!r}")
    inputs = b""
    seed = b""
    if args.inputs_file:
        try:
            inputs = Path(args.inputs_file).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read --inputs-file {args.inputs_file}: {exc.strerror}") from exc
    else:
        text = args.input_seed or ""
        try:
            seed = bytes.fromhex(text.removeprefix("0x"))
        except ValueError as exc:
            raise CommandError("--input-seed must be 32 bytes of hex") from exc
        if len(seed) != 32:
            raise CommandError("submit-job needs --inputs-file or a 32-byte --input-seed (hex)")
    if kind.name == "matmul":
        if args.rows is None or args.n is None:
            raise CommandError("a matmul job needs --rows and --n (and --p for inline inputs; seeded p = n)")
        spec = MatmulSpec(args.rows, args.n, args.p if args.p is not None else args.n).encode()
    else:
        if args.steps is None or args.width is None:
            raise CommandError("an iterate job needs --steps and --width")
        spec = IterateSpec(args.steps, args.width).encode()
    ji = JobInput(spec, inputs, seed)
    try:
        kind.validate_input(ji, 1 << 62)
        work_units = kind.compute_work_units(ji)
        input_hash = kind.compute_input_hash(ji)
    except ConsensusError as exc:
        raise CommandError(f"submit-job: {exc}") from exc
    escrow = args.escrow if args.escrow is not None else args.bid_per_unit * work_units * args.redundancy
    body = SubmitJob(
        job_kind=kind.code, spec=spec, inputs=inputs, input_seed=seed, input_hash=input_hash,
        min_units=args.min_units, bid_per_unit=args.bid_per_unit, escrow=escrow,
        redundancy=args.redundancy, deadline_blocks=args.deadline_blocks,
    )
    try:
        body.validate_basic()
    except ConsensusError as exc:
        raise CommandError(f"submit-job: {exc}") from exc
    return body


def _add_tx_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", default=DEFAULT_HOME, help="node home holding keys/account.json")
    p.add_argument("--from", dest="from_key", default="account", metavar="NAME",
                   help="sign with this key of the home's keyring (cstake keys list; account: the home's own)")
    p.add_argument("--rpc", help="node RPC URL (default: the home's rpc.listen)")
    p.add_argument("--fee", type=int, help="fee in base units (default: the transaction's price: the chain's "
                   "min_fee, or its cost times min_fee_per_cost for heavy kinds)")
    p.add_argument("--wait", action="store_true", help="wait until the transaction is in a block")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the node")
    p.add_argument("--json", action="store_true")


def add_commands(sub: Any) -> None:
    """Register ``tx`` and its subcommands on the ``cstake`` subparsers."""
    tx = sub.add_parser("tx", help="build, sign and broadcast a transaction").add_subparsers(
        dest="tx_cmd", required=True
    )
    p = tx.add_parser("send", help="transfer tokens")
    p.add_argument("to")
    p.add_argument("amount")
    p.set_defaults(func=tx_command(_b_send))
    p = tx.add_parser("create-validator", help="become a validator with this home's consensus key and a self-bond")
    p.add_argument("--stake", required=True, help="self-bond in base units (at least the chain's minimum)")
    p.add_argument("--commission", type=int, default=500, help="commission on delegators' rewards, basis points")
    p.add_argument("--moniker", help="public name (default: the home's config.toml moniker)")
    p.set_defaults(func=tx_command(_b_create_validator))
    p = tx.add_parser("edit-validator", help="change your validator's moniker and/or commission")
    p.add_argument("--moniker", help="new public name (default: unchanged)")
    p.add_argument("--commission", type=int, help="new commission, basis points (default: unchanged)")
    p.set_defaults(func=tx_command(_b_edit_validator))
    for name, helptext, build in (("bond", "add to your validator's self-bond", _b_bond),
                                  ("unbond", "start unbonding self-bond", _b_unbond)):
        p = tx.add_parser(name, help=helptext)
        p.add_argument("amount")
        p.set_defaults(func=tx_command(build))
    for name, helptext, build in (("delegate", "bond tokens to a validator", _b_delegate),
                                  ("undelegate", "start unbonding a delegation", _b_undelegate)):
        p = tx.add_parser(name, help=helptext)
        p.add_argument("validator")
        p.add_argument("amount")
        p.set_defaults(func=tx_command(build))
    p = tx.add_parser("register-compute", help="mint a compute NFT for your hardware")
    p.add_argument("--from-bench", action="store_true",
                   help="claim what this machine's prover measures at the chain's challenge size")
    p.add_argument("--bench-seconds", type=float, default=10.0)
    p.add_argument("--margin-percent", type=int, default=80,
                   help="with --from-bench: claim this percent of the measured units (default 80)")
    p.add_argument("--genesis", help="with --from-bench: the chain's genesis (default: ask the node)")
    p.add_argument("--units", type=int)
    p.add_argument("--collateral", type=int)
    p.add_argument("--model")
    p.add_argument("--cores", type=int)
    p.add_argument("--memory-mb", type=int)
    # The same two options as `cstake bench`: they must match the node's prover.
    p.add_argument("--device", default="cpu",
                   help="cpu, gpu or gpu:N: the device the node's prover uses (default cpu)")
    p.add_argument("--threads", type=int,
                   help="with --from-bench: BLAS threads of the node's prover (default 1)")
    p.set_defaults(func=tx_command(_b_register_compute))
    p = tx.add_parser("transfer-nft", help="give a compute NFT to another account")
    p.add_argument("id")
    p.add_argument("to")
    p.set_defaults(func=tx_command(_b_transfer_nft))
    p = tx.add_parser(
        "bind-nft",
        help="ask a validator to take a compute NFT (binds at once to your own validator)",
        description="Request that compute NFT ID be bound to VALIDATOR. The binding takes effect "
        "when the validator's operator runs `cstake tx accept-nft ID`; until then `query nft` "
        "shows it as pending_validator. Binding to your own validator takes effect at once.",
    )
    p.add_argument("id")
    p.add_argument("validator")
    p.set_defaults(func=tx_command(_b_bind_nft))
    p = tx.add_parser(
        "accept-nft",
        help="accept a pending request to bind a compute NFT to your validator",
        description="As the validator's operator, accept the pending binding of compute NFT ID: "
        "it then counts toward your power from the next epoch and your node answers its "
        "challenges. Your stake answers for the proofs your node signs for it.",
    )
    p.add_argument("id")
    p.set_defaults(func=tx_command(_b_accept_nft))
    p = tx.add_parser(
        "unbind-nft",
        help="unbind a compute NFT (owner or its validator), or cancel a pending request (owner)",
    )
    p.add_argument("id")
    p.set_defaults(func=tx_command(_b_unbind_nft))
    p = tx.add_parser("retire-nft", help="retire your compute NFT: unbound now, collateral back after the "
                                         "unbonding period (refused while a challenge or job slot is open)")
    p.add_argument("id")
    p.set_defaults(func=tx_command(_b_retire_nft))
    p = tx.add_parser("unjail", help="return your validator from jail")
    p.set_defaults(func=tx_command(_b_unjail))
    p = tx.add_parser(
        "withdraw-rewards",
        help="collect your pending delegation rewards",
        description="Pay your pending delegation rewards to your balance: from VALIDATOR with "
        "--validator, else from every validator you delegate to.",
    )
    p.add_argument("--validator", help="only the rewards of your delegation to this validator")
    p.set_defaults(func=tx_command(_b_withdraw_rewards))
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
    p.set_defaults(func=tx_command(_b_submit_job))
    p = tx.add_parser("set-price", help="set a compute NFT's asking price per job work unit")
    p.add_argument("id")
    p.add_argument("price", type=int)
    p.add_argument("--stop", action="store_true", help="stop taking new jobs")
    p.set_defaults(func=tx_command(_b_set_price))
    for p in tx.choices.values():
        _add_tx_common(p)
