"""``GET /v1/events/search``: events across the home's actors by actor, type, time range and text, paged
(``theater.porcelain.search``)."""

from __future__ import annotations

from aiohttp import web

from theater.porcelain.forms import search_json
from theater.porcelain.search import DEFAULT_LIMIT, MAX_LIMIT, search_events
from theater.server.service import service
from theater.server.wire import json_response, query_int

routes = web.RouteTableDef()


@routes.get("/v1/events/search")
async def search(request: web.Request) -> web.Response:
    """``actor`` (repeatable), ``type`` (repeatable, ``x/*``), ``since``, ``until``, ``q``, ``cause``, ``limit``,
    ``after``."""
    svc = service(request)
    store = svc.theater.store
    query = request.query
    actors = tuple(query.getall("actor", []))
    types = tuple(query.getall("type", []))
    since, until = query.get("since") or None, query.get("until") or None
    text = query.get("q") or None
    cause = query.get("cause") or None
    after = query.get("after") or None
    limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT
    page = await svc.run(lambda: search_events(store, actors=actors, types=types, since=since, until=until,
                                               text=text, cause=cause, limit=limit, after=after))
    return json_response(search_json(page))


__all__ = ["routes"]
