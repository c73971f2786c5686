"""Routes of the home's content-addressed store: blobs (put, get, list) and labels.

Labels the runtime reserves (``store.RESERVED_LABEL_PREFIXES``) are refused with 400 ``ReservedLabelError``
before anything is written.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from store import Store
from theater.porcelain import blobs as porcelain_blobs
from theater.porcelain.blobs import blob_info, put_blob, resolve_blob
from theater.porcelain.forms import blob_json
from theater.server.errors import bad_request
from theater.server.service import service
from theater.server.wire import field, json_response, query_int, read_json

routes = web.RouteTableDef()

DEFAULT_LIMIT = 1000


@routes.post("/v1/blobs")
async def put(request: web.Request) -> web.Response:
    """Store the raw request body (``application/octet-stream``); ``label`` also points that label at it."""
    svc = service(request)
    data = await request.read()
    label = request.query.get("label")
    stored = await svc.run(put_blob, svc.theater.store, data, label)
    return json_response({**blob_json(stored), "label": label}, status=201)


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
    """The blob's bytes (``application/octet-stream``); ``ref`` is a hex prefix, ``store:LABEL`` or a label."""
    svc = service(request)
    store = svc.theater.store
    digest, data = await svc.run(_get, store, request.match_info["ref"])
    return web.Response(body=data, content_type="application/octet-stream", headers={"X-Theater-Hash": digest.hex()})


def _get(store: Store, ref: str) -> tuple[bytes, bytes]:
    digest = resolve_blob(store, ref)
    return digest, store.blobs.get(digest)


@routes.get("/v1/blobs/{ref}/info")
async def info(request: web.Request) -> web.Response:
    """What ``ref`` resolves to: ``{"hash", "size"}`` (as ``theater store resolve --json``)."""
    svc = service(request)
    store = svc.theater.store
    return json_response(blob_json(await svc.run(blob_info, store, request.match_info["ref"])))


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
    digest = await svc.run(porcelain_blobs.set_label, svc.theater.store, name, ref)
    return json_response({"label": name, "hash": digest.hex()})


@routes.delete("/v1/labels/{name}")
async def remove_label(request: web.Request) -> web.Response:
    """Remove the label (the blob stays)."""
    svc = service(request)
    name = request.match_info["name"]
    await svc.run(svc.theater.store.blobs.remove_label, name)
    return json_response({"label": name, "removed": True})


__all__ = ["routes"]
