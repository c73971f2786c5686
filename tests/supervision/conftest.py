"""Fixtures of the supervision tests: a ``Theater`` per test with a fake clock, manifests with a ``[supervision]``
table, waiting on commits (never sleeping), and the check that every chain verifies and replays afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from store import Event
from tests._chains import CommitWaiter
from tests._fixtures import WAIT, ManifestWriter, chain_problems, drain, of_type
from theater.runtime import Theater

class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Watch:
    """Wakes waiters after every commit of a store, so a test waits on the record itself."""

    def __init__(self, theater: Theater) -> None:
        self.theater = theater
        self._waiter = CommitWaiter(theater.store, WAIT)

    def until(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        """Wait until ``predicate()`` is true (checked after each commit) and return its value."""
        return self._waiter.until(predicate, what, timeout)

    def events(self, actor_id: str, type_: str, count: int = 1, **match: Any) -> list[Event]:
        """Wait until the actor's chain holds ``count`` events of ``type_`` whose data match; return them all."""
        def found() -> list[Event]:
            events = of_type(self.theater, actor_id, type_, **match)
            return events if len(events) >= count else []
        return self.until(found, f"{count} x {type_} {match or ''} in the chain of {actor_id}")


class Rig:
    """One runtime on a fresh home with a fake clock, what it needs to write manifests, and waiting helpers."""

    def __init__(self, root: Path) -> None:
        self.theater = Theater(root / "home", request_timeout=2.0)
        self.clock = FakeClock()
        self.theater.supervision.clock = self.clock
        self.watch = Watch(self.theater)
        directory = root / "actors"
        directory.mkdir()
        self.manifest = ManifestWriter(directory)

    def settle(self) -> None:
        drain(self.theater)

    def events(self, actor_id: str, type_: str, **match: Any) -> list[Event]:
        return of_type(self.theater, actor_id, type_, **match)

    def types(self, actor_id: str, prefix: str = "") -> list[str]:
        return [e.type for e in self.theater.events(actor_id) if e.type.startswith(prefix)]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A runtime with a fake supervision clock; every chain must verify and replay after the test."""
    made = Rig(tmp_path)
    try:
        yield made
        problems = chain_problems(made.theater)
    finally:
        made.theater.close()
    if problems:
        pytest.fail("every actor must verify after its run:\n" + "\n".join(problems), pytrace=False)
