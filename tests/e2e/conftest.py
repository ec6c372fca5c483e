"""Fixtures of the end-to-end tests: devnets from tests/kit/devnet.py, always torn down by pid.

``devnet``: a plain 4-validator devnet shared by the tests of one module (they
run in file order). ``make_devnet``: a factory for a test that needs its own
devnet (genesis parameter overrides, byzantine nodes); every devnet it made is
destroyed when the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit.devnet import Devnet, E2EError, MakeDevnet


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """A running 4-validator devnet shared by the tests of one module."""
    net = Devnet(tmp_path_factory.mktemp("devnet"), 4)
    try:
        net.up()
        yield net
    finally:
        net.destroy()


@pytest.fixture
def make_devnet(tmp_path: Path) -> Iterator[MakeDevnet]:
    """``make_devnet(validators=4, *, params=None, byzantine=None, compute_units=None)``: a started devnet of this test's own."""
    made: list[Devnet] = []

    def make(validators: int = 4, *, params: dict[str, int] | None = None,
             byzantine: dict[str, str] | None = None, compute_units: int | None = None) -> Devnet:
        net = Devnet(tmp_path / f"devnet{len(made)}", validators, params=params, byzantine=byzantine,
                     compute_units=compute_units)
        made.append(net)
        net.up()
        return net

    try:
        yield make
    finally:
        failures = []
        for net in made:
            try:
                net.destroy()
            except E2EError as exc:
                failures.append(str(exc))
        if failures:
            raise E2EError("; ".join(failures))
