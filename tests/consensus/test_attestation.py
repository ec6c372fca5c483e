"""Compute attestations in blocks: signature, known bound NFT, freshness, rate; kept per NFT."""

from __future__ import annotations

import dataclasses

import pytest

from consensus.attestation import (
    Attestation,
    AttestationError,
    decode_attestation,
    get_attestation,
    make_attestation,
    validate_attestation,
)
from consensus.blocks import make_block
from consensus.errors import InvalidBlock
from consensus.records import HardwareSpec
from consensus.transition import state_transition
from tests.kit.chain import TestChain, derive_key

SPEC = HardwareSpec(device_kind=0, model="test", cores=2, memory_mb=1024)


def attest(chain: TestChain, i: int, height: int, nft_id: int | None = None, units: int = 7) -> Attestation:
    validator = chain.operator_keys[i].address()
    if nft_id is None:
        nft_id = next(iter(chain.view().iter_validator_nft_ids(validator)))
    return make_attestation(chain.consensus_keys[i], chain.chain_id, nft_id=nft_id, validator=validator,
                            spec=SPEC, measured_units=units, height=height)


def block_with(chain: TestChain, atts: list[Attestation]):  # type: ignore[no-untyped-def]
    b = chain.build_block()
    h = b.header
    return make_block(
        chain_id=h.chain_id, height=h.height, round=h.round, time_ms=h.time_ms, proposer=h.proposer,
        parent_hash=h.parent_hash, last_commit=b.last_commit, txs=(),
        attestations=tuple(a.encode() for a in atts), evidence=(), state_root=h.state_root,
        validators_hash=h.validators_hash,
    )


@pytest.fixture
def chain() -> TestChain:
    c = TestChain(params={"attestation_max_age_blocks": 5, "attestation_min_interval_blocks": 3})
    for _ in range(3):
        c.next_block()
    return c


def test_attestations_are_kept_per_nft(chain: TestChain) -> None:
    atts = [attest(chain, 0, 3), attest(chain, 1, 2, units=9)]
    chain.apply(block_with(chain, atts))
    kept = get_attestation(chain.view(), atts[1].nft_id)
    assert kept == atts[1] and kept.measured_units == 9
    assert decode_attestation(atts[0].encode()) == atts[0]


@pytest.mark.parametrize("case", ["forged", "other_key", "unbound", "future", "stale", "duplicate"])
def test_bad_attestation_makes_the_block_invalid(chain: TestChain, case: str) -> None:
    good = attest(chain, 0, 3)
    bad = {
        "forged": [dataclasses.replace(good, measured_units=1_000)],
        "other_key": [make_attestation(derive_key(b"x", "y"), chain.chain_id, nft_id=good.nft_id,
                                       validator=good.validator, spec=SPEC, measured_units=7, height=3)],
        "unbound": [dataclasses.replace(attest(chain, 1, 3), validator=good.validator)],
        "future": [attest(chain, 0, 4)],
        "stale": [],
        "duplicate": [good, attest(chain, 0, 2)],
    }[case]
    if case == "stale":
        for _ in range(6):
            chain.next_block()
        bad = [attest(chain, 0, 3)]
    before = dict(chain.state.data)
    with pytest.raises(InvalidBlock, match="attestation"):
        state_transition(chain.state, block_with(chain, bad))
    assert chain.state.data == before


def test_rate_limit_and_freshness(chain: TestChain) -> None:
    chain.apply(block_with(chain, [attest(chain, 0, 3)]))  # block 4
    state, params = chain.view(), chain.view().get_params()
    too_soon = attest(chain, 0, 4)
    with pytest.raises(AttestationError, match="next may be") as exc:
        validate_attestation(state, too_soon, chain.chain_id, 5, params)
    assert exc.value.stale
    for _ in range(2):
        chain.next_block()
    later = attest(chain, 0, 6)
    validate_attestation(chain.view(), later, chain.chain_id, 7, params)
    chain.apply(block_with(chain, [later]))
    assert get_attestation(chain.view(), later.nft_id) == later
