"""The state transition: ``state_transition(base, block, ...) -> TransitionResult``.

Executing a block, in order:

1. ``validate_block``: the header against the state (chain id, height, parent,
   proposer for the round, validator set hash, size), the last commit
   against the set that decided the previous height, and the time: exactly
   the BFT time of the last commit (``consensus.block_time``), after the
   parent's and no later than year 9999.
2. Evidence carried by the block: each double-sign is verified, slashed once
   and tombstoned; the proposer is the whistleblower.
3. Transactions: all decoded first and their cost checked against the
   block's budget (``consensus.costs``: ``max_block_cost`` and
   ``max_heavy_txs_per_block``) before any runs; then, in block order:
   ``check_tx`` authenticates (signature, chain id, nonce, a fee of at least
   the cost price) — a block with a transaction failing it is invalid — then
   the fee is charged and the nonce advances, the kind's precheck and the
   body's handler run; a handler failure reverts the body's writes only.
4. End of block: the reward (``block_reward`` minted plus fees) to the
   proposer, matured unbonding entries paid out, at an epoch boundary the
   validator set recomputed, proposer priorities advanced, the head recorded.

The function is pure: the caller passes the committed state as a reader and
gets back the change set, events, and per-transaction results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consensus.attestation import process_block_attestations
from consensus.block_time import compute_block_time
from consensus.blocks import MAX_BLOCK_EVIDENCE, MAX_BLOCK_TIME_MS, Block
from consensus.costs import PRICE_SCALE, compute_cost, compute_min_fee, validate_block_cost
from consensus.crypto import Domain, is_valid_signature, sign_bytes
from consensus.errors import (
    BadNonce,
    BadTxSignature,
    CannotPayFee,
    ConsensusError,
    DecodeError,
    FeeTooLow,
    InvalidBlock,
    InvalidTransaction,
    MalformedTx,
    TxAuthError,
    TxExecutionError,
    ValidationError,
    WrongChainId,
)
from consensus.incentives import process_liveness, process_rewards
from consensus.jobs.market import process_jobs_end_block
from consensus.params import Params
from consensus.poc_state import process_poc_deadlines, process_poc_epoch
from consensus.records import Account, ChainHead, TxResult
from consensus.staking import (
    compute_epoch_changes,
    process_matured_unbondings,
    process_mint,
)
from consensus.state import Keys, State
from consensus.state_reader import StateReader
from consensus.tx_context import TxContext
from consensus.tx_handlers import (
    get_handler,
    get_precheck,
    process_double_sign_evidence,
    process_nft_releases,
)
from consensus.txs import SignedTx, TxKind
from consensus.validator_set import compute_next_validator_set
from consensus.votes import verify_commit

#: Answers whether a transaction id's signature was already verified (mempool cache).
SigCache = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """What executing a block produced."""

    #: Key -> canonical bytes (None deletes), ready for the store.
    changes: dict[bytes, bytes | None]
    #: Per transaction, in block order.
    tx_results: tuple[TxResult, ...]
    #: Transaction ids, in block order.
    tx_hashes: tuple[bytes, ...]
    #: The decoded transactions, in block order.
    txs: tuple[SignedTx, ...]
    #: Facts about what happened (slashes, epoch changes, ...).
    events: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class EpochEnded:
    """Event: the validator set was recomputed at this height."""

    height: int
    validators_hash: bytes
    total_power: int


def check_tx(
    state: State,
    tx: SignedTx,
    chain_id: str,
    params: Params,
    sig_cache: SigCache | None = None,
) -> Account:
    """Authenticate ``tx`` against ``state``; return the sender's account.

    Raises a ``TxAuthError`` leaf: wrong chain, malformed body, fee below the
    minimum, wrong nonce, balance below the fee, or a bad signature.
    """
    p = tx.payload
    if p.chain_id != chain_id:
        raise WrongChainId(f"transaction is for chain '{p.chain_id}', this is '{chain_id}'")
    if len(tx.raw) > params.max_tx_bytes:
        raise MalformedTx(f"transaction is {len(tx.raw)} bytes; the limit is {params.max_tx_bytes}")
    try:
        p.validate_basic()
    except (ValidationError, DecodeError) as exc:
        raise MalformedTx(str(exc)) from exc
    # Priced by what the transaction makes every node compute (consensus.costs).
    min_fee = compute_min_fee(p.kind, p.body, params)
    if p.fee < min_fee:
        if min_fee == params.min_fee:
            raise FeeTooLow(f"fee {p.fee} is below the minimum {params.min_fee}")
        cost = compute_cost(p.kind, p.body, params)
        raise FeeTooLow(
            f"fee {p.fee} is below {min_fee}, the price of this {TxKind.NAMES.get(p.kind, 'transaction')}'s "
            f"cost of {cost} units at params.min_fee_per_cost {params.min_fee_per_cost} per {PRICE_SCALE} units"
        )
    acct = state.get_account(p.sender)
    if p.nonce != acct.nonce:
        raise BadNonce(f"nonce {p.nonce} does not match the account nonce {acct.nonce}")
    if acct.balance < p.fee:
        raise CannotPayFee(f"balance {acct.balance} cannot pay the fee {p.fee}")
    if sig_cache is None or not sig_cache(tx.tx_hash):
        msg = sign_bytes(Domain.TX, chain_id, tx.payload_bytes)
        if not is_valid_signature(p.pubkey, msg, tx.signature):
            raise BadTxSignature("transaction signature does not verify")
    return acct


def process_transaction(
    state: State,
    tx: SignedTx,
    ctx: TxContext,
    sig_cache: SigCache | None = None,
) -> TxResult:
    """Apply one transaction; return its result (raises only on auth failure)."""
    acct = check_tx(state, tx, ctx.chain_id, ctx.params, sig_cache)
    p = tx.payload
    state.set_account(p.sender, Account(acct.balance - p.fee, acct.nonce + 1))
    body = p.decode_body()
    checkpoint = state.checkpoint()
    try:
        # A precheck's writes stay when the handler then fails: it remembers an
        # attempt (e.g. a fraud proof's row) so that a repeat is refused cheaply.
        precheck = get_precheck(p.kind)
        if precheck is not None:
            precheck(state, ctx, p.sender, body)
            checkpoint = state.checkpoint()
        get_handler(p.kind)(state, ctx, p.sender, body)
    except TxExecutionError as exc:
        state.revert(checkpoint)
        return TxResult(code=exc.code, log=f"{type(exc).__name__}: {exc}")
    return TxResult(code=0, log="")


def validate_block(state: State, block: Block, chain_id: str) -> None:
    """Raise InvalidBlock unless ``block`` may follow the state's head."""
    h = block.header
    try:
        block.validate_basic()
    except (ValidationError, ConsensusError) as exc:
        raise InvalidBlock(f"malformed block: {exc}") from exc
    params = state.get_params()
    head = state.get_head()
    if h.chain_id != chain_id:
        raise InvalidBlock(f"block is for chain '{h.chain_id}', this is '{chain_id}'")
    if h.height != head.height + 1:
        raise InvalidBlock(f"block height {h.height} does not follow head height {head.height}")
    if head.height > 0 and h.parent_hash != head.block_hash:
        raise InvalidBlock("block parent is not the head block")
    # Time moves forward and stays representable (the exact time is checked below).
    if h.time_ms <= head.time_ms:
        raise InvalidBlock(f"block time {h.time_ms} ms is not after the head's {head.time_ms} ms")
    if h.time_ms > MAX_BLOCK_TIME_MS:
        raise InvalidBlock(f"block time {h.time_ms} ms is past the last representable {MAX_BLOCK_TIME_MS} ms")
    if len(block.txs) > params.max_block_txs:
        raise InvalidBlock(f"{len(block.txs)} transactions exceed the limit {params.max_block_txs}")
    if len(block.evidence) > MAX_BLOCK_EVIDENCE:
        raise InvalidBlock(f"{len(block.evidence)} evidence items exceed the limit {MAX_BLOCK_EVIDENCE}")
    size = len(block.encode())
    if size > params.max_block_bytes:
        raise InvalidBlock(f"block of {size} bytes exceeds params.max_block_bytes {params.max_block_bytes}")
    vset = state.get_validator_set()
    if h.validators_hash != vset.hash():
        raise InvalidBlock("header.validators_hash is not the hash of the current validator set")
    expected = vset.compute_proposer(h.round).address
    if h.proposer != expected:
        raise InvalidBlock(
            f"proposer {h.proposer.hex()} is not the proposer {expected.hex()} of round {h.round}"
        )
    if block.last_commit is not None:
        last_vset = state.get_last_validator_set()
        if last_vset is None:
            raise InvalidBlock("no validator set is known for the previous height")
        try:
            verify_commit(chain_id, last_vset, block.last_commit)
        except ConsensusError as exc:
            raise InvalidBlock(f"last commit does not verify: {exc}") from exc
    else:
        last_vset = None
    # BFT time: the proposer does not choose the time, the last commit's signers do.
    # Their timestamps are not checked one by one: with less than 1/3 of the power
    # faulty the median lies between two honest precommits, both after the parent.
    expected_time = compute_block_time(block.last_commit, last_vset, head.time_ms)
    if h.time_ms != expected_time:
        raise InvalidBlock(
            f"block time {h.time_ms} ms is not the BFT time {expected_time} ms "
            "(the weighted median of the last commit's timestamps)"
        )


def state_transition(
    base: StateReader,
    block: Block,
    *,
    sig_cache: SigCache | None = None,
    txs: list[SignedTx] | None = None,
) -> TransitionResult:
    """Execute ``block`` on the committed state ``base``; return the changes.

    ``txs`` may pass the already-decoded transactions of the block (the
    mempool has them) to skip decoding; they must be the block's transactions
    in order. Raises InvalidBlock if the block cannot follow the state.
    """
    state = State(base)
    info = state.get_chain_info()
    validate_block(state, block, info.chain_id)
    params = state.get_params()
    h = block.header
    ctx = TxContext(
        chain_id=info.chain_id,
        height=h.height,
        time_ms=h.time_ms,
        proposer=h.proposer,
        params=params,
    )
    events: list[object] = []

    for item in block.evidence:
        checkpoint = state.checkpoint()
        try:
            process_double_sign_evidence(state, ctx, item.kind, item.data, h.proposer)
        except TxExecutionError as exc:
            state.revert(checkpoint)
            raise InvalidBlock(f"block carries invalid evidence: {exc}") from exc
        events.append(item)

    # Compute attestations: each must verify; the freshest per NFT is kept in state.
    process_block_attestations(state, block, info.chain_id, params)

    if txs is not None:
        if [t.raw for t in txs] != list(block.txs):
            raise InvalidBlock("decoded transactions do not match the block")
        decoded_txs = list(txs)
    else:
        decoded_txs = []
        for index, raw in enumerate(block.txs):
            try:
                decoded_txs.append(SignedTx.decode(raw, max_bytes=params.max_tx_bytes))
            except DecodeError as exc:
                raise InvalidBlock(f"transaction {index} is invalid: {exc}") from exc
    # The cost budget is checked on the decoded transactions before any of them runs.
    validate_block_cost(decoded_txs, params)
    results: list[TxResult] = []
    hashes: list[bytes] = []
    fees = 0
    for index, tx in enumerate(decoded_txs):
        try:
            result = process_transaction(state, tx, ctx, sig_cache)
        except (DecodeError, TxAuthError, InvalidTransaction) as exc:
            raise InvalidBlock(f"transaction {index} is invalid: {exc}") from exc
        fees += tx.payload.fee
        results.append(result)
        hashes.append(tx.tx_hash)
        state.commit_journal()

    process_end_block(state, block, params, fees, events)
    return TransitionResult(
        changes=state.changes(),
        tx_results=tuple(results),
        tx_hashes=tuple(hashes),
        txs=tuple(decoded_txs),
        events=tuple(events),
    )


def process_end_block(
    state: State, block: Block, params: Params, fees: int, events: list[object]
) -> None:
    """Liveness and reputation, rewards, matured unbondings, epoch change, proposer rotation, head."""
    h = block.header
    last_set = state.get_last_validator_set()
    process_liveness(state, block, last_set, params, events)
    # Proof of compute: due steps first, then (at a boundary) new challenges on the NFTs
    # as they are, all before the epoch's validator-set change reads them.
    process_poc_deadlines(state, block, params, events)
    process_poc_epoch(state, block, params, events)
    # Job marketplace: deadlines, disputes, assignment and settlement of open jobs.
    process_jobs_end_block(state, block, params, events)
    process_mint(state, params.block_reward)
    process_rewards(state, block, last_set, params, fees)
    process_matured_unbondings(state, h.height)
    process_nft_releases(state, h.height)
    current = state.get_validator_set()
    state.put_record(Keys.LAST_VALSET, current)
    changes: list[tuple[bytes, bytes, int]] = []
    epoch_end = h.height % params.epoch_blocks == 0
    if epoch_end:
        changes = compute_epoch_changes(state, params)
    nxt = compute_next_validator_set(current, changes)
    state.set_validator_set(nxt)
    if epoch_end:
        state.put_record(Keys.valset_history(h.height + 1), nxt)
        events.append(EpochEnded(h.height, nxt.hash(), nxt.total_power))
    state.set_head(ChainHead(h.height, h.hash(), h.time_ms))
