"""Routes of actors' lives: start, list, inspect, stop, restart, and messages (send, request)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from replay import state_event_at
from store import EMPTY, parse_actor_id
from theater import components
from theater.actor import Actor
from theater.errors import ActorNotFound, ActorNotRunning, ReplyTimeout
from theater.runtime import Theater
from theater.server.durable import last_status
from theater.server.errors import bad_request
from theater.server.manifests import client_manifest
from theater.server.service import Service, service
from theater.server.wire import (
    actor_id,
    bytes_json,
    check_timeout,
    field,
    json_response,
    parse_bytes,
    query_flag,
    read_json,
)

routes = web.RouteTableDef()


# Starting.


@routes.post("/v1/actors")
async def start(request: web.Request) -> web.Response:
    """Start an actor from a manifest's TOML and its component (bytes or a blob hash)."""
    svc = service(request)
    body = await read_json(request)
    text = field(body, "manifest", str)
    source = field(body, "source", str, "<api>")[:200]
    component = parse_bytes(body["component"], "component") if body.get("component") is not None else None
    digest = _hash_field(body, "component_hash")
    if component is not None and digest is not None:
        raise bad_request("give component or component_hash, not both")
    init_state = parse_bytes(body["init_state"], "init_state") if body.get("init_state") is not None else None
    parent = field(body, "parent", str, None)
    actor = await svc.run(_start, svc.theater, text, source, component, digest, init_state, parent)
    return json_response(await svc.run(describe, svc.theater, parse_actor_id(actor)), status=201)


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
           init_state: bytes | None, parent: str | None) -> str:
    if parent is not None:
        theater.running(parent)  # a child is supervised by its parent: the parent must be running
    if component is not None:  # stored only once it compiles, as every component from outside
        digest, _ = components.load_new(theater.engine, theater.store, component, what=f"{source}: component")
    manifest = client_manifest(text, source=source, component=digest, init_state=init_state)
    return theater.start(manifest, init_state=init_state, parent=parent)


# Reading.


@routes.get("/v1/actors")
async def list_actors(request: web.Request) -> web.Response:
    """The actors of this server (with ``all``: every actor recorded in the home)."""
    svc = service(request)
    return json_response({"actors": await svc.run(list_all, svc.theater, query_flag(request, "all"))})


def list_all(theater: Theater, everything: bool) -> list[dict[str, Any]]:
    """One summary per actor: this runtime's actors, and with ``everything`` the home's other chains too."""
    rows = [_with_head(theater, row) for row in theater.actors()]
    if everything:
        live = {row["id"] for row in rows}
        rows += [_recorded(theater, actor) for actor, _ in theater.store.log.actors() if str(actor) not in live]
    return rows


def _with_head(theater: Theater, row: dict[str, Any]) -> dict[str, Any]:
    head = theater.store.log.head(parse_actor_id(row["id"]))
    last = theater.store.log.at(parse_actor_id(row["id"]), head.seq) if head != EMPTY else None
    return {**row, "live": True, "events": head.seq + 1, "last_event_ms": last.timestamp_ms if last else None}


def _recorded(theater: Theater, actor: uuid.UUID) -> dict[str, Any]:
    log = theater.store.log
    head = log.head(actor)
    genesis, last = log.at(actor, 0), log.at(actor, head.seq)
    data = genesis.data if isinstance(genesis.data, dict) else {}
    return {
        "id": str(actor), "name": data.get("name"), "status": last_status(last.type), "parent": data.get("parent"),
        "failure": None, "live": False, "events": head.seq + 1, "last_event_ms": last.timestamp_ms,
    }


@routes.get("/v1/actors/{id}")
async def inspect(request: web.Request) -> web.Response:
    """Everything about one actor: status, manifest, component, head, state, children."""
    svc = service(request)
    return json_response(await svc.run(describe, svc.theater, actor_id(request)))


def describe(theater: Theater, actor: uuid.UUID) -> dict[str, Any]:
    """The ``inspect`` answer for an actor of this runtime or of the home.

    Raises:
        ActorNotFound: the home has no chain for it.
    """
    log = theater.store.log
    head = log.head(actor)
    if head == EMPTY:
        raise ActorNotFound(str(actor))
    genesis, last = log.at(actor, 0), log.at(actor, head.seq)
    live = _live(theater, actor)
    row = _with_head(theater, _summary(live)) if live else _recorded(theater, actor)
    state = state_event_at(theater.store, actor)
    state_hash = None if state is None else state.data.get("state" if state.type == "wasm/result" else "init_state")
    data = genesis.data
    return {
        **row,
        "component": data["component"].hex(),
        "manifest": data["manifest"].hex(),
        "limits": data.get("limits"),
        "created_ms": genesis.timestamp_ms,
        "head": {"seq": head.seq, "hash": last.hash.hex(), "type": last.type, "timestamp_ms": last.timestamp_ms},
        "state": None if state_hash is None else {
            "hash": state_hash.hex(), "size": theater.store.blobs.size(state_hash), "seq": state.seq,  # type: ignore[union-attr]
        },
        "children": [a["id"] for a in theater.actors() if a["parent"] == str(actor)],
    }


def _live(theater: Theater, actor: uuid.UUID) -> Actor | None:
    try:
        return theater.actor(actor)
    except ActorNotFound:
        return None


def _summary(actor: Actor) -> dict[str, Any]:
    failure = actor.failure
    return {
        "id": str(actor.id), "name": actor.name, "status": actor.reported_status,
        "parent": str(actor.parent) if actor.parent else None,
        "failure": None if failure is None else {"kind": failure.kind, "detail": failure.detail},
    }


# Stopping and restarting.


@routes.post("/v1/actors/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    """Stop an actor at once (ahead of its waiting messages, ending a running call); its chain records the stop."""
    svc = service(request)
    actor = actor_id(request)
    await svc.run(_stop, svc.theater, actor)
    return json_response(await svc.run(describe, svc.theater, actor))


def _stop(theater: Theater, actor: uuid.UUID) -> None:
    if _live(theater, actor) is not None:
        theater.stop(actor)  # an actor recorded in the home but not running here is stopped already


@routes.post("/v1/actors/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    """Restart the actor: by its supervisor if it has one, else stop it and bring it back from its last state."""
    svc = service(request)
    actor = actor_id(request)
    await svc.run(_restart, svc.theater, actor)
    return json_response(await svc.run(describe, svc.theater, actor))


def _restart(theater: Theater, actor: uuid.UUID) -> None:
    """A supervised child is restarted by its supervisor; any other actor is stopped and reopened."""
    live = _live(theater, actor)
    if live is None and theater.store.log.head(actor) == EMPTY:
        raise ActorNotFound(str(actor))
    supervisor = theater.supervision.supervising(live) if live is not None else None
    if supervisor is not None and supervisor.actor.status == "running":
        theater.supervision.restart_child(supervisor.actor, actor, "restart requested through the API")
        return
    if live is not None and live.status in ("running", "starting"):
        theater.stop(actor)
    theater.reopen(actor)


# Messages.


def running(theater: Theater, actor: uuid.UUID) -> Actor:
    """The running actor.

    Raises:
        ActorNotFound: the home has no such actor.
        ActorNotRunning: it is recorded but stopped, failed, or not brought back by this server.
    """
    try:
        return theater.running(actor)
    except ActorNotFound:
        head = theater.store.log.head(actor)
        if head == EMPTY:
            raise
        raise ActorNotRunning(str(actor), last_status(theater.store.log.at(actor, head.seq).type)) from None


async def _message(request: web.Request) -> tuple[Service, Actor, dict[str, Any], bytes]:
    svc = service(request)
    actor = running(svc.theater, actor_id(request))
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
    await svc.settled(svc.theater.router.deliver_send(actor, message))
    return json_response({"delivered": True})


@routes.post("/v1/actors/{id}/request")
async def request_(request: web.Request) -> web.Response:
    """Send a request and answer with the actor's response (which it may defer)."""
    svc, actor, body, message = await _message(request)
    timeout = check_timeout(body.get("timeout"), svc.config.request_timeout)
    try:
        response = await svc.settled(svc.theater.router.deliver_request(actor, message), timeout)
    except TimeoutError:
        raise ReplyTimeout(f"request to {actor.id}", timeout) from None
    return json_response({"response": bytes_json(response)})


__all__ = ["check_size", "describe", "list_all", "routes", "running"]
