"""Execution cost of transactions: what a transaction makes every node compute, priced and budgeted.

A flat fee let one transaction of a heavy kind cost every node tens of
milliseconds for the fee of a transfer (a seeded job's inputs regenerated, a
fraud proof's row recomputed). Every transaction now has a deterministic
*cost*, a function of its kind and its body alone (never of the state, so the
mempool, the proposer and every executing node agree on it before running
anything)::

    cost = base[kind] + per_kib[kind] x ceil(len(body) / 1024) + heavy(kind, body)

One cost unit is about one microsecond of execution on the reference machine
(docs/protocol.md, section 3a, has the table and the measurements behind it;
``python -m bench.incentives cost`` measures it again). ``base`` covers the
envelope (decoding, the signature check, the account reads and writes),
``per_kib`` what grows with the body (decoding, hashing, Merkle paths), and
``heavy`` the work a kind does beyond its bytes:

- ``submit_job`` with seeded matrix inputs: regenerating A (m x n) and B
  (n x n) from the seed to check the input hash, 7 units per 1,000 entries
  plus 2 per generated row;
- ``fraud_proof``: recomputing the row, A_i x B with B regenerated (n x n),
  15 units per 1,000 entries of B (n is the row's length / 4);
- ``job_challenge`` that opens leaves (a fraud proof, or the leaf at the end
  of a descent): a matrix row recomputed against B, bounded by the largest B
  a job with such a leaf can have (seeded p x p with p <= 2048, or inline
  within ``job_max_input_bytes``).

Rules built on it (``consensus.transition``):

- **Price.** A transaction's fee must be at least ``get_min_fee``: the larger
  of ``min_fee`` and ``ceil(cost x min_fee_per_cost / 10,000)`` (the price is in
  ten-thousandths of a token per cost unit). The proof-of-compute prover's own
  answers (``poc_commit``, ``poc_open``) pay ``min_fee`` only: they are
  accepted only from the NFT's owner or bound validator, for a challenge
  waiting for exactly that answer, and a challenge's openings come in at most
  ``MAX_OPENING_CHUNKS`` chunks, so their heavy work happens a bounded number
  of times per challenge.
- **Budget.** A block's transactions cost at most ``max_block_cost`` in total,
  and at most ``max_heavy_txs_per_block`` of them are *heavy* (a priced kind
  whose heavy work is at least ``HEAVY_COST`` units); otherwise the block is
  invalid. Both are checked on the decoded transactions before any executes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.codec import Encodable
from consensus.errors import ConsensusError, InvalidBlock
from consensus.jobs.kinds import InvalidJobSpec
from consensus.jobs.matmul import MAX_DIM
from consensus.jobs.matmul import decode_spec as decode_matmul_spec
from consensus.jobs.types import ChallengeAction, JobChallenge, SubmitJob
from consensus.params import Params
from consensus.poc.matrices import MAX_N
from consensus.poc.merkle import ROW_ENTRY_BYTES
from consensus.poc.types import PocFraudProof
from consensus.txs import KIND_OF_BODY, SignedTx, TxKind, decode_tx_body

#: The fee price is in ten-thousandths of a token per cost unit.
PRICE_SCALE = 10_000
#: A transaction whose heavy work costs at least this many units is heavy (about a millisecond).
HEAVY_COST = 1_000
#: Matrix job kind code (consensus.jobs.matmul); its seeded inputs are regenerated on chain.
MATMUL_KIND = 1
#: Units per 1,000 entries generated from a seed (SHAKE-256 stream, int8 entries), and per row.
SEEDED_ENTRY_MILLI = 7
SEEDED_ROW = 2
#: Units per 1,000 multiply-adds of a matrix row against B, B regenerated from a seed (int64 numpy).
ROW_PRODUCT_MILLI = 15
#: The same against an inline B (no generation, only the int64 conversion and the product).
INLINE_PRODUCT_MILLI = 7


@dataclass(frozen=True, slots=True)
class KindCost:
    """The cost schedule of one transaction kind."""

    #: Units every transaction of the kind costs (envelope, signature, state reads and writes).
    base: int
    #: Units per started KiB of the body.
    per_kib: int
    #: True for the prover's own answers: the fee is ``min_fee``, whatever the cost.
    duty: bool = False


#: Cost schedule per kind (calibration: docs/protocol.md, section 3a).
COST_TABLE: dict[int, KindCost] = {
    TxKind.TRANSFER: KindCost(150, 3),
    TxKind.CREATE_VALIDATOR: KindCost(250, 3),
    TxKind.BOND: KindCost(200, 3),
    TxKind.UNBOND: KindCost(200, 3),
    TxKind.DELEGATE: KindCost(200, 3),
    TxKind.UNDELEGATE: KindCost(200, 3),
    TxKind.REGISTER_COMPUTE: KindCost(200, 3),
    TxKind.TRANSFER_NFT: KindCost(150, 3),
    TxKind.BIND_NFT: KindCost(150, 3),
    TxKind.UNBIND_NFT: KindCost(150, 3),
    TxKind.UNJAIL: KindCost(150, 3),
    # Two vote signatures verified besides the envelope's.
    TxKind.SUBMIT_EVIDENCE: KindCost(600, 10),
    TxKind.POC_COMMIT: KindCost(200, 3, duty=True),
    # Openings: decoding, 800 Merkle paths and the Freivalds check (B·r regenerates B).
    TxKind.POC_OPEN: KindCost(500, 12, duty=True),
    TxKind.FRAUD_PROOF: KindCost(300, 3),
    TxKind.SUBMIT_JOB: KindCost(300, 3),
    TxKind.JOB_RESULT: KindCost(300, 3),
    # A bisection move may re-execute one step of an iterate job (up to 512 words).
    TxKind.JOB_CHALLENGE: KindCost(600, 3),
    TxKind.CANCEL_JOB: KindCost(200, 3),
    TxKind.SET_PRICE: KindCost(150, 3),
    TxKind.ACCEPT_NFT: KindCost(150, 3),
    # Withdrawing from every delegated validator settles each of them.
    TxKind.WITHDRAW_REWARDS: KindCost(300, 3),
    TxKind.RETIRE_NFT: KindCost(200, 3),
    TxKind.EDIT_VALIDATOR: KindCost(150, 3),
}
#: An unknown kind fails at execution; it still costs its envelope.
UNKNOWN_KIND = KindCost(150, 3)


def _seeded_job_work(body: SubmitJob) -> int:
    """Units to regenerate a seeded matrix job's inputs (0 when inline, other kinds or a bad spec)."""
    if body.job_kind != MATMUL_KIND or body.inputs:
        return 0
    try:
        s = decode_matmul_spec(body.spec)
    except InvalidJobSpec:
        return 0  # refused before any generation
    entries = s.m * s.n + s.n * s.n
    return entries * SEEDED_ENTRY_MILLI // 1000 + SEEDED_ROW * (s.m + s.n)


def _fraud_row_work(body: PocFraudProof) -> int:
    """Units to recompute a proof-of-compute row of n entries: A_i (1 x n) times B (n x n)."""
    n = len(body.opening.row) // ROW_ENTRY_BYTES
    return min(n, MAX_N) ** 2 * ROW_PRODUCT_MILLI // 1000


def _job_leaf_work(body: JobChallenge, params: Params) -> int:
    """Units to check a job leaf of p entries against its matrix: at most p x (rows of B) multiply-adds."""
    if body.action not in (ChallengeAction.FRAUD, ChallengeAction.REVEAL) or not body.openings:
        return 0
    p = max(len(o.leaf) for o in body.openings) // ROW_ENTRY_BYTES
    # Seeded B is p x p (p <= MAX_N); an inline B holds at most job_max_input_bytes entries.
    seeded = p * p * ROW_PRODUCT_MILLI if p <= MAX_N else 0
    inline = min(p * MAX_DIM, params.job_max_input_bytes) * INLINE_PRODUCT_MILLI
    return max(seeded, inline) // 1000


def compute_heavy_work(kind: int, body: Encodable, params: Params) -> int:
    """Return the units of work ``body`` makes its kind do beyond its bytes."""
    if kind == TxKind.SUBMIT_JOB and isinstance(body, SubmitJob):
        return _seeded_job_work(body)
    if kind == TxKind.FRAUD_PROOF and isinstance(body, PocFraudProof):
        return _fraud_row_work(body)
    if kind == TxKind.JOB_CHALLENGE and isinstance(body, JobChallenge):
        return _job_leaf_work(body, params)
    return 0


def _decode(kind: int, body: bytes) -> Encodable | None:
    try:
        return decode_tx_body(kind, body)
    except ConsensusError:
        return None  # an unknown kind or a malformed body is refused before it runs: its envelope is its cost


def compute_cost(kind: int, body: bytes, params: Params) -> int:
    """Return the cost units of a transaction of ``kind`` whose canonical body is ``body``."""
    sched = COST_TABLE.get(kind, UNKNOWN_KIND)
    cost = sched.base + sched.per_kib * -(-len(body) // 1024)
    decoded = _decode(kind, body)
    if decoded is not None:
        cost += compute_heavy_work(kind, decoded, params)
    return cost


def get_tx_cost(tx: SignedTx, params: Params) -> int:
    """Return the cost units of ``tx``."""
    return compute_cost(tx.payload.kind, tx.payload.body, params)


def is_duty_kind(kind: int) -> bool:
    """Whether ``kind`` is a proof-of-compute answer (a duty: its sender is slashed if it is late)."""
    return COST_TABLE.get(kind, UNKNOWN_KIND).duty


def is_heavy(kind: int, body: bytes, params: Params) -> bool:
    """Return whether the transaction counts against ``max_heavy_txs_per_block``."""
    if is_duty_kind(kind):
        return False
    decoded = _decode(kind, body)
    return decoded is not None and compute_heavy_work(kind, decoded, params) >= HEAVY_COST


def compute_min_fee(kind: int, body: bytes, params: Params) -> int:
    """Return the smallest fee a transaction of ``kind`` with ``body`` may pay."""
    if is_duty_kind(kind):
        return params.min_fee
    priced = -(-compute_cost(kind, body, params) * params.min_fee_per_cost // PRICE_SCALE)
    return max(params.min_fee, priced)


def get_min_fee(tx: SignedTx | Encodable, params: Params) -> int:
    """Return the smallest fee ``tx`` may pay: a signed transaction, or the body one will carry.

    The fee depends on the kind and the body only, so a wallet computes it
    from the body before signing.
    """
    if isinstance(tx, SignedTx):
        return compute_min_fee(tx.payload.kind, tx.payload.body, params)
    kind = KIND_OF_BODY.get(type(tx))
    if kind is None:
        raise ConsensusError(f"{type(tx).__name__} is not a transaction body")
    return compute_min_fee(kind, tx.encode(), params)


@dataclass(frozen=True, slots=True)
class BlockCost:
    """What a block's transactions cost: total units and heavy transactions."""

    total: int
    heavy: int


def measure_tx(tx: SignedTx, params: Params) -> tuple[int, bool]:
    """Return (cost units, whether heavy) of ``tx``, decoding its body once."""
    p = tx.payload
    sched = COST_TABLE.get(p.kind, UNKNOWN_KIND)
    cost = sched.base + sched.per_kib * -(-len(p.body) // 1024)
    decoded = _decode(p.kind, p.body)
    work = 0 if decoded is None else compute_heavy_work(p.kind, decoded, params)
    return cost + work, not sched.duty and work >= HEAVY_COST


def compute_block_cost(txs: Sequence[SignedTx], params: Params) -> BlockCost:
    """Return the total cost and the heavy count of ``txs``."""
    total = 0
    heavy = 0
    for tx in txs:
        cost, is_heavy_tx = measure_tx(tx, params)
        total += cost
        heavy += is_heavy_tx
    return BlockCost(total, heavy)


def validate_block_cost(txs: Sequence[SignedTx], params: Params) -> None:
    """Raise InvalidBlock unless ``txs`` fit the block's cost budget and heavy-transaction cap."""
    cost = compute_block_cost(txs, params)
    if cost.total > params.max_block_cost:
        raise InvalidBlock(
            f"the block's transactions cost {cost.total} units; params.max_block_cost is {params.max_block_cost}"
        )
    if cost.heavy > params.max_heavy_txs_per_block:
        raise InvalidBlock(
            f"the block carries {cost.heavy} heavy transactions; "
            f"params.max_heavy_txs_per_block is {params.max_heavy_txs_per_block}"
        )


@dataclass(slots=True)
class CostBudget:
    """A block builder's running budget: admits transactions while they fit."""

    params: Params
    total: int = 0
    heavy: int = 0

    def fits(self, cost: int, heavy: bool) -> bool:
        """Return whether a transaction of ``cost`` (heavy or not) fits what is left."""
        if self.total + cost > self.params.max_block_cost:
            return False
        return not heavy or self.heavy < self.params.max_heavy_txs_per_block

    def take(self, cost: int, heavy: bool) -> None:
        """Count a transaction of ``cost`` as included."""
        self.total += cost
        self.heavy += heavy

    def try_take(self, tx: SignedTx) -> bool:
        """Count ``tx`` as included if it fits what is left; return whether it did."""
        cost, heavy = measure_tx(tx, self.params)
        if not self.fits(cost, heavy):
            return False
        self.take(cost, heavy)
        return True


def fit_block_cost(txs: Sequence[SignedTx], params: Params) -> list[SignedTx]:
    """Return the longest prefix of ``txs`` within the block's cost budget (later txs may depend on earlier)."""
    budget = CostBudget(params)
    out: list[SignedTx] = []
    for tx in txs:
        if not budget.try_take(tx):
            break
        out.append(tx)
    return out

