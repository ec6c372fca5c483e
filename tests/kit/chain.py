"""A deterministic chain builder for tests, vectors and benchmarks.

``TestChain`` derives every key from a seed, writes a genesis, and builds
blocks exactly as a network would: the right proposer for the round, the
state root the caller supplies, and a last commit of real Ed25519 precommit
signatures from enough validators. It keeps the committed state in a
``DictStateReader``, so it needs no storage.

Block time is BFT time (``consensus.block_time``): a block's time is the
weighted median of its last commit's timestamps, so the builder signs the
commit of a block lazily, when the next block is built, with every precommit
stamped at the parent's time + ``time_step_ms``: the next block is dated
exactly that. (The first block is dated genesis + 1 ms, whatever the step.)
Which validators sign is fixed when the block is applied (``absent`` then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consensus.block_time import compute_block_time
from consensus.blocks import Block, EvidenceItem, make_block
from consensus.codec import Encodable
from consensus.crypto import Domain, PrivateKey, encode_address
from consensus.genesis import Genesis, compute_genesis_state, parse_genesis
from consensus.hashing import ZERO_HASH, tagged_hash
from consensus.state import DictStateReader, State
from consensus.transition import SigCache, TransitionResult, state_transition
from consensus.txs import SignedTx, build_tx
from consensus.validator_set import ValidatorSet
from consensus.votes import Commit, Vote, VoteType, compute_commit

if TYPE_CHECKING:
    from consensus.poc import Challenge

#: The default time between two blocks the builder makes.
DEFAULT_TIME_STEP_MS = 1_000


def derive_key(seed: bytes, label: str) -> PrivateKey:
    """Return a deterministic key for ``label`` under ``seed``."""
    return PrivateKey.from_seed(tagged_hash(b"cstake/test-key", seed + label.encode()))


@dataclass
class TestChain:
    """A chain of ``n_validators`` deterministic validators, executed in memory."""

    __test__ = False  # not a pytest class

    n_validators: int = 4
    n_accounts: int = 4
    seed: bytes = b"cstake-test"
    balance: int = 10**12
    chain_id: str = "cstake-test"
    genesis_time_ms: int = 1_700_000_000_000
    params: dict[str, int] = field(default_factory=dict)
    stakes: list[int] | None = None
    computes: list[int] | None = None

    def __post_init__(self) -> None:
        self.operator_keys = [derive_key(self.seed, f"op{i}") for i in range(self.n_validators)]
        self.consensus_keys = [derive_key(self.seed, f"cons{i}") for i in range(self.n_validators)]
        self.account_keys = [derive_key(self.seed, f"acct{i}") for i in range(self.n_accounts)]
        stakes = self.stakes or [10_000 * (i + 1) for i in range(self.n_validators)]
        computes = self.computes or [100 for _ in range(self.n_validators)]
        doc = {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "preset": "devnet",
            "params": self.params,
            "accounts": [
                {"address": encode_address(k.address()), "balance": self.balance}
                for k in self.account_keys + self.operator_keys
            ],
            "validators": [
                {
                    "address": encode_address(op.address()),
                    "consensus_pubkey": "0x" + cons.public_key.raw.hex(),
                    "self_bond": stakes[i],
                    "commission_bps": 500,
                    "moniker": f"val{i}",
                    "compute": [
                        {
                            "spec": {"device_kind": "cpu", "model": "test", "cores": 2, "memory_mb": 1024},
                            "claimed_units": computes[i],
                            "verified_units": computes[i],
                            "collateral": 1_000,
                        }
                    ],
                }
                for i, (op, cons) in enumerate(zip(self.operator_keys, self.consensus_keys, strict=True))
            ],
        }
        self.genesis: Genesis = parse_genesis(doc)
        self.state = DictStateReader()
        self.state.apply(compute_genesis_state(self.genesis))
        self.height = 0
        self.time_ms = self.genesis_time_ms
        #: A commit of the head block set by a test (None: sign one when the next block is built).
        self._last_commit: Commit | None = None
        #: The head block with the set that decided it and the validators that sign its commit.
        self._head: tuple[Block, ValidatorSet, list[int]] | None = None
        self.last_hash = ZERO_HASH
        self.nonces: dict[bytes, int] = {}
        self.blocks: list[Block] = []
        #: Validators (by index) whose precommits are left out of the commits this builder signs.
        self.absent: set[int] = set()

    # -- transactions ------------------------------------------------------------

    def key_by_address(self, address: bytes) -> PrivateKey:
        for k in self.operator_keys + self.account_keys:
            if k.address() == address:
                return k
        raise KeyError(address.hex())

    def tx(self, key: PrivateKey, body: Encodable, fee: int = 10) -> SignedTx:
        """Sign ``body`` from ``key`` with the next nonce this builder has handed out."""
        addr = key.address()
        nonce = self.nonces.get(addr)
        if nonce is None:
            nonce = State(self.state).get_account(addr).nonce
        self.nonces[addr] = nonce + 1
        return build_tx(key, self.chain_id, nonce, fee, body)

    # -- blocks ------------------------------------------------------------------

    def view(self) -> State:
        """Return a fresh overlay over the committed state (for reads)."""
        return State(self.state)

    @property
    def last_commit(self) -> Commit | None:
        """The commit of the head block: the one a test set, else one dated the default step later."""
        return self.get_last_commit(DEFAULT_TIME_STEP_MS)

    @last_commit.setter
    def last_commit(self, commit: Commit | None) -> None:
        self._last_commit = commit

    def get_last_commit(self, time_step_ms: int) -> Commit | None:
        """Return the commit the next block carries: a test's, else signed ``time_step_ms`` after the head."""
        if self._last_commit is not None or self._head is None:
            return self._last_commit
        block, vset, signers = self._head
        return self.sign_commit(block, signers, vset, time_ms=self.time_ms + time_step_ms)

    def build_block(
        self,
        txs: list[SignedTx] | tuple[SignedTx, ...] = (),
        *,
        evidence: tuple[EvidenceItem, ...] = (),
        round: int = 0,
        time_step_ms: int = DEFAULT_TIME_STEP_MS,
        state_root: bytes = ZERO_HASH,
    ) -> Block:
        """Return the next block, proposed by the right validator for ``round``.

        Its time is the BFT time of its last commit: the head's time +
        ``time_step_ms`` unless a test set ``last_commit``.
        """
        view = self.view()
        vset = view.get_validator_set()
        proposer = vset.compute_proposer(round).address
        last_commit = self.get_last_commit(time_step_ms)
        return make_block(
            chain_id=self.chain_id,
            height=self.height + 1,
            round=round,
            time_ms=compute_block_time(last_commit, view.get_last_validator_set(), self.time_ms),
            proposer=proposer,
            parent_hash=self.last_hash,
            last_commit=last_commit,
            txs=tuple(t.raw for t in txs),
            attestations=(),
            evidence=evidence,
            state_root=state_root,
            validators_hash=vset.hash(),
        )

    def sign_commit(
        self,
        block: Block,
        signers: list[int] | None = None,
        vset: ValidatorSet | None = None,
        *,
        time_ms: int | None = None,
        times: dict[int, int] | None = None,
    ) -> Commit:
        """Return a commit of ``block`` by ``signers`` (default: all members of its set but ``absent``).

        Every precommit is stamped ``time_ms`` (default: the block's time + the
        default step), which is then the BFT time of the block after it;
        ``times`` stamps chosen validators (by index) otherwise.
        """
        if vset is None:
            vset = self.view().get_last_validator_set()
        if vset is None:
            raise ValueError("no validator set is known for the block")
        if time_ms is None:
            time_ms = block.header.time_ms + DEFAULT_TIME_STEP_MS
        chosen = [i for i in range(self.n_validators) if i not in self.absent] if signers is None else signers
        precommits = []
        for i in chosen:
            op = self.operator_keys[i]
            if vset.get_by_address(op.address()) is None:
                continue
            vote = Vote(
                height=block.header.height,
                round=block.header.round,
                vote_type=VoteType.PRECOMMIT,
                block_hash=block.hash(),
                validator=op.address(),
                timestamp_ms=(times or {}).get(i, time_ms),
                signature=b"",
            )
            sig = self.consensus_keys[i].sign(Domain.VOTE, self.chain_id, vote.sign_payload())
            precommits.append(vote.with_signature(sig))
        return compute_commit(block.header.height, block.header.round, block.hash(), precommits)

    def apply(self, block: Block, *, sig_cache: SigCache | None = None) -> TransitionResult:
        """Execute and commit ``block`` (raises InvalidBlock if it is invalid).

        Its commit is signed by the validators not ``absent`` now, when the next block is built.
        """
        vset = self.view().get_validator_set()
        result = state_transition(self.state, block, sig_cache=sig_cache)
        self.state.apply(result.changes)
        self.height = block.header.height
        self.time_ms = block.header.time_ms
        self.last_hash = block.hash()
        self._last_commit = None
        self._head = (block, vset, [i for i in range(self.n_validators) if i not in self.absent])
        self.blocks.append(block)
        return result

    def next_block(self, txs: list[SignedTx] | tuple[SignedTx, ...] = (), **kw: object) -> TransitionResult:
        """Build, execute and commit the next block with ``txs``."""
        return self.apply(self.build_block(txs, **kw))  # type: ignore[arg-type]


def put_committed_challenge(
    chain: TestChain, n: int, rows: int, *, sample_hash: bytes = b""
) -> tuple[Challenge, list[list[bytes]], list[bytes]]:
    """Write a committed proof-of-compute challenge of ``rows`` x ``n`` with the honest rows into ``chain``'s state.

    Returns (challenge, Merkle levels, row leaves): what a fraud proof or the
    openings of that commitment need, without running a prover or an epoch.
    The challenge names NFT 0 and its commitment block 1.
    """
    import dataclasses

    import numpy as np

    from consensus.hashing import hash32
    from consensus.poc import DEVNET_POC_PARAMS, derive_challenge
    from consensus.poc.matrices import MATRIX_A, generate_b, generate_rows
    from consensus.poc.merkle import build_levels, compute_root, encode_row, hash_leaf
    from consensus.poc_state import ChallengeRecord, ChallengeStatus
    from consensus.state import Keys

    # The shape goes into the seed: challenges of different shapes get different ids.
    epoch = hash32(b"epoch" + n.to_bytes(4, "big") + rows.to_bytes(4, "big"))
    base = derive_challenge(epoch, b"\x00" * 8, 100, 1, DEVNET_POC_PARAMS)
    ch = dataclasses.replace(base, n=n, rows=rows)
    b = generate_b(ch.seed, n).astype(np.int64)
    a = generate_rows(ch.seed, MATRIX_A, n, list(range(rows))).astype(np.int64)
    leaves = [encode_row(r) for r in a @ b]
    levels = build_levels([hash_leaf(x) for x in leaves])
    rec = ChallengeRecord(
        challenge=ch, nft_id=0, status=ChallengeStatus.COMMITTED, challenge_time_ms=0,
        root=compute_root(levels), commit_height=1, pending_units=0, sample_hash=sample_hash,
        resolved_height=0, liable_validator=b"",
    )
    st = State(chain.state)
    st.put_record(Keys.challenge(ch.id), rec)
    chain.state.apply(st.changes())
    return ch, levels, leaves
