"""Routes of the home's content-addressed store: blobs (put, get, list) and labels.

Labels the runtime reserves (``store.RESERVED_LABEL_PREFIXES``) are refused with 400 ``ReservedLabelError``
before anything is written.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from store import Store
from store.blobs import check_client_label
from store.errors import AmbiguousPrefixError, InvalidInputError, NotFoundError
from theater.server.errors import bad_request
from theater.server.service import service
from theater.server.wire import field, json_response, query_int, read_json

routes = web.RouteTableDef()

DEFAULT_LIMIT = 1000


def resolve_blob(store: Store, ref: str) -> bytes:
    """A blob reference: a hex prefix of at least 4 digits, else a label name.

    Raises:
        NotFoundError: neither names a blob; AmbiguousPrefixError: the prefix matches several.
    """
    try:
        return store.blobs.resolve(ref)
    except AmbiguousPrefixError:
        raise
    except (InvalidInputError, NotFoundError):
        try:
            return store.blobs.get_label(ref)
        except (InvalidInputError, NotFoundError):
            raise NotFoundError("blob or label", ref) from None


@routes.post("/v1/blobs")
async def put(request: web.Request) -> web.Response:
    """Store the raw request body (``application/octet-stream``); ``label`` also points that label at it."""
    svc = service(request)
    data = await request.read()
    label = request.query.get("label")
    digest = await svc.run(_put, svc.theater.store, data, label)
    return json_response({"hash": digest.hex(), "size": len(data), "label": label}, status=201)


def _put(store: Store, data: bytes, label: str | None) -> bytes:
    if label:
        check_client_label(label)  # a refused label stores nothing
    digest = store.blobs.put(data)
    if label:
        store.blobs.set_label(label, digest)
    return digest


@routes.get("/v1/blobs")
async def list_blobs(request: web.Request) -> web.Response:
    """Blob hashes and sizes in hash order: at most ``limit``, after the hash ``after``."""
    svc = service(request)
    limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=1) or DEFAULT_LIMIT
    after = request.query.get("after", "")
    return json_response(await svc.run(_list, svc.theater.store, after, limit))


def _list(store: Store, after: str, limit: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for digest in store.blobs:
        if digest.hex() <= after:
            continue
        if len(rows) >= limit:
            return {"blobs": rows, "next": rows[-1]["hash"]}
        rows.append({"hash": digest.hex(), "size": store.blobs.size(digest)})
    return {"blobs": rows, "next": None}


@routes.get("/v1/blobs/{ref}")
async def get(request: web.Request) -> web.Response:
    """The blob's bytes (``application/octet-stream``); ``ref`` is a hex prefix or a label."""
    svc = service(request)
    store = svc.theater.store
    digest, data = await svc.run(_get, store, request.match_info["ref"])
    return web.Response(body=data, content_type="application/octet-stream", headers={"X-Theater-Hash": digest.hex()})


def _get(store: Store, ref: str) -> tuple[bytes, bytes]:
    digest = resolve_blob(store, ref)
    return digest, store.blobs.get(digest)


@routes.get("/v1/labels")
async def labels(request: web.Request) -> web.Response:
    """Every label (those starting with ``prefix``) and the hash it points at."""
    svc = service(request)
    found = await svc.run(svc.theater.store.blobs.labels, request.query.get("prefix", ""))
    return json_response({"labels": [{"label": name, "hash": digest.hex()} for name, digest in found]})


@routes.put("/v1/labels/{name}")
async def set_label(request: web.Request) -> web.Response:
    """Point the label at a blob: ``{"hash": "<hex prefix>"}``."""
    svc = service(request)
    name = request.match_info["name"]
    ref = field(await read_json(request), "hash", str)
    if not ref:
        raise bad_request("hash must not be empty")
    digest = await svc.run(_set_label, svc.theater.store, name, ref)
    return json_response({"label": name, "hash": digest.hex()})


def _set_label(store: Store, name: str, ref: str) -> bytes:
    digest = store.blobs.resolve(ref)
    store.blobs.set_label(name, digest)
    return digest


@routes.delete("/v1/labels/{name}")
async def remove_label(request: web.Request) -> web.Response:
    """Remove the label (the blob stays)."""
    svc = service(request)
    name = request.match_info["name"]
    await svc.run(svc.theater.store.blobs.remove_label, name)
    return json_response({"label": name, "removed": True})


__all__ = ["resolve_blob", "routes"]
