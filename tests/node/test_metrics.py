"""Node metrics: a per-node registry with the documented series."""

from __future__ import annotations

from prometheus_client import REGISTRY

from consensus.crypto import encode_address
from node.mempool.pool import MempoolStats
from node.metrics import NodeMetrics
from p2p.stats import P2PStats


def sample(m: NodeMetrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return m.registry.get_sample_value(name, labels or {})


def test_block_events_update_height_interval_rounds_and_txs() -> None:
    m = NodeMetrics()
    m.on_block_committed(height=1, time_ms=1_000, n_txs=3, commit_seconds=0.01)
    m.on_block_committed(height=2, time_ms=2_500, n_txs=2, round=1, failed_txs=1)
    assert sample(m, "cstake_height") == 2
    assert sample(m, "cstake_txs_committed_total") == 5
    assert sample(m, "cstake_txs_failed_total") == 1
    assert sample(m, "cstake_block_interval_seconds_count") == 1
    assert sample(m, "cstake_block_interval_seconds_sum") == 1.5
    assert sample(m, "cstake_rounds_per_height_sum") == 3  # round 0 counts 1, round 1 counts 2
    assert sample(m, "cstake_commit_duration_seconds_count") == 1


def test_missed_blocks_slashes_and_gauges() -> None:
    m = NodeMetrics()
    a, b = bytes(20), bytes([1]) * 20
    m.on_commit_signatures([a, b], [a])
    m.on_commit_signatures([a, b], [a])
    assert sample(m, "cstake_missed_blocks_total", {"validator": encode_address(b)}) == 2
    assert sample(m, "cstake_missed_blocks_total", {"validator": encode_address(a)}) is None
    m.on_slashed(b, "double_sign")
    m.on_slashed(b, "double_sign")
    m.on_slashed(a, "downtime")
    assert sample(m, "cstake_slashes_total", {"fault": "double_sign"}) == 2
    assert sample(m, "cstake_byzantine_validators") == 1
    m.set_validator_set(4, 400, 1)
    m.set_mempool(7, 700)
    m.set_peers(3)
    assert sample(m, "cstake_jailed_validators") == 1
    assert sample(m, "cstake_mempool_bytes") == 700
    assert sample(m, "cstake_peers") == 3


def test_p2p_and_mempool_counters_are_read_at_scrape_time() -> None:
    m = NodeMetrics()
    stats = P2PStats()
    mstats = MempoolStats()
    m.watch_p2p(stats.snapshot)
    m.watch_mempool(lambda: mstats)
    stats.bytes_in += 1234
    stats.drop("oversize", 2)
    mstats.added = 9
    mstats.reject("nonce_gap")
    assert sample(m, "cstake_p2p_bytes_in_total") == 1234
    assert sample(m, "cstake_p2p_dropped_total", {"reason": "oversize"}) == 2
    assert sample(m, "cstake_mempool_added_total") == 9
    assert sample(m, "cstake_mempool_rejected_total", {"reason": "nonce_gap"}) == 1
    text = m.render().decode()
    assert "cstake_p2p_bytes_out_total 0.0" in text


def test_registries_are_per_node() -> None:
    one, two = NodeMetrics(), NodeMetrics()
    one.on_block_committed(height=5, time_ms=1, n_txs=0)
    assert sample(one, "cstake_height") == 5 and sample(two, "cstake_height") == 0
    assert REGISTRY.get_sample_value("cstake_height") is None


def test_own_validator_series_follow_its_commit_signatures() -> None:
    m = NodeMetrics()
    me, other = b"\x01" * 20, b"\x02" * 20
    m.on_commit_signatures([me, other], [me, other], height=10, own=me)
    m.on_commit_signatures([me, other], [other], height=11, own=me)
    m.on_commit_signatures([me, other], [other], height=12, own=me)
    assert sample(m, "cstake_validator_last_signed_height") == 10
    assert sample(m, "cstake_validator_missed_blocks_total") == 2
    m.on_commit_signatures([other], [other], height=13, own=me)  # not a member: not a miss
    assert sample(m, "cstake_validator_missed_blocks_total") == 2
    m.set_own_validator(active=True, power=40, jailed=False)
    assert sample(m, "cstake_validator_active") == 1 and sample(m, "cstake_validator_voting_power") == 40
    m.set_own_validator(active=False, power=0, jailed=True)
    assert sample(m, "cstake_validator_jailed") == 1 and sample(m, "cstake_validator_active") == 0


def test_compute_round_and_sync_series() -> None:
    m = NodeMetrics()
    m.on_challenge_resolved("passed")
    m.on_challenge_resolved("passed")
    m.on_challenge_resolved("failed")
    m.on_prover_answer("commit", 0.2)
    m.set_compute(verified_units=1950, jobs_by_status={"open": 2, "settled": 5})
    m.set_consensus(round=3, syncing=True)
    assert sample(m, "cstake_poc_challenges_total", {"outcome": "passed"}) == 2
    assert sample(m, "cstake_poc_challenges_total", {"outcome": "failed"}) == 1
    assert sample(m, "cstake_prover_duration_seconds_count", {"phase": "commit"}) == 1
    assert sample(m, "cstake_poc_verified_units") == 1950
    assert sample(m, "cstake_jobs", {"status": "settled"}) == 5
    assert sample(m, "cstake_consensus_round") == 3 and sample(m, "cstake_syncing") == 1


def test_exposition_has_build_and_process_info_and_no_created_series() -> None:
    m = NodeMetrics()
    m.on_block_committed(height=1, time_ms=1_000, n_txs=1)
    text = m.render().decode()
    assert "_created" not in text
    assert 'cstake_build_info{python="' in text
    assert sample(m, "process_resident_memory_bytes") is not None and sample(m, "process_resident_memory_bytes") > 0


def test_tx_gossip_counters_are_exported() -> None:
    from p2p.txbatch import TxGossipStats

    m = NodeMetrics()
    stats = TxGossipStats(txs_accepted=7, batches_over_budget=2, txs_unchecked=900)
    m.watch_tx_gossip(lambda: stats)
    assert sample(m, "cstake_tx_gossip_txs_accepted_total") == 7
    assert sample(m, "cstake_tx_gossip_batches_over_budget_total") == 2
    assert sample(m, "cstake_tx_gossip_txs_unchecked_total") == 900


def test_proposal_block_counters_are_exported_and_follow_the_adapter() -> None:
    from types import SimpleNamespace

    m = NodeMetrics()
    gossip = SimpleNamespace(blocks_rebuilt=5, txs_requested=40, blocks_fetched=1)
    m.watch_proposals(gossip)
    assert sample(m, "cstake_proposal_blocks_rebuilt_total") == 5
    assert sample(m, "cstake_proposal_txs_requested_total") == 40
    gossip.txs_requested = 41  # read at scrape time
    assert sample(m, "cstake_proposal_txs_requested_total") == 41
    assert sample(m, "cstake_proposal_blocks_fetched_total") == 1


def test_overclaimed_gauge() -> None:
    m = NodeMetrics()
    m.set_overclaimed(2)
    assert sample(m, "cstake_compute_overclaimed_nfts") == 2
