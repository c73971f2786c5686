"""What every command shares: the home directory and the store opened on it, lazily; actors by id or prefix."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click

from store import Store
from theater.porcelain import resolve_actor

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

    def actor(self, ref: str) -> uuid.UUID:
        """The actor ``ref`` names in the home: a full id or a unique prefix of a recorded one
        (``theater.porcelain.resolve_actor``).

        Raises:
            InvalidInputError, ActorNotFound, AmbiguousPrefixError.
        """
        return resolve_actor(self.store(readonly=True), ref)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout."""
    click.echo(json.dumps(value, indent=2, sort_keys=True))
