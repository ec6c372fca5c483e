"""The block proposer: blocks dated by BFT time, and filled up to params.max_block_bytes, never past it."""

from __future__ import annotations

from consensus.attestation import make_attestation
from consensus.bft.evidence_pool import EvidencePool
from consensus.records import HardwareSpec
from consensus.state import State
from consensus.tx_handlers import TxContext
from consensus.txs import SignedTx, Transfer
from node.engine.executor import BlockExecutor
from node.engine.proposer import BlockProposer
from storage import NodeStore
from tests.kit.chain import TestChain

HOUR_MS = 3_600_000
SPEC = HardwareSpec(device_kind=0, model="test", cores=2, memory_mb=1024)


class ListMempool:
    """Hands out its transactions in order while their bytes fit the budget (as the mempool does)."""

    def __init__(self, txs: list[SignedTx] | None = None) -> None:
        self.txs = txs or []

    def reap(
        self, max_txs: int, max_bytes: int, *, state: State | None = None, ctx: TxContext | None = None
    ) -> list[SignedTx]:
        out: list[SignedTx] = []
        total = 0
        for tx in self.txs[:max_txs]:
            if total + len(tx.raw) > max_bytes:
                break
            out.append(tx)
            total += len(tx.raw)
        return out


def _node_at(chain: TestChain, height: int) -> BlockExecutor:
    """A node that committed the chain's blocks up to ``height`` with the commits the chain signed."""
    ex = BlockExecutor(NodeStore.open_memory(), chain.genesis)
    ex.init_genesis()
    for _ in range(height):
        block = chain.build_block(state_root=ex.store.state_root)
        chain.apply(block)
        assert chain.last_commit is not None
        ex.commit_block(block, chain.last_commit)
    return ex


def _proposer(ex: BlockExecutor, mempool: ListMempool) -> BlockProposer:
    return BlockProposer(ex, mempool, ex.validator_set().compute_proposer(0).address)


def test_block_is_dated_by_its_last_commit_not_by_the_clock() -> None:
    chain = TestChain(n_validators=4)
    ex = _node_at(chain, 0)
    first = _proposer(ex, ListMempool()).build_block(1, 0, chain.genesis_time_ms + HOUR_MS, ex.validator_set(),
                                                      EvidencePool(100))
    assert first.header.time_ms == chain.genesis_time_ms + 1
    ex = _node_at(chain, 3)
    proposer = _proposer(ex, ListMempool())
    for now_ms in (0, chain.time_ms, chain.time_ms + HOUR_MS):
        block = proposer.build_block(4, 0, now_ms, ex.validator_set(), EvidencePool(100))
        # The stored commit of height 3 is stamped a second after block 3.
        assert block.header.time_ms == chain.time_ms + 1_000
        ex.validate_block(block)


def test_block_is_filled_with_transactions_up_to_max_block_bytes() -> None:
    limit = 4_096
    chain = TestChain(n_validators=4, params={"max_block_bytes": limit, "max_tx_bytes": 1_024})
    ex = _node_at(chain, 2)
    sender, to = chain.account_keys[0], chain.account_keys[1].address()
    txs = [chain.tx(sender, Transfer(to, 1 + i)) for i in range(60)]
    assert sum(len(t.raw) for t in txs) > 2 * limit
    block = _proposer(ex, ListMempool(txs)).build_block(3, 0, chain.time_ms, ex.validator_set(), EvidencePool(100))
    size = len(block.encode())
    assert size <= limit
    assert 0 < len(block.txs) < len(txs)
    # Full: the next transaction would not have fitted.
    assert limit - size < len(txs[len(block.txs)].raw)
    ex.validate_block(block)


def _attesting_chain(limit: int) -> tuple[TestChain, BlockExecutor, tuple[bytes, ...]]:
    chain = TestChain(n_validators=4, params={"max_block_bytes": limit, "max_tx_bytes": 256})
    ex = _node_at(chain, 2)
    view = chain.view()
    attestations = []
    for i in range(4):
        validator = chain.operator_keys[i].address()
        nft_id = next(iter(view.iter_validator_nft_ids(validator)))
        att = make_attestation(chain.consensus_keys[i], chain.chain_id, nft_id=nft_id, validator=validator,
                               spec=SPEC, measured_units=7, height=2)
        attestations.append(att.encode())
    return chain, ex, tuple(attestations)


def test_attestations_that_do_not_fit_wait_for_a_later_block() -> None:
    chain, ex, attestations = _attesting_chain(1 << 20)
    proposer = _proposer(ex, ListMempool())
    proposer.attestation_source = lambda height: attestations
    full = proposer.build_block(3, 0, chain.time_ms, ex.validator_set(), EvidencePool(100))
    assert full.attestations == attestations
    # One byte less than all four need: the last attestation is left out, the rest is valid.
    limit = len(full.encode()) - 1
    chain, ex, attestations = _attesting_chain(limit)
    proposer = _proposer(ex, ListMempool())
    proposer.attestation_source = lambda height: attestations
    block = proposer.build_block(3, 0, chain.time_ms, ex.validator_set(), EvidencePool(100))
    assert block.attestations == attestations[:3]
    assert len(block.encode()) <= limit
    ex.validate_block(block)


def _double_sign(chain: TestChain, index: int, height: int, *, forged: bool = False):  # type: ignore[no-untyped-def]
    from consensus.crypto import Domain
    from consensus.evidence import compute_duplicate_vote_evidence
    from consensus.hashing import hash32
    from consensus.votes import Vote, VoteType

    op, cons = chain.operator_keys[index], chain.consensus_keys[index]
    votes = []
    for tag in (b"a", b"b"):
        v = Vote(height, 0, VoteType.PREVOTE, hash32(tag), op.address(), 1, b"")
        sig = bytes(64) if forged else cons.sign(Domain.VOTE, chain.chain_id, v.sign_payload())
        votes.append(v.with_signature(sig))
    return compute_duplicate_vote_evidence(votes[0], votes[1])


def test_one_bad_evidence_piece_is_left_out_alone_not_the_whole_block() -> None:
    from consensus.evidence import encode_evidence

    chain = TestChain(n_validators=4)
    ex = _node_at(chain, 2)
    sender, to = chain.account_keys[0], chain.account_keys[1].address()
    txs = [chain.tx(sender, Transfer(to, 1 + i)) for i in range(5)]
    pool = EvidencePool(100)  # no authentication hook: the pool takes what it is given
    good, bad = _double_sign(chain, 1, 1), _double_sign(chain, 2, 2, forged=True)
    assert pool.add(bad) and pool.add(good)
    block = _proposer(ex, ListMempool(txs)).build_block(3, 0, chain.time_ms, ex.validator_set(), pool)
    # The forged piece would make the block invalid: it alone stays out; the
    # transactions, and the real evidence, are proposed.
    assert [(e.kind, e.data) for e in block.evidence] == [encode_evidence(good)]
    assert len(block.txs) == len(txs)
    ex.validate_block(block)


def test_block_keeps_the_cost_budget_whatever_the_mempool_hands_out() -> None:
    from consensus.costs import compute_block_cost
    from tests.kit.jobs import matmul_body

    chain = TestChain(n_validators=4, params={"max_heavy_txs_per_block": 3})
    ex = _node_at(chain, 2)
    body = matmul_body(m=256, n=256, bid=1, escrow=10_000)
    txs = [chain.tx(chain.account_keys[i % 4], body, fee=100) for i in range(6)]
    block = _proposer(ex, ListMempool(txs)).build_block(3, 0, chain.time_ms, ex.validator_set(), EvidencePool(100))
    params = ex.head_state().get_params()
    assert len(block.txs) == 3
    assert compute_block_cost(txs[:3], params).heavy == 3
    ex.validate_block(block)
