"""Property: every escrowed token ends up paid, refunded or burned, and the supply stays exact.

Random jobs (both kinds, random bids, escrows, redundancy, some unassignable,
some cancelled) meet random providers (honest, cheating, silent) with or
without a watching validator. After every block the whole supply is
accounted for (balances + stake + unbonding + collateral + escrow), and every
job satisfies ``escrow = paid + verifier share + burned + refunded + locked``;
once every job has ended nothing is locked.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from consensus.jobs.store import get_total_escrow, iter_jobs
from consensus.jobs.types import CancelJob, JobStatus
from tests.kit.chain import TestChain
from tests.kit.jobs import (
    MarketPlayer,
    assert_job_accounting,
    iterate_body,
    matmul_body,
    supply_parts,
)

BEHAVIOURS = st.sampled_from(["honest", "honest", "cheat", "silent"])
JOBS = st.lists(
    st.tuples(
        st.sampled_from(["matmul", "iterate"]),
        st.integers(1, 6),  # bid per unit
        st.integers(0, 40),  # escrow above the minimum
        st.integers(1, 3),  # redundancy
        st.booleans(),  # unassignable (min units above every NFT)
        st.booleans(),  # cancel right after submitting
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Always covered: a cheater caught by a watcher, a silent provider, redundancy, a cancel, an
# unassignable job.
@example(jobs=[("matmul", 3, 5, 1, False, False), ("iterate", 2, 0, 2, False, False)],
         behaviour=["cheat", "silent", "honest", "honest"], watcher=2, price=2)
@example(jobs=[("matmul", 1, 0, 1, False, True), ("iterate", 4, 9, 1, True, False)],
         behaviour=["honest", "honest", "honest", "honest"], watcher=None, price=1)
@given(
    jobs=JOBS,
    behaviour=st.lists(BEHAVIOURS, min_size=4, max_size=4),
    watcher=st.one_of(st.none(), st.integers(0, 3)),
    price=st.integers(1, 3),
)
def test_escrow_is_paid_refunded_or_burned_exactly(
    jobs: list[tuple[str, int, int, int, bool, bool]], behaviour: list[str], watcher: int | None, price: int
) -> None:
    chain = TestChain(params={
        "job_challenge_window_blocks": 2, "job_lifetime_blocks": 30, "job_default_price": price,
        "job_verifier_share_bps": 700, "job_fee_bps": 300, "job_sample_count": 4,
    })
    chain.next_block()
    user = chain.account_keys[0]
    txs = []
    for kind, bid, extra, redundancy, unassignable, _ in jobs:
        make = matmul_body if kind == "matmul" else iterate_body
        body = make(bid=bid, redundancy=redundancy, deadline=4)
        txs.append(chain.tx(user, body.__class__(**{
            **{f: getattr(body, f) for f in body.__dataclass_fields__},
            "escrow": body.escrow + extra, "min_units": 10_000 if unassignable else 0,
        })))
    result = chain.next_block(txs)
    submitted = [j.id for j in sorted(iter_jobs(chain.view()), key=lambda j: j.seq)]
    assert len(submitted) == sum(1 for r in result.tx_results if r.code == 0)
    cancels = [chain.tx(user, CancelJob(jid)) for jid, job in zip(submitted, jobs, strict=False) if job[5]]
    chain.next_block(cancels)
    player = MarketPlayer(chain, dict(enumerate(behaviour)), watcher=watcher)
    for _ in range(45):
        player.step()
        found, total = supply_parts(chain)
        assert found == total
        for job in iter_jobs(chain.view()):
            assert_job_accounting(job)
        if all(j.status in JobStatus.FINAL for j in iter_jobs(chain.view())):
            break
    all_jobs = list(iter_jobs(chain.view()))
    assert all(j.status in JobStatus.FINAL for j in all_jobs)
    assert get_total_escrow(chain.view()) == 0
    assert sum(j.escrow for j in all_jobs) == sum(j.paid + j.verifier_paid + j.burned + j.refunded for j in all_jobs)
    for job in all_jobs:
        if job.status == JobStatus.SETTLED:
            paid_slots = sum(1 for s in job.slots if s.result_root == job.result_root)
            assert job.paid + job.verifier_paid + job.burned == paid_slots * price * job.work_units
        else:
            assert job.paid == job.verifier_paid == job.burned == 0 and job.refunded == job.escrow
