"""What the explorer's views read from the record: one event in detail (its call, its blobs, the state before and
after it and their diff), the actors as a tree, and the message flow between chains.

Everything here reads the store (and, for the tree, the runtime's actors) on a worker thread; the routes in
``theater.server.explorer.views`` only parse and render. The record is hostile: nothing read here is trusted to
have the shape the runtime writes (a chain may come from a bundle), so every field is checked before use.
"""

from __future__ import annotations

import difflib
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from replay import state_event_at
from replay.schema import STATE_FIELDS, WASM_CALL, WASM_RESULT
from store import Event, Store
from store.errors import InvalidInputError, NotFoundError, StoreError
from theater.porcelain import actor_rows, event_seq, recorded_head
from theater.porcelain.forms import bytes_json, event_json, readable

if TYPE_CHECKING:
    from theater.runtime import Theater

MAX_DIFF_BYTES = 256 * 1024  # states larger than this are not diffed (their sizes and hashes still are)
MAX_DIFF_ITEMS = 500  # entries of one diff
MAX_FLOW_EVENTS = 10_000  # events read from the end of each chain for the message flow
MAX_FLOW_ACTORS = 50
PREVIEW_CHARS = 80
MESSAGE_HOST = "theater:simple/message-server-host/"
DELIVERY_EXPORTS = {"handle-send": "send", "handle-request": "request"}
# The causal link a delivery's wasm/call records: the hash of the sender's event it follows (docs/events.md).
CAUSE = "cause"
# Deliveries whose cause names the event right before the sender's host call (whose own event, holding the answer,
# is appended after the delivery): the sending event is the next one.
CAUSE_BEFORE = ("handle-request", "handle-channel-open")


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    """An event by actor and sequence number."""

    actor: uuid.UUID
    seq: int


def locate(store: Store, actor: uuid.UUID | None, seq: int | None, ref: str | None) -> Point:
    """The event the explorer asks for: ``actor`` and ``seq``, or ``ref`` (a hash or unique prefix), whose actor
    must be ``actor`` when both are given.

    Raises:
        ActorNotFound: no chain for the actor.
        NotFoundError: no such event (a seq past the head, a hash nobody recorded).
        InvalidInputError: neither or both of seq and ref; the event is another actor's.
    """
    if (seq is None) == (ref is None):
        raise InvalidInputError("event", f"seq={seq}, event={ref}", "a sequence number (with an actor) or a hash")
    if ref is not None:
        if actor is not None:
            return Point(actor=actor, seq=event_seq(store, actor, ref))
        owner, found = store.log.locate(store.log.resolve(ref))
        return Point(actor=owner, seq=found)
    if actor is None:
        raise InvalidInputError("event", f"seq={seq}", "an actor with the sequence number")
    head = recorded_head(store, actor)
    if seq is not None and seq > head.seq:
        raise NotFoundError("event", f"{actor} #{seq} (the chain ends at #{head.seq})")
    return Point(actor=actor, seq=seq or 0)


def event_detail(store: Store, point: Point) -> dict[str, Any]:
    """One event for the event view: the event, its data decoded for reading, the call it records, the blobs it
    references, the state before and after it with their diff, its neighbours and its causal link."""
    head = recorded_head(store, point.actor)
    event = store.log.at(point.actor, point.seq)
    before = _state(store, point.actor, point.seq - 1) if point.seq > 0 else None
    after = _state(store, point.actor, point.seq)
    return {
        "event": event_json(event),
        "readable": readable(event.data),
        "call": call_of(event),
        "blobs": _blobs(store, event),
        "state": {"before": _state_json(before), "after": _state_json(after),
                  "changed": _digest(before) != _digest(after), "diff": state_diff(_bytes(before), _bytes(after))},
        "head": head.seq,
        "previous": point.seq - 1 if point.seq > 0 else None,
        "next": point.seq + 1 if point.seq < head.seq else None,
        "cause": _cause(store, event),
    }


def call_of(event: Event) -> dict[str, Any] | None:
    """The call an event records, when it records one: a host call (``params`` and ``result``), or a call into the
    actor (``wasm/call``: ``export`` and ``params``; ``wasm/result``: ``export`` and ``output``)."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.type in (WASM_CALL, WASM_RESULT):
        return {"kind": "actor", "name": str(data.get("export", "")), "params": readable(data.get("params")),
                "result": readable(data.get("output")) if event.type == WASM_RESULT else None}
    if "/" in event.type and ":" in event.type.split("/", 1)[0] and "params" in data:
        return {"kind": "host", "name": event.type, "params": readable(data.get("params")),
                "result": readable(data.get("result"))}
    return None


def _blobs(store: Store, event: Event) -> list[dict[str, Any]]:
    """The 32-byte values among the event's top-level fields that name a stored blob (state, component, ...)."""
    data = event.data if isinstance(event.data, dict) else {}
    found = []
    for key, value in data.items():
        if isinstance(value, bytes) and len(value) == 32 and store.blobs.has(value):
            found.append({"field": str(key), "hash": value.hex(), "size": store.blobs.size(value)})
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class _StateAt:
    source: Event | None
    digest: bytes | None
    value: bytes | None


def _state(store: Store, actor: uuid.UUID, seq: int) -> _StateAt:
    source = state_event_at(store, actor, seq)
    if source is None or not isinstance(source.data, dict):
        return _StateAt(source=source, digest=None, value=None)
    digest = source.data.get(STATE_FIELDS.get(source.type, "state"))
    if not isinstance(digest, bytes) or not store.blobs.has(digest):
        return _StateAt(source=source, digest=digest if isinstance(digest, bytes) else None, value=None)
    size = store.blobs.size(digest)
    return _StateAt(source=source, digest=digest, value=store.blobs.get(digest) if size <= MAX_DIFF_BYTES else None)


def _digest(point: _StateAt | None) -> bytes | None:
    return None if point is None else point.digest


def _bytes(point: _StateAt | None) -> bytes | None:
    return None if point is None else point.value


def _state_json(point: _StateAt | None) -> dict[str, Any] | None:
    if point is None:
        return None
    source = point.source
    return {"seq": None if source is None else source.seq, "hash": None if point.digest is None else point.digest.hex(),
            "value": bytes_json(point.value), "json": _json_of(point.value) if point.value is not None else None}


def _json_of(value: bytes) -> Any:
    try:
        return {"value": json.loads(value)}
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def state_diff(before: bytes | None, after: bytes | None) -> dict[str, Any]:
    """How the state changed: ``json`` (entries ``{path, op, before, after}`` when both are JSON), ``text`` (a
    unified diff of the lines when both are text), else ``bytes`` (only whether they differ)."""
    if before == after:
        return {"kind": "same", "entries": []}
    old, new = _json_of(before or b"null"), _json_of(after or b"null")
    if old is not None and new is not None:
        entries: list[dict[str, Any]] = []
        _walk(old["value"], new["value"], "$", entries)
        return {"kind": "json", "entries": entries[:MAX_DIFF_ITEMS], "truncated": len(entries) > MAX_DIFF_ITEMS}
    try:
        lines = difflib.unified_diff((before or b"").decode().splitlines(), (after or b"").decode().splitlines(),
                                     "before", "after", lineterm="")
        text = list(lines)
        return {"kind": "text", "entries": text[:MAX_DIFF_ITEMS], "truncated": len(text) > MAX_DIFF_ITEMS}
    except UnicodeDecodeError:
        return {"kind": "bytes", "entries": [], "sizes": [len(before or b""), len(after or b"")]}


def _walk(old: Any, new: Any, path: str, out: list[dict[str, Any]]) -> None:
    if len(out) > MAX_DIFF_ITEMS:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}"
            if key not in old:
                out.append({"path": sub, "op": "added", "before": None, "after": new[key]})
            elif key not in new:
                out.append({"path": sub, "op": "removed", "before": old[key], "after": None})
            else:
                _walk(old[key], new[key], sub, out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            _walk(a, b, f"{path}[{i}]", out)
    elif old != new or type(old) is not type(new):
        out.append({"path": path, "op": "changed", "before": old, "after": new})


def _cause(store: Store, event: Event) -> dict[str, Any] | None:
    """The sender's event a delivery names (its causal link ``cause``): ``hash`` as recorded, and the sending event
    (``actor``, ``seq``) when the home holds it. For a request (or channel open) the recorded hash names the event
    before the sender's host call (``named_seq``); the sending event is the one after it, once appended."""
    data = event.data if isinstance(event.data, dict) else {}
    value = data.get(CAUSE)
    digest = value if isinstance(value, bytes) and len(value) == 32 else _hex(value)
    if digest is None:
        return None
    export = data.get("export")
    before = isinstance(export, str) and export.rsplit(".", 1)[-1] in CAUSE_BEFORE
    return {"field": CAUSE, "hash": digest.hex(), **_where(store, digest, before)}


def _hex(value: Any) -> bytes | None:
    if isinstance(value, str) and len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    return None


def _where(store: Store, digest: bytes, before: bool) -> dict[str, Any]:
    try:
        owner, seq = store.log.locate(digest)
    except StoreError:
        return {"actor": None, "seq": None, "named_seq": None}
    sender = seq + 1 if before and store.log.head(owner).seq > seq else seq
    return {"actor": str(owner), "seq": sender, "named_seq": seq}


# The tree.


def actor_tree(store: Store, theater: Theater) -> list[dict[str, Any]]:
    """Every actor of the home (``actor_rows``), each with ``restarts``: how many times a supervisor restarted it
    while this server ran it."""
    rows = actor_rows(store, theater, everything=True)
    for row in rows:
        held = theater.router.find(uuid.UUID(row["id"]))
        row["restarts"] = held.incarnation if held is not None else None
    return rows


# The message flow.


def message_flow(store: Store, actors: list[uuid.UUID], limit: int, *, widen: bool = False) -> dict[str, Any]:
    """The messages between ``actors`` in their last ``limit`` events each, as a sequence diagram's arrows.

    Each arrow has its two ends (``from`` and ``to``: actor, seq, hash; an end outside the chains read is null:
    the API, or an actor not shown). A delivery is tied to its sending event by its causal link when the record
    has one (``link: "recorded"``), else matched by target and content, in order (``link: "matched"``). With
    ``widen``, the actors they send to and those whose causal links they cite are read too (up to
    ``MAX_FLOW_ACTORS`` in all).
    """
    names: dict[str, str | None] = {}
    sends: list[tuple[Event, str, str, Any]] = []  # (event, target, kind, message)
    deliveries: dict[str, list[tuple[Event, str, Any]]] = {}
    results: dict[tuple[str, int], Event] = {}
    queue = list(dict.fromkeys(actors))
    for actor in queue:
        head = recorded_head(store, actor)
        genesis = store.log.at(actor, 0)
        names[str(actor)] = genesis.data.get("name") if isinstance(genesis.data, dict) else None
        start = max(0, head.seq + 1 - limit)
        calls: dict[str, Event] = {}
        for event in store.log.events(actor, start, head.seq + 1):
            _classify(event, sends, deliveries.setdefault(str(actor), []), calls, results)
        if widen and actor in actors:
            for other in _correspondents(store, sends, deliveries[str(actor)]):
                if other not in queue and len(queue) < MAX_FLOW_ACTORS:
                    queue.append(other)
    arrows = _arrows(store, sends, deliveries, results)
    arrows.sort(key=lambda a: (a["time_ms"], a["order"]))
    return {"actors": [{"id": key, "name": name} for key, name in names.items()], "messages": arrows}


def _correspondents(store: Store, sends: list[tuple[Event, str, str, Any]],
                    delivered: list[tuple[Event, str, Any]]) -> list[uuid.UUID]:
    """The recorded actors named as targets of ``sends`` or as senders by the causal links of ``delivered``."""
    found: list[uuid.UUID] = []
    for text in [target for _, target, _, _ in sends] + [c["actor"] for e, _, _ in delivered
                                                          if (c := _cause(store, e)) and c["actor"]]:
        try:
            other = uuid.UUID(text)
        except ValueError:
            continue
        if other not in found and store.log.head(other).hash is not None:
            found.append(other)
    return found


def _classify(event: Event, sends: list[tuple[Event, str, str, Any]], delivered: list[tuple[Event, str, Any]],
              calls: dict[str, Event], results: dict[tuple[str, int], Event]) -> None:
    data = event.data if isinstance(event.data, dict) else {}
    params = data.get("params")
    if event.type.startswith(MESSAGE_HOST) and isinstance(params, list) and len(params) >= 2:
        kind = event.type[len(MESSAGE_HOST):]
        if kind in ("send", "request") and isinstance(params[0], str):
            sends.append((event, params[0], kind, params[1]))
        return
    export = data.get("export")
    if not isinstance(export, str) or "." not in export:
        return
    delivery = DELIVERY_EXPORTS.get(export.rsplit(".", 1)[1])
    if delivery is None:
        return
    if event.type == WASM_CALL and isinstance(params, list) and params:
        delivered.append((event, delivery, params[-1]))
        calls[export] = event
    elif event.type == WASM_RESULT and delivery == "request" and export in calls:
        results[(str(event.actor), calls.pop(export).seq)] = event


def _arrows(store: Store, sends: list[tuple[Event, str, str, Any]],
            deliveries: dict[str, list[tuple[Event, str, Any]]],
            results: dict[tuple[str, int], Event]) -> list[dict[str, Any]]:
    by_place = {(str(e.actor), e.seq): e for e, _, _, _ in sends}
    taken: set[tuple[str, int]] = set()
    senders: dict[tuple[str, int], tuple[Event, str]] = {}
    for target, items in deliveries.items():  # recorded causal links first
        for event, _kind, _message in items:
            cause = _cause(store, event)
            sender = by_place.get((cause["actor"], cause["seq"])) if cause else None
            if sender is not None:
                senders[(target, event.seq)] = (sender, "recorded")
                taken.add((str(sender.actor), sender.seq))
    for sender, target, kind, message in sends:  # then in order, by target and content
        if (str(sender.actor), sender.seq) in taken:
            continue
        for event, got_kind, got in deliveries.get(target, []):
            if (target, event.seq) not in senders and got_kind == kind and got == message:
                senders[(target, event.seq)] = (sender, "matched")
                taken.add((str(sender.actor), sender.seq))
                break
    arrows = []
    order = 0
    for target, items in deliveries.items():
        for event, kind, message in items:
            found = senders.get((target, event.seq))
            sender = found[0] if found else None
            order += 1
            arrows.append(_arrow(kind, sender, event, message, event.timestamp_ms, order, found[1] if found else None))
            result = results.get((target, event.seq))
            if kind == "request" and result is not None:
                order += 1
                output = result.data.get("output") if isinstance(result.data, dict) else None
                arrows.append(_arrow("reply", result, sender, output, result.timestamp_ms, order,
                                     found[1] if found else None))
    for sender, target, kind, message in sends:
        if (str(sender.actor), sender.seq) not in taken:
            order += 1
            arrows.append({**_arrow(kind, sender, None, message, sender.timestamp_ms, order, None), "target": target})
    return arrows


def _arrow(kind: str, source: Event | None, dest: Event | None, message: Any, time_ms: int, order: int,
           link: str | None) -> dict[str, Any]:
    return {"kind": kind, "from": _end(source), "to": _end(dest), "message": _preview(message), "time_ms": time_ms,
            "order": order, "link": link}


def _end(event: Event | None) -> dict[str, Any] | None:
    return None if event is None else {"actor": str(event.actor), "seq": event.seq, "hash": event.hash.hex()}


def _unwrap(value: Any) -> Any:
    """A reply's output without its wrapping: ``[[{"some": x}]]`` (the result tuple, an option) is ``x``."""
    for _ in range(8):
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("some", "ok"):
            value = next(iter(value.values()))
        else:
            break
    return value


def _preview(value: Any) -> str:
    value = _unwrap(value)
    text = json.dumps(readable(value), ensure_ascii=False) if not isinstance(value, bytes) else str(readable(value))
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


__all__ = [
    "MAX_FLOW_ACTORS",
    "MAX_FLOW_EVENTS",
    "Point",
    "actor_tree",
    "call_of",
    "event_detail",
    "locate",
    "message_flow",
    "state_diff",
]
