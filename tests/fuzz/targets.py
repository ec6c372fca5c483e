"""The fuzz targets: one function per boundary, taking bytes, with its declared exceptions.

A target returns normally or raises one of its ``declared`` exceptions for a
refused input. Anything else it raises is a finding: an undeclared exception
from project code, or a ``FuzzFinding`` for a broken invariant (a decoded
value that does not re-encode to its input, an RPC method that failed with an
internal error). The runner and the smoke test both call ``Target.run``.

Targets that need a chain, a driver or a node view build it once in
``Target.prepare`` (outside the timed calls) from ``tests.kit.chain.TestChain``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consensus.bft.config import TimeoutConfig
from consensus.blocks import Block
from consensus.codec import INT_MAX, INT_MIN, Encodable, pack_raw, unpack_raw
from consensus.crypto import Domain, PrivateKey, is_valid_signature, sign_bytes
from consensus.errors import ConsensusError
from consensus.evidence import decode_evidence, evidence_hash
from consensus.hashing import hash32
from consensus.state import DictStateReader
from consensus.transition import state_transition
from consensus.txs import BODY_TYPES, SignedTx, TxPayload, build_tx
from consensus.votes import Commit, Proposal, Vote
from node.engine.gossip import GossipAdapter
from node.engine.inputs import InBuilt, InProposal, InVote, decode_input
from node.engine.wal import _scan
from node.errors import WalError
from p2p.blocksync import BlockSyncClient, BlockSyncServer
from p2p.config import GOSSIP_KINDS, blocks_protocol
from p2p.envelope import (
    Envelope,
    PeerExchange,
    decode_envelope,
    decode_tx_batch,
)
from p2p.errors import P2PError
from tests.fuzz.data import FuzzInput
from tests.kit.chain import TestChain


class FuzzFinding(Exception):
    """An invariant a target checks does not hold for this input."""


@dataclass
class Target:
    """One fuzz target: a function of bytes and the exceptions that mean "refused"."""

    name: str
    """Name on the command line and of the corpus folder."""
    func: Callable[[bytes], object]
    """Called with each input."""
    declared: tuple[type[BaseException], ...]
    """Exceptions that refuse an input; anything else is a finding."""
    max_len: int
    """Longest input libFuzzer generates (-max_len)."""
    doc: str
    """What the target covers."""
    setup: Callable[[], None] | None = None
    """Builds what the target needs once (chain, driver, view)."""
    _ready: bool = field(default=False, repr=False)

    def prepare(self) -> None:
        """Build the target's fixtures (idempotent)."""
        if not self._ready:
            if self.setup is not None:
                self.setup()
            self._ready = True

    def run(self, data: bytes) -> None:
        """Run one input: return if it is handled or refused with a declared exception."""
        self.prepare()
        with contextlib.suppress(*self.declared):
            self.func(data)


def _roundtrip(obj: Any, data: bytes, what: str) -> None:
    """Strict decoding means exactly one encoding: a decoded value re-encodes to its input."""
    if obj.encode() != data:
        raise FuzzFinding(f"{what} decoded from {data.hex()} re-encodes differently")


# --- codec: every Encodable container ----------------------------------------------

_ENCODABLE_MODULES = (
    "consensus.attestation", "consensus.blocks", "consensus.evidence", "consensus.genesis",
    "consensus.incentives", "consensus.jobs.iterate", "consensus.jobs.matmul", "consensus.jobs.types",
    "consensus.params", "consensus.poc.types", "consensus.poc_state", "consensus.records",
    "consensus.state", "consensus.state_proof", "consensus.txs", "consensus.validator_set",
    "consensus.votes", "node.engine.inputs", "node.engine.signer", "p2p.envelope",
)


def _all_encodables() -> list[type[Encodable]]:
    """Every concrete Encodable dataclass of the project, in a stable order."""
    for name in _ENCODABLE_MODULES:
        importlib.import_module(name)
    seen: dict[str, type[Encodable]] = {}
    stack = list(Encodable.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if dataclasses.is_dataclass(cls) and cls.__module__.split(".")[0] in ("consensus", "node", "p2p"):
            seen[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [seen[k] for k in sorted(seen)]


ENCODABLES: list[type[Encodable]] = []
ENCODABLES_BY_NAME: dict[bytes, type[Encodable]] = {}


def _setup_codec() -> None:
    ENCODABLES[:] = _all_encodables()
    ENCODABLES_BY_NAME.update((codec_name(cls), cls) for cls in ENCODABLES)


def codec_name(cls: type) -> bytes:
    """The name a codec input starts with to pick ``cls`` (stable when classes are added)."""
    return cls.__qualname__.encode()


def fuzz_codec(data: bytes) -> None:
    """Raw canonical msgpack, then decoded as the container the input names (``Name:`` prefix).

    Without a known name before the first ``:``, the first byte picks a container.
    """
    if not data:
        return
    name, sep, body = data.partition(b":")
    cls = ENCODABLES_BY_NAME.get(name) if sep else None
    if cls is None:
        cls, body = ENCODABLES[data[0] % len(ENCODABLES)], data[1:]
    raw = unpack_raw(body)
    if pack_raw(raw) != body:
        raise FuzzFinding("unpack_raw accepted a non-canonical encoding")
    obj = cls.decode(body)
    _roundtrip(obj, body, cls.__name__)


# --- consensus wire objects ----------------------------------------------------------


def fuzz_tx(data: bytes) -> None:
    """A wire transaction: strict decode, stateless checks, one encoding."""
    tx = SignedTx.decode(data)
    if tx.encode() != data or tx.payload.encode() != tx.payload_bytes:
        raise FuzzFinding("a transaction re-encodes differently")
    tx.payload.validate_basic()


def fuzz_block(data: bytes) -> None:
    """A block: strict decode, hash, stateless checks."""
    block = Block.decode(data)
    _roundtrip(block, data, "Block")
    block.hash()
    block.validate_basic()


def fuzz_vote(data: bytes) -> None:
    """A vote (and the same bytes as a commit): decode, sign payload, stateless checks."""
    try:
        vote = Vote.decode(data)
        _roundtrip(vote, data, "Vote")
        vote.sign_payload()
        vote.validate_basic()
    except ConsensusError:
        pass
    commit = Commit.decode(data)
    _roundtrip(commit, data, "Commit")
    commit.validate_basic()
    for sig in commit.signatures:
        commit.to_vote(sig).sign_payload()


def fuzz_proposal(data: bytes) -> None:
    """A proposal: decode, sign payload, stateless checks."""
    proposal = Proposal.decode(data)
    _roundtrip(proposal, data, "Proposal")
    proposal.sign_payload()
    proposal.validate_basic()


def fuzz_parts(data: bytes) -> None:
    """A proposal-topic message: an announcement with an inline block, or a signed block part."""
    msg = GossipAdapter._decode_message(data)
    if isinstance(msg, tuple) and msg[1]:
        Block.decode(msg[1]).validate_basic()


def fuzz_evidence(data: bytes) -> None:
    """An evidence-topic message ``[kind, evidence]``: decode, stateless checks, hash."""
    raw = unpack_raw(data)
    if type(raw) is not list or len(raw) != 2 or type(raw[0]) is not int or type(raw[1]) is not bytes:
        return
    evidence = decode_evidence(raw[0], raw[1])
    _roundtrip(evidence, raw[1], type(evidence).__name__)
    evidence_hash(evidence)
    evidence.validate_basic()


# --- p2p wire: envelopes and sync frames ----------------------------------------------

_MAX_MESSAGE = 1 << 20


def fuzz_envelope(data: bytes) -> None:
    """A gossip envelope on every topic, its tx batch, and the peer-exchange message."""
    for kind in GOSSIP_KINDS:
        try:
            payload = decode_envelope(data, kind, _MAX_MESSAGE)
        except P2PError:
            continue
        if Envelope(1, kind, payload).encode() != data:
            raise FuzzFinding("an envelope re-encodes differently")
        if kind == "tx":
            decode_tx_batch(payload, _MAX_MESSAGE, 1000)
    px = PeerExchange.decode(data)
    _roundtrip(px, data, "PeerExchange")


@dataclass
class _SyncConfig:
    chain_id: str = "cstake-test"
    max_request_blocks: int = 8
    max_request_bytes: int = 1 << 20
    max_frame_bytes: int = 1 << 20
    request_timeout: float = 1.0


class _SyncTransport:
    """A transport whose every request answers with the frames the fuzz input holds."""

    def __init__(self) -> None:
        self.config = _SyncConfig()
        self.frames: list[bytes] = []
        self.handlers: dict[str, Callable[..., Any]] = {}

    def set_request_handler(self, protocol: str, handler: Callable[..., Any]) -> None:
        self.handlers[protocol] = handler

    async def request(self, peer_id: str, protocol: str, data: bytes, **_: object) -> list[bytes]:
        return list(self.frames)

    def peers(self) -> list[str]:
        return ["peer"]

    def report_peer(self, peer_id: str, reason: str, *, disconnect: bool = False) -> None:
        pass


class _Provider:
    def get_status(self) -> tuple[int, bytes, int]:
        return (3, b"\x01" * 32, 1)

    def get_blocks(self, start: int, end: int) -> list[tuple[bytes, bytes]]:
        return [(b"block", b"commit") for _ in range(start, min(end, 3) + 1)]


@dataclass
class _SyncFixture:
    loop: asyncio.AbstractEventLoop
    transport: _SyncTransport
    client: BlockSyncClient
    server: BlockSyncServer


_SYNC: list[_SyncFixture] = []


def _setup_sync() -> None:
    transport = _SyncTransport()
    loop = asyncio.new_event_loop()
    _SYNC.append(
        _SyncFixture(loop, transport, BlockSyncClient(transport), BlockSyncServer(transport, _Provider()))  # type: ignore[arg-type]
    )


def fuzz_sync(data: bytes) -> None:
    """Block sync frames: the server's request decoder, the client's status and block frames."""
    fx = _SYNC[0]
    fi = FuzzInput(data)
    mode = fi.byte() % 3
    rest = fi.rest()
    if mode == 0:
        handler = fx.transport.handlers[blocks_protocol(fx.transport.config.chain_id)]
        fx.loop.run_until_complete(handler("peer", rest))
        return
    if mode == 1:
        fx.transport.frames = [rest]
        fx.loop.run_until_complete(fx.client.fetch_status("peer"))
        return
    # Several frames: two length bytes before each.
    fr = FuzzInput(rest)
    frames = []
    while fr.remaining():
        frames.append(fr.sized_bytes(4096))
    fx.transport.frames = frames
    fx.loop.run_until_complete(fx.client.fetch_blocks("peer", 1, 8))


# --- WAL records ------------------------------------------------------------------------


def fuzz_wal(data: bytes) -> None:
    """A WAL file (framing, checksums, torn tails) and each record as a driver input."""
    fi = FuzzInput(data)
    if fi.byte() & 1:
        records, _, _ = _scan(fi.rest(), 1 << 20)
    else:
        records = [fi.rest()]
    for record in records:
        inp = decode_input(record)
        if isinstance(inp, InProposal | InBuilt):
            inp.block.hash()
        if isinstance(inp, InProposal | InVote):
            (inp.proposal if isinstance(inp, InProposal) else inp.vote).sign_payload()


# --- state transition on signed transactions ----------------------------------------------

_INTERESTING_INTS = (0, 1, 2, 3, 10, 100, 1_000, 10_000, 10**6, 10**12, 10**18, -1, INT_MAX, INT_MIN, (1 << 63) - 1)


@dataclass
class _ChainFixture:
    chain: TestChain
    snapshot: dict[str, Any]
    data: dict[bytes, bytes]
    keys: list[PrivateKey]
    addresses: list[bytes]


_CHAIN: list[_ChainFixture] = []


def _setup_chain() -> None:
    chain = TestChain(n_validators=4, n_accounts=4)
    # One block first, so later blocks carry a real last commit.
    chain.next_block()
    keys = chain.account_keys + chain.operator_keys
    addresses = [k.address() for k in keys] + [k.public_key.raw for k in chain.consensus_keys]
    _CHAIN.append(_ChainFixture(chain, dict(chain.__dict__), dict(chain.state.data), keys, addresses))


def _reset_chain(fx: _ChainFixture) -> TestChain:
    chain = fx.chain
    chain.__dict__.update(fx.snapshot)
    chain.state = DictStateReader(dict(fx.data))
    chain.nonces = {}
    chain.blocks = list(fx.snapshot["blocks"])
    chain.absent = set()
    return chain


_FIELDS: dict[type, list[tuple[str, Any]]] = {}


def _fuzz_value(fi: FuzzInput, tp: Any, fx: _ChainFixture, depth: int = 0) -> Any:
    """Build a value of type ``tp`` from fuzz choices, biased towards values the state knows."""
    if tp is int:
        choice = fi.byte()
        if choice < 64:
            return choice % 8
        if choice < 160:
            return _INTERESTING_INTS[choice % len(_INTERESTING_INTS)]
        return fi.uint(8) - (1 << 63) if choice & 1 else fi.uint(4)
    if tp is bytes:
        choice = fi.byte() % 8
        if choice < 5:
            return fi.pick(fx.addresses)
        if choice == 5:
            return fi.bytes(32).ljust(32, b"\0")
        return fi.sized_bytes(48)
    if tp is str:
        return fi.pick(("", "val", "cstake-test", "x" * 70, "gpu", "\u00e9")) if fi.byte() & 1 else fi.sized_bytes(16).decode("latin-1")
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is tuple:
        n = 0 if depth > 3 else fi.below(4)
        return tuple(_fuzz_value(fi, args[0], fx, depth + 1) for _ in range(n))
    if origin in (typing.Union, types.UnionType):
        inner = args[0] if args[1] is type(None) else args[1]
        return None if fi.byte() & 1 or depth > 3 else _fuzz_value(fi, inner, fx, depth + 1)
    if isinstance(tp, type) and issubclass(tp, Encodable):
        fields = _FIELDS.get(tp)
        if fields is None:
            hints = typing.get_type_hints(tp)
            fields = _FIELDS[tp] = [(f.name, hints[f.name]) for f in dataclasses.fields(tp)]  # type: ignore[arg-type]
        return tp(**{name: _fuzz_value(fi, hint, fx, depth + 1) for name, hint in fields})
    raise TypeError(f"no fuzz value for {tp!r}")


_BODY_KINDS = sorted(BODY_TYPES)


def _fuzz_tx(fi: FuzzInput, fx: _ChainFixture, chain: TestChain, nonces: dict[bytes, int]) -> SignedTx | None:
    key = fi.pick(fx.keys)
    body_type = BODY_TYPES[fi.pick(_BODY_KINDS)]
    try:
        body = _fuzz_value(fi, body_type, fx)
        body.encode()
    except (ConsensusError, ValueError, TypeError, OverflowError):
        return None
    addr = key.address()
    if addr not in nonces:
        nonces[addr] = chain.view().get_account(addr).nonce
    mode = fi.byte()
    nonce = nonces[addr] + (0 if mode < 224 else (mode % 4) - 2)
    fee = 10 if mode & 0x10 == 0 else _fuzz_value(fi, int, fx)
    if not (0 <= nonce <= INT_MAX and INT_MIN <= fee <= INT_MAX):
        return None
    try:
        tx = build_tx(key, chain.chain_id, nonce, fee, body)
        if mode & 0x20 == 0:
            # Mostly what a mempool would pass on: transactions that are well formed.
            tx.payload.validate_basic()
    except ConsensusError:
        return None
    nonces[addr] = nonce + 1
    return tx


def fuzz_transition(data: bytes) -> None:
    """Signed transactions of every kind from TestChain keys, applied in blocks by state_transition."""
    fx = _CHAIN[0]
    chain = _reset_chain(fx)
    fi = FuzzInput(data)
    nonces: dict[bytes, int] = {}
    pending: list[SignedTx] = []
    blocks = 0
    while fi.remaining() and blocks < 4:
        op = fi.byte()
        if op < 200 and len(pending) < 16:
            tx = _fuzz_tx(fi, fx, chain, nonces)
            if tx is not None:
                pending.append(tx)
            continue
        step = 1_000 if op & 1 else 1 + fi.uint(3)
        block = chain.build_block(pending, time_step_ms=step)
        pending = []
        blocks += 1
        try:
            chain.apply(block)
        except ConsensusError:
            nonces = {}
            chain._last_commit = None
            continue
    if pending:
        state_transition(chain.state, chain.build_block(pending))


# --- gossip validators on a real driver ------------------------------------------------------


class _StubTransport:
    def report_peer(self, peer_id: str, reason: str, *, disconnect: bool = False) -> None:
        pass

    def peers(self) -> list[str]:
        return []


class _NoNetwork:
    def broadcast_proposal(self, *_: object) -> None:
        pass

    def broadcast_vote(self, *_: object) -> None:
        pass

    def broadcast_evidence(self, *_: object) -> None:
        pass

    def report_peer(self, *_: object) -> None:
        pass


class _NoMempool:
    def reap(self, max_txs: int, max_bytes: int, **_: object) -> list[object]:
        return []


@dataclass
class _GossipFixture:
    chain: TestChain
    adapter: GossipAdapter
    executor: Any
    keys: list[PrivateKey]


_GOSSIP: list[_GossipFixture] = []


def _setup_gossip() -> None:
    from node.engine.driver import ConsensusDriver
    from node.engine.executor import BlockExecutor
    from storage import NodeStore
    from tests.sim.network import ManualClock
    from tests.sim.simnode import MemoryWal

    chain = TestChain(n_validators=4)
    executor = BlockExecutor(NodeStore.open_memory(), chain.genesis)
    executor.init_genesis()
    driver = ConsensusDriver(
        executor=executor, wal=MemoryWal(), clock=ManualClock(chain.genesis_time_ms + 10_000),  # type: ignore[arg-type]
        mempool=_NoMempool(), network=_NoNetwork(), timeouts=TimeoutConfig(), signer=None, address=None,  # type: ignore[arg-type]
    )
    driver.recover()
    adapter = GossipAdapter(_StubTransport(), chain.chain_id)  # type: ignore[arg-type]
    adapter.bind(driver)
    _GOSSIP.append(_GossipFixture(chain, adapter, executor, list(chain.consensus_keys)))


def _gossip_tx(fx: _GossipFixture, raw: bytes) -> None:
    """The node's tx-topic validator (``node.app.validate_gossip_tx``): stateless, signature, then state."""
    from node.app import validate_gossip_tx
    from node.mempool.pool import Mempool
    from p2p.interface import Verdict

    state = fx.executor.head_state()
    verdict = validate_gossip_tx(raw, state, Mempool(), fx.chain.chain_id)
    if verdict is Verdict.ACCEPT:
        tx = SignedTx.decode(raw, max_bytes=state.get_params().max_tx_bytes)
        if not is_valid_signature(tx.payload.pubkey, sign_bytes(Domain.TX, fx.chain.chain_id, tx.payload_bytes),
                                  tx.signature):
            raise FuzzFinding("a transaction with a bad signature was accepted")


def fuzz_gossip(data: bytes) -> None:
    """The vote, proposal, evidence and tx topic validators; modes re-sign the message so it authenticates."""
    fx = _GOSSIP[0]
    adapter = fx.adapter
    fi = FuzzInput(data)
    mode = fi.byte() % 6
    payload = fi.rest()
    if mode == 0:
        adapter.validate_vote("peer", payload)
    elif mode == 1:
        adapter.validate_proposal("peer", payload)
    elif mode == 2:
        adapter.validate_evidence("peer", payload)
    elif mode == 3:
        _gossip_tx(fx, payload)
    elif mode == 4:
        # A vote signed by a validator's real consensus key (the first byte picks which).
        pf = FuzzInput(payload)
        key = fx.keys[pf.byte() % len(fx.keys)]
        vote = Vote.decode(pf.rest())
        signed = vote.with_signature(key.sign(Domain.VOTE, fx.chain.chain_id, vote.sign_payload()))
        adapter.validate_vote("peer", signed.encode())
    else:
        # A transaction payload signed by a TestChain key: the mempool's checks past the signature.
        # The pick byte's top bit keeps the payload's chain id, when a signer could sign it at all.
        pf = FuzzInput(payload)
        pick = pf.byte()
        key = fx.chain.account_keys[pick % len(fx.chain.account_keys)]
        try:
            p = TxPayload.decode(pf.rest())
        except ConsensusError:
            return
        chain_id = p.chain_id if pick & 0x80 and _is_signable_chain_id(p.chain_id) else fx.chain.chain_id
        p = dataclasses.replace(p, chain_id=chain_id, sender=key.address(), pubkey=key.public_key.raw)
        _gossip_tx(fx, SignedTx.create(key, p).raw)


def _is_signable_chain_id(chain_id: str) -> bool:
    """Whether ``sign_bytes`` can frame this chain id (ASCII, under 256 bytes); a wallet signs no other."""
    return chain_id.isascii() and len(chain_id) < 256


# --- JSON-RPC request handler --------------------------------------------------------------


@dataclass
class _RpcFixture:
    loop: asyncio.AbstractEventLoop
    server: Any


_RPC: list[_RpcFixture] = []


def _setup_rpc() -> None:
    from node.config import RPCSection
    from node.rpc.server import RPCServer
    from tests.kit.memview import MemoryNodeView

    loop = asyncio.new_event_loop()
    chain = TestChain(genesis_time_ms=1_700_000_000_000)
    view = MemoryNodeView(chain)
    for _ in range(3):
        tx = chain.tx(chain.account_keys[0], _transfer_body(chain.account_keys[1].address(), 5))
        loop.run_until_complete(view.submit_tx(tx))
        view.produce_block()
    config = RPCSection(request_timeout_s=0.2, broadcast_commit_timeout_s=0.05, max_batch=20)
    _RPC.append(_RpcFixture(loop, RPCServer(view, config)))


def _transfer_body(to: bytes, amount: int) -> Encodable:
    from consensus.txs import Transfer

    return Transfer(to=to, amount=amount)


def fuzz_rpc(data: bytes) -> None:
    """A JSON-RPC body through ``RPCServer.process_body``: always an answer, never an internal error."""
    fx = _RPC[0]
    result = fx.loop.run_until_complete(fx.server.process_body(data))
    responses = result if isinstance(result, list) else [result] if result is not None else []
    for resp in responses:
        err = resp.get("error")
        if err is not None and err.get("code") == -32603:
            raise FuzzFinding(f"internal error: {err.get('message')}")
    json.dumps(result, allow_nan=False)


# --- the registry -------------------------------------------------------------------------------

_DECODE = (ConsensusError,)

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("codec", fuzz_codec, _DECODE, 4096, "unpack_raw and every Encodable container's decode", _setup_codec),
        Target("tx", fuzz_tx, _DECODE, 4096, "SignedTx.decode and the payload's validate_basic"),
        Target("block", fuzz_block, _DECODE, 16384, "Block.decode, hash and validate_basic"),
        Target("vote", fuzz_vote, _DECODE, 1024, "Vote and Commit decode and validate_basic"),
        Target("proposal", fuzz_proposal, _DECODE, 1024, "Proposal decode and validate_basic"),
        Target("parts", fuzz_parts, _DECODE, 16384, "proposal-topic messages: announcements, inline blocks, parts"),
        Target("evidence", fuzz_evidence, _DECODE, 4096, "evidence-topic messages and decode_evidence"),
        Target("envelope", fuzz_envelope, (*_DECODE, P2PError), 4096, "gossip envelopes, tx batches, peer exchange"),
        Target("sync", fuzz_sync, (*_DECODE, P2PError), 4096, "block sync: blocks request, status and block frames", _setup_sync),
        Target("wal", fuzz_wal, (WalError,), 16384, "WAL framing (_scan) and decode_input of each record"),
        Target("transition", fuzz_transition, _DECODE, 2048, "state_transition on blocks of random signed txs", _setup_chain),
        Target("gossip", fuzz_gossip, _DECODE, 8192, "vote/proposal/evidence/tx gossip validators on a real driver", _setup_gossip),
        Target("rpc", fuzz_rpc, (), 4096, "RPCServer.process_body over MemoryNodeView", _setup_rpc),
    )
}


def get_target(name: str) -> Target:
    """Return the target called ``name`` (KeyError names the known ones)."""
    try:
        return TARGETS[name]
    except KeyError:
        raise KeyError(f"unknown fuzz target {name!r}; known: {', '.join(TARGETS)}") from None


def input_id(data: bytes) -> str:
    """Short content id of an input (file names of corpus entries and reproducers)."""
    return hash32(data).hex()[:16]
