"""Routes of forks, reverts, what-ifs and verified bundle imports: ``POST /v1/actors/{id}/fork``, ``POST
/v1/actors/{id}/revert``, ``POST /v1/actors/{id}/whatif`` and ``POST /v1/chains/import``.

A fork made through the API grants no more than its client could: a manifest the client sends is parsed as any
client's (``client_manifest``: no file of the server is read), and the source's recorded manifest, when none is
sent, gets the client's file access too (the source's uploaded files, if it was started with them; else none),
so ``check_origin`` refuses a handler that reaches the host's files, variables or programs, as for a start.

A what-if writes nothing and is bounded (``MAX_WHATIF_EVENTS`` events, ``--verify-timeout`` seconds, at most
``MAX_OVERRIDES`` overrides); a bundle is checked and re-executed in a temporary store (within ``--verify-timeout``)
before anything of it reaches the home (``theater.lineage.import_verified_bundle``).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from replay import Replayer, ReplayLimits
from store import parse_actor_id
from store.errors import InvalidInputError
from theater import lineage
from theater.files import FileAccess
from theater.porcelain import describe
from theater.porcelain.forms import from_jsonable
from theater.runtime import Theater
from theater.server.errors import bad_request
from theater.server.manifests import CLIENT, client_manifest
from theater.server.service import service
from theater.server.wire import actor_id, field, json_response, read_json

routes = web.RouteTableDef()
MAX_OVERRIDES = 1024


@routes.post("/v1/fork")
async def fork_event(request: web.Request) -> web.Response:
    """``POST /v1/actors/{id}/fork`` for the actor whose chain holds ``event``, whichever that is."""
    return await _fork_request(request)


@routes.post("/v1/actors/{id}/fork")
async def fork(request: web.Request) -> web.Response:
    """Start a new actor whose history begins at ``event`` (a hash or unique prefix) of this actor.

    Body: ``event`` (required); ``manifest`` (TOML text; default: the source's recorded one), ``component_hash``
    (64 hex digits of a blob in the store; default: the source's component), ``name``, ``overrides`` (``{seq:
    value}``, values in the recorded form with bytes as ``"hex:..."``: the fork starts from the state a what-if run
    with those host results reaches). Answers 201 with the new actor, as ``GET /v1/actors/{id}``.
    """
    return await _fork_request(request)


async def _fork_request(request: web.Request) -> web.Response:
    svc = service(request)
    body = await read_json(request)
    event = field(body, "event", str)
    source = actor_id(request, svc.theater.store) if "id" in request.match_info else None
    text = field(body, "manifest", str, None)
    component = _hash(field(body, "component_hash", str, None))
    name = field(body, "name", str, None)
    overrides = _overrides(field(body, "overrides", dict, None))
    new = await svc.run(_fork, svc.theater, source, event, text, component, name, overrides)
    return json_response(await svc.run(describe, svc.theater.store, parse_actor_id(new), svc.theater), status=201)


def _fork(theater: Theater, source: uuid.UUID | None, event: str, text: str | None, component: bytes | None,
          name: str | None, overrides: dict[int, Any] | None) -> str:
    owner, _, _ = lineage.locate_event(theater.store, event)
    if source is None:
        source = owner
    elif owner != source:
        raise InvalidInputError("event", event, f"an event of actor {source} (it belongs to {owner})")
    if text is not None:
        recorded = Replayer(theater.store).genesis(source).data["component"]
        manifest = client_manifest(text, source="<api fork>", component=component or recorded, init_state=None,
                                   maximums=theater.maximums)
        return lineage.fork(theater, event, manifest=manifest, name=name, overrides=overrides)
    return lineage.fork(theater, event, component=component, name=name, overrides=overrides,
                        files=_client_access(theater, source))


def _client_access(theater: Theater, source: uuid.UUID) -> FileAccess:
    """The access a client's fork of ``source`` gets: the source's uploaded files if it has them, else none."""
    recorded = theater._recorded_files(Replayer(theater.store).genesis(source))
    return recorded if recorded.mode == "stored" else CLIENT


@routes.post("/v1/actors/{id}/whatif")
async def whatif(request: web.Request) -> web.Response:
    """Re-execute the actor's chain up to ``to`` (an event hash or unique prefix of its chain; default: its head)
    with the host results at ``overrides`` (``{seq: value}``, the recorded form with bytes as ``"hex:..."``)
    replaced, and compare every call with the record. Nothing is written. Answers the run: ``calls`` (each with
    the recorded and the what-if outcome and state), ``departure`` (the first call that ends otherwise),
    ``stopped`` (where the record could not answer), ``state`` and ``recorded_state`` at ``last_seq``."""
    svc = service(request)
    store = svc.theater.store
    actor = actor_id(request, store)
    body = await read_json(request)
    to = field(body, "to", str, None)
    overrides = _overrides(field(body, "overrides", dict, None)) or {}
    limits = ReplayLimits(timeout_s=svc.config.verify_timeout)
    return json_response(await svc.run(lambda: lineage.whatif_report(store, actor, to, overrides, limits=limits)))


@routes.post("/v1/chains/import")
async def import_chain(request: web.Request) -> web.Response:
    """Import a bundle (the raw body, ``application/octet-stream``) once it is checked and re-executed in a
    temporary store; answers 201 ``{"actor": ID, "events": N}``. A damaged, forged or non-re-executing bundle is
    refused with 422 ``BundleRefused``, one at odds with a chain of the home (or that would extend it) with 409."""
    svc = service(request)
    data = await request.read()
    if not data:
        raise bad_request("the body must be a bundle (theater chain export)")
    limits = ReplayLimits(timeout_s=svc.config.verify_timeout)
    store = svc.theater.store
    actor = await svc.run(lambda: lineage.import_verified_bundle(store, data, source="(request body)", limits=limits))
    head = await svc.run(store.log.head, actor)
    return json_response({"actor": str(actor), "events": head.seq + 1}, status=201)


@routes.post("/v1/actors/{id}/revert")
async def revert(request: web.Request) -> web.Response:
    """Bring the running actor back to its state at ``to`` (an event hash or unique prefix of its own chain), by
    appending ``actor/revert`` and a fresh instance from that state. Answers with the actor and ``revert_seq``."""
    svc = service(request)
    actor = actor_id(request, svc.theater.store)
    body = await read_json(request)
    to = field(body, "to", str)
    seq = await svc.run(lineage.revert, svc.theater, actor, to)
    answer = await svc.run(describe, svc.theater.store, actor, svc.theater)
    return json_response({**answer, "revert_seq": seq})


def _hash(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise bad_request("component_hash must be 64 hexadecimal digits")
    return digest


def _overrides(raw: dict[str, Any] | None) -> dict[int, Any] | None:
    if raw is None:
        return None
    if len(raw) > MAX_OVERRIDES:
        raise bad_request(f"at most {MAX_OVERRIDES} overrides")
    out: dict[int, Any] = {}
    for key, value in raw.items():
        if not (key.isascii() and key.isdigit()):
            raise bad_request(f"an override's key must be an event seq, got {key[:40]!r}")
        out[int(key)] = from_jsonable(value)
    return out


__all__ = ["routes"]
