"""Block building: the block this validator proposes when the round machine asks for one.

The block follows the committed head: its parent, state root and validator
set hash are the head's, and its last commit is the stored commit of the
previous height with every precommit for that block that arrived during the
commit wait, so a validator that signed a little late is not counted as
absent. Its time is the BFT time of that last commit (the weighted median of
its timestamps, ``consensus.block_time``), not our clock. It carries pending
evidence the state still punishes (a double-sign tombstones its validator, so
one piece per validator at most), compute attestations from the compute
service, and mempool transactions dry-run on the head state, all within
``params.max_block_bytes`` and the transactions within the block's cost
budget (``params.max_block_cost``, ``consensus.costs``): the header, last commit, evidence and
attestations are measured first (attestations, then evidence, give way if
they alone would not fit) and the transactions get the rest. A block that
turns out invalid (a mempool transaction went stale) is replaced by one
without transactions: our own proposal is always valid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from consensus.bft.evidence_pool import EvidencePool
from consensus.bft.machine import MachineContext
from consensus.bft.state import RoundState
from consensus.bft.validation import validate_vote
from consensus.block_time import compute_block_time
from consensus.blocks import Block, EvidenceItem, make_block
from consensus.costs import fit_block_cost
from consensus.errors import ConsensusError
from consensus.evidence import encode_evidence, verify_evidence
from consensus.state import State
from consensus.tx_handlers import TxContext
from consensus.txs import SignedTx
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit, Vote, VoteType, compute_commit
from node.engine.executor import BlockExecutor

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Most evidence a proposer puts in one block.
MAX_BLOCK_EVIDENCE = 16
#: Most pending evidence looked through for a block.
MAX_PENDING_EVIDENCE = 1_024


class Mempool(Protocol):
    def reap(
        self, max_txs: int, max_bytes: int, *, state: State | None = None, ctx: TxContext | None = None
    ) -> list[SignedTx]: ...


class BlockProposer:
    """Builds this validator's blocks from the head, the mempool, the evidence pool and attestations."""

    def __init__(self, executor: BlockExecutor, mempool: Mempool, address: bytes | None) -> None:
        self.executor = executor
        self.mempool = mempool
        self.address = address
        #: Encoded compute attestations for the block built at a height (node.compute).
        self.attestation_source: Callable[[int], tuple[bytes, ...]] | None = None
        self._late_height = 0
        self._late_precommits: dict[bytes, Vote] = {}

    def note_late_precommit(self, state: RoundState, ctx: MachineContext, vote: Vote) -> None:
        """Keep a precommit for the decided block of ``state`` that arrived after the decision.

        The machine decides on the first +2/3; the next block's last commit
        carries every precommit that arrived during the commit wait.
        """
        if (
            vote.vote_type != VoteType.PRECOMMIT
            or vote.round != state.decided_round
            or vote.block_hash != state.decided_value
        ):
            return
        try:
            validate_vote(ctx.chain_id, vote, state.validator_set, state.height, verify=ctx.verify)
        except ConsensusError:
            return
        if self._late_height != state.height:
            self._late_height, self._late_precommits = state.height, {}
        self._late_precommits[vote.validator] = vote

    def get_last_commit(self, height: int) -> Commit | None:
        """Return the commit of ``height`` from the store, with any late precommits added."""
        if height < 1:
            return None
        raw = self.executor.store.blocks.load_commit(height)
        if raw is None:
            raise ConsensusError(f"the commit of height {height} is missing from the store")
        commit = Commit.decode(raw, max_bytes=len(raw))
        if self._late_height != height or not self._late_precommits:
            return commit
        have = {s.validator for s in commit.signatures}
        extra = [v for a, v in self._late_precommits.items() if a not in have]
        if not extra:
            return commit
        votes = list(commit.votes()) + extra
        return compute_commit(commit.height, commit.round, commit.block_hash, votes)

    @staticmethod
    def _select_evidence(head_state: State, pool: EvidencePool, height: int) -> tuple[EvidenceItem, ...]:
        """Pending evidence the state still punishes: one piece per validator, none already tombstoned.

        A double-sign tombstones its validator, after which the state refuses
        any further evidence against it; a block carrying such evidence would be invalid.
        """
        chosen: list[EvidenceItem] = []
        accused: set[bytes] = set()
        for e in pool.get_pending(height, MAX_PENDING_EVIDENCE):
            if len(chosen) >= MAX_BLOCK_EVIDENCE or e.validator in accused:
                continue
            if head_state.is_fault_slashed(e.evidence_hash()):
                continue
            validator = head_state.get_validator(e.validator)
            if validator is not None and validator.tombstoned:
                continue
            # Each piece is checked as the block's validation will check it, so one
            # piece the state would refuse is left out alone, never the whole block.
            vset = head_state.get_validator_set_at(e.height)
            try:
                if vset is None:
                    raise ConsensusError(f"no validator set is known for height {e.height}")
                verify_evidence(head_state.get_chain_info().chain_id, e, vset, height,
                                head_state.get_params().unbonding_blocks)
            except ConsensusError as exc:
                log.warning("pending evidence against %s at height %d left out: %s",
                            e.validator.hex()[:8], e.height, exc)
                continue
            accused.add(e.validator)
            chosen.append(EvidenceItem(*encode_evidence(e)))
        return tuple(chosen)

    def compute_time(self, head_state: State, last_commit: Commit | None, now_ms: int) -> int:
        """Return the time of the block we build: the BFT time of its last commit (``now_ms`` is unused).

        A test fault (``node.engine.faults``) overrides this to date blocks wrongly.
        """
        return compute_block_time(last_commit, head_state.get_last_validator_set(), head_state.get_head().time_ms)

    def _first_valid(
        self, height: int, candidates: list[tuple[str, Callable[[], tuple[Block, list[SignedTx]]]]]
    ) -> Block:
        """Return the first candidate block the executor finds valid, dropping contents step by step.

        Our own block must be valid. Evidence is checked piece by piece before
        it is chosen and transactions are dry-run, so the first candidate is
        valid unless something slipped through; then evidence goes first,
        attestations next, and only as a last resort the transactions.
        """
        block: Block | None = None
        for what, build in candidates:
            block, txs = build()
            try:
                self.executor.validate_block(block, txs)
            except ConsensusError as exc:
                log.warning("built block %d %s is invalid: %s", height, what, exc)
                continue
            return block
        if block is None:
            raise ConsensusError("no candidate block to propose")
        # Not even the empty block is valid (our head is broken): propose it anyway,
        # the others prevote nil and the round moves on to another proposer.
        log.error("no valid block could be built at height %d; proposing the empty one", height)
        return block

    def build_block(
        self, height: int, round_: int, now_ms: int, validator_set: ValidatorSet, pool: EvidencePool
    ) -> Block:
        """Return the block to propose at (height, round), valid on the committed head."""
        t0 = time.perf_counter()
        ex = self.executor
        head_state = ex.head_state()
        params = head_state.get_params()
        last_commit = self.get_last_commit(height - 1)
        time_ms = self.compute_time(head_state, last_commit, now_ms)
        evidence = self._select_evidence(head_state, pool, height)
        attestations = tuple(self.attestation_source(height)) if self.attestation_source else ()

        def assemble(
            txs: list[SignedTx], evidence: tuple[EvidenceItem, ...], attestations: tuple[bytes, ...]
        ) -> Block:
            return make_block(
                chain_id=ex.chain_id,
                height=height,
                round=round_,
                time_ms=time_ms,
                proposer=self.address or b"",
                parent_hash=ex.last_block_hash(),
                last_commit=last_commit,
                txs=tuple(t.raw for t in txs),
                attestations=attestations,
                evidence=evidence,
                state_root=ex.store.state_root,
                validators_hash=validator_set.hash(),
            )

        # Everything but the transactions first: if that alone exceeds the size limit,
        # attestations give way, then evidence (both can wait for a later block).
        max_bytes = params.max_block_bytes
        base = assemble([], evidence, attestations)
        excess = len(base.encode()) - max_bytes
        if excess > 0:
            attestations, excess = _drop_to_fit(attestations, excess, len)
            evidence, excess = _drop_to_fit(evidence, excess, lambda e: len(e.encode()))
            base = assemble([], evidence, attestations)
            log.warning("block %d: attestations and evidence cut to fit %d bytes", height, max_bytes)
        # Dry-run each candidate on the head state so the block never carries a
        # transaction that fails authentication (that would make the block invalid).
        ctx = TxContext(
            chain_id=ex.chain_id,
            height=height,
            time_ms=time_ms,
            proposer=self.address or bytes(20),
            params=params,
        )
        txs = self.mempool.reap(params.max_block_txs, max_bytes - len(base.encode()), state=head_state, ctx=ctx)
        # The block's cost budget is a validity rule (consensus.costs): the mempool reaps
        # within it; a prefix is kept here too, whatever the mempool handed out.
        fitted = fit_block_cost(txs, params)
        if len(fitted) < len(txs):
            log.warning("block %d: %d transactions left out over the cost budget", height, len(txs) - len(fitted))
            txs = fitted
        block = assemble(txs, evidence, attestations)
        # The reaped bytes count the transactions, not their framing in the block:
        # drop the last ones (no kept transaction depends on a later one) until it fits.
        while txs and (excess := len(block.encode()) - max_bytes) > 0:
            kept, _ = _drop_to_fit(tuple(t.raw for t in txs), excess, len)
            txs = txs[: len(kept)]
            block = assemble(txs, evidence, attestations)
        block = self._first_valid(height, [
            ("as built", lambda: (block, txs)),
            ("without evidence", lambda: (assemble(txs, (), attestations), txs)),
            ("without evidence and attestations", lambda: (assemble(txs, (), ()), txs)),
            ("empty", lambda: (assemble([], (), ()), [])),
        ])
        log.debug("built block %d/%d: %d txs in %.0f ms", height, round_, len(block.txs),
                  (time.perf_counter() - t0) * 1000)
        return block


def _drop_to_fit(items: tuple[T, ...], excess: int, size: Callable[[T], int]) -> tuple[tuple[T, ...], int]:
    """Drop trailing ``items`` until their sizes add up to ``excess``; return the rest and the excess left.

    Removing an item from an encoded list shortens it by at least the item's size.
    """
    end = len(items)
    while end > 0 and excess > 0:
        end -= 1
        excess -= size(items[end])
    return items[:end], excess
