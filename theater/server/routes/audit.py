"""Routes of the home's audit log: its verifier key, signed checkpoints, inclusion and consistency proofs.

The proofs are the same JSON files ``theater audit prove`` and ``theater audit consistency`` write, checked offline
by ``theater audit check FILE --key VKEY`` (``docs/audit.md``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from store import Store
from store.checkpoint import Checkpoint, Cosignature, cosigner_of
from store.errors import CosignatureRefused, InvalidInputError, NotFoundError, ProofError
from store.witness import MAX_PAGE_ENTRIES, page_to_cbor, read_feed_page
from theater.porcelain.actors import resolve_actor
from theater.server.errors import bad_request
from theater.server.service import service
from theater.server.wire import field, json_response, query_int, read_json

routes = web.RouteTableDef()


def checkpoint_json(cp: Checkpoint, cosigned: str | None = None, lines: list[str] | None = None) -> dict[str, Any]:
    """A checkpoint's JSON form; ``note`` carries the kept cosignatures as extra signature lines."""
    return {"number": cp.number, "size": cp.size, "root": cp.root.hex(), "note": cosigned or cp.note,
            "cosignatures": [_cosigner(line) for line in lines or ()]}


def _cosigner(line: str) -> dict[str, Any]:
    name, timestamp = cosigner_of(line)
    return {"name": name, "timestamp": timestamp, "line": line}


def _cosigned(store: Store, number: int | None) -> dict[str, Any]:
    cp, note = store.audit.cosigned(number)
    return checkpoint_json(cp, note, store.audit.cosignatures(cp.number))


def _all_cosigned(store: Store) -> list[dict[str, Any]]:
    return [_cosigned(store, cp.number) for cp in store.audit.checkpoints()]


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
    found = await svc.run(_all_cosigned, svc.theater.store)
    return json_response({"checkpoints": found})


@routes.get("/v1/audit/checkpoints/{number}")
async def get_checkpoint(request: web.Request) -> web.Response:
    """One checkpoint by number, or ``latest``, its note with the cosignatures kept for it."""
    svc = service(request)
    number = _number(request)
    return json_response(await svc.run(_cosigned, svc.theater.store, number))


def _number(request: web.Request) -> int | None:
    raw = request.match_info["number"]
    if raw != "latest" and not (raw.isdigit() and 0 < len(raw) < 19):
        raise bad_request(f"checkpoint {raw[:40]!r} is not a number or 'latest'")
    return None if raw == "latest" else int(raw)


@routes.post("/v1/audit/checkpoints/{number}/cosignatures")
async def cosign(request: web.Request) -> web.Response:
    """A witness's cosignature of the checkpoint: ``{"cosignature": "— <name> <base64>"}``, checked against the
    witness keys the operator lists (``--witness-key``) and kept; 201. Unknown keys and forgeries: 400."""
    svc = service(request)
    number = _number(request)
    line = field(await read_json(request), "cosignature", str)
    keys = svc.config.witness_keys
    if not keys:
        raise bad_request("this server accepts no cosignatures: start it with --witness-key NAME+ID+KEY")
    store = svc.theater.store
    target = number if number is not None else (await svc.run(store.audit.get)).number
    try:
        made: Cosignature = await svc.run(lambda: store.audit.cosign(target, line, keys))
    except ProofError as exc:  # an unknown witness or a forged cosignature: refused, nothing kept
        raise CosignatureRefused(exc.what, exc.reason) from None
    return json_response({"number": target, "name": made.name, "timestamp": made.timestamp}, status=201)


@routes.get("/v1/audit/feed")
async def feed(request: web.Request) -> web.Response:
    """The home's feed from position ``from`` (below ``to``), each entry with its stored event, and the blobs they
    name (large ones listed in ``needs``, for ``GET /v1/blobs/{hash}``): canonical CBOR, at most ``limit`` entries
    (at most 4096) and about 4 MiB. What witnesses copy and re-execute (``docs/audit.md``)."""
    svc = service(request)
    start = query_int(request, "from", 0, minimum=0) or 0
    stop = query_int(request, "to", None, minimum=0)
    limit = query_int(request, "limit", MAX_PAGE_ENTRIES, minimum=1) or MAX_PAGE_ENTRIES
    if limit > MAX_PAGE_ENTRIES:
        raise bad_request(f"limit is at most {MAX_PAGE_ENTRIES}; page with 'next'")
    page = await svc.run(lambda: read_feed_page(svc.theater.store, start, stop, limit))
    return web.Response(body=page_to_cbor(page), content_type="application/cbor")


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
