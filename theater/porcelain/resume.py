"""Durable resume: when a runtime starts on a home (``theater server``), the actors that were running when the
home's last runtime stopped (cleanly or not) are brought back from their last committed state, without ``init``.

An actor was running if its chain does not end in ``actor/stop``, ``actor/exit``, ``actor/failed`` or
``wasm/error``. It is left alone if its recorded manifest says ``durable = false``.
"""

from __future__ import annotations

import logging
import tomllib
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from store import Store
from store.errors import TheaterError
from theater.porcelain.actors import TERMINAL_EVENTS

if TYPE_CHECKING:
    from theater.runtime import Theater

log = logging.getLogger("theater.server")

RESUME_THREADS = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed:
    """What happened to one actor that was running when the last runtime stopped.

    Attributes:
        actor: its id.
        outcome: ``resumed``, ``not durable`` or ``failed``.
        detail: the error, when it failed.
    """

    actor: str
    outcome: str
    detail: str = ""


def interrupted_actors(store: Store) -> list[uuid.UUID]:
    """Every actor of the home whose chain does not end in a terminal event, in id order."""
    return [actor for actor, head in store.log.actors() if store.log.at(actor, head.seq).type not in TERMINAL_EVENTS]


def is_durable(store: Store, actor: uuid.UUID) -> bool:
    """The ``durable`` setting of the actor's recorded manifest (default true; true if it cannot be read)."""
    try:
        genesis = store.log.at(actor, 0)
        text = store.blobs.get(genesis.data["manifest"]).decode("utf-8")
        value = tomllib.loads(text).get("durable", True)
    except (TheaterError, KeyError, TypeError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    return value is not False


def resume_actors(theater: Theater) -> list[Resumed]:
    """Reopen every interrupted durable actor of the home (a few at a time); never raises for one actor."""
    candidates = interrupted_actors(theater.store)
    with ThreadPoolExecutor(RESUME_THREADS, thread_name_prefix="theater-resume") as pool:
        return list(pool.map(lambda actor: _resume(theater, actor), candidates))


def _resume(theater: Theater, actor: uuid.UUID) -> Resumed:
    if not is_durable(theater.store, actor):
        return Resumed(actor=str(actor), outcome="not durable")
    try:
        theater.reopen(actor)
    except TheaterError as exc:
        log.warning("could not resume actor %s: %s: %s", actor, type(exc).__name__, exc)
        return Resumed(actor=str(actor), outcome="failed", detail=f"{type(exc).__name__}: {exc}")
    return Resumed(actor=str(actor), outcome="resumed")


__all__ = ["Resumed", "interrupted_actors", "is_durable", "resume_actors"]
