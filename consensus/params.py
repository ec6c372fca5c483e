"""Protocol parameters: every tunable of the chain, fixed in genesis, integers only.

Two presets exist: ``devnet`` (small and fast, for tests and local networks,
test faults allowed) and ``mainnet`` (realistic). Fractions are basis points
(1/10,000) so that every computation is exact integer arithmetic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from consensus.codec import Encodable
from consensus.errors import ValidationError

BPS = 10_000


@dataclass(frozen=True, slots=True)
class Params(Encodable):
    """All protocol parameters in force; changed only through genesis."""

    #: Largest encoded block accepted, in bytes.
    max_block_bytes: int
    #: Most transactions in one block.
    max_block_txs: int
    #: Largest encoded signed transaction, in bytes.
    max_tx_bytes: int
    #: Smallest fee a transaction may pay.
    min_fee: int
    #: Blocks per epoch; the validator set changes only at epoch boundaries.
    epoch_blocks: int
    #: Blocks an unbonding entry waits before its tokens return.
    unbonding_blocks: int
    #: Smallest self-bond for a validator to be in the active set.
    min_self_bond: int
    #: Smallest verified compute (units) for a validator to be in the active set.
    min_verified_compute: int
    #: Largest active validator set.
    max_validators: int
    #: Largest commission a validator may set, in basis points.
    max_commission_bps: int
    #: Tokens minted each block (emission).
    block_reward: int
    #: Share of each block's reward to the validators that signed the last commit (bps).
    consensus_share_bps: int
    #: Extra share of the consensus part paid to the block's proposer (bps).
    proposer_bonus_bps: int
    #: Slash for double-signing, of bonded stake and delegations (bps).
    double_sign_slash_bps: int
    #: Slash for downtime (bps).
    downtime_slash_bps: int
    #: Slash of stake for a proven faulty computation (bps); the NFT loses its whole collateral.
    faulty_compute_slash_bps: int
    #: Slash of an NFT's collateral for a missed proof-of-compute deadline (bps).
    missed_challenge_slash_bps: int
    #: Share of every slash paid to the whistleblower (bps); the rest is burned.
    whistleblower_bps: int
    #: Window of recent blocks over which missed precommits are counted.
    downtime_window: int
    #: Most precommits a validator may miss in the window before it is jailed.
    downtime_max_missed: int
    #: How long a downtime jail lasts, in milliseconds of block time.
    jail_duration_ms: int
    #: Smallest collateral bonded with a compute NFT.
    min_nft_collateral: int
    #: Seconds of work an honest device should need for its challenge.
    challenge_seconds: int
    #: Blocks after a challenge by which its commitment must be included.
    poc_commit_deadline_blocks: int
    #: Blocks after the commitment by which the openings must be included.
    poc_open_deadline_blocks: int
    #: Round-0 propose timeout, and its growth per round (ms).
    timeout_propose_ms: int
    timeout_propose_delta_ms: int
    #: Round-0 prevote/precommit timeouts, and their growth per round (ms).
    timeout_vote_ms: int
    timeout_vote_delta_ms: int
    #: Wait after a commit before the next height starts (ms).
    timeout_commit_ms: int
    #: Reputation moves this fraction (bps) of the way to 1,000,000 for a signed
    #: precommit, and toward 0 for a missed one, each block.
    reputation_block_bps: int
    #: Step (bps of the distance) for a passed (up) or failed (down) proof-of-compute challenge.
    reputation_challenge_bps: int
    #: Step (bps of the distance) for a job completed correctly (up) or failed (down).
    reputation_job_bps: int
    #: 1 when test-only byzantine modes may run against this chain.
    allow_test_faults: int
    # -- proof of compute (docs/proof-of-compute.md; with challenge_seconds and the
    #    poc_*_deadline_blocks above they make ``get_poc_params``) --
    #: Samples are fixed at the end of the block this many blocks after the commitment's, from
    #: its parent's hash (at least 2: the parent then comes after the commitment's block).
    poc_sample_delay_blocks: int
    #: Tallest challenge matrix A (rows); bounds the work and the prover's memory.
    poc_max_rows: int
    #: An attestation is fresh while its height is at most this many blocks old.
    attestation_max_age_blocks: int
    #: At most one attestation per NFT is accepted into blocks per this many blocks.
    attestation_min_interval_blocks: int
    # -- job marketplace (docs/jobs.md) --
    #: Largest inline job input, in bytes.
    job_max_input_bytes: int
    #: Most jobs open (not settled, failed or cancelled) at once; bounds end-of-block work.
    job_max_open: int
    #: Leaves a provider opens per result (fewer when the result has fewer).
    job_sample_count: int
    #: Blocks after the openings during which a result may be challenged.
    job_challenge_window_blocks: int
    #: Blocks a party of a bisection dispute has for each move.
    job_response_blocks: int
    #: Blocks after submission by which a job must settle, or it fails and is refunded.
    job_lifetime_blocks: int
    #: Share of each provider payment to the settling block's proposer, who verified it (bps).
    job_verifier_share_bps: int
    #: Share of each provider payment burned as the protocol fee (bps).
    job_fee_bps: int
    #: Asking price per work unit of an NFT that never set one.
    job_default_price: int
    #: Most unsettled job slots one compute NFT holds at once.
    job_max_slots_per_nft: int
    #: Widest proof-of-compute challenge (inner dimension n, a multiple of 64, <= 2048).
    #: Openings carry 800 rows of 4·n bytes: 256 keeps them near 1.3 MB, gossip-sized.
    poc_max_n: int
    # -- execution cost (consensus/costs.py; docs/protocol.md section 3a) --
    #: Most cost units (about a microsecond of execution each) a block's transactions may cost.
    max_block_cost: int
    #: Fee price in ten-thousandths of a token per cost unit: fee >= ceil(cost x this / 10,000).
    min_fee_per_cost: int
    #: Most heavy transactions (heavy work of at least 1,000 units; prover duties aside) in a block.
    max_heavy_txs_per_block: int
    #: Slash of a compute NFT's collateral when its job slot misses its deadline (bps).
    missed_job_slash_bps: int

    def validate_basic(self) -> None:
        """Raise ValidationError unless every parameter is in its allowed range."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 0:
                raise ValidationError(f"params.{f.name} must be a non-negative integer")
        positive = (
            "max_block_bytes",
            "max_block_txs",
            "max_tx_bytes",
            "epoch_blocks",
            "unbonding_blocks",
            "max_validators",
            "downtime_window",
            "challenge_seconds",
            "poc_commit_deadline_blocks",
            "poc_open_deadline_blocks",
            "poc_sample_delay_blocks",
            "poc_max_rows",
            "attestation_max_age_blocks",
            "attestation_min_interval_blocks",
            "job_max_input_bytes",
            "job_max_open",
            "job_sample_count",
            "job_challenge_window_blocks",
            "job_response_blocks",
            "job_lifetime_blocks",
            "job_default_price",
            "job_max_slots_per_nft",
            "poc_max_n",
            "timeout_propose_ms",
            "timeout_vote_ms",
            "max_block_cost",
        )
        for name in positive:
            if getattr(self, name) == 0:
                raise ValidationError(f"params.{name} must be positive")
        for name in (
            "max_commission_bps",
            "consensus_share_bps",
            "proposer_bonus_bps",
            "double_sign_slash_bps",
            "downtime_slash_bps",
            "faulty_compute_slash_bps",
            "missed_challenge_slash_bps",
            "whistleblower_bps",
            "reputation_block_bps",
            "reputation_challenge_bps",
            "reputation_job_bps",
            "missed_job_slash_bps",
        ):
            if getattr(self, name) > BPS:
                raise ValidationError(f"params.{name} is a fraction in basis points (at most {BPS})")
        if self.downtime_max_missed >= self.downtime_window:
            raise ValidationError("params.downtime_max_missed must be below params.downtime_window")
        if self.max_tx_bytes > self.max_block_bytes:
            raise ValidationError("params.max_tx_bytes must not exceed params.max_block_bytes")
        if self.allow_test_faults not in (0, 1):
            raise ValidationError("params.allow_test_faults is 0 or 1")
        if self.poc_sample_delay_blocks < 2:
            # The samples come from the parent of the sample block: with a delay of 1 it
            # would be the commitment's own block, whose proposer may be the prover.
            raise ValidationError("params.poc_sample_delay_blocks must be at least 2")
        if self.poc_max_rows > 1 << 24:
            raise ValidationError("params.poc_max_rows is at most 2^24")
        if not 64 <= self.poc_max_n <= 2048 or self.poc_max_n % 64:
            raise ValidationError("params.poc_max_n must be a multiple of 64 in [64, 2048]")
        if self.job_verifier_share_bps + self.job_fee_bps > BPS:
            raise ValidationError("params.job_verifier_share_bps + job_fee_bps must not exceed 10000")
        if self.job_sample_count > 100:
            # An iterate result opens 2 + 2 x samples states; a transaction carries at most 256 leaves.
            raise ValidationError("params.job_sample_count is at most 100")

    def to_json(self) -> dict[str, int]:
        """Return the parameters as a JSON object (name -> integer)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, obj: Any, base: Params | None = None) -> Params:
        """Build parameters from a JSON object; missing names come from ``base``."""
        if not isinstance(obj, dict):
            raise ValidationError("params must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - names)
        if unknown:
            raise ValidationError(f"unknown parameter(s): {', '.join(unknown)}")
        values: dict[str, int] = {} if base is None else base.to_json()
        for key, value in obj.items():
            if type(value) is not int:
                raise ValidationError(f"params.{key} must be an integer")
            values[key] = value
        missing = sorted(names - set(values))
        if missing:
            raise ValidationError(f"missing parameter(s): {', '.join(missing)}")
        params = cls(**values)
        params.validate_basic()
        return params


DEVNET = Params(
    max_block_bytes=4 << 20,
    # Above the 3,267 transfers the cost budget admits (max_block_cost / 153 units), so
    # the budget, which prices what a block makes every node compute, is the binding
    # limit; this stays as a cap on per-transaction overhead (results, index entries).
    max_block_txs=4_000,
    # A proof-of-compute openings transaction is about 1.3 MB at devnet's n = 256.
    max_tx_bytes=2 << 20,
    min_fee=1,
    epoch_blocks=20,
    unbonding_blocks=100,
    min_self_bond=1_000,
    min_verified_compute=1,
    max_validators=100,
    max_commission_bps=5_000,
    block_reward=1_000_000,
    consensus_share_bps=5_000,
    proposer_bonus_bps=1_000,
    double_sign_slash_bps=500,
    downtime_slash_bps=100,
    faulty_compute_slash_bps=1_000,
    missed_challenge_slash_bps=100,
    whistleblower_bps=1_000,
    downtime_window=100,
    downtime_max_missed=50,
    jail_duration_ms=30_000,
    min_nft_collateral=100,
    challenge_seconds=2,
    # Commitment, samples and openings resolve inside one 20-block epoch (12 + 2 + 5 < 20).
    poc_commit_deadline_blocks=12,
    poc_open_deadline_blocks=5,
    timeout_propose_ms=1_000,
    timeout_propose_delta_ms=500,
    timeout_vote_ms=500,
    timeout_vote_delta_ms=250,
    timeout_commit_ms=500,
    reputation_block_bps=50,
    reputation_challenge_bps=2_000,
    reputation_job_bps=1_000,
    allow_test_faults=1,
    poc_sample_delay_blocks=2,
    poc_max_rows=1 << 22,
    attestation_max_age_blocks=40,
    attestation_min_interval_blocks=10,
    job_max_input_bytes=1 << 20,
    job_max_open=256,
    job_sample_count=32,
    job_challenge_window_blocks=5,
    job_response_blocks=5,
    job_lifetime_blocks=300,
    job_verifier_share_bps=500,
    job_fee_bps=100,
    job_default_price=1,
    job_max_slots_per_nft=1,
    poc_max_n=256,
    # Half a second of transaction execution per block on the reference machine.
    max_block_cost=500_000,
    # About 1 token per 3,300 cost units: ordinary transactions pay min_fee.
    min_fee_per_cost=3,
    max_heavy_txs_per_block=16,
    missed_job_slash_bps=100,
)

MAINNET = dataclasses.replace(
    DEVNET,
    # Openings at n = 2048 are about 7 MB (800 rows of 8 KiB with their paths).
    max_block_bytes=16 << 20,
    # Unchanged when devnet's went from 2,000 to 4,000: a mainnet change is its own decision.
    max_block_txs=2_000,
    max_tx_bytes=9 << 20,
    min_fee=1_000,
    epoch_blocks=1_000,
    # 21 days of 6-second blocks.
    unbonding_blocks=302_400,
    min_self_bond=10_000_000_000,
    min_verified_compute=10,
    max_validators=150,
    block_reward=10_000_000,
    jail_duration_ms=600_000,
    min_nft_collateral=1_000_000_000,
    challenge_seconds=10,
    poc_commit_deadline_blocks=20,
    poc_open_deadline_blocks=10,
    timeout_propose_ms=3_000,
    timeout_vote_ms=1_000,
    timeout_vote_delta_ms=500,
    timeout_commit_ms=1_000,
    allow_test_faults=0,
    poc_max_rows=1 << 24,
    attestation_max_age_blocks=200,
    attestation_min_interval_blocks=100,
    job_max_input_bytes=4 << 20,
    job_max_open=10_000,
    job_sample_count=64,
    # 10 minutes of 6-second blocks to challenge; 5 minutes per bisection move.
    job_challenge_window_blocks=100,
    job_response_blocks=50,
    job_lifetime_blocks=14_400,
    job_default_price=1_000,
    job_max_slots_per_nft=4,
    poc_max_n=2048,
    # Two seconds of transaction execution in a 6-second block.
    max_block_cost=2_000_000,
    # 3 tokens per cost unit: a transfer (153 units) stays under min_fee.
    min_fee_per_cost=30_000,
)

PRESETS: dict[str, Params] = {"devnet": DEVNET, "mainnet": MAINNET}
