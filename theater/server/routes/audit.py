"""Routes of the home's audit log: its verifier key, signed checkpoints, inclusion and consistency proofs.

The proofs are the same JSON files ``theater audit prove`` and ``theater audit consistency`` write, checked offline
by ``theater audit check FILE --key VKEY`` (``docs/audit.md``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from store import Store
from store.checkpoint import Checkpoint
from store.errors import InvalidInputError, NotFoundError
from theater.porcelain.actors import resolve_actor
from theater.server.errors import bad_request
from theater.server.service import service
from theater.server.wire import json_response, query_int

routes = web.RouteTableDef()


def checkpoint_json(cp: Checkpoint) -> dict[str, Any]:
    return {"number": cp.number, "size": cp.size, "root": cp.root.hex(), "note": cp.note}


@routes.get("/v1/audit/key")
async def key(request: web.Request) -> web.Response:
    """The home's verifier key (``name+keyid+base64``); the signing key is made on first use."""
    svc = service(request)
    found = await svc.run(lambda: svc.theater.store.audit.key())
    return json_response({"key": found.text, "name": found.name})


@routes.post("/v1/audit/checkpoints")
async def make_checkpoint(request: web.Request) -> web.Response:
    """Sign the log as it is now and keep the checkpoint; 201 with it."""
    svc = service(request)
    cp = await svc.run(lambda: svc.theater.store.audit.checkpoint())
    return json_response(checkpoint_json(cp), status=201)


@routes.get("/v1/audit/checkpoints")
async def list_checkpoints(request: web.Request) -> web.Response:
    """Every checkpoint, oldest first."""
    svc = service(request)
    found = await svc.run(lambda: svc.theater.store.audit.checkpoints())
    return json_response({"checkpoints": [checkpoint_json(cp) for cp in found]})


@routes.get("/v1/audit/checkpoints/{number}")
async def get_checkpoint(request: web.Request) -> web.Response:
    """One checkpoint by number, or ``latest``."""
    svc = service(request)
    raw = request.match_info["number"]
    if raw != "latest" and not (raw.isdigit() and 0 < len(raw) < 19):
        raise bad_request(f"checkpoint {raw[:40]!r} is not a number or 'latest'")
    number = None if raw == "latest" else int(raw)
    cp = await svc.run(lambda: svc.theater.store.audit.get(number))
    return json_response(checkpoint_json(cp))


def _event(store: Store, ref: str) -> bytes:
    if "-" not in ref:
        try:
            return store.log.resolve(ref)
        except (NotFoundError, InvalidInputError):
            pass
    try:
        return store.audit.event_of_actor(resolve_actor(store, ref))
    except NotFoundError:
        raise NotFoundError("event or actor", ref) from None


@routes.get("/v1/audit/proofs/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    """The inclusion proof of ``event`` (a hash or prefix, or an actor id: its head) in ``checkpoint`` (default:
    the newest)."""
    svc = service(request)
    ref = request.query.get("event")
    if not ref:
        raise bad_request("give ?event=HASH (or an actor id: its latest event, proving its whole chain)")
    number = query_int(request, "checkpoint", None, minimum=1)
    store = svc.theater.store
    proof = await svc.run(lambda: store.audit.prove(_event(store, ref), number))
    return json_response(proof)


@routes.get("/v1/audit/proofs/consistency")
async def consistency(request: web.Request) -> web.Response:
    """The proof that checkpoint ``new`` extends checkpoint ``old``."""
    svc = service(request)
    old = query_int(request, "old", None, minimum=1)
    new = query_int(request, "new", None, minimum=1)
    if old is None or new is None:
        raise bad_request("give ?old=N&new=M (checkpoint numbers)")
    proof = await svc.run(lambda: svc.theater.store.audit.consistency(old, new))
    return json_response(proof)
