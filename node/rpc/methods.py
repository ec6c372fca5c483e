"""The JSON-RPC methods of interface.md, over a read-only NodeView.

Each method takes the bound, named parameters and returns a JSON-ready value
or raises an ``RPCError``. State reads build a ``consensus.state.State`` over
a snapshot the view hands out, so one call sees one committed height.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from consensus.crypto import encode_address
from consensus.errors import ConsensusError
from consensus.hashing import hash32
from consensus.records import EMPTY_ACCOUNT, Account, ComputeNFT, UnbondingEntry
from consensus.staking import compute_pending_rewards, get_validator_compute
from consensus.state import Keys, State
from consensus.txs import SignedTx
from node.rpc import format as fmt
from node.rpc.errors import (
    COMMIT_TIMEOUT,
    UNAVAILABLE,
    HeightNotAvailable,
    InvalidParams,
    NotFound,
    RPCError,
)
from node.rpc.params import (
    get_address,
    get_bool,
    get_hash,
    get_height,
    get_int,
    get_str,
    parse_hex,
)
from node.rpc.spec import get_openrpc
from node.rpc.view import NodeView

MAX_LIST = 1000
DEFAULT_MEMPOOL_LIMIT = 100


@dataclass(frozen=True, slots=True)
class MethodContext:
    """What a method may use besides its parameters."""

    view: NodeView
    #: Longest wait of broadcast_tx mode=commit, in seconds.
    commit_timeout_s: float = 30.0
    #: Largest transaction accepted by broadcast_tx, in bytes (hex is twice as long).
    max_tx_bytes: int = 64 << 10


Method = Callable[[MethodContext, dict[str, Any]], Awaitable[Any]]


def _check_height(view: NodeView, height: int, *, allow_next: bool = False) -> None:
    latest = view.latest_height()
    limit = latest + 1 if allow_next else latest
    if height > limit:
        raise HeightNotAvailable(
            f"height {height} is not available: the latest committed height is {latest}",
            data={"latest_height": latest},
        )


async def rpc_status(ctx: MethodContext, p: dict[str, Any]) -> Any:
    view = ctx.view
    latest = view.latest_height()
    found = view.get_block(latest) if latest > 0 else None
    block_hash = found[1] if found else None
    block_time = found[0].header.time_ms if found else None
    vaddr = view.validator_address
    return {
        "chain_id": view.chain_id,
        "node_id": view.node_id,
        "moniker": view.moniker,
        "latest_height": latest,
        "latest_block_hash": None if block_hash is None else fmt.hex0x(block_hash),
        "latest_state_root": fmt.hex0x(view.latest_state_root()),
        "latest_block_time": block_time,
        "earliest_height": view.earliest_height(),
        "catching_up": view.catching_up(),
        "validator_address": None if vaddr is None else encode_address(vaddr),
        "listen_addrs": view.listen_addrs(),
    }


async def rpc_net_info(ctx: MethodContext, p: dict[str, Any]) -> Any:
    peers = ctx.view.peers()
    return {
        "listen_addrs": ctx.view.listen_addrs(),
        "n_peers": len(peers),
        "peers": [{"node_id": peer.node_id, "addrs": list(peer.addrs)} for peer in peers],
    }


TX_DETAIL = ("full", "hashes")


async def rpc_block(ctx: MethodContext, p: dict[str, Any]) -> Any:
    view = ctx.view
    txs_mode = get_str(p, "txs") or "full"
    if txs_mode not in TX_DETAIL:
        raise InvalidParams(f"'txs' must be one of {', '.join(TX_DETAIL)}, got {txs_mode!r}")
    height = get_height(p)
    block_hash = get_hash(p, "hash", required=False)
    if height is not None and block_hash is not None:
        raise InvalidParams("give 'height' or 'hash', not both")
    if block_hash is not None:
        found = view.get_block_by_hash(block_hash)
        if found is None:
            raise NotFound(f"no block with hash {fmt.hex0x(block_hash)}")
    else:
        if height is None:
            height = view.latest_height()
            if height == 0:
                raise NotFound("no block has been committed yet")
        _check_height(view, height)
        found = view.get_block(height)
        if found is None:
            raise HeightNotAvailable(
                f"the block at height {height} is not stored here "
                f"(earliest stored height: {view.earliest_height()})"
            )
    block, bhash = found
    results = None
    if txs_mode == "full":
        # Each tx's execution result, from the tx index (None where the index does not keep it).
        results = [view.get_tx_result(hash32(raw)) for raw in block.txs]
    return fmt.format_block(block, bhash, view.get_commit(block.header.height), txs=txs_mode, results=results)


async def rpc_tx(ctx: MethodContext, p: dict[str, Any]) -> Any:
    tx_hash = get_hash(p, "hash")
    if tx_hash is None:
        raise InvalidParams("missing parameter 'hash'")
    found = ctx.view.get_tx(tx_hash)
    if found is None:
        pending = ctx.view.mempool.get(tx_hash)
        if pending is not None:
            return {"hash": fmt.hex0x(tx_hash), "status": "pending", "tx": fmt.format_tx(pending)}
        raise NotFound(
            f"no transaction with hash {fmt.hex0x(tx_hash)} is committed or pending here",
            data={"status": "unknown"},
        )
    return {
        "hash": fmt.hex0x(found.tx.tx_hash),
        "status": "committed",
        "height": found.height,
        "index": found.index,
        "tx": fmt.format_tx(found.tx),
        "result": fmt.format_result(found.result),
    }


async def rpc_account(ctx: MethodContext, p: dict[str, Any]) -> Any:
    address = get_address(p, "address")
    if address is None:
        raise InvalidParams("missing parameter 'address'")
    height = get_height(p)
    if height is not None and height != ctx.view.latest_height():
        _check_height(ctx.view, height)
        raise HeightNotAvailable(
            f"the state at height {height} is not kept: this node keeps the latest committed state "
            f"(height {ctx.view.latest_height()}) only",
            data={"latest_height": ctx.view.latest_height()},
        )
    if get_bool(p, "prove"):
        return _proved_account(ctx, address)
    with ctx.view.read_state() as reader:
        state = State(reader)
        acct = state.get_account(address)
        delegations: list[dict[str, Any]] = []
        bonded = 0
        pending_rewards = 0
        for validator_address in state.iter_delegated_validators(address):
            d = state.get_delegation(validator_address, address)
            validator = state.get_validator(validator_address)
            if d is None or d.amount <= 0 or validator is None:
                continue
            bonded += d.amount
            # Lazy rewards: what a withdraw-rewards transaction would pay now.
            rewards = compute_pending_rewards(state, d, validator)
            pending_rewards += rewards
            delegations.append({"validator": encode_address(d.validator), "amount": d.amount, "rewards": rewards})
        unbonding = [
            {
                "validator": encode_address(e.validator),
                "amount": e.amount,
                "creation_height": e.creation_height,
                "completion_height": e.completion_height,
            }
            for _, e in state.iter_records(Keys.UNBONDING, UnbondingEntry)
            if e.delegator == address
        ]
        is_validator = state.get_validator(address) is not None
    return {
        "address": encode_address(address),
        "balance": acct.balance,
        "nonce": acct.nonce,
        "next_nonce": ctx.view.mempool.next_nonce(address, acct.nonce),
        "bonded": bonded,
        "delegations": delegations,
        "pending_rewards": pending_rewards,
        "unbonding": unbonding,
        "is_validator": is_validator,
    }


def _proved_account(ctx: MethodContext, address: bytes) -> dict[str, Any]:
    """Balance and nonce with a Merkle proof of the account record, all of one committed height."""
    proved = ctx.view.prove_state(Keys.account(address))
    acct = EMPTY_ACCOUNT if proved.value is None else Account.decode(proved.value)
    return {
        "address": encode_address(address),
        "balance": acct.balance,
        "nonce": acct.nonce,
        "proof": {
            "height": proved.height,
            "state_root": fmt.hex0x(proved.state_root),
            "key": fmt.hex0x(proved.key),
            "value": None if proved.value is None else fmt.hex0x(proved.value),
            "proof": fmt.hex0x(proved.proof.encode()),
        },
    }


async def rpc_validators(ctx: MethodContext, p: dict[str, Any]) -> Any:
    view = ctx.view
    latest = view.latest_height()
    height = get_height(p)
    if height is None:
        height = latest + 1
    _check_height(view, height, allow_next=True)
    vset = view.validator_set(height)
    if vset is None:
        raise HeightNotAvailable(f"the validator set of height {height} is not kept by this node")
    with view.read_state() as reader:
        state = State(reader)
        rows = []
        for info in vset.validators:
            v = state.get_validator(info.address)
            rows.append(
                {
                    "address": encode_address(info.address),
                    "consensus_pubkey": fmt.hex0x(info.pubkey),
                    "voting_power": info.power,
                    "proposer_priority": info.proposer_priority,
                    "stake": None if v is None else v.stake,
                    "self_bond": None if v is None else v.self_bond,
                    "compute_units": get_validator_compute(state, info.address),
                    "reputation": None if v is None else v.reputation,
                    "jailed": None if v is None else bool(v.jailed),
                    "jailed_until": None if v is None else v.jailed_until_ms,
                    "tombstoned": None if v is None else bool(v.tombstoned),
                    "moniker": None if v is None else v.moniker,
                    "commission_bps": None if v is None else v.commission_bps,
                }
            )
        inactive = [
            {
                "address": encode_address(v.address),
                "stake": v.stake,
                "jailed": bool(v.jailed),
                "jailed_until": v.jailed_until_ms,
                "tombstoned": bool(v.tombstoned),
                "moniker": v.moniker,
            }
            for v in state.iter_validators()
            if vset.get_by_address(v.address) is None
        ]
    return {
        "height": height,
        "total_power": vset.total_power,
        "validators": rows,
        # Validator records outside this set (jailed, tombstoned, below the minimums),
        # as the latest committed state knows them.
        "inactive": inactive,
        "records_height": latest,
    }


async def rpc_nft(ctx: MethodContext, p: dict[str, Any]) -> Any:
    nft_id = get_int(p, "id", lo=0, hi=(1 << 64) - 1, required=True)
    with ctx.view.read_state() as reader:
        nft = State(reader).get_nft(nft_id or 0)
    if nft is None:
        raise NotFound(f"no compute NFT with id {nft_id}")
    return fmt.format_nft(nft)


async def rpc_nfts(ctx: MethodContext, p: dict[str, Any]) -> Any:
    owner = get_address(p, "owner", required=False)
    validator = get_address(p, "validator", required=False)
    limit = get_int(p, "limit", lo=1, hi=MAX_LIST) or MAX_LIST
    out: list[dict[str, Any]] = []
    with ctx.view.read_state() as reader:
        state = State(reader)
        if validator is not None:
            nfts = (state.get_nft(i) for i in state.iter_validator_nft_ids(validator))
        else:
            nfts = (n for _, n in state.iter_records(Keys.NFT, ComputeNFT))
        for nft in nfts:
            if nft is None or (owner is not None and nft.owner != owner):
                continue
            if validator is not None and nft.bound_validator != validator:
                continue
            out.append(fmt.format_nft(nft))
            if len(out) >= limit:
                break
    return {"nfts": out, "count": len(out), "limit": limit}


def _unavailable(kind: str, key: str) -> dict[str, Any]:
    return {
        "available": False,
        key: [],
        "note": f"{kind} are not produced by this node yet; nothing to report",
    }


async def rpc_attestations(ctx: MethodContext, p: dict[str, Any]) -> Any:
    validator = get_address(p, "validator", required=False)
    items = ctx.view.attestations(validator)
    if items is None:
        return _unavailable("compute attestations", "attestations")
    return {"available": True, "attestations": items}


async def rpc_challenges(ctx: MethodContext, p: dict[str, Any]) -> Any:
    height = get_height(p)
    nft_id = get_int(p, "nft_id", lo=0, hi=(1 << 64) - 1)
    if height is not None:
        _check_height(ctx.view, height)
    items = ctx.view.challenges(height, nft_id)
    if items is None:
        return _unavailable("proof-of-compute challenges", "challenges")
    return {"available": True, "challenges": items}


async def rpc_slashing_records(ctx: MethodContext, p: dict[str, Any]) -> Any:
    validator = get_address(p, "validator", required=False)
    with ctx.view.read_state() as reader:
        return [
            fmt.format_slashing_record(r)
            for r in State(reader).iter_slashing_records()
            if validator is None or r.validator == validator
        ]


# "open" is any status before the end (consensus/jobs/types.py JobStatus has the life cycle).
JOB_STATUSES = ("open", "submitted", "assigned", "committed", "challenged", "settled", "failed", "cancelled")


async def rpc_jobs(ctx: MethodContext, p: dict[str, Any]) -> Any:
    status = get_str(p, "status")
    if status is not None and status not in JOB_STATUSES:
        raise InvalidParams(f"'status' must be one of {', '.join(JOB_STATUSES)}, got {status!r}")
    items = ctx.view.jobs(status)
    if items is None:
        return _unavailable("compute jobs", "jobs")
    return {"available": True, "jobs": items}


async def rpc_job(ctx: MethodContext, p: dict[str, Any]) -> Any:
    job_id = get_hash(p, "id")
    if job_id is None:
        raise InvalidParams("missing parameter 'id'")
    if ctx.view.jobs(None) is None:
        raise RPCError("compute jobs are not produced by this node yet", code=UNAVAILABLE)
    job = ctx.view.job(job_id)
    if job is None:
        raise NotFound(f"no job with id {fmt.hex0x(job_id)}")
    return job


async def rpc_params(ctx: MethodContext, p: dict[str, Any]) -> Any:
    with ctx.view.read_state() as reader:
        return State(reader).get_params().to_json()


async def rpc_mempool(ctx: MethodContext, p: dict[str, Any]) -> Any:
    limit = get_int(p, "limit", lo=0, hi=MAX_LIST)
    limit = DEFAULT_MEMPOOL_LIMIT if limit is None else limit
    mp = ctx.view.mempool
    return {
        "size": mp.size,
        "bytes": mp.total_bytes,
        "limit": limit,
        "txs": [fmt.format_tx_summary(tx) for tx in mp.list_txs(limit)],
    }


BROADCAST_MODES = ("sync", "commit")


async def rpc_broadcast_tx(ctx: MethodContext, p: dict[str, Any]) -> Any:
    text = get_str(p, "tx", required=True) or ""
    mode = get_str(p, "mode") or "sync"
    if mode not in BROADCAST_MODES:
        raise InvalidParams(f"'mode' must be one of {', '.join(BROADCAST_MODES)}, got {mode!r}")
    raw = parse_hex(text, "tx", max_bytes=ctx.max_tx_bytes)
    if not raw:
        raise InvalidParams("'tx' is empty")
    try:
        tx = SignedTx.decode(raw, max_bytes=ctx.max_tx_bytes)
    except ConsensusError as exc:
        raise InvalidParams(f"'tx' is not a canonical signed transaction: {exc}") from exc
    view = ctx.view
    bus = view.events
    # Watch before submitting, so a commit racing the submission is not missed.
    waiter = bus.watch_tx(tx.tx_hash) if mode == "commit" else None
    try:
        res = await view.submit_tx(tx)
        out: dict[str, Any] = {"hash": fmt.hex0x(tx.tx_hash), "code": res.code, "log": res.log}
        if waiter is None or res.code != 0:
            return out
        done = view.get_tx(tx.tx_hash)
        if done is None:
            try:
                event = await asyncio.wait_for(asyncio.shield(waiter), ctx.commit_timeout_s)
            except TimeoutError as exc:
                raise RPCError(
                    f"transaction {fmt.hex0x(tx.tx_hash)} is in the mempool but was not included "
                    f"within {ctx.commit_timeout_s:g} s; query it later with the tx method",
                    code=COMMIT_TIMEOUT,
                    data={"hash": fmt.hex0x(tx.tx_hash)},
                ) from exc
            return {**out, "code": event.result.code, "log": event.result.log,
                    "height": event.height, "index": event.index}
        return {**out, "code": done.result.code, "log": done.result.log,
                "height": done.height, "index": done.index}
    finally:
        if waiter is not None:
            bus.unwatch_tx(tx.tx_hash, waiter)
            if not waiter.done():
                waiter.cancel()


SEARCH_ORDERS = ("asc", "desc")
DEFAULT_SEARCH_LIMIT = 30
MAX_SEARCH_LIMIT = 100


def _parse_cursor(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    height, sep, index = text.partition(":")
    if not (sep and height.isdigit() and index.isdigit() and len(height) <= 20 and len(index) <= 10):
        raise InvalidParams(f"'after' must be a cursor 'HEIGHT:INDEX' from a previous page, got {text!r}")
    return int(height), int(index)


async def rpc_tx_search(ctx: MethodContext, p: dict[str, Any]) -> Any:
    address = get_address(p, "address")
    if address is None:
        raise InvalidParams("missing parameter 'address'")
    lo = get_height(p, "min_height") or 1
    hi = get_height(p, "max_height")
    hi = (1 << 64) - 1 if hi is None else hi
    if lo > hi:
        raise InvalidParams(f"min_height {lo} is above max_height {hi}")
    after = _parse_cursor(get_str(p, "after"))
    order = get_str(p, "order") or "asc"
    if order not in SEARCH_ORDERS:
        raise InvalidParams(f"'order' must be one of {', '.join(SEARCH_ORDERS)}, got {order!r}")
    limit = get_int(p, "limit", lo=1, hi=MAX_SEARCH_LIMIT) or DEFAULT_SEARCH_LIMIT
    index = ctx.view.tx_index
    if index is None:
        raise RPCError("this node keeps no address index", code=UNAVAILABLE)
    found = index.search(address, min_height=lo, max_height=hi, after=after, descending=order == "desc",
                         limit=limit + 1)
    page, more = found[:limit], len(found) > limit
    txs = []
    for entry in page:
        done = ctx.view.get_tx(entry.tx_hash)
        item: dict[str, Any] = {"hash": fmt.hex0x(entry.tx_hash), "height": entry.height, "index": entry.index}
        if done is not None:
            item["tx"] = fmt.format_tx_summary(done.tx)
            item["result"] = fmt.format_result(done.result)
        txs.append(item)
    last = page[-1] if page else None
    return {
        "txs": txs,
        "next": f"{last.height}:{last.index}" if more and last is not None else None,
        "indexed_height": index.indexed_height(),
    }


async def rpc_discover(ctx: MethodContext, p: dict[str, Any]) -> Any:
    return get_openrpc()


#: method name -> (handler, parameter names in positional order; node.rpc.spec documents each)
METHODS: dict[str, tuple[Method, tuple[str, ...]]] = {
    "status": (rpc_status, ()),
    "net_info": (rpc_net_info, ()),
    "block": (rpc_block, ("height", "hash", "txs")),
    "tx": (rpc_tx, ("hash",)),
    "account": (rpc_account, ("address", "prove", "height")),
    "validators": (rpc_validators, ("height",)),
    "nft": (rpc_nft, ("id",)),
    "nfts": (rpc_nfts, ("owner", "validator", "limit")),
    "attestations": (rpc_attestations, ("validator",)),
    "challenges": (rpc_challenges, ("height", "nft_id")),
    "slashing_records": (rpc_slashing_records, ("validator",)),
    "jobs": (rpc_jobs, ("status",)),
    "job": (rpc_job, ("id",)),
    "params": (rpc_params, ()),
    "mempool": (rpc_mempool, ("limit",)),
    "broadcast_tx": (rpc_broadcast_tx, ("tx", "mode")),
    "tx_search": (rpc_tx_search, ("address", "min_height", "max_height", "after", "order", "limit")),
    "rpc.discover": (rpc_discover, ()),
}
