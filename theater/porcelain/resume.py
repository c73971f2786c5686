"""Durable resume: when a runtime starts on a home (``theater server``), the actors that were running when the
home's last runtime stopped (cleanly or not) are brought back from their last committed state, without ``init``.

An actor was running if its chain does not end in ``actor/stop``, ``actor/exit``, ``actor/failed`` or
``wasm/error``. It is left alone if its recorded manifest says ``durable = false``, and if its chain came into the
home from a bundle (``theater chain import``, ``import_chain``): a bundle is anyone's, and importing one to look
at it must not make the next server run its code with the grants its manifest claims.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from replay.bundle import import_bundle, read_bundle
from store import Store
from store.errors import TheaterError
from theater.passivation import IMPORTED_LABEL, is_durable, resumes_at_start
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
        outcome: ``resumed``, ``lazy`` (it comes back when first addressed), ``not durable`` or ``failed``.
        detail: the error, when it failed.
    """

    actor: str
    outcome: str
    detail: str = ""


def interrupted_actors(store: Store) -> list[uuid.UUID]:
    """Every actor of the home whose chain does not end in a terminal event, in id order; imported ones excluded."""
    imported = {name.removeprefix(IMPORTED_LABEL) for name, _ in store.blobs.labels(IMPORTED_LABEL)}
    return [actor for actor, head in store.log.actors()
            if str(actor) not in imported and store.log.at(actor, head.seq).type not in TERMINAL_EVENTS]


def import_chain(store: Store, data: bytes, *, source: str) -> uuid.UUID:
    """Import a bundle (``replay.bundle.import_bundle``) and mark its actor, and every other chain it carries (a
    fork's source prefix, a child's chain), as imported, unless the home already held that chain (a chain this home
    recorded stays resumable when its own bundle comes back).

    The mark is a runtime label pointing at the chain's manifest blob (any stored blob would do: the name is it).

    Raises:
        CorruptRecordError, ChecksumMismatch, StaleHeadError: as ``import_bundle``.
    """
    bundle = read_bundle(data, source=source)
    actor = uuid.UUID(bytes=bundle["actor"])
    carried = [actor, *(uuid.UUID(bytes=other) for other in bundle.get("chains", {}))]
    new = [chain for chain in carried if store.log.head(chain).hash is None]
    import_bundle(store, data, source=source)
    for chain in new:
        genesis = store.log.at(chain, 0).data  # anyone's: not necessarily well formed
        named = genesis.get("manifest") if isinstance(genesis, dict) else None
        mark = named if isinstance(named, bytes) and store.blobs.has(named) else next(iter(bundle["blobs"]), None)
        if mark is not None:  # with no blob at all, the chain names no manifest a resume could start it with
            store.blobs.set_runtime_label(f"{IMPORTED_LABEL}{chain}", mark)
    return actor


def resume_actors(theater: Theater) -> list[Resumed]:
    """Reopen every interrupted durable actor of the home (a few at a time); never raises for one actor. With
    passivation on, top-level actors with no interrupted child are left to come back when first addressed (not those
    serving HTTP: their servers must listen again)."""
    candidates = interrupted_actors(theater.store)
    lazy: set[uuid.UUID] = set()
    if theater.passivation.after is not None:
        theater.passivation.lazy_resume = True
        lazy = _outside_trees(theater.store, candidates)
    with ThreadPoolExecutor(RESUME_THREADS, thread_name_prefix="theater-resume") as pool:
        return list(pool.map(lambda actor: _resume(theater, actor, actor in lazy), candidates))


def _outside_trees(store: Store, candidates: list[uuid.UUID]) -> set[uuid.UUID]:
    """The candidates with no parent that no other candidate names as its parent (one read of each creation),
    and whose manifest grants no handler that must be back at start (``theater.passivation.RESUMED_AT_START``)."""
    parents: dict[uuid.UUID, str | None] = {}
    for actor in candidates:
        try:
            data = store.log.at(actor, 0).data
        except TheaterError:
            continue  # unreadable: reopened at start, where the error is reported
        parents[actor] = data.get("parent") if isinstance(data, dict) else "?"
    named = {parent for parent in parents.values() if parent is not None}
    return {actor for actor, parent in parents.items()
            if parent is None and str(actor) not in named and not resumes_at_start(store, actor)}


def _resume(theater: Theater, actor: uuid.UUID, lazy: bool = False) -> Resumed:
    if not is_durable(theater.store, actor):
        return Resumed(actor=str(actor), outcome="not durable")
    if lazy:
        return Resumed(actor=str(actor), outcome="lazy")
    try:
        theater.reopen(actor)
    except TheaterError as exc:
        log.warning("could not resume actor %s: %s: %s", actor, type(exc).__name__, exc)
        return Resumed(actor=str(actor), outcome="failed", detail=f"{type(exc).__name__}: {exc}")
    return Resumed(actor=str(actor), outcome="resumed")


__all__ = ["IMPORTED_LABEL", "Resumed", "import_chain", "interrupted_actors", "is_durable", "resume_actors"]
