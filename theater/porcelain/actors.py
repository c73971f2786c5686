"""Actors as a user sees them: ids by unique prefix, their status (from the runtime when it runs them, else from
their chains), the list, ``inspect``, and restart.

The functions take the home's ``Store`` and, when a runtime is running, the ``Theater``: without one, everything
is read from the chains, so ``theater list`` works with no server.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from typing import TYPE_CHECKING, Any

from replay import state_event_at
from replay.schema import ACTOR_EXIT, ACTOR_FAILED, ACTOR_PASSIVATED, ACTOR_STOP, STATE_FIELDS, WASM_ERROR
from store import EMPTY, Event, Store, parse_actor_id
from store.errors import AmbiguousPrefixError, InvalidInputError, NotFoundError, StoreError
from theater.errors import ActorNotFound, ActorNotRunning
from theater.porcelain.records import recorded_head
from theater.runtime import COMPONENT_LABEL, actor_summary
from theater.status import LIVE, ActorStatus

if TYPE_CHECKING:
    from theater.actor import Actor
    from theater.runtime import Theater

STOPPED, FAILED, INTERRUPTED = ActorStatus.STOPPED, ActorStatus.FAILED, ActorStatus.INTERRUPTED
ENDED = frozenset({STOPPED, FAILED})
TERMINAL_EVENTS = {ACTOR_STOP: STOPPED, ACTOR_EXIT: STOPPED, ACTOR_FAILED: FAILED, WASM_ERROR: FAILED}
MIN_PREFIX = 4
PAGE = 1000  # rows in one page of ``actor_rows`` when only ``after`` is given
ID_CHARS = frozenset("0123456789abcdef-")


def last_status(event_type: str) -> ActorStatus:
    """What a chain that ends in an event of this type says about its actor: stopped, failed, passivated (its
    next message brings it back) or interrupted."""
    if event_type == ACTOR_PASSIVATED:
        return ActorStatus.PASSIVATED
    return TERMINAL_EVENTS.get(event_type, INTERRUPTED)


def chain_status(store: Store, actor: uuid.UUID) -> ActorStatus:
    """The actor's status read from its chain (``last_status`` of its last event).

    Raises:
        ActorNotFound: the home has no chain for it.
    """
    return last_status(store.log.at(actor, recorded_head(store, actor).seq).type)


def resolve_actor(store: Store, ref: str) -> uuid.UUID:
    """The actor ``ref`` names: a full id, or a unique prefix (at least 4 characters) of one the home records.

    Raises:
        InvalidInputError: neither a UUID nor a prefix of one.
        ActorNotFound: no recorded actor has that prefix.
        AmbiguousPrefixError: several have it.
    """
    try:
        return parse_actor_id(ref)
    except InvalidInputError:
        text = ref.lower() if isinstance(ref, str) else ""
        if len(text) < MIN_PREFIX or not set(text) <= ID_CHARS:
            raise
    matches = [actor for actor, _ in store.log.actors() if str(actor).startswith(text)]
    if not matches:
        raise ActorNotFound(ref)
    if len(matches) > 1:
        raise AmbiguousPrefixError("actor id", ref, [str(m) for m in matches[:5]])
    return matches[0]


def live_actor(theater: Theater | None, actor: uuid.UUID) -> Actor | None:
    """The runtime's actor object, when the runtime holds it (running or ended there), else None."""
    if theater is None:
        return None
    try:
        return theater.actor(actor)
    except ActorNotFound:
        return None


def actor_rows(store: Store, theater: Theater | None = None, *, everything: bool = False,
               after: uuid.UUID | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """One summary per actor: the runtime's actors (those it holds, and the passivated ones it brings back when
    addressed), and (with ``everything``, or with no runtime) the home's other chains, whose status comes from
    their last event. Sorted by id.

    With ``after`` or ``limit``: one page, the ids above ``after``, at most ``limit`` (default ``PAGE``), read with
    one seek in the home's index (a home of a million actors lists a page as fast as one of ten).
    """
    if after is not None or limit is not None:
        return _page(store, theater, everything, after, PAGE if limit is None else limit)
    rows = {} if theater is None else {row["id"]: _live_row(store, row) for row in theater.actors()}
    if everything or theater is None:
        for actor, _ in store.log.actors():
            if str(actor) not in rows:
                rows[str(actor)] = _recorded_row(store, actor)
    return [rows[key] for key in sorted(rows)]


def _page(store: Store, theater: Theater | None, everything: bool, after: uuid.UUID | None,
          limit: int) -> list[dict[str, Any]]:
    if theater is not None and not everything:
        return [_live_row(store, row) for row in theater.actors(after=after, limit=limit)]
    if limit < 1:
        raise InvalidInputError("limit", limit, "a positive number of actors")
    rows = []
    for actor, _ in store.log.actors_page(after, limit):
        held = theater.router.find(actor) if theater is not None else None
        if theater is not None and held is not None:
            rows.append(_live_row(store, actor_summary(held, theater.supervision)))
        else:
            rows.append(_recorded_row(store, actor))
    return rows


def _live_row(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    summary = {key: row[key] for key in ("id", "name", "status", "parent", "failure")}
    return {**summary, "idle_ms": row.get("idle_ms"), "live": row["status"] not in ENDED,
            **_head_fields(store, uuid.UUID(row["id"]))}


def _recorded_row(store: Store, actor: uuid.UUID) -> dict[str, Any]:
    genesis = store.log.at(actor, 0)
    data = genesis.data if isinstance(genesis.data, dict) else {}
    return {"id": str(actor), "name": data.get("name"), "status": chain_status(store, actor),
            "parent": data.get("parent"), "failure": None, "idle_ms": None, "live": False,
            **_head_fields(store, actor)}


def _head_fields(store: Store, actor: uuid.UUID) -> dict[str, Any]:
    head = store.log.head(actor)
    last = store.log.at(actor, head.seq) if head != EMPTY else None
    return {"events": head.seq + 1, "last_event_ms": last.timestamp_ms if last else None}


def describe(store: Store, actor: uuid.UUID, theater: Theater | None = None) -> dict[str, Any]:
    """Everything about one actor (``inspect``): its summary row, component, manifest, limits, head, state and
    children (the runtime's, or with no runtime the home's chains that name it as parent).

    Raises:
        ActorNotFound: the home has no chain for it.
    """
    head = recorded_head(store, actor)
    genesis, last = store.log.at(actor, 0), store.log.at(actor, head.seq)
    live = live_actor(theater, actor)
    row = _live_row(store, actor_summary(live, theater.supervision)) if live is not None and theater is not None \
        else _recorded_row(store, actor)
    data = genesis.data
    return {
        **row,
        "component": running_component(store, actor, data).hex(),
        "manifest": data["manifest"].hex(),
        "limits": data.get("limits"),
        "grants": _grants(store, data),
        "created_ms": genesis.timestamp_ms,
        "head": {"seq": head.seq, "hash": last.hash.hex(), "type": last.type, "timestamp_ms": last.timestamp_ms},
        "state": _state(store, state_event_at(store, actor)),
        "children": _children(store, actor, theater),
        "fork": _fork(data.get("fork")),
    }


def _fork(origin: Any) -> dict[str, Any] | None:
    """A fork's origin as ``inspect`` shows it (``replay.lineage``): the source actor, event and seq; else None."""
    if not isinstance(origin, dict) or not isinstance(origin.get("actor"), bytes) or len(origin["actor"]) != 16:
        return None
    event = origin.get("event")
    return {"actor": str(uuid.UUID(bytes=origin["actor"])), "seq": origin.get("seq"),
            "event": event.hex() if isinstance(event, bytes) else None,
            "overrides": len(origin.get("overrides") or [])}


def running_component(store: Store, actor: uuid.UUID, created: dict[str, Any]) -> bytes:
    """The component the actor runs: its last upgrade's (``theater restart --component``), else its creation's."""
    try:
        return store.blobs.get_label(COMPONENT_LABEL + str(actor))
    except NotFoundError:
        component: bytes = created["component"]
        return component


def _grants(store: Store, created: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The actor's effective grants (type and config; ``runtime`` always) as ``actor/created`` records them; for a
    chain recorded before it did, those of the recorded manifest. None when neither can be read (a chain may come
    from anyone: this is shown, never trusted)."""
    recorded = created.get("grants")
    if isinstance(recorded, list) and all(isinstance(g, dict) and isinstance(g.get("type"), str)
                                          and isinstance(g.get("config"), dict) for g in recorded):
        try:  # as JSON can carry it (a hostile chain may hold bytes, tags or odd keys in a config)
            return [{"type": g["type"], "config": json.loads(json.dumps(g["config"], default=str))} for g in recorded]
        except (TypeError, ValueError, RecursionError):
            pass
    return _manifest_grants(store, created["manifest"])


def _manifest_grants(store: Store, manifest: bytes) -> list[dict[str, Any]] | None:
    """The handlers the recorded manifest grants, or None when its blob is missing or not a manifest."""
    try:
        data = tomllib.loads(store.blobs.get(manifest).decode("utf-8"))
    except (StoreError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return None
    entries = data.get("handlers", [])
    if not isinstance(entries, list):
        return None
    grants: dict[str, Any] = {"runtime": {}}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("type"), str):
            config = entry.get("config", {})
            # As JSON can carry it (a TOML date in a hostile chain's manifest becomes its text).
            grants[entry["type"]] = json.loads(json.dumps(config, default=str)) if isinstance(config, dict) else {}
    return [{"type": type_, "config": config} for type_, config in grants.items()]


def _state(store: Store, source: Event | None) -> dict[str, Any] | None:
    if source is None:
        return None
    digest = source.data.get(STATE_FIELDS.get(source.type, "state"))
    if digest is None:
        return None
    return {"hash": digest.hex(), "size": store.blobs.size(digest), "seq": source.seq}


def _children(store: Store, actor: uuid.UUID, theater: Theater | None) -> list[str]:
    if theater is not None:  # children are never evicted: the runtime holds every one of them
        here = [str(a.id) for a in theater.router.all() if a.parent == actor]
        # and, in a cluster, those its supervisor holds on other nodes (theater.cluster.remote)
        return here + [str(c) for c in theater.supervision.children(actor) if str(c) not in here]
    found = []
    for other, _ in store.log.actors():
        data = store.log.at(other, 0).data
        if isinstance(data, dict) and data.get("parent") == str(actor):
            found.append(str(other))
    return found


def running(theater: Theater, actor: uuid.UUID) -> Actor:
    """The running actor.

    Raises:
        ActorNotFound: the home has no such actor.
        ActorNotRunning: it is recorded but stopped, failed, or not brought back by this runtime.
    """
    try:
        return theater.running(actor)
    except ActorNotFound:
        raise ActorNotRunning(str(actor), chain_status(theater.store, actor)) from None


def stop(theater: Theater, actor: uuid.UUID) -> None:
    """Stop the actor if this runtime runs it (one recorded in the home but not running here is stopped already).

    Raises:
        ActorNotFound: the home has no chain for it.
    """
    recorded_head(theater.store, actor)
    if live_actor(theater, actor) is not None:
        theater.stop(actor)


def restart(theater: Theater, actor: uuid.UUID) -> None:
    """Restart the actor: a supervised child by its running supervisor (``supervisor/restart`` records
    reason ``requested``, as a guest's ``restart-child`` does); any other actor is stopped if it runs and brought
    back from its last state, without ``init``.

    Raises:
        ActorNotFound: the home has no chain for it.
    """
    live = live_actor(theater, actor)
    if live is None:
        recorded_head(theater.store, actor)
    supervisor = theater.supervision.supervising(live) if live is not None else None
    if supervisor is not None and supervisor.actor.status == ActorStatus.RUNNING:
        theater.supervision.restart_child(supervisor.actor, actor, "requested")
        return
    if live is not None and live.status in LIVE:
        theater.stop(actor)
    theater.reopen(actor)


__all__ = [
    "ID_CHARS",
    "INTERRUPTED",
    "MIN_PREFIX",
    "TERMINAL_EVENTS",
    "actor_rows",
    "chain_status",
    "describe",
    "last_status",
    "live_actor",
    "resolve_actor",
    "restart",
    "running",
    "running_component",
    "stop",
]
