"""Time travel without re-execution: an actor's state at any point is a projection of its chain."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from store import Event, Store
from store.errors import NotFoundError

STATE_EVENTS = ("wasm/result", "actor/created")


def state_event_at(store: Store, actor: uuid.UUID, seq: int | None = None) -> Event | None:
    """The latest event at or before ``seq`` (default: the head) that sets the state, or None.

    Walks back from ``seq``: the state changes only at ``wasm/result`` events (and is set by ``actor/created``).
    """
    head = store.log.head(actor)
    if head.hash is None:
        raise NotFoundError("actor", str(actor))
    position = head.seq if seq is None else min(seq, head.seq)
    if position < 0:
        raise NotFoundError("event", f"{actor} #{seq}")
    while position >= 0:
        event = store.log.at(actor, position)
        if event.type in STATE_EVENTS:
            return event
        position -= 1
    return None


def state_at(store: Store, actor: uuid.UUID, seq: int | None = None) -> bytes | None:
    """The actor's state after event ``seq`` (default: now), read from the record.

    Raises:
        NotFoundError: no such actor or event, or the state blob is missing.
    """
    event = state_event_at(store, actor, seq)
    if event is None:
        return None
    digest = event.data.get("state") if event.type == "wasm/result" else event.data.get("init_state")
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
    """The export call that event ``seq`` belongs to (or is), or None for events outside any call."""
    position = seq
    while position >= 0:
        event = store.log.at(actor, position)
        if event.type == "wasm/call":
            break
        if position < seq and event.type in ("wasm/result", "wasm/error", "wasm/instantiate", "actor/created"):
            return None
        position -= 1
    else:
        return None
    host_calls: list[Event] = []
    outcome = None
    for later in store.log.events(actor, position + 1):
        if later.type in ("wasm/result", "wasm/error"):
            outcome = later
            break
        if later.type == "wasm/call":
            break
        if not later.type.startswith(("actor/", "supervisor/")):
            host_calls.append(later)
    before = _blob(store, event.data.get("state"))
    after = _blob(store, outcome.data.get("state")) if outcome is not None and outcome.type == "wasm/result" else before
    return CallView(call=event, host_calls=host_calls, outcome=outcome, state_before=before, state_after=after)


def _blob(store: Store, digest: bytes | None) -> bytes | None:
    return None if digest is None else store.blobs.get(digest)
