"""Fixtures of the end-to-end tests: a 4-validator devnet per module, always torn down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import Devnet


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """A running 4-validator devnet shared by the tests of one module."""
    net = Devnet(tmp_path_factory.mktemp("devnet"))
    try:
        net.start(4)
        yield net
    finally:
        net.destroy()
