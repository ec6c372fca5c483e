"""The mempool: checked transactions waiting for a block, bounded and ordered by fee.

Rules (stated here because peers and users depend on them):

- **Admission** runs consensus ``check_tx`` against the head state, with the
  sender's account adjusted for what it already has queued: the nonce must be
  exactly the next one (account nonce + queued count) — a nonce that would
  leave a gap is refused, never held — and the balance left after the queued
  transactions' fees and known spends (transfer amount, bond, delegation,
  collateral, escrow) must pay the fee. The signature is verified here, once;
  its tx id then goes into a bounded ``SignatureCache`` that the block executor
  passes to ``state_transition(..., sig_cache=mempool.sig_cache)``.
- **Replacement**: a transaction with the same sender and nonce as a queued one
  replaces it only if its fee is at least ``replace_bump_percent`` (default 10%)
  higher and strictly higher.
- **Bounds**: ``max_txs``, ``max_bytes`` and ``max_txs_per_sender``. When full,
  the lowest-fee *sender tail* (the last queued nonce of some other sender, so
  no queue ever gets a gap) is evicted if it pays less than the newcomer;
  otherwise the newcomer is refused.
- **Peers first when nearly full**: a client's transaction (``add(...,
  from_client=True)``: the RPC) sees the pool as full at ``CLIENT_FILL_PERCENT``
  (90%) of ``max_txs`` and ``max_bytes``; the last tenth is kept for
  transactions that peers already accepted from their clients. Otherwise an
  overloaded node takes in new client transactions and refuses its peers'
  gossip, and once one of a sender's transactions is refused the rest of its
  queue is refused as nonce gaps: the mempools drift apart, and every compact
  proposal block then has to fetch what it carries. A client gets the refusal
  (code 100) at once, before any signature check, and can back off.
- **Proof-of-compute answers first**: a commitment or openings transaction
  (a duty kind, ``consensus.costs.is_duty_kind``) that its challenge is
  waiting for (a dry run of it on the head state succeeds) may evict a
  sender tail paying as much as it does when the pool is full, and is reaped
  before every other transaction. A prover that misses its deadline is
  slashed: under a flood of transfers at the minimum fee its answers waited
  behind thousands of them (refused when the pool was full, or reaped in
  arrival order), and honest validators were slashed. A duty-kind
  transaction that is not a live answer gets nothing from its kind.
- **Reaping** for a block: highest fee first among the senders' next
  transactions, each sender's in nonce order. With a state, every candidate is
  dry-run through the real state transition so a block never carries a
  transaction that fails authentication, and the block's cost budget
  (``params.max_block_cost``, ``params.max_heavy_txs_per_block``,
  ``consensus.costs``) is kept: a candidate that does not fit is skipped with
  its sender's later transactions, before its dry run.
- **Price**: admission's ``check_tx`` refuses a fee below the transaction's
  cost price (``consensus.costs.get_min_fee``) with ``fee_too_low``, so a
  heavy transaction never waits here underpriced.
- **After a commit** (``update``): included transactions leave; with
  ``recheck``, every sender's queue is re-validated against the new state (nonce
  and cumulative fee payability) and what became invalid is evicted.

Every add costs O(log n) besides the one signature check: per-sender queues
are dicts keyed by nonce, and eviction uses a lazily cleaned min-heap of tails.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from consensus.costs import CostBudget, is_duty_kind, measure_tx
from consensus.errors import ConsensusError, InvalidTransaction, TxAuthError
from consensus.params import Params
from consensus.records import Account
from consensus.state import State
from consensus.transition import check_tx, process_transaction
from consensus.tx_handlers import TxContext
from consensus.txs import SignedTx, get_body_spend
from node.config import MempoolSection
from node.mempool.sigcache import SignatureCache

#: A client's transaction is refused (unless it outbids a queued tail) once the pool holds
#: this share of its bounds; the rest is kept for transactions peers already accepted.
CLIENT_FILL_PERCENT = 90

# Result codes of mempool refusals (consensus auth failures keep their own codes 1-19).
CODE_OK = 0
CODE_FULL = 100
CODE_DUPLICATE = 101
CODE_NONCE_GAP = 102
CODE_UNDERPRICED = 103
CODE_SENDER_LIMIT = 104

#: Refusal reasons and codes of the consensus auth errors, for counters.
AUTH_REASONS = {
    2: "wrong_chain_id",
    3: "bad_nonce",
    4: "fee_too_low",
    5: "cannot_pay_fee",
    6: "bad_signature",
    7: "malformed",
}


@dataclass(frozen=True, slots=True)
class AddResult:
    """What happened to a transaction offered to the mempool."""

    tx_hash: bytes
    accepted: bool
    #: 0 when accepted; a consensus auth code (1-19) or a mempool code (100+).
    code: int
    #: Why it was refused (empty when accepted).
    log: str
    #: Counter name of the refusal ("" when accepted).
    reason: str = ""
    #: The transaction it replaced (same sender and nonce), if any.
    replaced: bytes | None = None
    #: Transactions evicted to make room.
    evicted: tuple[bytes, ...] = ()


@dataclass(slots=True)
class MempoolStats:
    """Counters since start."""

    added: int = 0
    replaced: int = 0
    committed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    evicted: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def evict(self, reason: str, n: int = 1) -> None:
        self.evicted[reason] = self.evicted.get(reason, 0) + n


@dataclass(slots=True)
class _Entry:
    tx: SignedTx
    sender: bytes
    nonce: int
    fee: int
    size: int
    #: Tokens this transaction takes from the sender's balance if it succeeds (fee included).
    spend: int
    seq: int


@dataclass(slots=True)
class _Queue:
    """One sender's transactions: nonces lo .. hi-1, no gaps."""

    lo: int
    hi: int
    txs: dict[int, _Entry] = field(default_factory=dict)
    spend: int = 0


def compute_spend(tx: SignedTx) -> int:
    """Return the tokens ``tx`` takes from its sender's balance: the fee plus known spends."""
    try:
        body = tx.payload.decode_body()
    except ConsensusError:
        return tx.payload.fee
    return tx.payload.fee + get_body_spend(body)


class _RawRecord:
    """Passes a record's bytes through ``State.iter_records`` undecoded."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    @classmethod
    def decode(cls, data: bytes, *, max_bytes: int = 0) -> _RawRecord:
        return cls(data)


class StateAsReader:
    """Lets a ``State`` overlay (with its pending writes) serve as the base of another."""

    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    def get(self, key: bytes) -> bytes | None:
        return self._state.get_raw(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key, rec in self._state.iter_records(prefix, _RawRecord):  # type: ignore[type-var]
            yield key, rec.data if isinstance(rec, _RawRecord) else rec.encode()


class Mempool:
    """Checked transactions waiting for a block."""

    def __init__(
        self,
        *,
        max_txs: int = 20_000,
        max_bytes: int = 64 << 20,
        max_txs_per_sender: int = 1_000,
        replace_bump_percent: int = 10,
        recheck: bool = True,
        sig_cache: SignatureCache | None = None,
        state: State | None = None,
    ) -> None:
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.max_txs_per_sender = max_txs_per_sender
        self.replace_bump_percent = replace_bump_percent
        self.recheck = recheck
        self.sig_cache = sig_cache if sig_cache is not None else SignatureCache()
        self.stats = MempoolStats()
        self._state = state
        self._by_hash: dict[bytes, _Entry] = {}
        self._queues: dict[bytes, _Queue] = {}
        self._bytes = 0
        self._seq = itertools.count()
        # Min-heap of (fee, -seq, tx_hash) for sender tails; stale entries skipped lazily.
        self._tails: list[tuple[int, int, bytes]] = []

    @classmethod
    def from_config(cls, cfg: MempoolSection, state: State | None = None) -> Mempool:
        """Build from the ``[mempool]`` section of config.toml."""
        return cls(
            max_txs=cfg.max_txs,
            max_bytes=cfg.max_bytes,
            max_txs_per_sender=cfg.max_txs_per_sender,
            replace_bump_percent=cfg.replace_bump_percent,
            recheck=cfg.recheck,
            sig_cache=SignatureCache(cfg.sig_cache_size),
            state=state,
        )

    # -- reads ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    @property
    def size(self) -> int:
        return len(self._by_hash)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def get(self, tx_hash: bytes) -> SignedTx | None:
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.tx

    def get_raw(self, tx_hash: bytes) -> bytes | None:
        """The wire bytes of a pooled transaction by id (compact proposal blocks are rebuilt from them)."""
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.tx.raw

    def next_nonce(self, sender: bytes, account_nonce: int) -> int:
        """Return the nonce a new transaction from ``sender`` must carry."""
        q = self._queues.get(sender)
        return account_nonce if q is None or q.hi < account_nonce else q.hi

    def list_txs(self, limit: int) -> list[SignedTx]:
        """Return up to ``limit`` queued transactions in reap order (highest fee first)."""
        return self.reap(limit, 1 << 62)

    # -- admission ------------------------------------------------------------------

    def _refuse(self, tx: SignedTx, code: int, reason: str, log: str) -> AddResult:
        self.stats.reject(reason)
        return AddResult(tx.tx_hash, False, code, log, reason)

    def add(self, tx: SignedTx, state: State | None = None, *, from_client: bool = False) -> AddResult:
        """Check ``tx`` against the head state and queue it; never raises for a bad tx.

        ``from_client``: it came from a client of this node (the RPC), not from a
        peer: the pool counts as full for it at ``CLIENT_FILL_PERCENT``.
        """
        state = state if state is not None else self._state
        if state is None:
            raise RuntimeError("Mempool.add needs a state: pass one or call update() first")
        if tx.tx_hash in self._by_hash:
            return self._refuse(tx, CODE_DUPLICATE, "duplicate", "transaction is already in the mempool")
        p = tx.payload
        max_txs, max_bytes = self.max_txs, self.max_bytes
        if from_client:
            max_txs = max_txs * CLIENT_FILL_PERCENT // 100
            max_bytes = max_bytes * CLIENT_FILL_PERCENT // 100
            # Cheap refusal first: nothing queued is cheaper (the heap's top is a lower
            # bound of the cheapest tail), so nothing could make room for it.
            if ((len(self._by_hash) >= max_txs or self._bytes + len(tx.raw) > max_bytes)
                    and (not self._tails or self._tails[0][0] >= p.fee)):
                return self._refuse(
                    tx, CODE_FULL, "full",
                    f"mempool is {CLIENT_FILL_PERCENT}% full ({len(self._by_hash)} txs, {self._bytes} bytes), "
                    f"the rest is kept for transactions from peers, and no queued transaction pays less "
                    f"than fee {p.fee}: try again later",
                )
        sender = p.sender
        acct = state.get_account(sender)
        q = self._queues.get(sender)
        if q is not None and q.lo < acct.nonce:
            self._prune_queue(sender, q, acct.nonce, "stale")
            q = self._queues.get(sender)
        expected = acct.nonce if q is None else q.hi
        if p.nonce > expected:
            return self._refuse(
                tx, CODE_NONCE_GAP, "nonce_gap",
                f"nonce {p.nonce} leaves a gap: the next nonce of this sender is {expected} "
                f"(account nonce {acct.nonce} + {0 if q is None else len(q.txs)} queued)",
            )
        old = None if q is None or p.nonce < acct.nonce else q.txs.get(p.nonce)
        if old is not None:
            bump = self.replace_bump_percent
            if p.fee <= old.fee or p.fee * 100 < old.fee * (100 + bump):
                return self._refuse(
                    tx, CODE_UNDERPRICED, "underpriced_replacement",
                    f"a transaction with nonce {p.nonce} is queued with fee {old.fee}; "
                    f"a replacement must pay at least {bump}% more "
                    f"({max(old.fee + 1, -(-old.fee * (100 + bump) // 100))})",
                )
        elif q is not None and len(q.txs) >= self.max_txs_per_sender and p.nonce >= acct.nonce:
            return self._refuse(
                tx, CODE_SENDER_LIMIT, "sender_limit",
                f"sender already has {len(q.txs)} queued transactions (limit {self.max_txs_per_sender})",
            )
        # Balance left for this tx after the spends queued before it.
        spent_before = 0
        if q is not None and p.nonce >= acct.nonce:
            if old is None:
                spent_before = q.spend
            else:
                spent_before = sum(e.spend for n, e in q.txs.items() if n < p.nonce)
        # A stale nonce is left for check_tx to refuse with its own BadNonce message.
        nonce_for_check = p.nonce if p.nonce >= acct.nonce else acct.nonce
        view = State(StateAsReader(state))
        view.set_account(sender, Account(max(acct.balance - spent_before, 0), nonce_for_check))
        try:
            info = state.get_chain_info()
            params = state.get_params()
            check_tx(view, tx, info.chain_id, params, self.sig_cache)
        except TxAuthError as exc:
            return self._refuse(tx, exc.code, AUTH_REASONS.get(exc.code, "invalid"), str(exc))
        self.sig_cache.add(tx.tx_hash)
        spend = compute_spend(tx)
        avail = acct.balance - spent_before
        if spend > avail:
            # A spend beyond the balance fails at execution (fee still charged): count the fee only.
            spend = p.fee
        if old is not None and q is not None and q.spend - old.spend + spend > acct.balance:
            return self._refuse(
                tx, CODE_UNDERPRICED, "underpriced_replacement",
                "the replacement would leave later queued transactions unable to pay their fees",
            )
        size = len(tx.raw)
        evicted: tuple[bytes, ...] = ()
        if old is None:
            need_txs = len(self._by_hash) + 1 - max_txs
            need_bytes = self._bytes + size - max_bytes
            if need_txs > 0 or need_bytes > 0:
                answer = is_duty_kind(p.kind) and self._is_live_answer(view, tx, state)
                victims = self._find_victims(p.fee, sender, need_txs, need_bytes, equal_fee=answer)
                if victims is None:
                    return self._refuse(
                        tx, CODE_FULL, "full",
                        f"mempool is full ({len(self._by_hash)} txs, {self._bytes} bytes) and no "
                        f"queued transaction pays less than fee {p.fee}",
                    )
                for victim in victims:
                    self._remove_tail(victim)
                self.stats.evict("full", len(victims))
                evicted = tuple(victims)
        entry = _Entry(tx, sender, p.nonce, p.fee, size, spend, next(self._seq))
        if old is not None and q is not None:
            self._drop_entry(old)
            q.spend -= old.spend
            q.txs[p.nonce] = entry
            q.spend += spend
            self.stats.replaced += 1
        else:
            if q is None:
                q = _Queue(lo=p.nonce, hi=p.nonce)
                self._queues[sender] = q
            q.txs[p.nonce] = entry
            q.hi = p.nonce + 1
            q.spend += spend
        self._by_hash[tx.tx_hash] = entry
        self._bytes += size
        if entry.nonce == q.hi - 1:
            heapq.heappush(self._tails, (entry.fee, -entry.seq, tx.tx_hash))
        self.stats.added += 1
        self._maybe_compact_tails()
        return AddResult(tx.tx_hash, True, CODE_OK, "", "", None if old is None else old.tx.tx_hash, evicted)

    # -- eviction -----------------------------------------------------------------------

    def _is_tail(self, tx_hash: bytes) -> bool:
        entry = self._by_hash.get(tx_hash)
        if entry is None:
            return False
        q = self._queues[entry.sender]
        return entry.nonce == q.hi - 1

    def _is_live_answer(self, view: State, tx: SignedTx, head: State) -> bool:
        """Whether the duty transaction ``tx`` is an answer its challenge waits for: it runs without failing.

        ``view`` is the head state with the sender's account as admission sees it.
        """
        overlay = State(StateAsReader(view))
        try:
            result = process_transaction(overlay, tx, _next_context(head), self.sig_cache)
        except (TxAuthError, InvalidTransaction):
            return False
        return result.code == 0

    def _find_victims(
        self, fee: int, sender: bytes, need_txs: int, need_bytes: int, *, equal_fee: bool = False
    ) -> list[bytes] | None:
        """Pop sender tails cheaper than ``fee`` until enough room; None (and restore) if impossible.

        ``equal_fee`` (a live proof-of-compute answer): tails paying exactly ``fee``
        may go too, but never another duty transaction.
        """
        popped: list[tuple[int, int, bytes]] = []
        victims: list[bytes] = []
        freed_txs = 0
        freed_bytes = 0
        seen_senders: set[bytes] = set()
        while (freed_txs < need_txs or freed_bytes < need_bytes) and self._tails:
            item = heapq.heappop(self._tails)
            tail_fee, _, tx_hash = item
            if not self._is_tail(tx_hash):
                continue  # stale heap entry
            popped.append(item)
            if tail_fee > fee or (tail_fee == fee and not equal_fee):
                break
            entry = self._by_hash[tx_hash]
            if entry.sender == sender or entry.sender in seen_senders:
                continue
            if tail_fee == fee and is_duty_kind(entry.tx.payload.kind):
                continue
            seen_senders.add(entry.sender)
            victims.append(tx_hash)
            freed_txs += 1
            freed_bytes += entry.size
        if freed_txs >= need_txs and freed_bytes >= need_bytes:
            for item in popped:
                if item[2] not in victims:
                    heapq.heappush(self._tails, item)
            return victims
        for item in popped:
            heapq.heappush(self._tails, item)
        return None

    def _drop_entry(self, entry: _Entry) -> None:
        del self._by_hash[entry.tx.tx_hash]
        self._bytes -= entry.size

    def _remove_tail(self, tx_hash: bytes) -> None:
        entry = self._by_hash[tx_hash]
        q = self._queues[entry.sender]
        del q.txs[entry.nonce]
        q.hi -= 1
        q.spend -= entry.spend
        self._drop_entry(entry)
        if not q.txs:
            del self._queues[entry.sender]
        else:
            new_tail = q.txs[q.hi - 1]
            heapq.heappush(self._tails, (new_tail.fee, -new_tail.seq, new_tail.tx.tx_hash))

    def _prune_queue(self, sender: bytes, q: _Queue, account_nonce: int, reason: str) -> int:
        """Drop ``sender``'s queued nonces below ``account_nonce``; return how many."""
        dropped = 0
        while q.lo < account_nonce and q.lo < q.hi:
            entry = q.txs.pop(q.lo)
            q.spend -= entry.spend
            self._drop_entry(entry)
            q.lo += 1
            dropped += 1
        if not q.txs:
            del self._queues[sender]
        if dropped and reason:
            self.stats.evict(reason, dropped)
        return dropped

    def _truncate_from(self, sender: bytes, q: _Queue, nonce: int, reason: str) -> None:
        """Drop ``sender``'s queued nonces from ``nonce`` on (later ones depend on it)."""
        n = 0
        for k in range(nonce, q.hi):
            entry = q.txs.pop(k)
            q.spend -= entry.spend
            self._drop_entry(entry)
            n += 1
        q.hi = nonce
        if not q.txs:
            del self._queues[sender]
        else:
            tail = q.txs[q.hi - 1]
            heapq.heappush(self._tails, (tail.fee, -tail.seq, tail.tx.tx_hash))
        self.stats.evict(reason, n)

    def _maybe_compact_tails(self) -> None:
        if len(self._tails) > 2 * len(self._queues) + 1024:
            self._tails = [t for t in self._tails if self._is_tail(t[2])]
            heapq.heapify(self._tails)

    # -- after a commit --------------------------------------------------------------

    def update(
        self,
        committed_tx_hashes: Iterable[bytes],
        new_state: State,
        changed_accounts: Iterable[bytes] | None = None,
    ) -> int:
        """Forget included transactions and re-check the rest against ``new_state``.

        ``changed_accounts`` (addresses whose account record the block changed)
        limits the re-check to those senders; None re-checks every sender.
        Returns how many queued transactions were evicted as no longer valid.
        """
        self._state = new_state
        touched: set[bytes] = set()
        for tx_hash in committed_tx_hashes:
            self.sig_cache.discard(tx_hash)
            entry = self._by_hash.get(tx_hash)
            if entry is None:
                continue
            touched.add(entry.sender)
            self.stats.committed += 1
        evicted = 0
        if self.recheck:
            senders = list(self._queues) if changed_accounts is None else set(changed_accounts) | touched
        else:
            senders = touched
        for sender in senders:
            q = self._queues.get(sender)
            if q is None:
                continue
            acct = new_state.get_account(sender)
            # Nonces below the account's are done (included here or elsewhere).
            self._prune_queue(sender, q, acct.nonce, "")
            q = self._queues.get(sender)
            if q is None or not self.recheck:
                continue
            if q.lo > acct.nonce:
                # The account nonce is below the queue (cannot happen on one chain): drop it.
                evicted += len(q.txs)
                self._truncate_from(sender, q, q.lo, "invalid")
                continue
            balance = acct.balance
            for nonce in range(q.lo, q.hi):
                entry = q.txs[nonce]
                if balance < entry.fee:
                    evicted += q.hi - nonce
                    self._truncate_from(sender, q, nonce, "invalid")
                    break
                balance -= entry.spend if entry.spend <= balance else entry.fee
        self._maybe_compact_tails()
        return evicted

    # -- reaping ------------------------------------------------------------------------

    def reap(
        self,
        max_txs: int,
        max_bytes: int,
        *,
        state: State | None = None,
        ctx: TxContext | None = None,
    ) -> list[SignedTx]:
        """Return transactions for a block: highest fee first, each sender in nonce order.

        With ``state``, live proof-of-compute answers come before the fee order (see
        the module docstring). With ``state`` (the committed head), each candidate is dry-run through
        ``process_transaction`` on an overlay and a sender's remaining queue is
        skipped at its first authentication failure, so the block is valid.
        ``ctx`` defaults to the next height at the head time + 1 ms.
        """
        out: list[SignedTx] = []
        if max_txs <= 0:
            return out
        overlay: State | None = None
        budget: CostBudget | None = None
        if state is not None:
            overlay = State(StateAsReader(state))
            if ctx is None:
                ctx = _next_context(state)
            budget = CostBudget(ctx.params)

        def key(entry: _Entry, sender: bytes, nonce: int) -> tuple[int, int, int, bytes, int]:
            # Rank 0: a proof-of-compute answer, tried before the fee order (only with a state
            # to dry-run it on); one that is not a live answer goes back at rank 1.
            rank = 0 if overlay is not None and is_duty_kind(entry.tx.payload.kind) else 1
            return (rank, -entry.fee, entry.seq, sender, nonce)

        heap = [key(q.txs[q.lo], sender, q.lo) for sender, q in self._queues.items()]
        heapq.heapify(heap)
        total = 0
        while heap and len(out) < max_txs:
            rank, _, _, sender, nonce = heapq.heappop(heap)
            q = self._queues[sender]
            entry = q.txs[nonce]
            if total + entry.size > max_bytes:
                continue  # this sender's later txs depend on this one: skip the sender
            cost, heavy = (0, False) if budget is None else measure_tx(entry.tx, budget.params)
            # Checked before the dry run, so a heavy transaction that does not fit costs us nothing.
            if budget is not None and not budget.fits(cost, heavy):
                continue  # over the block's cost budget: skip the sender, as for bytes
            if overlay is not None and ctx is not None:
                mark = overlay.checkpoint()
                try:
                    result = process_transaction(overlay, entry.tx, ctx, self.sig_cache)
                except (TxAuthError, InvalidTransaction):
                    overlay.revert(mark)
                    continue
                if rank == 0 and result.code != 0:
                    overlay.revert(mark)  # not a live answer: it waits its turn by fee
                    heapq.heappush(heap, (1, -entry.fee, entry.seq, sender, nonce))
                    continue
            if budget is not None:
                budget.take(cost, heavy)
            out.append(entry.tx)
            total += entry.size
            if nonce + 1 < q.hi:
                heapq.heappush(heap, key(q.txs[nonce + 1], sender, nonce + 1))
        return out


def _next_context(state: State) -> TxContext:
    head = state.get_head()
    params: Params = state.get_params()
    return TxContext(
        chain_id=state.get_chain_info().chain_id,
        height=head.height + 1,
        time_ms=head.time_ms + 1,
        proposer=bytes(20),
        params=params,
    )
