"""The job kinds this protocol version knows, by code."""

from __future__ import annotations

from consensus.jobs.iterate import IterateKind
from consensus.jobs.kinds import JobInput, JobKind
from consensus.jobs.matmul import MatmulKind
from consensus.jobs.types import Job

KINDS: dict[int, JobKind] = {1: MatmulKind(), 2: IterateKind()}
KIND_BY_NAME: dict[str, JobKind] = {k.name: k for k in KINDS.values()}


def get_kind(code: int) -> JobKind | None:
    """Return the kind with ``code``, or None."""
    return KINDS.get(code)


def get_job_input(job: Job) -> JobInput:
    """Return what a kind needs of ``job``."""
    return JobInput(job.spec, job.inputs, job.input_seed)
