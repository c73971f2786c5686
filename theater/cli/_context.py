"""What every command shares: the home directory and the store opened on it, lazily."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click

from store import Store

DEFAULT_HOME = Path("~/.theater")


class Context:
    """Holds the home and opens its store on first use."""

    def __init__(self, home: str | None) -> None:
        self.home = Path(home).expanduser() if home else DEFAULT_HOME.expanduser()
        self._store: Store | None = None

    def store(self, *, readonly: bool = False) -> Store:
        """The home's store (``<home>/store``), opened once per command."""
        if self._store is None:
            self._store = Store(self.home / "store", readonly=readonly and (self.home / "store").exists())
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout."""
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def resolve_event(store: Store, ref: str) -> bytes:
    """An event hash from the command line: the full hex hash or a unique prefix of at least 4 digits."""
    return store.log.resolve(ref)


def event_seq(store: Store, actor: uuid.UUID, ref: str) -> int:
    """The sequence number of event ``ref`` (hash or prefix), which must belong to ``actor``.

    Raises:
        click.UsageError: the event belongs to another actor.
    """
    event_actor, seq = store.log.locate(resolve_event(store, ref))
    if event_actor != actor:
        raise click.UsageError(f"event {ref} belongs to actor {event_actor}, not {actor}")
    return seq
