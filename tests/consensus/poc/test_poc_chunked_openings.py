"""Openings in chunks: a challenge's sampled rows may be opened over several transactions.

At n = 2048 the 800 sampled rows are about 7 MB, over the gossip message cap,
so a prover that is not the next proposer could not get them to the chain.
Each chunk carries the next consecutive sampled rows; the challenge passes at
the last one, a wrong row in any chunk is a fault, and out-of-order, repeated
or too-small chunks are refused without changing the challenge.
"""

from __future__ import annotations

import dataclasses

import pytest

from consensus.crypto import PrivateKey
from consensus.poc import (
    MAX_OPENING_CHUNKS,
    PocOpenings,
    RowOpening,
    get_min_chunk_rows,
    verify_openings,
)
from consensus.poc.errors import InvalidOpenings
from consensus.poc.sampling import SAMPLE_COUNT
from consensus.poc_state import ChallengeStatus
from consensus.records import Fault, NFTStatus
from consensus.txs import build_tx
from node.compute.service import split_openings
from tests.consensus.test_poc_state import (
    EPOCH,
    Responder,
    challenge_of,
    make_chain,
    nft_of,
    run_to,
)
from tests.kit.chain import TestChain
from tests.kit.poc import Build

# Devnet challenges: n = 256, rows of about 1.8 KB with their paths; 200 KB chunks hold
# 100+ rows, so the 800 samples make 7 chunks (the last one short).
CHUNK_BYTES = 200_000


def test_split_keeps_every_row_in_order_within_the_chunk_rule(build_openings: Build) -> None:
    ch, root, block_hash, openings = build_openings(64, 4096)
    chunks = split_openings(openings, max_bytes=20_000)
    assert 1 < len(chunks) <= MAX_OPENING_CHUNKS
    assert tuple(o for c in chunks for o in c.openings) == openings.openings
    minimum = get_min_chunk_rows(len(openings.openings))
    assert all(len(c.openings) >= minimum for c in chunks[:-1])
    opened = 0
    for chunk in chunks:
        verdict = verify_openings(ch, root, block_hash, chunk, opened)
        assert verdict.passed
        opened += len(chunk.openings)
        assert verdict.rows_left == len(openings.openings) - opened
    assert opened == len(openings.openings)


def test_mainnet_sized_openings_split_into_gossipable_transactions() -> None:
    # 800 rows of n = 2048 int32 entries with 24-hash paths (2^24 rows): about 7.2 MB at once.
    rows = tuple(RowOpening(index=3 * i, row=bytes(4 * 2048), path=(bytes(32),) * 24)
                 for i in range(SAMPLE_COUNT))
    whole = PocOpenings(challenge_id=bytes(32), openings=rows)
    assert len(whole.encode()) > 7_000_000
    chunks = split_openings(whole)
    assert len(chunks) <= MAX_OPENING_CHUNKS
    key = PrivateKey.from_seed(bytes(32))
    for nonce, chunk in enumerate(chunks):
        chunk.validate_basic()
        tx = build_tx(key, "cstake-mainnet", nonce, 10, chunk)
        assert len(tx.raw) < 1 << 20  # under the smallest gossip message cap
    assert tuple(o for c in chunks for o in c.openings) == rows


def test_verify_refuses_out_of_order_repeated_and_short_chunks(build_openings: Build) -> None:
    ch, root, block_hash, openings = build_openings(64, 4096)
    first, second, *_ = split_openings(openings, max_bytes=20_000)
    with pytest.raises(InvalidOpenings, match="next"):
        verify_openings(ch, root, block_hash, second, 0)  # skips the first chunk
    with pytest.raises(InvalidOpenings, match="next"):
        verify_openings(ch, root, block_hash, first, len(first.openings))  # the first again
    short = dataclasses.replace(first, openings=first.openings[:-1])
    if len(short.openings) < get_min_chunk_rows(len(openings.openings)):
        with pytest.raises(InvalidOpenings, match="at least"):
            verify_openings(ch, root, block_hash, short, 0)
    tiny = dataclasses.replace(first, openings=first.openings[:1])
    with pytest.raises(InvalidOpenings, match="at least"):
        verify_openings(ch, root, block_hash, tiny, 0)
    with pytest.raises(InvalidOpenings, match="already open"):
        verify_openings(ch, root, block_hash, first, len(openings.openings))


def _open_in_chunks(cheat: float) -> tuple[TestChain, list[PocOpenings], Responder]:
    chain = make_chain()
    responder = Responder(chain, {i: (cheat if i == 0 else 0.0) for i in range(4)})
    run_to(chain, EPOCH + 3, responder)  # committed at 21, sampled at 23
    responder.answer = {i: 0.0 for i in (1, 2, 3)}  # validator 0's openings are sent by hand
    rec = challenge_of(chain, 0)
    assert rec.status == ChallengeStatus.COMMITTED and rec.sample_hash and rec.opened_rows == 0
    chunks = split_openings(responder.openings(rec, cheat), max_bytes=CHUNK_BYTES)
    samples = sum(len(c.openings) for c in chunks)
    assert len(chunks) == 7 and len(chunks[-1].openings) < get_min_chunk_rows(samples)
    return chain, chunks, responder


def test_chunked_openings_pass_at_the_last_chunk_and_refuse_disorder() -> None:
    chain, chunks, responder = _open_in_chunks(0.0)
    key = chain.operator_keys[0]

    def send(*bodies: PocOpenings) -> list[int]:
        result = chain.next_block(responder.txs() + [chain.tx(key, b) for b in bodies])
        return [r.code for r in result.tx_results[-len(bodies):]]

    # The second chunk before the first: refused, nothing opened.
    assert send(chunks[1])[0] != 0
    assert challenge_of(chain, 0).opened_rows == 0
    assert send(chunks[0]) == [0]
    rec = challenge_of(chain, 0)
    assert (rec.status, rec.opened_rows) == (ChallengeStatus.COMMITTED, len(chunks[0].openings))
    nft = chain.view().get_nft(nft_of(chain, 0))
    assert nft is not None
    units_before = nft.verified_units
    # The first chunk again, and a chunk too small that does not end the samples: refused.
    short = dataclasses.replace(chunks[1], openings=chunks[1].openings[:10])
    assert send(chunks[0], short)[0] != 0 and send(short)[0] != 0
    assert challenge_of(chain, 0).opened_rows == len(chunks[0].openings)
    # The rest, in one block: the challenge passes at the last chunk.
    assert send(*chunks[1:]) == [0] * (len(chunks) - 1)
    rec = challenge_of(chain, 0)
    assert rec.status == ChallengeStatus.PASSED
    assert rec.opened_rows == sum(len(c.openings) for c in chunks)
    nft = chain.view().get_nft(nft_of(chain, 0))
    assert nft is not None and nft.status == NFTStatus.ACTIVE
    assert nft.verified_units == rec.pending_units and nft.last_verified_height == rec.resolved_height
    assert units_before == 3  # the genesis claim until then
    assert not list(chain.view().iter_slashing_records())


def test_a_wrong_row_in_any_chunk_is_a_fault_and_later_chunks_are_refused() -> None:
    chain, chunks, responder = _open_in_chunks(0.02)
    key = chain.operator_keys[0]
    codes = []
    for chunk in chunks:
        result = chain.next_block(responder.txs() + [chain.tx(key, chunk)])
        codes.append(result.tx_results[-1].code)
        if challenge_of(chain, 0).status != ChallengeStatus.COMMITTED:
            break
    rec = challenge_of(chain, 0)
    assert rec.status == ChallengeStatus.FAILED and codes == [0] * len(codes)
    (record,) = list(chain.view().iter_slashing_records())
    assert record.fault == Fault.FAULTY_COMPUTE
    assert record.validator == chain.operator_keys[0].address()
    # A chunk after the fault finds the challenge closed.
    after = chunks[len(codes)] if len(codes) < len(chunks) else chunks[0]
    result = chain.next_block(responder.txs() + [chain.tx(key, after)])
    assert result.tx_results[-1].code != 0
    assert challenge_of(chain, 0).status == ChallengeStatus.FAILED
