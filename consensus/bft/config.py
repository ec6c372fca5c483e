"""Timeouts of the round machine, growing linearly with the round."""

from __future__ import annotations

from dataclasses import dataclass

from consensus.errors import ConsensusError


class TimeoutConfigError(ConsensusError):
    """A timeout configuration is not usable."""


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """Base timeouts and their per-round growth, in milliseconds (devnet defaults)."""

    propose_ms: int = 1000
    """How long to wait for a proposal in round 0."""
    propose_delta_ms: int = 500
    """Added to the propose timeout for each further round."""
    prevote_ms: int = 500
    """How long to wait, after +2/3 prevotes for anything, for a +2/3 majority in round 0."""
    prevote_delta_ms: int = 250
    """Added to the prevote timeout for each further round."""
    precommit_ms: int = 500
    """How long to wait, after +2/3 precommits for anything, before the next round."""
    precommit_delta_ms: int = 250
    """Added to the precommit timeout for each further round."""
    commit_ms: int = 500
    """Pause after a commit before the next height starts (gathers late precommits)."""

    def validate(self) -> None:
        """Raise TimeoutConfigError unless every timeout is positive and every growth non-negative."""
        if min(self.propose_ms, self.prevote_ms, self.precommit_ms) <= 0 or self.commit_ms < 0:
            raise TimeoutConfigError("base timeouts must be positive (commit wait non-negative)")
        if min(self.propose_delta_ms, self.prevote_delta_ms, self.precommit_delta_ms) < 0:
            raise TimeoutConfigError("per-round timeout growth must not be negative")

    def get_propose_timeout(self, round_: int) -> int:
        """Return the propose timeout of ``round_`` in milliseconds."""
        return self.propose_ms + self.propose_delta_ms * round_

    def get_prevote_timeout(self, round_: int) -> int:
        """Return the prevote timeout of ``round_`` in milliseconds."""
        return self.prevote_ms + self.prevote_delta_ms * round_

    def get_precommit_timeout(self, round_: int) -> int:
        """Return the precommit timeout of ``round_`` in milliseconds."""
        return self.precommit_ms + self.precommit_delta_ms * round_
