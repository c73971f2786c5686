"""Fixtures of the runtime tests: a ``Theater`` per test on a home under ``tmp_path``, manifests written next to
their components, and the check that every chain a test produced verifies.

The check runs after every test that used a ``Theater``: once the actors are idle, every chain in the store must
pass integrity verification (``store.verify_store``) and re-execution from genesis (``replay.Replayer``). A test
that breaks it errors in its teardown, naming the actor and the problem.

Helpers are handed out as fixtures because the test modules are not a package (no shared import path).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from store import Event
from theater.errors import ActorNotRunning
from theater.runtime import Theater
from tests._chains import chain_problems as store_chain_problems

REQUEST_TIMEOUT = 2.0  # seconds; small, so a missing answer fails fast instead of hanging the suite
DURABILITY = "buffered"  # no fsync per commit: the tests need crash order, not power-loss safety, and speed
WAIT = 10.0  # seconds any single wait of a test may take before it gives up
MAX_DRAIN_ROUNDS = 20


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for everything the tests use
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r} in these tests")


class ManifestWriter:
    """Writes a component and its manifest into a directory and returns the manifest's path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(
        self,
        name: str,
        component: str | bytes,
        handlers: Iterable[str] = (),
        *,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        limits: Mapping[str, int] | None = None,
        init_state: str | None = None,
    ) -> Path:
        """``name``: the actor's name and the files' stem; ``component``: WAT text or raw bytes;
        ``handlers``: handler types to grant; ``config``: handler type -> its config table."""
        suffix = "wat" if isinstance(component, str) else "wasm"
        path = self.directory / f"{name}.{suffix}"
        if isinstance(component, str):
            path.write_text(component)
        else:
            path.write_bytes(component)
        lines = [f"name = {_toml_value(name)}", f'component = "{path.name}"']
        if init_state is not None:
            lines.append(f"init_state = {_toml_value(init_state)}")
        for handler in handlers:
            lines += ["", "[[handlers]]", f"type = {_toml_value(handler)}"]
            if config and handler in config:
                lines.append(f"config = {_toml_value(config[handler])}")
        if limits:
            lines += ["", "[limits]", *(f"{key} = {_toml_value(value)}" for key, value in limits.items())]
        manifest = self.directory / f"{name}.toml"
        manifest.write_text("\n".join(lines) + "\n")
        return manifest


@pytest.fixture
def manifest(tmp_path: Path) -> ManifestWriter:
    """``manifest(name, wat_text, ["message-server", ...], config=..., limits=..., init_state=...)`` -> its path."""
    directory = tmp_path / "actors"
    directory.mkdir()
    return ManifestWriter(directory)


def drain(theater: Theater, *actor_ids: str) -> None:
    """Wait until the given actors (all, when none given) have handled everything sent to them so far.

    An operation queued behind everything else in an actor's mailbox runs only once what came before has run, and
    its answer comes only after the effects of those operations (messages to other actors) were released. Rounds
    repeat until a round adds no event to the store, so messages bouncing between actors are settled too.
    """
    for _ in range(MAX_DRAIN_ROUNDS):
        before = theater.store.log.feed_end()
        ids = actor_ids or tuple(a["id"] for a in theater.actors())
        for actor_id in ids:
            actor = theater.actor(actor_id)
            try:
                actor.submit(lambda: None).result(WAIT)
            except ActorNotRunning:
                pass
            actor.tape.wait_durable(WAIT)
        if theater.store.log.feed_end() == before:
            return
    raise AssertionError(f"the actors were still busy after {MAX_DRAIN_ROUNDS} rounds")


@pytest.fixture(scope="session")
def settle() -> Callable[..., None]:
    """``settle(theater, *actor_ids)``: wait until the actors are idle (see ``drain``); no sleeping."""
    return drain


def chain_problems(theater: Theater) -> list[str]:
    """Every reason a chain of this runtime's store fails verification or replay, once the actors are idle."""
    drain(theater)
    return store_chain_problems(theater.store)


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
                problems += [f"{theater.home}: {p}" for p in chain_problems(theater)]
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


def _events_of_type(theater: Theater, actor_id: str, type_: str) -> list[Event]:
    return [e for e in theater.events(actor_id) if e.type == type_]


@pytest.fixture(scope="session")
def events_of() -> Callable[[Theater, str, str], list[Event]]:
    """``events_of(theater, actor_id, type)``: the actor's events of that type, in chain order."""
    return _events_of_type
