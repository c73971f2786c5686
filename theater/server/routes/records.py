"""Routes that read an actor's record: its events, its state at any point, a live subscription, verification,
export as a bundle. Each parses the request and calls the porcelain (``theater.porcelain.records``).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from replay.bundle import export_bundle
from replay.replayer import ReplayLimits
from store import Store
from theater.porcelain import recorded_head, select_events, state_point, verify_actor
from theater.porcelain.forms import page_json, state_json, verify_json
from theater.server.errors import bad_request
from theater.server.service import service
from theater.server.streams import run_stream
from theater.server.subscriptions import follow, selection_of
from theater.server.wire import actor_id, json_response, query_int

routes = web.RouteTableDef()

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


@routes.get("/v1/actors/{id}/events")
async def events(request: web.Request) -> web.Response:
    """A page of the actor's chain: ``from``, ``to`` (inclusive), ``type`` (repeatable, ``x/*``), ``limit``."""
    svc = service(request)
    store = svc.theater.store
    actor = actor_id(request, store)
    start = query_int(request, "from", 0) or 0
    to = query_int(request, "to")
    limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=1) or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise bad_request(f"limit is at most {MAX_LIMIT}; page with 'next'")
    types = tuple(request.query.getall("type", []))
    page = await svc.run(lambda: select_events(store, actor, types=types, start=start, to=to, limit=limit))
    return json_response(page_json(page))


@routes.get("/v1/actors/{id}/state")
async def state(request: web.Request) -> web.Response:
    """The actor's state now, after event ``seq``, or after the event ``event`` (a hash or unique prefix)."""
    svc = service(request)
    store = svc.theater.store
    actor = actor_id(request, store)
    seq = query_int(request, "seq")
    ref = request.query.get("event") or None
    if seq is not None and ref:
        raise bad_request("give seq or event, not both")
    return json_response(state_json(await svc.run(lambda: state_point(store, actor, seq=seq, event=ref))))


@routes.get("/v1/actors/{id}/subscribe")
async def subscribe(request: web.Request) -> web.StreamResponse:
    """Stream the actor's events (SSE, or WebSocket on upgrade): ``history``, ``from``, ``type``, ``limit``."""
    svc = service(request)
    store = svc.theater.store
    actor = actor_id(request, store)
    head = recorded_head(store, actor)
    selection = selection_of(request, head.seq)
    ready = {"actor": str(actor), "from": selection.start, "head": head.seq}
    return await run_stream(request, ready, lambda sink: follow(svc.hub, store, svc.run, actor, selection, sink))


@routes.post("/v1/actors/{id}/verify")
async def verify(request: web.Request) -> web.Response:
    """Check the chain's integrity, then re-execute it (``from``/``to``: sequence numbers) and compare."""
    svc = service(request)
    store = svc.theater.store
    actor = actor_id(request, store)
    start = query_int(request, "from", 0) or 0
    to = query_int(request, "to")
    limits = ReplayLimits(timeout_s=svc.config.verify_timeout)  # bounded: the chain may have come from a bundle
    return json_response(verify_json(await svc.run(lambda: verify_actor(store, actor, start=start, to=to,
                                                                        limits=limits))))


@routes.get("/v1/actors/{id}/export")
async def export(request: web.Request) -> web.Response:
    """The actor's chain and every blob it references as one bundle (``replay.bundle``), up to ``to``."""
    svc = service(request)
    store = svc.theater.store
    actor = actor_id(request, store)
    start = query_int(request, "from", 0) or 0
    to = query_int(request, "to")
    data = await svc.run(_export, store, actor, start, to)
    return web.Response(body=data, content_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{actor}.bundle"'})


def _export(store: Store, actor: uuid.UUID, start: int, to: int | None) -> bytes:
    recorded_head(store, actor)
    return export_bundle(store, actor, from_seq=start, to_seq=to)


__all__ = ["routes"]
