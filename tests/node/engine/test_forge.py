"""The test-only ``forge`` mode: what it makes up is refused by a real node, and the forger pays for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from consensus.bft.config import TimeoutConfig
from node.engine.driver import ConsensusDriver
from node.engine.executor import BlockExecutor
from node.engine.forge import Forger, ForgeService
from node.engine.gossip import GossipAdapter
from p2p import scoring
from p2p.config import P2PConfig
from p2p.interface import Reject, Verdict
from p2p.memory import MemoryHub, MemoryTransport
from storage import NodeStore
from tests.kit.chain import TestChain
from tests.node.engine.conftest import Recorder
from tests.sim.network import ManualClock
from tests.sim.simnode import MemoryWal


class NoMempool:
    def reap(self, max_txs: int, max_bytes: int, **_: object) -> list[object]:
        return []


def _node_at_height_one(chain: TestChain, block_and_commit: tuple[object, object], network: object) -> ConsensusDriver:
    executor = BlockExecutor(NodeStore.open_memory(), chain.genesis)
    executor.init_genesis()
    executor.commit_block(*block_and_commit)  # type: ignore[arg-type]
    driver = ConsensusDriver(
        executor=executor, wal=MemoryWal(), clock=ManualClock(chain.genesis_time_ms + 60_000),
        mempool=NoMempool(), network=network, timeouts=TimeoutConfig(),  # type: ignore[arg-type]
    )
    driver.recover()
    return driver


def _chain_with_one_block() -> tuple[TestChain, tuple[object, object]]:
    chain = TestChain(n_validators=4)
    executor = BlockExecutor(NodeStore.open_memory(), chain.genesis)
    executor.init_genesis()
    block = chain.build_block(state_root=executor.store.state_root)
    chain.apply(block)
    chain.build_block()  # signs the commit of block 1
    assert chain.last_commit is not None
    return chain, (block, chain.last_commit)


def test_every_forged_message_is_refused_never_accepted(recorder: Recorder) -> None:
    chain, first = _chain_with_one_block()
    driver = _node_at_height_one(chain, first, recorder)
    adapter = GossipAdapter(recorder, chain.chain_id)  # type: ignore[arg-type]
    adapter.bind(driver)
    forger = Forger(chain.chain_id, chain.operator_keys[3].address())
    template = first[0]
    st = driver.state
    batch = forger.batch(st.height, st.round, st.validator_set, template)  # type: ignore[arg-type]
    batch["proposal"].append(forger.huge_fetch_proposal(st.height, st.round, st.validator_set, template,  # type: ignore[arg-type]
                                                        size=1 << 20))
    validate = {"vote": adapter.validate_vote, "proposal": adapter.validate_proposal,
                "evidence": adapter.validate_evidence}
    verdicts: dict[str, set[object]] = {}
    for kind, payloads in batch.items():
        for payload in payloads:
            verdicts.setdefault(kind, set()).add(validate[kind]("forger", payload))
    assert Verdict.ACCEPT not in set().union(*verdicts.values())
    assert verdicts["vote"] == {Reject("bad_signature")}
    assert verdicts["evidence"] == {Reject("bad_signature")}
    # Proposals: forged signatures (or in the name of a validator that is not the proposer:
    # the next height's forger guesses), and a round far ahead: ignored, never executed.
    assert {Reject("bad_signature"), Verdict.IGNORE} <= verdicts["proposal"]
    assert verdicts["proposal"] <= {Reject("bad_signature"), Reject("wrong_proposer"), Verdict.IGNORE}
    assert forger.serve(next(iter(forger.served))) is not None


async def test_a_forging_peer_is_refused_penalised_and_cut_off(tmp_path: Path) -> None:
    chain, first = _chain_with_one_block()
    hub = MemoryHub()
    honest_t = MemoryTransport(P2PConfig(chain_id=chain.chain_id, key_path=str(tmp_path / "a")), hub, peer_id="honest")
    forger_t = MemoryTransport(P2PConfig(chain_id=chain.chain_id, key_path=str(tmp_path / "b")), hub, peer_id="forger")
    honest_gossip = GossipAdapter(honest_t, chain.chain_id)
    honest = _node_at_height_one(chain, first, honest_gossip)
    honest_gossip.attach(honest)
    forger_gossip = GossipAdapter(forger_t, chain.chain_id)
    forger_driver = _node_at_height_one(chain, first, forger_gossip)
    forger_gossip.attach(forger_driver)
    service = ForgeService(forger_t, forger_driver, forger_gossip,
                           Forger(chain.chain_id, chain.operator_keys[3].address()))
    service.attach()
    await honest_t.start()
    await forger_t.start()
    await forger_t.connect(honest_t.listen_addrs()[0])
    task = asyncio.create_task(service.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if "forger" not in honest_t.peers():
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await honest_gossip.close()
        await forger_gossip.close()
        await honest_t.stop()
        await forger_t.stop()
    assert sum(service.sent.values()) > 0
    assert "forger" not in honest_t.peers(), "the forger was never cut off"
    assert honest_t.get_peer_score("forger") < scoring.DISCONNECT_SCORE
    assert honest_gossip.refused.get("bad_signature", 0) > 0
    assert honest.process_inputs() == 0  # nothing forged was queued
    assert honest.pool.get_pending(2, 100) == ()


@pytest.mark.parametrize("allowed", [0, 1])
def test_forge_mode_is_refused_unless_the_genesis_allows_test_faults(tmp_path: Path, allowed: int) -> None:
    from node.app import Node
    from node.config import load_config
    from node.errors import InvalidConfig
    from node.init import init_home, make_genesis, write_genesis

    made = init_home(tmp_path / "home", moniker="n0", passphrase=None)
    write_genesis(made.home, make_genesis("cstake-forge", [made], monikers=["n0"],
                                          params={"allow_test_faults": allowed}))
    cfg = load_config(made.home.config_file)
    if allowed:
        assert Node(made.home, cfg, byzantine="forge").byzantine == "forge"
    else:
        with pytest.raises(InvalidConfig, match="allow_test_faults"):
            Node(made.home, cfg, byzantine="forge")
