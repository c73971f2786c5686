"""The server's side of a cluster: messages by id forwarded to the owner node, and the owner's answer to them.

Imports no NATS (the server imports it whatever its options): the node object is reached through the service.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from store.errors import TheaterError
from theater.cluster.config import ActorUnavailable
from theater.porcelain import running
from theater.porcelain.forms import bytes_json
from theater.server.errors import ApiError, error_body, status_of
from theater.server.service import Service, service
from theater.server.wire import check_timeout, dumps, parse_bytes
from theater.status import ActorStatus

if TYPE_CHECKING:
    from theater.cluster.node import ClusterNode

FORWARD_SLACK_S = 2.0  # a forwarded request waits this much longer than the owner does


async def forwarded(request: web.Request, op: str) -> web.Response | None:
    """The owner's answer to a send or request addressed to an actor this node does not run; None when the
    server answers it itself (no cluster, the actor runs here, or its id is not a whole UUID)."""
    svc = service(request)
    node: ClusterNode | None = getattr(svc, "cluster", None)
    if node is None:
        return None
    try:
        actor = uuid.UUID(request.match_info["id"])
    except ValueError:
        return None
    local = svc.theater.router.find(actor)
    if local is not None and local.status == ActorStatus.RUNNING:
        return None
    body = await request.read()
    timeout = svc.config.request_timeout + FORWARD_SLACK_S
    try:
        parsed = json.loads(body or b"{}")
        if isinstance(parsed, dict) and parsed.get("timeout") is not None:
            timeout = check_timeout(parsed.get("timeout"), svc.config.request_timeout) + FORWARD_SLACK_S
    except (ValueError, ApiError):
        pass  # the owner answers what is wrong with the body
    try:
        answer = await asyncio.wrap_future(node.link.spawn(node.forward(op, actor, body, timeout)))
    except ActorUnavailable as exc:
        return web.Response(status=503, body=dumps(error_body(exc)), content_type="application/json",
                            headers={"Retry-After": "1"})
    if answer is None:
        return None
    status, payload = answer
    return web.Response(status=status, body=payload, content_type="application/json")


def owner_handler(svc: Service) -> Any:
    """The handler a node calls (on its NATS loop) for a message forwarded to an actor it owns."""

    async def handle(op: str, actor: uuid.UUID, body: bytes) -> tuple[int, bytes]:
        future = asyncio.run_coroutine_threadsafe(_deliver(svc, op, actor, body), svc.loop)
        return await asyncio.wrap_future(future)

    return handle


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
