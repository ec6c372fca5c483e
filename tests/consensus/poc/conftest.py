"""Fixtures of the proof-of-compute tests (built in tests/kit/poc.py)."""

from tests.kit.poc import build_openings

__all__ = ["build_openings"]
