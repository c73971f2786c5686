"""Routes that read an actor's record: its events, its state at any point, a live subscription, verification,
export as a bundle.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from replay import ContinuityBreak, Replayer, ReplayReport, state_at, state_event_at
from replay.bundle import export_bundle
from store import EMPTY, ChainReport, Head, Store, verify_chain
from theater.errors import ActorNotFound
from theater.server.errors import bad_request
from theater.server.service import service
from theater.server.streams import run_stream
from theater.server.subscriptions import follow, selection_of
from theater.server.wire import actor_id, bytes_json, event_json, jsonable, json_response, query_int, type_matches

routes = web.RouteTableDef()

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


def recorded_head(store: Store, actor: uuid.UUID) -> Head:
    """The head of the actor's chain.

    Raises:
        ActorNotFound: the home has no chain for it.
    """
    head = store.log.head(actor)
    if head == EMPTY:
        raise ActorNotFound(str(actor))
    return head


@routes.get("/v1/actors/{id}/events")
async def events(request: web.Request) -> web.Response:
    """A page of the actor's chain: ``from``, ``to`` (inclusive), ``type`` (repeatable, ``x/*``), ``limit``."""
    svc = service(request)
    actor = actor_id(request)
    start = query_int(request, "from", 0) or 0
    to = query_int(request, "to")
    limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=1) or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise bad_request(f"limit is at most {MAX_LIMIT}; page with 'next'")
    types = tuple(request.query.getall("type", []))
    return json_response(await svc.run(_events, svc.theater.store, actor, start, to, types, limit))


def _events(store: Store, actor: uuid.UUID, start: int, to: int | None, types: tuple[str, ...],
            limit: int) -> dict[str, Any]:
    head = recorded_head(store, actor)
    selected, next_seq = [], None
    for event in store.log.events(actor, start, None if to is None else to + 1):
        if type_matches(event.type, types):
            selected.append(event_json(event))
            if len(selected) >= limit:
                next_seq = event.seq + 1 if event.seq < min(head.seq, to if to is not None else head.seq) else None
                break
    return {"actor": str(actor), "head": head.seq, "events": selected, "next": next_seq}


@routes.get("/v1/actors/{id}/state")
async def state(request: web.Request) -> web.Response:
    """The actor's state now, after event ``seq``, or after the event ``event`` (a hash or unique prefix)."""
    svc = service(request)
    seq = query_int(request, "seq")
    ref = request.query.get("event")
    if seq is not None and ref:
        raise bad_request("give seq or event, not both")
    return json_response(await svc.run(_state, svc.theater.store, actor_id(request), seq, ref))


def _state(store: Store, actor: uuid.UUID, seq: int | None, ref: str | None) -> dict[str, Any]:
    recorded_head(store, actor)
    if ref:
        owner, seq = store.log.locate(store.log.resolve(ref))
        if owner != actor:
            raise bad_request(f"event {ref} belongs to actor {owner}, not {actor}")
    source = state_event_at(store, actor, seq)
    return {
        "actor": str(actor),
        "seq": None if source is None else source.seq,
        "event": None if source is None else source.hash.hex(),
        "state": bytes_json(state_at(store, actor, seq)),
    }


@routes.get("/v1/actors/{id}/subscribe")
async def subscribe(request: web.Request) -> web.StreamResponse:
    """Stream the actor's events (SSE, or WebSocket on upgrade): ``history``, ``from``, ``type``, ``limit``."""
    svc = service(request)
    actor = actor_id(request)
    store = svc.theater.store
    head = recorded_head(store, actor)
    selection = selection_of(request, head.seq)
    ready = {"actor": str(actor), "from": selection.start, "head": head.seq}
    return await run_stream(request, ready, lambda sink: follow(svc.hub, store, svc.run, actor, selection, sink))


@routes.post("/v1/actors/{id}/verify")
async def verify(request: web.Request) -> web.Response:
    """Check the chain's integrity, then re-execute it (``from``/``to``: sequence numbers) and compare."""
    svc = service(request)
    actor = actor_id(request)
    start = query_int(request, "from", 0) or 0
    to = query_int(request, "to")
    return json_response(await svc.run(_verify, svc.theater.store, actor, start, to))


def _verify(store: Store, actor: uuid.UUID, start: int, to: int | None) -> dict[str, Any]:
    recorded_head(store, actor)
    integrity = verify_chain(store, actor)
    replayed = Replayer(store).replay(actor, from_seq=start, to_seq=to) if integrity.ok else None
    ok = integrity.ok and replayed is not None and replayed.ok
    return {"actor": str(actor), "ok": ok, "integrity": _integrity(integrity), "replay": _replay(replayed)}


def _integrity(report: ChainReport) -> dict[str, Any]:
    p = report.problem
    return {"ok": report.ok, "events": report.events,
            "problem": None if p is None else {"seq": p.seq, "hash": p.hash.hex() if p.hash else None,
                                                "kind": p.kind, "detail": p.detail}}


def _replay(report: ReplayReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    d = report.divergence
    return {"ok": report.ok, "from_seq": report.from_seq, "to_seq": report.to_seq, "calls": report.calls,
            "host_calls": report.host_calls,
            "interrupted": [{"seq": c.seq, "hash": c.hash.hex(), "export": c.export, "resumed_at": c.resumed_at}
                            for c in report.interrupted],
            "divergence": None if d is None else {"kind": "continuity" if isinstance(d, ContinuityBreak) else
                                                  "execution", "seq": d.seq, "hash": d.hash.hex() if d.hash else None,
                                                  "what": d.what, "expected": jsonable(d.expected),
                                                  "actual": jsonable(d.actual), "hint": d.hint}}


@routes.get("/v1/actors/{id}/export")
async def export(request: web.Request) -> web.Response:
    """The actor's chain and every blob it references as one bundle (``replay.bundle``), up to ``to``."""
    svc = service(request)
    actor = actor_id(request)
    start = query_int(request, "from", 0) or 0
    to = query_int(request, "to")
    data = await svc.run(_export, svc.theater.store, actor, start, to)
    return web.Response(body=data, content_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{actor}.bundle"'})


def _export(store: Store, actor: uuid.UUID, start: int, to: int | None) -> bytes:
    recorded_head(store, actor)
    return export_bundle(store, actor, from_seq=start, to_seq=to)


__all__ = ["recorded_head", "routes"]
