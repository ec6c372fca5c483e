"""The executor takes a peer's block transactions decoded from the mempool, and only when the bytes are the block's."""

from __future__ import annotations

import dataclasses

from consensus.blocks import Block
from consensus.txs import SignedTx, Transfer
from node.engine.executor import BlockExecutor
from storage import NodeStore
from tests.kit.chain import TestChain


class Source:
    """A mempool's ``get``: decoded transactions by id, counting the lookups."""

    def __init__(self, txs: list[SignedTx]) -> None:
        self.by_id = {t.tx_hash: t for t in txs}
        self.asked = 0

    def __call__(self, tx_id: bytes) -> SignedTx | None:
        self.asked += 1
        return self.by_id.get(tx_id)


def _setup(n_txs: int = 5) -> tuple[TestChain, list[SignedTx], Block]:
    chain = TestChain(n_validators=4)
    sender, to = chain.account_keys[0], chain.account_keys[1].address()
    txs = [chain.tx(sender, Transfer(to, 1 + i)) for i in range(n_txs)]
    ex = BlockExecutor(NodeStore.open_memory(), chain.genesis)
    ex.init_genesis()
    block = chain.build_block(txs, state_root=ex.store.state_root)
    return chain, txs, block


def _executor(chain: TestChain, source: Source | None) -> BlockExecutor:
    ex = BlockExecutor(NodeStore.open_memory(), chain.genesis, tx_source=source)
    ex.init_genesis()
    return ex


def test_a_block_whose_transactions_the_mempool_holds_runs_on_the_mempools_objects() -> None:
    chain, txs, block = _setup()
    # The block carries copies of the wire bytes, as a rebuilt or fetched block would.
    block = dataclasses.replace(block, txs=tuple(bytes(bytearray(t)) for t in block.txs))
    source = Source(txs)
    result = _executor(chain, source).validate_block(block)
    assert source.asked == len(txs)
    assert all(got is want for got, want in zip(result.txs, txs, strict=True))
    assert [r.code for r in result.tx_results] == [0] * len(txs)


def test_one_transaction_missing_from_the_mempool_decodes_the_whole_block() -> None:
    chain, txs, block = _setup()
    source = Source(txs[:-1])
    result = _executor(chain, source).validate_block(block)
    assert all(got is not want for got, want in zip(result.txs, txs, strict=True))
    assert [t.raw for t in result.txs] == list(block.txs)
    assert [r.code for r in result.tx_results] == [0] * len(txs)


def test_a_source_answering_other_bytes_for_an_id_is_not_used() -> None:
    chain, txs, block = _setup()
    other = chain.tx(chain.account_keys[2], Transfer(chain.account_keys[3].address(), 7))
    lying = Source(txs)
    lying.by_id[txs[2].tx_hash] = other  # a wrong answer must not change what runs
    result = _executor(chain, lying).validate_block(block)
    assert [t.raw for t in result.txs] == list(block.txs)
    assert other not in result.txs
    plain = _executor(chain, None).validate_block(block)
    assert result.changes == plain.changes
    assert result.tx_results == plain.tx_results
