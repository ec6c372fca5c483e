"""The rows a prover must open come from a seed the proposer cannot grind through its last commit.

A proposer chooses which precommits beyond +2/3 its block's last commit
carries. When the samples came from that commit's hash, each choice gave
other rows, so a proposer (or a prover that is one) could try subsets until
the rows suited a cheating prover. The seed is now the hash of the sample
block's parent, a block built after the commitment's: every valid version of
the sample block, whatever its signer subset, fixes the same rows. Both the
proof-of-compute challenges and the job marketplace's slots are checked: for
each block after the commitment, two versions with different signer subsets
must leave the same samples (and the samples must end up fixed).
"""

from __future__ import annotations

import dataclasses

from consensus.blocks import Block
from consensus.jobs.store import get_job
from consensus.poc import derive_sample_indices, get_sample_height
from consensus.poc_state import _schedule, get_challenge, get_poc_params
from consensus.state import DictStateReader, Keys, State
from consensus.transition import state_transition
from tests.kit.chain import TestChain, put_committed_challenge
from tests.kit.jobs import commit, honest_leaves, job_of, matmul_body

#: Two quorums of the 4-validator chain (stakes 10k, 20k, 30k, 40k: 90k and 100k of 100k).
SUBSETS = ([1, 2, 3], [0, 1, 2, 3])


def _versions(chain: TestChain) -> list[tuple[Block, State]]:
    """The next block built with each signer subset in its last commit, and the state after it."""
    head, _vset, _ = chain._head  # type: ignore[misc]
    out = []
    for signers in SUBSETS:
        chain.last_commit = chain.sign_commit(head, signers=signers)
        block = chain.build_block()
        reader = DictStateReader(dict(chain.state.data))
        reader.apply(state_transition(chain.state, block).changes)
        out.append((block, State(reader)))
    chain.last_commit = None
    return out


def test_poc_samples_do_not_depend_on_the_last_commit_signers() -> None:
    chain = TestChain()
    chain.next_block()
    ch, _, _ = put_committed_challenge(chain, 64, 4_096)
    # The commitment is in the next block: schedule its sample step as process_poc_commit does.
    st = State(chain.state)
    rec = get_challenge(st, ch.id)
    assert rec is not None
    commit_height = chain.height + 1
    st.put_record(Keys.challenge(ch.id), dataclasses.replace(rec, commit_height=commit_height))
    _schedule(st, get_sample_height(commit_height, get_poc_params(st.get_params())), ch.id)
    chain.state.apply(st.changes())
    chain.next_block()  # the commitment's block
    seen = []
    for _ in range(3):
        versions = _versions(chain)
        (block_a, after_a), (block_b, after_b) = versions
        assert block_a.header.last_commit_hash != block_b.header.last_commit_hash
        rec_a, rec_b = get_challenge(after_a, ch.id), get_challenge(after_b, ch.id)
        assert rec_a is not None and rec_b is not None
        assert rec_a.sample_hash == rec_b.sample_hash
        if rec_a.sample_hash:
            rows_a = derive_sample_indices(rec_a.challenge, rec_a.root, rec_a.sample_hash)
            rows_b = derive_sample_indices(rec_b.challenge, rec_b.root, rec_b.sample_hash)
            assert rows_a == rows_b
        seen.append(rec_a.sample_hash)
        chain.next_block()
    # Fixed once, by the block two after the commitment's, from its parent (not the commitment's block).
    assert seen[0] == b"" and seen[1] != b"" and seen[2] == seen[1]
    assert seen[1] == chain.blocks[commit_height].hash()  # blocks[i] is height i + 1


def test_job_samples_do_not_depend_on_the_last_commit_signers() -> None:
    chain = TestChain(params={"job_challenge_window_blocks": 3})
    chain.next_block()
    user = chain.account_keys[0]
    assert chain.next_block([chain.tx(user, matmul_body(m=16, n=64, deadline=20))]).tx_results[0].code == 0
    (job_id,) = [k[2:] for k in chain.state.data if k.startswith(b"j/")]
    job = job_of(chain, job_id)
    nft = job.slots[0].nft_id
    commit(chain, job_id, nft, honest_leaves(job))
    seeds = []
    for _ in range(3):
        (_, after_a), (_, after_b) = _versions(chain)
        job_a, job_b = get_job(after_a, job_id), get_job(after_b, job_id)
        assert job_a is not None and job_b is not None
        assert job_a.slots[0].sample_seed == job_b.slots[0].sample_seed
        seeds.append(job_a.slots[0].sample_seed)
        chain.next_block()
    # Fixed by the block two after the commitment's.
    assert seeds[0] == b"" and seeds[1] != b"" and seeds[2] == seeds[1]
