"""Faults injected around the real consensus driver: byzantine behaviours and crash points.

The driver under test is the one that ships, with no byzantine branch; every
fault sits in a collaborator the simulation hands it.

Behaviours (per node, switched off from ``SimConfig.byzantine_until_height``):

- ``silent``: the node's network adapter sends nothing at all.
- ``equivocate``: the network adapter sends some of our votes and fresh
  proposals as a conflicting pair, each half of the peers getting one of
  them; the twin is signed with the raw consensus key
  (``node.engine.faults.sign_conflicting_*``), bypassing the signer.
- ``invalid-proposer``: ``InvalidBlockProposer`` builds blocks with a wrong
  state root, so honest validators judge them invalid and prevote nil.
- ``forge``: the node behaves honestly and also gossips, on every gossip tick
  and right after each of its commits, messages made up by the shipped
  ``node.engine.forge.Forger`` in the name of the other validators (votes,
  inline and parted proposals, a proposal for round ``MAX_ROUND``, evidence,
  votes of the height just decided), every signature noise.
- ``forge-huge``: as ``forge``, plus a proposal of the round's proposer
  announced without its block, which the forger serves by hash padded to
  just under ``Block.MAX_BYTES``, and one for the next height in unsigned
  parts of that size.
- ``oversize-fetch`` / ``oversize-parts``: a real proposer whose proposals
  (correctly signed) point at a block padded to just under
  ``Block.MAX_BYTES``: announced without the block and served by hash, or
  sent in that many signed parts.

Crash points: ``CrashingWal``, ``CrashingSigner`` and ``CrashingExecutor``
are the real WAL, signer and executor with a ``CrashSwitch`` consulted at
four points; when it says so, ``SimCrash`` is raised from inside the driver's
call and must come out of the driver untouched, killing the node there:

- ``handled``: before the next input is appended to the WAL (the previous
  input and all its effects are done);
- ``wal-appended``: after an input is appended, before it is handled;
- ``signed``: after a signature is persisted, before the signed message is
  logged or sent;
- ``committed``: after a block is written, before the driver notes it
  (the WAL still holds the committed height).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from consensus.bft.evidence_pool import EvidencePool
from consensus.blocks import Block
from consensus.crypto import PrivateKey
from consensus.genesis import Genesis
from consensus.hashing import hash32
from consensus.transition import TransitionResult
from consensus.txs import SignedTx
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit, Proposal, Vote
from node.engine.executor import BlockCommitted, BlockExecutor
from node.engine.proposer import BlockProposer, Mempool
from node.engine.signer import PersistentSigner, SignerStore
from node.engine.wal import WriteAheadLog
from storage import NodeStore

HONEST = "honest"
SILENT = "silent"
EQUIVOCATE = "equivocate"
INVALID_PROPOSER = "invalid-proposer"
FORGE = "forge"
FORGE_HUGE = "forge-huge"
OVERSIZE_FETCH = "oversize-fetch"
OVERSIZE_PARTS = "oversize-parts"
BEHAVIOURS = (HONEST, SILENT, EQUIVOCATE, INVALID_PROPOSER, FORGE, FORGE_HUGE, OVERSIZE_FETCH, OVERSIZE_PARTS)

CRASH_POINTS = ("wal-appended", "handled", "signed", "committed")


class SimCrash(Exception):
    """Raised inside a node to kill it at a crash point."""

    def __init__(self, point: str, pending: bytes | None = None) -> None:
        super().__init__(point)
        self.point = point
        self.pending = pending
        """The WAL record appended but not handled (``wal-appended`` only)."""


class CrashSwitch(Protocol):
    def hit(self, point: str, pending: bytes | None = None) -> None:
        """Raise SimCrash if the node is to die at this crash point."""
        ...


class SimExecutor(BlockExecutor):
    """The real executor, sharing executions among the simulated nodes.

    The state transition is a pure function of the state and the block: a
    block already executed on the same state (same root) by another node gives
    the same result, so it is looked up instead of run again. Each node still
    validates, caches and writes through its own executor and store.
    """

    def __init__(
        self, store: NodeStore, genesis: Genesis, executions: dict[tuple[bytes, bytes], TransitionResult],
        attempted: set[bytes] | None = None,
    ) -> None:
        super().__init__(store, genesis)
        self.executions = executions
        #: Hashes of every block this executor was asked to execute (executed or refused).
        self.attempted = attempted if attempted is not None else set()

    def validate_block(self, block: Block, txs: list[SignedTx] | None = None) -> TransitionResult:
        self.attempted.add(block.hash())
        key = (self.store.state_root, block.hash())
        result = self.executions.get(key)
        if result is None:
            result = super().validate_block(block, txs)
            self.executions[key] = result
        return result


class CrashingWal(WriteAheadLog):
    """The real WAL, with the ``handled`` and ``wal-appended`` crash points around each append."""

    def __init__(self, path: Path, switch: CrashSwitch) -> None:
        super().__init__(path)
        self.switch = switch

    def append(self, payload: bytes, *, sync: bool = False) -> None:
        self.switch.hit("handled")
        super().append(payload, sync=sync)
        self.switch.hit("wal-appended", payload)


class CrashingSigner(PersistentSigner):
    """The real signer, with the ``signed`` crash point after each new or repeated signature."""

    def __init__(
        self, key: PrivateKey, chain_id: str, store: SignerStore, address: bytes, switch: CrashSwitch
    ) -> None:
        super().__init__(key, chain_id, store, address)
        self.switch = switch

    def sign_vote(self, vote: Vote) -> Vote:
        signed = super().sign_vote(vote)
        self.switch.hit("signed")
        return signed

    def sign_proposal(self, proposal: Proposal) -> Proposal:
        signed = super().sign_proposal(proposal)
        self.switch.hit("signed")
        return signed


class CrashingExecutor(SimExecutor):
    """The real executor, with the ``committed`` crash point after each block written."""

    def __init__(
        self, store: NodeStore, genesis: Genesis, executions: dict[tuple[bytes, bytes], TransitionResult],
        switch: CrashSwitch, attempted: set[bytes] | None = None,
    ) -> None:
        super().__init__(store, genesis, executions, attempted)
        self.switch = switch

    def commit_block(self, block: Block, commit: Commit) -> BlockCommitted:
        committed = super().commit_block(block, commit)
        self.switch.hit("committed")
        return committed


class InvalidBlockProposer(BlockProposer):
    """The ``invalid-proposer`` behaviour: while active, its blocks carry a wrong state root."""

    def __init__(
        self, executor: BlockExecutor, mempool: Mempool, address: bytes, is_active: Callable[[], bool]
    ) -> None:
        super().__init__(executor, mempool, address)
        self.is_active = is_active

    def build_block(
        self, height: int, round_: int, now_ms: int, validator_set: ValidatorSet, pool: EvidencePool
    ) -> Block:
        block = super().build_block(height, round_, now_ms, validator_set, pool)
        if not self.is_active():
            return block
        wrong = hash32(b"invalid-proposer" + block.header.state_root)
        return dataclasses.replace(block, header=dataclasses.replace(block.header, state_root=wrong))


def make_twin_block(block: Block) -> Block:
    """Return another valid block for the same height and round (one millisecond later)."""
    return dataclasses.replace(block, header=dataclasses.replace(block.header, time_ms=block.header.time_ms + 1))
