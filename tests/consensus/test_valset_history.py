"""The validator-set history is read by epoch: one record per lookup, however old the chain."""

from __future__ import annotations

from collections.abc import Iterator

from consensus.state import DictStateReader, Keys, State
from consensus.txs import Bond
from consensus.validator_set import ValidatorSet
from tests.kit.chain import TestChain


class CountingReader(DictStateReader):
    """Counts the history records read and the prefix scans of the history."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        super().__init__(data)
        self.history_reads = 0
        self.history_scans = 0

    def get(self, key: bytes) -> bytes | None:
        if key.startswith(Keys.VALSET_HISTORY):
            self.history_reads += 1
        return super().get(key)

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        if prefix.startswith(Keys.VALSET_HISTORY) or Keys.VALSET_HISTORY.startswith(prefix):
            self.history_scans += 1
        return super().iter_prefix(prefix)


def _scan(state: State, height: int) -> ValidatorSet | None:
    """The reference: the latest history record starting at or before ``height``."""
    found = None
    for key, vset in state.iter_records(Keys.VALSET_HISTORY, ValidatorSet):
        if int.from_bytes(key[len(Keys.VALSET_HISTORY):], "big") > height:
            break
        found = vset
    return found


def test_get_validator_set_at_reads_one_record_and_matches_the_history() -> None:
    chain = TestChain(params={"epoch_blocks": 3})
    # Power moves between epochs (a bond each block), so the sets differ.
    for i in range(31):
        chain.next_block([chain.tx(chain.operator_keys[i % 4], Bond(1_000 * (i + 1)))])
    reader = CountingReader(dict(chain.state.data))
    state = State(reader)
    hashes = set()
    for height in range(0, chain.height + 5):
        reader.history_reads = reader.history_scans = 0
        got = state.get_validator_set_at(height)
        expected = _scan(State(DictStateReader(reader.data)), height)
        assert (got is None) == (expected is None), height
        if got is not None and expected is not None:
            assert got.hash() == expected.hash(), height
            hashes.add(got.hash())
        assert reader.history_scans == 0, height
        assert reader.history_reads <= 2, height
    assert len(hashes) > 5  # the sets really changed over the epochs
