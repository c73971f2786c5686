"""The server's side of a cluster: requests about an actor another node runs are forwarded to that node, and the
owner answers them.

A node that does not hold an actor forwards ``/v1/actors/{id}`` and its ``send``, ``request``, ``events``,
``state``, ``verify``, ``export``, ``stop`` and ``restart`` to the node that holds the actor's lease (over NATS
request/reply) and answers what that node answered. Send and request are delivered by the owner directly; the
others are answered by the owner's own HTTP API (a request to itself, with its own token). A ``subscribe`` is not
forwarded: the node follows the actor's chain on the replicated stream itself. An API client's channel opened
through this node to an actor another node runs is opened there, and its send, poll and close through this node
follow it (its stream does not); actors' channels cross nodes (``theater.cluster.node``). A label set or removed
here goes to the cluster's labels bucket before the client is answered (``theater.cluster.labels``).

Imports no NATS (the server imports this module whatever its options): the node is reached through the service.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware

from store.errors import TheaterError
from theater.cluster.config import NODE_NAME, ActorUnavailable
from theater.errors import ActorNotFound
from theater.porcelain import describe, running
from theater.porcelain.forms import bytes_json, event_json
from theater.porcelain.records import type_matches
from theater.server.auth import Handler
from theater.server.errors import ApiError, error_body, status_of
from theater.server.service import Service, service
from theater.server.streams import HEARTBEAT_S, Sink, run_stream
from theater.server.subscriptions import selection_of
from theater.server.wire import check_timeout, dumps, parse_bytes

if TYPE_CHECKING:
    from theater.cluster.node import ClusterNode

FORWARD_SLACK_S = 2.0  # a forwarded request waits this much longer than the owner does
ACTOR_PATH = re.compile(
    r"^/v1/actors/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"(|/send|/request|/events|/state|/verify|/export|/stop|/restart|/channels)$"
)
# A client channel opened through this node to an actor another node runs: its later requests go to that actor's
# owner (where the channel is). Its stream is not forwarded: poll its messages.
CHANNEL_PATH = re.compile(
    r"^/v1/channels/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(|/send|/messages|/stream)$")
CHANNEL_METHODS = {"": "DELETE", "/send": "POST", "/messages": "GET"}
MAX_CHANNELS = 65536  # client channels this node remembers having opened on other nodes
SUBSCRIBE_PATH = re.compile(
    r"^/v1/actors/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/subscribe$")
DELIVERED = ("send", "request")  # delivered by the owner itself; every other forwarded path through its HTTP API
JSON = "application/json"


def cluster_middleware(node: ClusterNode) -> Middleware:
    """Forward requests about actors this node does not hold (see the module docstring); answer the rest here."""

    channels: dict[str, uuid.UUID] = {}  # client channels opened through this node on other nodes -> their actor

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        channel = CHANNEL_PATH.match(request.path)
        if channel is not None and channel[1] in channels:
            return await _channel(node, request, channels, channel[1], channel[2])
        if request.path == "/v1/actors" and request.method == "POST":
            return await _placed(node, request, handler)
        if (request.path.startswith("/v1/labels/") and request.method in ("PUT", "DELETE")) or (
                request.path == "/v1/blobs" and request.method == "POST" and request.query.get("label")):
            return await _labelled(node, request, handler)
        followed = SUBSCRIBE_PATH.match(request.path)
        if followed is not None and request.method == "GET":
            return await _subscribe(node, request, handler, uuid.UUID(followed[1]))
        match = ACTOR_PATH.match(request.path)
        if match is None or request.method not in ("GET", "POST"):
            return await handler(request)
        actor = uuid.UUID(match[1])
        svc = service(request)
        if match[2] == "/restart" and request.method == "POST" and _plain_restart(await request.read()):
            asked = await asyncio.wrap_future(node.link.spawn(node.tree.restart_through_parent(actor)))
            if asked is not None and asked[0] != 200:  # a child whose parent runs on another node: restarted by it
                return web.Response(status=asked[0], body=dumps({"error": "SupervisionError", "message": asked[1]}),
                                    content_type=JSON)
            if asked is not None:
                return web.Response(body=dumps(await svc.run(describe, svc.theater.store, actor, svc.theater)),
                                    content_type=JSON)
        if svc.theater.router.find(actor) is not None:
            return await handler(request)  # it runs here (or ended here): answered from this home
        op = match[2].lstrip("/")
        body = await request.read()
        timeout = _timeout(body, svc.config.request_timeout) if op == "request" else svc.config.request_timeout
        if match[2] == "/verify":
            timeout = svc.config.verify_timeout
        answer = await _forward(node, request, actor, op, body, timeout + FORWARD_SLACK_S)
        if answer is None:
            return await handler(request)  # no node lists it: answered here as any actor this home may hold
        if op == "channels" and answer.status == 201 and isinstance(answer.body, bytes):
            channels[str(json.loads(answer.body)["channel"])] = actor  # its later requests follow it there
            if len(channels) > MAX_CHANNELS:
                del channels[next(iter(channels))]  # the oldest is forgotten here (still open on its node)
        return answer

    return middleware


async def _forward(node: ClusterNode, request: web.Request, actor: uuid.UUID, op: str, body: bytes,
                   timeout: float) -> web.Response | None:
    """The owner's answer to ``request`` about ``actor`` (a send or a request delivered by the owner itself, any
    other through its own API); None when no node lists the actor."""
    if op in DELIVERED:
        payload = body
    else:
        op = "http"
        payload = dumps({"method": request.method, "path": request.path_qs,
                         "type": request.content_type if body else None}).encode() + b"\n" + body
    try:
        answer = await asyncio.wrap_future(node.link.spawn(node.forward(op, actor, payload, timeout)))
    except ActorUnavailable as exc:
        return web.Response(status=503, body=dumps(error_body(exc)), content_type=JSON, headers={"Retry-After": "1"})
    if answer is None:
        return None
    status, content, kind = answer
    return web.Response(status=status, body=content, content_type=kind or JSON)


async def _channel(node: ClusterNode, request: web.Request, channels: dict[str, uuid.UUID], channel: str,
                   what: str) -> web.StreamResponse:
    """A request about a client channel this node opened on another node: asked of the owner of its actor (where
    the channel is; after a failover it is gone, as after a restart, and the owner answers 404)."""
    if CHANNEL_METHODS.get(what) != request.method:
        return web.Response(status=501, content_type=JSON, body=dumps({
            "error": "NotForwarded", "message": f"channel {channel} is on another node (its actor runs there): "
                                                "send, poll its messages or close it through this node, or stream "
                                                "it from that node"}))
    svc = service(request)
    wait = request.query.get("wait", "0")
    timeout = svc.config.request_timeout + (float(wait) if wait.replace(".", "", 1).isdigit() else 0.0)
    answer = await _forward(node, request, channels[channel], "http", await request.read(), timeout + FORWARD_SLACK_S)
    if answer is None or answer.status == 404 or (what == "" and answer.status == 200):
        channels.pop(channel, None)  # closed, or gone with its actor: forgotten here too
    if answer is None:
        return web.Response(status=404, content_type=JSON, body=dumps({
            "error": "ChannelNotFound", "message": f"no channel {channel}"}))
    return answer


async def _placed(node: ClusterNode, request: web.Request, handler: Handler) -> web.StreamResponse:
    """A start: on the node its body names (``"node": NAME``), else on its parent's node when it names a parent,
    else where the node's placement puts it (the least loaded node, or this one). A start placed on another node
    is started there, with the blobs it names (its component, its files) handed over through the object store,
    and its body naming that node (so it is not placed again)."""
    body = await request.read()
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        parsed = None  # the start route answers what is wrong
    if not isinstance(parsed, dict):
        return await handler(request)
    target = parsed.get("node")
    if target is not None and not (isinstance(target, str) and NODE_NAME.match(target)):
        return web.Response(status=400, content_type=JSON, body=dumps({
            "error": "BadRequest", "message": "node: not a node name (letters, digits, - and _, at most 64)"}))
    parent = parsed.get("parent")
    if target is None and isinstance(parent, str) and _is_uuid(parent):
        # A child is supervised by its parent, which must run where it starts: on the parent's node.
        target = await asyncio.wrap_future(node.link.spawn(node.owner(uuid.UUID(parent))))
        body = json.dumps({**parsed, "node": target}).encode() if target is not None else body
    reserved = parsed.get("reservation") if target == node.name and node.holds(parsed.get("reservation")) else None
    if target is None and node.config.placement == "least-loaded":
        target, reserved = await asyncio.wrap_future(node.link.spawn(node.place()))
        body = json.dumps({**parsed, "node": target, "reservation": reserved}).encode()
    if target is None or target == node.name:
        token = reserved if isinstance(reserved, str) else node.reserve()  # counted in this node's load meanwhile
        try:
            return await handler(request)
        except ActorNotFound as exc:
            described = await _spawned_elsewhere(node, exc.actor_id) if parent is not None else None
            if described is None:
                raise
            return described
        finally:
            node.unreserve(token)
    svc = service(request)
    digests = [text for text in [parsed.get("component_hash"), *(parsed.get("files") or {}).values()]
               if isinstance(text, str)]
    try:
        await asyncio.wrap_future(node.link.spawn(node.share_blobs(svc.theater.store, digests)))
        answer = await asyncio.wrap_future(node.link.spawn(node.ask_node(
            str(target), "start", uuid.UUID(int=0), body, svc.config.request_timeout + FORWARD_SLACK_S)))
    except (ActorUnavailable, TheaterError) as exc:
        return web.Response(status=status_of(exc) if not isinstance(exc, ActorUnavailable) else 503,
                            body=dumps(error_body(exc)), content_type=JSON)
    status, content, kind = answer
    return web.Response(status=status, body=content, content_type=kind or JSON)


async def _spawned_elsewhere(node: ClusterNode, actor: str) -> web.Response | None:
    """A child the parent's node started on another node (``--child-placement least-loaded``,
    ``theater.cluster.remote``): this home does not hold its chain, so it is described by the node that runs it;
    None when no other node runs ``actor``."""
    try:
        child = uuid.UUID(actor)
    except ValueError:
        return None
    payload = dumps({"method": "GET", "path": f"/v1/actors/{child}", "type": None}).encode() + b"\n"
    try:
        answer = await asyncio.wrap_future(node.link.spawn(node.forward("http", child, payload, node.config.timeout)))
    except ActorUnavailable:
        return None
    if answer is None or answer[0] != 200:
        return None
    return web.Response(status=201, body=answer[1], content_type=answer[2] or JSON)


async def _labelled(node: ClusterNode, request: web.Request, handler: Handler) -> web.StreamResponse:
    """A label set or removed here: once this home took it, the cluster's labels bucket takes it too
    (``theater.cluster.labels``) before the client is answered; every other node applies it from there."""
    response = await handler(request)
    body = getattr(response, "body", None)
    if response.status not in (200, 201) or not isinstance(body, bytes) or node.labels is None:
        return response
    answer = json.loads(body)
    name, digest = str(answer["label"]), None if request.method == "DELETE" else bytes.fromhex(answer["hash"])
    try:
        await asyncio.wrap_future(node.link.spawn(node.labels.publish(name, digest)))
    except TheaterError as exc:
        return web.Response(status=503, body=dumps(error_body(exc)), content_type=JSON)
    return response


async def _subscribe(node: ClusterNode, request: web.Request, handler: Handler, actor: uuid.UUID
                     ) -> web.StreamResponse:
    """A subscription to an actor this node does not run: its events as the replicated stream holds them (checked
    as they arrive, ``theater.cluster.chains.ChainFollower``), with the same selection, messages and ids as the
    owner's own stream. Nothing is asked of the owner, so the stream goes on across a failover."""
    from theater.cluster.chains import ChainFollower, stream_head  # NATS: imported only in a cluster

    svc = service(request)
    if svc.theater.router.find(actor) is not None:
        return await handler(request)  # it runs here (or ended here): followed in this home
    head = await asyncio.wrap_future(node.link.spawn(stream_head(node.link, actor)))
    if head is None:
        return await handler(request)  # not a chain of the cluster: answered as any actor this home may hold
    selection = selection_of(request, head)
    ready = {"actor": str(actor), "from": selection.start, "head": head}

    async def produce(sink: Sink) -> None:
        follower = await asyncio.wrap_future(node.link.spawn(ChainFollower(node.link, actor).open()))
        sent = 0
        try:
            while not svc.hub.closed:
                events = await asyncio.wrap_future(node.link.spawn(follower.next(HEARTBEAT_S)))
                if events is None:
                    await sink.ping()
                    continue
                chosen = [e for e in events if e.seq >= selection.start and type_matches(e.type, selection.types)]
                if selection.limit is not None:
                    chosen = chosen[: selection.limit - sent]
                await sink.send_many("event", [(event_json(e), e.seq) for e in chosen])
                sent += len(chosen)
                if selection.limit is not None and sent >= selection.limit:
                    return
        finally:
            node.link.spawn(follower.close())

    return await run_stream(request, ready, produce)


def _plain_restart(body: bytes) -> bool:
    """A restart's body that asks for no upgrade (no component): the one a supervisor carries out."""
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("component") is None and parsed.get("component_hash") is None


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _timeout(body: bytes, default: float) -> float:
    try:
        parsed = json.loads(body or b"{}")
        if isinstance(parsed, dict) and parsed.get("timeout") is not None:
            return check_timeout(parsed.get("timeout"), default)
    except (ValueError, ApiError):
        pass  # the owner answers what is wrong with the body
    return default


def owner_handler(svc: Service) -> Any:
    """The handler a node calls (on its NATS loop) for a request forwarded to an actor it owns."""

    async def handle(op: str, actor: uuid.UUID, body: bytes) -> tuple[int, bytes, str]:
        future = asyncio.run_coroutine_threadsafe(_answer(svc, op, actor, body), svc.loop)
        return await asyncio.wrap_future(future)

    return handle


async def _answer(svc: Service, op: str, actor: uuid.UUID, body: bytes) -> tuple[int, bytes, str]:
    if op == "http":
        return await _through_api(svc, actor, body)
    if op == "start":
        return await _start_here(svc, body)
    status, content = await _deliver(svc, op, actor, body)
    return status, content, JSON


async def _start_here(svc: Service, body: bytes) -> tuple[int, bytes, str]:
    """A start placed on this node by another: the blobs it names come from the object store, then this node's
    own API starts it (``POST /v1/actors`` with the same body)."""
    node: ClusterNode | None = getattr(svc, "cluster", None)
    if node is None or not node.http_url:
        return 503, dumps({"error": "ActorUnavailable", "message": "the node is starting"}).encode(), JSON
    try:
        parsed = json.loads(body)
        digests = [text for text in [parsed.get("component_hash"), *(parsed.get("files") or {}).values()]
                   if isinstance(text, str)]
        await asyncio.wrap_future(node.link.spawn(node.fetch_blobs(svc.theater.store, digests)))
    except (ValueError, AttributeError, TheaterError) as exc:
        return 400, dumps({"error": "BadRequest", "message": f"a placed start: {exc}"}).encode(), JSON
    headers = {"Content-Type": JSON}
    if svc.config.token is not None:
        headers["Authorization"] = f"Bearer {svc.config.token}"
    async with aiohttp.ClientSession() as session:
        async with session.post(node.http_url + "/v1/actors", data=body, headers=headers) as reply:
            return reply.status, await reply.read(), reply.content_type


async def _through_api(svc: Service, actor: uuid.UUID, body: bytes) -> tuple[int, bytes, str]:
    """Ask this node's own API (the forwarded request's method and path, which must name ``actor``)."""
    head, _, payload = body.partition(b"\n")
    try:
        spec = json.loads(head)
        method, path, kind = str(spec["method"]), str(spec["path"]), spec.get("type")
    except (ValueError, KeyError, TypeError):
        return 400, dumps({"error": "BadRequest", "message": "a malformed forwarded request"}).encode(), JSON
    bare = path.split("?", 1)[0]
    match, channel = ACTOR_PATH.match(bare), CHANNEL_PATH.match(bare)
    about_actor = method in ("GET", "POST") and match is not None and uuid.UUID(match[1]) == actor
    # A client channel's requests: the channel is on this node (its actor runs here), its id says which.
    about_channel = channel is not None and CHANNEL_METHODS.get(channel[2]) == method
    if not (about_actor or about_channel):
        return 400, dumps({"error": "BadRequest", "message": "not a request about this actor"}).encode(), JSON
    node: ClusterNode | None = getattr(svc, "cluster", None)
    if node is None or not node.http_url:
        return 503, dumps({"error": "ActorUnavailable", "message": "the owner is starting"}).encode(), JSON
    headers = {"Content-Type": str(kind)} if kind else {}
    if svc.config.token is not None:
        headers["Authorization"] = f"Bearer {svc.config.token}"
    async with aiohttp.ClientSession() as session:
        async with session.request(method, node.http_url + path, data=payload or None, headers=headers,
                                   skip_auto_headers=() if kind else ("Content-Type",)) as reply:
            return reply.status, await reply.read(), reply.content_type


async def _deliver(svc: Service, op: str, actor_id: uuid.UUID, body: bytes) -> tuple[int, bytes]:
    try:
        parsed = json.loads(body or b"{}")
        if not isinstance(parsed, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        actor = running(svc.theater, actor_id)
        message = parse_bytes(parsed.get("message"), "message")
        actor.check_message(len(message))
        if op == "send":
            await svc.settled(svc.theater.router.deliver_send(actor, message))
            return 200, dumps({"delivered": True}).encode()
        timeout = check_timeout(parsed.get("timeout"), svc.config.request_timeout)
        try:
            response = await svc.settled(svc.theater.router.deliver_request(actor, message), timeout)
        except TimeoutError:
            from theater.errors import ReplyTimeout
            raise ReplyTimeout(f"request to {actor.id}", timeout) from None
        return 200, dumps({"response": bytes_json(response)}).encode()
    except (ApiError, TheaterError) as exc:
        return status_of(exc), dumps(error_body(exc)).encode("utf-8", "backslashreplace")
    except ValueError as exc:
        return 400, dumps({"error": "BadRequest", "message": str(exc)}).encode()
