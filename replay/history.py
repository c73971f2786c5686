"""Time travel without re-execution: an actor's state at any point is a projection of its chain."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from replay.schema import (
    ACTOR_CREATED,
    ACTOR_REVERT,
    LIFECYCLE_PREFIXES,
    OUTCOMES,
    STATE_FIELDS,
    WASM_CALL,
    WASM_INSTANTIATE,
    WASM_RESULT,
    check_event,
)
from store import Event, Store
from store.errors import NotFoundError

STATE_EVENTS = (WASM_RESULT, WASM_INSTANTIATE, ACTOR_CREATED, ACTOR_REVERT)


def _sets_state(event: Event) -> bool:
    # A ``wasm/instantiate`` sets the state when it records it (a restart from init goes back to the initial
    # state); chains written before it did leave the state as it was.
    if event.type not in STATE_EVENTS or not isinstance(event.data, dict):
        return False
    return event.type != WASM_INSTANTIATE or "state" in event.data


def _state_digest(event: Event) -> bytes | None:
    digest: bytes | None = event.data.get(STATE_FIELDS[event.type])  # checked by the event's schema
    return digest


def state_event_at(store: Store, actor: uuid.UUID, seq: int | None = None) -> Event | None:
    """The latest event at or before ``seq`` (default: the head) that sets the state, or None.

    Walks back from ``seq``: the state changes only at ``wasm/result`` events and at ``wasm/instantiate`` events
    that record the state the instance starts from (and is set by ``actor/created``, and by ``actor/revert``: the
    state reverted to).
    """
    head = store.log.head(actor)
    if head.hash is None:
        raise NotFoundError("actor", str(actor))
    position = head.seq if seq is None else min(seq, head.seq)
    if position < 0:
        raise NotFoundError("event", f"{actor} #{seq}")
    while position >= 0:
        event = store.log.at(actor, position)
        if _sets_state(event):
            return event
        position -= 1
    return None


def component_at(store: Store, actor: uuid.UUID, seq: int | None = None) -> bytes:
    """The blob hash of the component the actor runs at event ``seq`` (default: now): the one the latest
    ``wasm/instantiate`` at or before ``seq`` names (after an ``actor/upgraded``), else the one ``actor/created``
    names. Walks back from ``seq`` to the latest instance.

    Raises:
        NotFoundError: no such actor.
    """
    head = store.log.head(actor)
    if head.hash is None:
        raise NotFoundError("actor", str(actor))
    position = head.seq if seq is None else min(seq, head.seq)
    while position > 0:
        event = store.log.at(actor, position)
        if event.type == WASM_INSTANTIATE:
            named = event.data.get("component") if isinstance(event.data, dict) else None
            if isinstance(named, bytes):
                return named
            break  # every instance after an upgrade names its component: this one runs the first
        position -= 1
    created = store.log.at(actor, 0).data
    component: bytes = created["component"] if isinstance(created, dict) else b""
    return component


def state_at(store: Store, actor: uuid.UUID, seq: int | None = None) -> bytes | None:
    """The actor's state after event ``seq`` (default: now), read from the record.

    Raises:
        NotFoundError: no such actor or event, or the state blob is missing.
    """
    event = state_event_at(store, actor, seq)
    if event is None:
        return None
    digest = _state_digest(event)
    return None if digest is None else store.blobs.get(digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallView:
    """One export call as recorded: the call, the host calls it made, how it ended, and the state around it."""

    call: Event
    host_calls: list[Event]
    outcome: Event | None
    state_before: bytes | None
    state_after: bytes | None


def call_around(store: Store, actor: uuid.UUID, seq: int) -> CallView | None:
    """The export call that event ``seq`` belongs to (or is), or None for events outside any call.

    Raises:
        MalformedRecord: one of the call's events lacks a field or holds one of the wrong type.
    """
    position = seq
    while position >= 0:
        event = store.log.at(actor, position)
        if event.type == WASM_CALL:
            break
        if position < seq and event.type in (*OUTCOMES, WASM_INSTANTIATE, ACTOR_CREATED):
            return None
        position -= 1
    else:
        return None
    check_event(event)
    host_calls: list[Event] = []
    outcome = None
    for later in store.log.events(actor, position + 1):
        check_event(later)
        if later.type in OUTCOMES:
            outcome = later
            break
        if later.type in (WASM_CALL, WASM_INSTANTIATE):
            break  # the call has no recorded end (a resume follows it)
        if not later.type.startswith(LIFECYCLE_PREFIXES):
            host_calls.append(later)
    before = _blob(store, event.data.get("state"))
    after = _blob(store, outcome.data.get("state")) if outcome is not None and outcome.type == WASM_RESULT else before
    return CallView(call=event, host_calls=host_calls, outcome=outcome, state_before=before, state_after=after)


def _blob(store: Store, digest: bytes | None) -> bytes | None:
    return None if digest is None else store.blobs.get(digest)
