"""Fixtures of the supervision tests: a ``Theater`` per test with a fake clock, manifests with a ``[supervision]``
table, waiting on commits (never sleeping), and the check that every chain verifies and replays afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from store import Event
from theater.errors import ActorNotRunning
from theater.runtime import Theater
from tests._chains import CommitWaiter
from tests._chains import chain_problems as store_chain_problems

WAIT = 10.0  # seconds any single wait may take before the test fails
MAX_DRAIN_ROUNDS = 50


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


class ManifestWriter:
    """Writes a component and its manifest into a directory and returns the manifest's path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def text(
        self, name: str, component: str, handlers: Iterable[str] = (), *, supervision: Mapping[str, Any] | None = None,
        limits: Mapping[str, int] | None = None, init_state: str | None = None,
    ) -> str:
        """The manifest's TOML (the component is written next to where the manifest would be, and named by a
        path relative to it: a supervisor's guest may name only files in its manifest's directory)."""
        path = self.directory / f"{name}.wat"
        path.write_text(component)
        lines = [f"name = {toml_value(name)}", f"component = {toml_value(path.name)}"]  # beside the manifest
        if init_state is not None:
            lines.append(f"init_state = {toml_value(init_state)}")
        for handler in handlers:
            lines += ["", "[[handlers]]", f"type = {toml_value(handler)}"]
        for table, values in (("limits", limits), ("supervision", supervision)):
            if values:
                lines += ["", f"[{table}]", *(f"{k} = {toml_value(v)}" for k, v in values.items())]
        return "\n".join(lines) + "\n"

    def __call__(self, name: str, component: str, handlers: Iterable[str] = (), **options: Any) -> Path:
        manifest = self.directory / f"{name}.toml"
        manifest.write_text(self.text(name, component, handlers, **options))
        return manifest


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


def of_type(theater: Theater, actor_id: str, type_: str, **match: Any) -> list[Event]:
    """The actor's events of that type whose data has the given values, in chain order."""
    return [e for e in theater.events(actor_id)
            if e.type == type_ and all(e.data.get(k) == v for k, v in match.items())]


def drain(theater: Theater) -> None:
    """Wait until every actor has handled what was sent to it and nothing more is being recorded."""
    for _ in range(MAX_DRAIN_ROUNDS):
        before = theater.store.log.feed_end()
        for listed in theater.actors():
            actor = theater.actor(listed["id"])
            try:
                actor.submit(lambda: None).result(WAIT)
            except ActorNotRunning:
                pass
            actor.tape.wait_durable(WAIT)
        if theater.store.log.feed_end() == before:
            return
    raise AssertionError(f"the actors were still busy after {MAX_DRAIN_ROUNDS} rounds")


def chain_problems(theater: Theater) -> list[str]:
    """Every reason a chain of this runtime's store fails verification or replay, once the actors are idle."""
    drain(theater)
    return store_chain_problems(theater.store)


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
