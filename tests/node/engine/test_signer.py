"""Signer safety, table-driven in the style of the Ethereum slashing-protection interchange tests.

Each case is a sequence of sign requests against one signer and the outcome
each must have: ``signed`` (a new signature), ``cached`` (exactly the
signature of an earlier step), or ``refused``. Every case runs on the memory
store and on the real file store, where a restart (a new signer on the same
file) may be inserted between steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from consensus.crypto import PrivateKey
from consensus.hashing import hash32
from consensus.votes import NIL_HASH, Proposal, Vote, VoteType
from node.engine.signer import FileSignerStore, MemorySignerStore, PersistentSigner
from node.errors import DoubleSignRefused, SignerError, SignerStateCorrupt

CHAIN = "cstake-test"
KEY = PrivateKey.from_seed(hash32(b"signer-test-key"))
ADDR = KEY.address()
A = hash32(b"block A")
B = hash32(b"block B")
PROPOSE, PREVOTE, PRECOMMIT = "proposal", "prevote", "precommit"


@dataclass(frozen=True)
class Step:
    kind: str
    height: int
    round: int
    block: bytes
    expect: str  # "signed" | "cached:<index>" | "refused"
    timestamp: int = 1000
    restart_before: bool = False


def _message(step: Step) -> Vote | Proposal:
    if step.kind == PROPOSE:
        return Proposal(step.height, step.round, -1, step.block, ADDR, step.timestamp)
    vote_type = VoteType.PREVOTE if step.kind == PREVOTE else VoteType.PRECOMMIT
    return Vote(step.height, step.round, vote_type, step.block, ADDR, step.timestamp)


CASES: dict[str, list[Step]] = {
    "first vote is signed": [Step(PREVOTE, 1, 0, A, "signed")],
    "identical re-sign returns the cached signature": [
        Step(PREVOTE, 1, 0, A, "signed"),
        Step(PREVOTE, 1, 0, A, "cached:0"),
        Step(PREVOTE, 1, 0, A, "cached:0"),
    ],
    "timestamp-only difference returns the cached signature": [
        Step(PRECOMMIT, 5, 1, A, "signed", timestamp=1000),
        Step(PRECOMMIT, 5, 1, A, "cached:0", timestamp=2000),
    ],
    "conflicting block at the same step is refused": [
        Step(PREVOTE, 1, 0, A, "signed"),
        Step(PREVOTE, 1, 0, B, "refused"),
    ],
    "nil after a block at the same step is refused": [
        Step(PRECOMMIT, 3, 2, A, "signed"),
        Step(PRECOMMIT, 3, 2, NIL_HASH, "refused"),
    ],
    "block after nil at the same step is refused": [
        Step(PREVOTE, 3, 2, NIL_HASH, "signed"),
        Step(PREVOTE, 3, 2, A, "refused"),
    ],
    "height regression is refused": [
        Step(PREVOTE, 10, 0, A, "signed"),
        Step(PREVOTE, 9, 0, A, "refused"),
        Step(PRECOMMIT, 9, 5, B, "refused"),
    ],
    "round regression is refused": [
        Step(PREVOTE, 4, 3, A, "signed"),
        Step(PRECOMMIT, 4, 2, A, "refused"),
    ],
    "step regression is refused": [
        Step(PRECOMMIT, 4, 1, A, "signed"),
        Step(PREVOTE, 4, 1, A, "refused"),
        Step(PROPOSE, 4, 1, A, "refused"),
    ],
    "proposal, prevote, precommit in order are all signed": [
        Step(PROPOSE, 2, 0, A, "signed"),
        Step(PREVOTE, 2, 0, A, "signed"),
        Step(PRECOMMIT, 2, 0, A, "signed"),
        Step(PREVOTE, 2, 1, B, "signed"),
        Step(PREVOTE, 3, 0, NIL_HASH, "signed"),
    ],
    "conflicting proposal is refused, identical is cached": [
        Step(PROPOSE, 7, 0, A, "signed"),
        Step(PROPOSE, 7, 0, B, "refused"),
        Step(PROPOSE, 7, 0, A, "cached:0"),
    ],
    "a refusal changes nothing": [
        Step(PREVOTE, 1, 1, A, "signed"),
        Step(PREVOTE, 1, 1, B, "refused"),
        Step(PREVOTE, 1, 0, A, "refused"),
        Step(PREVOTE, 1, 1, A, "cached:0"),
        Step(PRECOMMIT, 1, 1, A, "signed"),
    ],
    "restart keeps the cache and the refusals": [
        Step(PREVOTE, 8, 0, A, "signed"),
        Step(PREVOTE, 8, 0, A, "cached:0", restart_before=True),
        Step(PREVOTE, 8, 0, B, "refused", restart_before=True),
        Step(PREVOTE, 7, 9, A, "refused", restart_before=True),
        Step(PRECOMMIT, 8, 0, A, "signed", restart_before=True),
    ],
}


@pytest.mark.parametrize("store_kind", ["memory", "file"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_signer_table(name: str, store_kind: str, tmp_path: Path) -> None:
    path = tmp_path / "signer.state"
    memory = MemorySignerStore()
    file_store: FileSignerStore | None = None

    def open_signer() -> PersistentSigner:
        nonlocal file_store
        if store_kind == "memory":
            return PersistentSigner(KEY, CHAIN, memory)
        if file_store is not None:
            file_store.close()
        file_store = FileSignerStore(path)
        return PersistentSigner(KEY, CHAIN, file_store)

    signer = open_signer()
    results: list[bytes | None] = []
    try:
        for i, step in enumerate(CASES[name]):
            if step.restart_before:
                signer = open_signer()
            message = _message(step)
            try:
                if isinstance(message, Proposal):
                    signed: Vote | Proposal = signer.sign_proposal(message)
                else:
                    signed = signer.sign_vote(message)
            except DoubleSignRefused:
                results.append(None)
                assert step.expect == "refused", f"step {i}: refused, expected {step.expect}"
                continue
            assert step.expect != "refused", f"step {i}: signed, expected a refusal"
            # Whatever comes back verifies, for exactly the message it carries.
            domain_payload = signed.sign_payload()
            KEY.public_key.verify(
                b"cstake/proposal/v1" if isinstance(signed, Proposal) else b"cstake/vote/v1",
                CHAIN,
                domain_payload,
                signed.signature,
            )
            if step.expect.startswith("cached:"):
                earlier = int(step.expect.split(":")[1])
                assert signed.signature == results[earlier], f"step {i}: not the cached signature"
                assert signed.timestamp_ms == CASES[name][earlier].timestamp
            else:
                assert signed.signature not in results, f"step {i}: expected a new signature"
            results.append(signed.signature)
    finally:
        if file_store is not None:
            file_store.close()


def test_invalid_vote_for_another_address_is_refused() -> None:
    signer = PersistentSigner(KEY, CHAIN, MemorySignerStore())
    other = PrivateKey.from_seed(hash32(b"other")).address()
    with pytest.raises(SignerError):
        signer.sign_vote(Vote(1, 0, VoteType.PREVOTE, A, other, 1))


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "empty"])
def test_invalid_corrupt_state_file_stops_the_signer(damage: str, tmp_path: Path) -> None:
    path = tmp_path / "signer.state"
    store = FileSignerStore(path)
    PersistentSigner(KEY, CHAIN, store).sign_vote(Vote(3, 0, VoteType.PREVOTE, A, ADDR, 5))
    store.close()
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-5] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) - 7]
    elif damage == "magic":
        data[0] ^= 0xFF
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    store = FileSignerStore(path)
    try:
        with pytest.raises(SignerStateCorrupt, match="signer state"):
            PersistentSigner(KEY, CHAIN, store)
    finally:
        store.close()


def test_invalid_second_process_on_the_same_state_is_refused(tmp_path: Path) -> None:
    first = FileSignerStore(tmp_path / "signer.state")
    try:
        with pytest.raises(SignerError, match="in use"):
            FileSignerStore(tmp_path / "signer.state")
    finally:
        first.close()
    FileSignerStore(tmp_path / "signer.state").close()  # free again once released


def test_state_file_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "signer.state"
    store = FileSignerStore(path)
    signer = PersistentSigner(KEY, CHAIN, store)
    for h in range(1, 20):
        signer.sign_vote(Vote(h, 0, VoteType.PREVOTE, A, ADDR, h))
        assert store.load().height == h
    store.close()
    # Only the state file remains (the temporary is renamed over it each time).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signer.state", "signer.state.lock"]


def test_signer_may_sign_for_a_validator_address_other_than_the_key_address() -> None:
    operator = hash32(b"operator account")[:20]
    signer = PersistentSigner(KEY, CHAIN, MemorySignerStore(), operator)
    signed = signer.sign_vote(Vote(1, 0, VoteType.PREVOTE, A, operator, 1))
    KEY.public_key.verify(b"cstake/vote/v1", CHAIN, signed.sign_payload(), signed.signature)
    with pytest.raises(SignerError):
        signer.sign_vote(Vote(1, 0, VoteType.PRECOMMIT, A, ADDR, 1))
