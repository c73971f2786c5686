"""Routes of actors' lives: start, list, inspect, stop, restart, and messages (send, request)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from replay.upgrade import Verdict
from store import parse_actor_id
from store.errors import InvalidInputError
from theater import components, porcelain
from theater.actor import Actor
from theater.envelope import Envelope
from theater.errors import ReplyTimeout
from theater.porcelain import actor_rows, describe, running
from theater.porcelain.actors import PAGE
from theater.porcelain.forms import bytes_json
from theater.porcelain.upgrade import chain_check_json, upgrade_actor
from theater.runtime import Theater
from theater.server.errors import bad_request, unprocessable
from theater.server.manifests import CLIENT, client_manifest, uploaded_files
from theater.server.service import Service, service
from theater.server.wire import (
    actor_id,
    check_timeout,
    field,
    json_response,
    parse_bytes,
    query_flag,
    query_int,
    read_json,
)

routes = web.RouteTableDef()


# Starting.


@routes.post("/v1/actors")
async def start(request: web.Request) -> web.Response:
    """Start an actor from a manifest's TOML and its component (bytes, a blob hash, or a file of ``files``).

    ``files`` (optional) maps relative names to the hashes of blobs uploaded first: the files of the project the
    manifest comes from, which the manifest and its actor's children may name (``theater.files``).
    """
    svc = service(request)
    body = await read_json(request)
    if body.get("node") is not None and svc.cluster is None:  # a cluster's nodes place it (theater.cluster.api)
        raise unprocessable("node: this server is not part of a cluster (it was started without --cluster), so a "
                            "start cannot name a node", "NotInACluster")
    text = field(body, "manifest", str)
    source = field(body, "source", str, "<api>")[:200]
    component = parse_bytes(body["component"], "component") if body.get("component") is not None else None
    digest = _hash_field(body, "component_hash")
    if component is not None and digest is not None:
        raise bad_request("give component or component_hash, not both")
    init_state = parse_bytes(body["init_state"], "init_state") if body.get("init_state") is not None else None
    parent = field(body, "parent", str, None)
    files = field(body, "files", dict, None)
    actor = await svc.run(_start, svc.theater, text, source, component, digest, init_state, parent, files)
    return json_response(await svc.run(describe, svc.theater.store, parse_actor_id(actor), svc.theater), status=201)


def _hash_field(body: dict[str, Any], name: str) -> bytes | None:
    text = field(body, name, str, None)
    if text is None:
        return None
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise bad_request(f"{name} must be 64 hexadecimal digits")
    return digest


def _start(theater: Theater, text: str, source: str, component: bytes | None, digest: bytes | None,
           init_state: bytes | None, parent: str | None, files: dict[str, Any] | None) -> str:
    if parent is not None:
        theater.running(parent)  # a child is supervised by its parent: the parent must be running
    access = CLIENT if files is None else uploaded_files(files, theater.store.blobs, source=source)
    if component is not None:  # stored only once it compiles, as every component from outside
        digest, _ = components.load_new(theater.engine, theater.store, component, what=f"{source}: component")
    manifest = client_manifest(text, source=source, component=digest, init_state=init_state, files=access,
                               maximums=theater.maximums)
    return theater.start(manifest, init_state=init_state, parent=parent)


# Reading.


MAX_PAGE = 10_000  # actors in one page of the listing


@routes.get("/v1/actors")
async def list_actors(request: web.Request) -> web.Response:
    """The actors of this server, running, idle (``idle_ms``) and passivated (with ``all``: every actor recorded in
    the home). ``limit`` and ``after`` (an actor id) page through them in id order; ``next`` is the ``after`` of
    the next page (null on the last). Without either: every one, at once."""
    svc = service(request)
    everything = query_flag(request, "all")
    limit = query_int(request, "limit", None, minimum=1, maximum=MAX_PAGE)
    text = request.query.get("after", "")
    if limit is None and not text:
        rows = await svc.run(lambda: actor_rows(svc.theater.store, svc.theater, everything=everything))
        return json_response({"actors": rows})
    try:
        after = parse_actor_id(text) if text else None
    except InvalidInputError:
        raise bad_request(f"the query parameter 'after' must be an actor id, got {text[:40]!r}") from None
    size = limit or PAGE
    rows = await svc.run(lambda: actor_rows(svc.theater.store, svc.theater, everything=everything, after=after,
                                            limit=size))
    return json_response({"actors": rows, "next": rows[-1]["id"] if len(rows) == size else None})


@routes.get("/v1/actors/{id}")
async def inspect(request: web.Request) -> web.Response:
    """Everything about one actor: status, manifest, component, head, state, children."""
    svc = service(request)
    actor = actor_id(request, svc.theater.store)
    return json_response(await svc.run(describe, svc.theater.store, actor, svc.theater))


# Stopping and restarting.


@routes.post("/v1/actors/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    """Stop an actor at once (ahead of its waiting messages, ending a running call); its chain records the stop."""
    svc = service(request)
    actor = actor_id(request, svc.theater.store)
    await svc.run(porcelain.stop, svc.theater, actor)
    return json_response(await svc.run(describe, svc.theater.store, actor, svc.theater))


@routes.post("/v1/actors/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    """Restart the actor: by its supervisor if it has one, else stop it and bring it back from its last state.

    With ``component`` (bytes) or ``component_hash`` (a blob uploaded first) the actor is restarted with that
    component once the upgrade check over its chain passes (``force``: whatever the verdict; ``accept``: the
    verdicts that pass besides ``identical``, from ``state-only`` and ``different``); refused: 409
    ``UpgradeRefused``, and nothing is recorded. The answer then holds the check as ``upgrade``.
    """
    svc = service(request)
    actor = actor_id(request, svc.theater.store)
    body = await read_json(request)
    if body.get("component") is None and body.get("component_hash") is None:
        await svc.run(porcelain.restart, svc.theater, actor)
        return json_response(await svc.run(describe, svc.theater.store, actor, svc.theater))
    wasm = await svc.run(_new_component, svc.theater, body)
    accept = field(body, "accept", list, [])
    if not all(isinstance(a, str) and a in ("state-only", "different") for a in accept):
        raise bad_request("accept: a list of verdicts from 'state-only' and 'different'")
    passing = frozenset({Verdict.IDENTICAL, *(Verdict(a) for a in accept)})
    force = field(body, "force", bool, False)
    check = await svc.run(lambda: upgrade_actor(svc.theater, actor, wasm, force=force, accept=passing))
    answer = await svc.run(describe, svc.theater.store, actor, svc.theater)
    return json_response({**answer, "upgrade": chain_check_json(check, passing)})


def _new_component(theater: Theater, body: dict[str, Any]) -> bytes:
    """The component of a restart: given inline, or by the hash of a blob in the store."""
    digest = _hash_field(body, "component_hash")
    if body.get("component") is not None:
        if digest is not None:
            raise bad_request("give component or component_hash, not both")
        return parse_bytes(body["component"], "component")
    assert digest is not None
    return theater.store.blobs.get(digest)


# Messages.


async def _message(request: web.Request) -> tuple[Service, Actor, dict[str, Any], bytes]:
    svc = service(request)
    actor = running(svc.theater, actor_id(request, svc.theater.store))
    body = await read_json(request)
    message = parse_bytes(body.get("message"), "message")
    check_size(actor, message)
    return svc, actor, body, message


def check_size(actor: Actor, message: bytes) -> None:
    """Refuse a message larger than the actor's ``max_message_bytes``.

    Raises:
        MessageTooLarge: it is larger (answered with 413).
    """
    actor.check_message(len(message))


@routes.post("/v1/actors/{id}/send")
async def send(request: web.Request) -> web.Response:
    """Deliver a one-way message; answers once the actor has handled it and its events are durable."""
    svc, actor, _, message = await _message(request)
    await svc.settled(svc.theater.router.deliver_send(actor, message, envelope=_traced(svc, request)))
    return json_response({"delivered": True})


@routes.post("/v1/actors/{id}/request")
async def request_(request: web.Request) -> web.Response:
    """Send a request and answer with the actor's response (which it may defer)."""
    svc, actor, body, message = await _message(request)
    timeout = check_timeout(body.get("timeout"), svc.config.request_timeout)
    try:
        response = await svc.settled(svc.theater.router.deliver_request(actor, message, _traced(svc, request)),
                                     timeout)
    except TimeoutError:
        raise ReplyTimeout(f"request to {actor.id}", timeout) from None
    return json_response({"response": bytes_json(response)})


def _traced(svc: Service, request: web.Request) -> Envelope | None:
    """With telemetry on, an envelope carrying the client's W3C trace context (``traceparent``), if it sent one."""
    if svc.telemetry is None:
        return None
    context = svc.telemetry.extract(request.headers)
    return None if context is None else Envelope(trace=context)


__all__ = ["check_size", "routes"]
