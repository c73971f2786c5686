"""The explorer's routes: its pages and static files, its login, and the JSON the views need that the rest of the
API does not answer (an actor tree with restarts, an event in detail with the state diff, replay to an event,
verify with progress, the message flow). Each parses the request and calls ``record`` or the porcelain.

Every page and file is sent with a Content-Security-Policy that allows only this origin's own scripts and styles
(no inline script, no ``eval``, no frames): the record is hostile, and the pages put its text into the document
only as text (``textContent``), never as markup.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import time
import uuid
from typing import Any

from aiohttp import web

from replay.replayer import ReplayLimits
from theater.porcelain import recorded_head, verify_actor
from theater.porcelain.actors import resolve_actor
from theater.porcelain.forms import verify_json
from theater.server.errors import bad_request
from theater.server.explorer import record
from theater.server.explorer.session import COOKIE, login, logout, session_csrf
from theater.server.service import service
from theater.server.streams import Sink, run_stream
from theater.server.wire import field, json_response, query_flag, query_int, read_json

routes = web.RouteTableDef()

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# On every other answer (JSON, blobs, streams): a browser that opens one (a blob's link) renders nothing active.
API_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
}
# The only files served: a fixed table, so no name from a request ever reaches the file system.
STATIC = {
    "app.js": "text/javascript",
    "app.css": "text/css",
    "login.js": "text/javascript",
}
PAGES = {"index": "index.html", "login": "login.html"}
PROGRESS_EVERY_S = 0.1  # at most this often a verify stream reports its progress
DEFAULT_FLOW_EVENTS = 2000


def _file(name: str) -> bytes:
    return (importlib.resources.files("theater.server.explorer") / "static" / name).read_bytes()


def _page(name: str) -> web.Response:
    return web.Response(body=_file(PAGES[name]), content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


# Pages, files and the login.


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    """The explorer's page; on a server with a token, the login page first when there is no session."""
    if service(request).config.token is not None and session_csrf(request) is None:
        raise web.HTTPFound("/login")
    return _page("index")


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    """The login page (a server without a token sends the explorer's page instead)."""
    if service(request).config.token is None:
        raise web.HTTPFound("/")
    return _page("login")


@routes.get("/explorer/{name}")
async def static(request: web.Request) -> web.Response:
    """One of the explorer's static files, by name from a fixed table (404 for any other name)."""
    name = request.match_info["name"]
    kind = STATIC.get(name)
    if kind is None:
        raise web.HTTPNotFound(text=f"the explorer has no file {name[:80]!r}")
    return web.Response(body=_file(name), content_type=kind, charset="utf-8", headers=PAGE_HEADERS)


@routes.post("/v1/explorer/login")
async def login_(request: web.Request) -> web.Response:
    """``{"token": "..."}``: the session cookie and its CSRF token, when the token is the server's."""
    body = await read_json(request)
    return login(request, field(body, "token", str), service(request).config.token)


@routes.post("/v1/explorer/logout")
async def logout_(request: web.Request) -> web.Response:
    """End the session and clear its cookie."""
    return logout(request)


@routes.get("/v1/explorer/session")
async def session(request: web.Request) -> web.Response:
    """Whether this server needs a login, whether the request has a session, and that session's CSRF token."""
    auth = service(request).config.token is not None
    csrf = session_csrf(request)
    return json_response({"auth": auth, "session": csrf is not None, "csrf": csrf,
                          "cookie": COOKIE if csrf is not None else None})


# The views' data.


def _actor(request: web.Request, name: str = "actor") -> uuid.UUID:
    text = request.query.get(name)
    if not text:
        raise bad_request(f"give ?{name}=ID (an actor id or a unique prefix)")
    return resolve_actor(service(request).theater.store, text)


@routes.get("/v1/explorer/actors")
async def actors(request: web.Request) -> web.Response:
    """Every actor of the home with its status, parent, failure, event count and restarts (the tree's rows)."""
    svc = service(request)
    rows = await svc.run(record.actor_tree, svc.theater.store, svc.theater)
    return json_response({"actors": rows, "time_ms": time.time_ns() // 1_000_000})


@routes.get("/v1/explorer/event")
async def event(request: web.Request) -> web.Response:
    """One event in detail: ``actor`` and ``seq``, or ``event`` (a hash or unique prefix; with ``actor``, it must
    be that actor's)."""
    svc = service(request)
    store = svc.theater.store
    actor = _actor(request) if request.query.get("actor") else None
    seq = query_int(request, "seq")
    ref = request.query.get("event") or None
    point = await svc.run(record.locate, store, actor, seq, ref)
    return json_response(await svc.run(record.event_detail, store, point))


@routes.post("/v1/explorer/replay")
async def replay(request: web.Request) -> web.Response:
    """``{"actor": ID, "seq": N}``: re-execute the chain from its start up to event ``seq`` and compare with the
    record; the answer is ``verify``'s report (``ok``, ``integrity``, ``replay`` with any divergence)."""
    svc = service(request)
    store = svc.theater.store
    body = await read_json(request)
    actor = resolve_actor(store, field(body, "actor", str))
    seq = field(body, "seq", int)
    if seq < 0:
        raise bad_request("seq must be >= 0")
    head = await svc.run(recorded_head, store, actor)
    if seq > head.seq:
        raise bad_request(f"seq {seq} is past the chain's head #{head.seq}")
    limits = ReplayLimits(timeout_s=svc.config.verify_timeout)
    report = await svc.run(lambda: verify_actor(store, actor, to=seq, limits=limits))
    return json_response(verify_json(report))


@routes.get("/v1/explorer/verify")
async def verify(request: web.Request) -> web.StreamResponse:
    """Verify an actor's chain (``actor``; ``from``/``to``), streaming ``progress`` messages (``step``: integrity or
    replay, ``done``, ``total``) and then one ``result`` (``verify``'s report). SSE, or WebSocket on upgrade."""
    svc = service(request)
    store = svc.theater.store
    actor = _actor(request)
    start = query_int(request, "from", 0) or 0
    to = query_int(request, "to")
    head = await svc.run(recorded_head, store, actor)
    total = head.seq + 1
    ready = {"actor": str(actor), "events": total}
    limits = ReplayLimits(timeout_s=svc.config.verify_timeout)

    async def produce(sink: Sink) -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        task = svc.run(lambda: verify_actor(store, actor, start=start, to=to, limits=limits,
                                            progress=_reporter(svc.loop, queue, total, start)))
        work = asyncio.ensure_future(task)
        while not work.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({work, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                await sink.send("progress", getter.result())
            else:
                getter.cancel()
        await sink.send("result", verify_json(work.result()))

    return await run_stream(request, ready, produce)


def _reporter(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[dict[str, Any]], total: int,
              start: int) -> Any:
    """``verify_actor``'s ``progress``: per step, a callback (on the worker thread) that posts a progress message
    to the loop at most every ``PROGRESS_EVERY_S``."""

    def step(name: str) -> Any:
        last = [0.0]
        loop.call_soon_threadsafe(queue.put_nowait, {"step": name, "done": 0, "total": total})

        def report(n: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                done = n if name == "integrity" else n + 1
                loop.call_soon_threadsafe(queue.put_nowait, {"step": name, "done": min(done, total), "total": total})

        return report

    return step


@routes.get("/v1/explorer/flow")
async def flow(request: web.Request) -> web.Response:
    """The messages between actors (``actor``, repeatable; default: the home's first ``MAX_FLOW_ACTORS``) in the
    last ``limit`` events of each chain, as a sequence diagram's arrows; ``with_correspondents``: also the actors
    those send to or hear from."""
    svc = service(request)
    store = svc.theater.store
    limit = query_int(request, "limit", DEFAULT_FLOW_EVENTS, minimum=1, maximum=record.MAX_FLOW_EVENTS)
    given = request.query.getall("actor", [])
    if len(given) > record.MAX_FLOW_ACTORS:
        raise bad_request(f"at most {record.MAX_FLOW_ACTORS} actors in one flow")
    chosen = [resolve_actor(store, text) for text in given] if given else await svc.run(_first_actors, svc)
    widen = bool(given) and query_flag(request, "with_correspondents")
    size = limit or DEFAULT_FLOW_EVENTS
    return json_response(await svc.run(lambda: record.message_flow(store, chosen, size, widen=widen)))


def _first_actors(svc: Any) -> list[uuid.UUID]:
    return [actor for actor, _ in svc.theater.store.log.actors_page(None, record.MAX_FLOW_ACTORS)]


__all__ = ["API_HEADERS", "CSP", "PAGE_HEADERS", "STATIC", "routes"]
