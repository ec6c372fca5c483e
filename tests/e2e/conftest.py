"""Fixtures of the end-to-end tests: devnets from tests/kit/devnet.py, always torn down by pid.

``shared_devnet``: one 4-validator devnet (no epoch boundary: ``SHARED_PARAMS``;
every node has committed a block before a test gets it)
for every test, in any module, that only reads the chain or adds state of its own
(fresh accounts and keys) and leaves every node running and in the set. Such a
test assumes no height, no nonce or balance of a genesis account and no order: it
may run first or last. The tests that use it run back to back (``pytest_collection_modifyitems`` moves
them up to the first of them, in collection order), and the devnet is destroyed
as soon as the next test does not use it (``pytest_runtest_teardown``), so it never
runs beside another test's devnet; if a later test uses it again, a fresh one is
started. ``shared_devnet_to_end``: the same devnet for a test that takes it down
(``devnet down``); such tests run after the others that share it.

``devnet``: a plain 4-validator devnet shared by the tests of one module (they
run in file order), for modules whose tests change it (stop, kill or load
nodes). ``make_devnet``: a factory for a test that needs its own devnet
(genesis parameter overrides, byzantine nodes); every devnet it made is
destroyed when the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit.devnet import Devnet, E2EError, MakeDevnet

SHARED = "shared_devnet"
SHARED_TO_END = "shared_devnet_to_end"
#: Genesis parameters of the shared devnet: no epoch boundary while it runs. At a boundary every
#: node proves its genesis NFT's challenge and gossips about 1.3 MB of openings, which stalls the
#: chain for seconds on a busy machine. The tests that share this devnet are not about proof of
#: compute; on devnets of their own they mostly ended before the first boundary (height 20).
SHARED_PARAMS = {"epoch_blocks": 100_000}


class SharedDevnet:
    """The devnet behind ``shared_devnet``: started on first use, destroyed by ``close``."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._net: Devnet | None = None

    def get(self) -> Devnet:
        """The running devnet, every node past height 1; start one if there is none."""
        if self._net is None:
            net = Devnet(self._tmp.mktemp("shared-devnet"), 4, params=SHARED_PARAMS)
            try:
                net.up()
                # Any of its tests may run first: none may find a node without a block.
                net.wait_all_at(1, timeout=60)
            except BaseException:
                net.destroy()
                raise
            self._net = net
        return self._net

    def close(self) -> None:
        """Stop every process of the devnet by pid (``Devnet.destroy``), if one runs."""
        net, self._net = self._net, None
        if net is not None:
            net.destroy()


_SHARED_KEY = pytest.StashKey[SharedDevnet]()


def _uses_shared(item: pytest.Item | None) -> bool:
    names = getattr(item, "fixturenames", ())
    return item is not None and (SHARED in names or SHARED_TO_END in names)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests of the shared devnet back to back, where the first of them is collected;
    those that end it (``shared_devnet_to_end``) last."""
    users = [item for item in items if _uses_shared(item)]
    if not users:
        return
    first = items.index(users[0])
    ending = [item for item in users if SHARED_TO_END in getattr(item, "fixturenames", ())]
    users = [item for item in users if item not in ending] + ending
    others = [item for item in items if not _uses_shared(item)]
    items[:] = others[:first] + users + others[first:]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Destroy the shared devnet after the last of a run of tests that use it."""
    shared = item.session.stash.get(_SHARED_KEY, None)
    if shared is not None and _uses_shared(item) and not _uses_shared(nextitem):
        shared.close()


@pytest.fixture(scope="session")
def _shared_devnets(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedDevnet]:
    shared = SharedDevnet(tmp_path_factory)
    request.session.stash[_SHARED_KEY] = shared
    try:
        yield shared
    finally:
        shared.close()  # a session cut short (-x, Ctrl-C) ends here


@pytest.fixture
def shared_devnet(_shared_devnets: SharedDevnet) -> Devnet:
    """The running 4-validator devnet of every test that only reads it or adds state of its own."""
    return _shared_devnets.get()


@pytest.fixture
def shared_devnet_to_end(_shared_devnets: SharedDevnet) -> Iterator[Devnet]:
    """The shared devnet, for a test that takes it down: it runs after the other tests of the
    shared devnet, whatever is left of it is destroyed after it, and a later test gets a fresh one."""
    try:
        yield _shared_devnets.get()
    finally:
        _shared_devnets.close()


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
