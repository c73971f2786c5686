"""Fixtures of the runtime tests: a ``Theater`` per test on a home under ``tmp_path``, manifests written next to
their components, and the check that every chain a test produced verifies.

The check runs after every test that used a ``Theater``: once the actors are idle, every chain in the store must
pass integrity verification (``store.verify_store``) and re-execution from genesis (``replay.Replayer``). A test
that breaks it errors in its teardown, naming the actor and the problem.

The helpers are shared with the supervision tests (``tests._fixtures``) and handed out here as fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from store import Event
from tests._fixtures import ManifestWriter, chain_problems, drain, of_type
from tests._full_disk import FullDisk, full_disk_at
from theater.runtime import Theater

REQUEST_TIMEOUT = 2.0  # seconds; small, so a missing answer fails fast instead of hanging the suite
DURABILITY = "buffered"  # no fsync per commit: the tests need crash order, not power-loss safety, and speed
MAX_DRAIN_ROUNDS = 20


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    """A small tmpfs for the home; requested before ``theaters`` so the runtimes close before it is unmounted."""
    with full_disk_at(tmp_path / "mnt") as disk:
        yield disk


@pytest.fixture
def manifest(tmp_path: Path) -> ManifestWriter:
    """``manifest(name, wat_text, ["message-server", ...], config=..., limits=..., init_state=...)`` -> its path."""
    directory = tmp_path / "actors"
    directory.mkdir()
    return ManifestWriter(directory)


@pytest.fixture(scope="session")
def settle() -> Callable[..., None]:
    """``settle(theater, *actor_ids)``: wait until the actors are idle (see ``tests._fixtures.drain``); no sleeping."""
    return lambda theater, *actor_ids: drain(theater, *actor_ids, rounds=MAX_DRAIN_ROUNDS)


class Theaters:
    """Opens runtimes on fresh homes; on teardown checks every chain of each, then closes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opened: list[Theater] = []

    def __call__(
        self, *, home: Path | None = None, request_timeout: float = REQUEST_TIMEOUT, **options: Any
    ) -> Theater:
        home = home if home is not None else self.root / f"home-{len(self.opened)}"
        theater = Theater(home, durability=DURABILITY, request_timeout=request_timeout, **options)
        self.opened.append(theater)
        return theater

    def check_and_close(self) -> list[str]:
        problems: list[str] = []
        for theater in self.opened:
            try:
                problems += [f"{theater.home}: {p}" for p in chain_problems(theater, rounds=MAX_DRAIN_ROUNDS)]
            finally:
                theater.close()
        return problems


@pytest.fixture
def theaters(tmp_path: Path) -> Iterator[Theaters]:
    """``theaters(home=..., request_timeout=..., **Theater options)``: a new ``Theater`` (on a fresh home unless
    ``home`` is given); every chain of its store is checked afterwards."""
    opened = Theaters(tmp_path)
    yield opened
    problems = opened.check_and_close()
    if problems:
        pytest.fail("every actor must verify after its run:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def theater(theaters: Theaters) -> Theater:
    """A ``Theater`` on a fresh home with a short request timeout; its chains are checked after the test."""
    return theaters()


@pytest.fixture(scope="session")
def events_of() -> Callable[[Theater, str, str], list[Event]]:
    """``events_of(theater, actor_id, type)``: the actor's events of that type, in chain order."""
    return of_type
