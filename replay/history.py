"""Time travel without re-execution: an actor's state at any point is a projection of its chain."""

from __future__ import annotations

import uuid

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
