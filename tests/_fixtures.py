"""Helpers shared by the runtime and supervision fixtures (``tests/theater/conftest.py``,
``tests/supervision/conftest.py``): manifests written next to their components, waiting until a runtime's actors
are idle (never sleeping), and the reasons a runtime's chains fail verification or replay."""

from __future__ import annotations

import base64

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from store import Event
from tests._chains import chain_problems as store_chain_problems
from theater.errors import ActorNotRunning
from theater.runtime import Theater

WAIT = 10.0  # seconds any single wait of a test may take before it gives up
MAX_DRAIN_ROUNDS = 50


def toml_value(value: Any) -> str:
    """A TOML value for what the fixtures write: booleans, numbers, strings, lists and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for everything the tests use
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r} in these tests")


class ManifestWriter:
    """Writes a component and its manifest into a directory and returns the manifest's path."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def text(
        self,
        name: str,
        component: str | bytes,
        handlers: Iterable[str] = (),
        *,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        limits: Mapping[str, int] | None = None,
        supervision: Mapping[str, Any] | None = None,
        init_state: str | None = None,
        on_err: str | None = None,
    ) -> str:
        """The manifest's TOML. The component (WAT text or raw bytes) is written into the directory and named by
        a path relative to the manifest (a supervisor's guest may name only files in its manifest's directory).

        Args:
            name: the actor's name and the files' stem.
            component: WAT text or the bytes of a component.
            handlers: handler types to grant.
            config: handler type -> its config table.
            limits, supervision: the ``[limits]`` and ``[supervision]`` tables.
            init_state: the initial state as a string.
            on_err: the top-level ``on_err`` (``answer`` or ``fail``); left out when None.
        """
        suffix = "wat" if isinstance(component, str) else "wasm"
        path = self.directory / f"{name}.{suffix}"
        if isinstance(component, str):
            path.write_text(component)
        else:
            path.write_bytes(component)
        lines = [f"name = {toml_value(name)}", f"component = {toml_value(path.name)}"]
        if on_err is not None:
            lines.append(f"on_err = {toml_value(on_err)}")
        if init_state is not None:  # inline (a bare string names a file, as in the original Theater)
            encoded = base64.b64encode(init_state.encode()).decode()
            lines.append(f"init_state = {{ base64 = {toml_value(encoded)} }}")
        for handler in handlers:
            lines += ["", "[[handlers]]", f"type = {toml_value(handler)}"]
            if config and handler in config:
                lines.append(f"config = {toml_value(config[handler])}")
        for table, values in (("limits", limits), ("supervision", supervision)):
            if values:
                lines += ["", f"[{table}]", *(f"{k} = {toml_value(v)}" for k, v in values.items())]
        return "\n".join(lines) + "\n"

    def __call__(self, name: str, component: str | bytes, handlers: Iterable[str] = (), **options: Any) -> Path:
        """Write the component and ``name.toml`` (see ``text`` for the options); return the manifest's path."""
        manifest = self.directory / f"{name}.toml"
        manifest.write_text(self.text(name, component, handlers, **options))
        return manifest


def drain(theater: Theater, *actor_ids: str, rounds: int = MAX_DRAIN_ROUNDS) -> None:
    """Wait until the given actors (all, when none given) have handled everything sent to them so far.

    An operation queued behind everything else in an actor's mailbox runs only once what came before has run, and
    its answer comes only after the effects of those operations (messages to other actors) were released. Rounds
    repeat until a round adds no event to the store, so messages bouncing between actors are settled too.

    Raises:
        AssertionError: the actors were still recording after ``rounds`` rounds.
    """
    for _ in range(rounds):
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
    raise AssertionError(f"the actors were still busy after {rounds} rounds")


def chain_problems(theater: Theater, *, rounds: int = MAX_DRAIN_ROUNDS) -> list[str]:
    """Every reason a chain of this runtime's store fails verification or replay, once the actors are idle."""
    drain(theater, rounds=rounds)
    return store_chain_problems(theater.store)


def of_type(theater: Theater, actor_id: str, type_: str, **match: Any) -> list[Event]:
    """The actor's events of that type whose data has the given values, in chain order."""
    return [e for e in theater.events(actor_id)
            if e.type == type_ and all(e.data.get(k) == v for k, v in match.items())]


__all__ = ["MAX_DRAIN_ROUNDS", "WAIT", "ManifestWriter", "chain_problems", "drain", "of_type", "toml_value"]
