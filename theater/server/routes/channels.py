"""Routes of client channels: open one to an actor, send on it, read what the actor sends, close it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from theater.errors import ChannelClosed, ReplyTimeout
from theater.porcelain import running
from theater.porcelain.forms import bytes_json
from theater.server.channels import ClientChannel
from theater.server.routes.actors import check_size
from theater.server.service import Service, service
from theater.server.streams import Sink, run_stream
from theater.server.wire import (
    actor_id,
    check_timeout,
    json_response,
    parse_bytes,
    query_float,
    query_int,
    read_json,
)

routes = web.RouteTableDef()

MAX_POLL_WAIT_S = 60.0


def _channel(request: web.Request) -> tuple[Service, ClientChannel]:
    svc = service(request)
    return svc, svc.channels.get(request.match_info["cid"])


def _messages_json(messages: list[tuple[int, bytes]]) -> list[dict[str, Any]]:
    return [{"index": index, "message": bytes_json(message)} for index, message in messages]


@routes.post("/v1/actors/{id}/channels")
async def open_channel(request: web.Request) -> web.Response:
    """Open a channel to the actor with an initial message; answers with the channel id and the welcome."""
    svc = service(request)
    actor = running(svc.theater, actor_id(request, svc.theater.store))
    body = await read_json(request)
    initial = parse_bytes(body["message"], "message") if body.get("message") is not None else b""
    check_size(actor, initial)
    timeout = check_timeout(body.get("timeout"), svc.config.request_timeout)
    try:
        channel = await svc.channels.open(actor.id, initial, timeout)
    except TimeoutError:
        raise ReplyTimeout(f"open-channel to {actor.id}", timeout) from None
    return json_response({"channel": channel.id, "actor": str(actor.id), "welcome": bytes_json(channel.welcome)},
                         status=201)


@routes.post("/v1/channels/{cid}/send")
async def send(request: web.Request) -> web.Response:
    """Send a message on the channel; answers once the actor has handled it and its events are durable."""
    svc, channel = _channel(request)
    body = await read_json(request)
    message = parse_bytes(body.get("message"), "message")
    peer = svc.channels.peer(channel)
    check_size(peer, message)  # type: ignore[arg-type]  # a client channel's peer is its actor
    await svc.settled(svc.theater.router.deliver_channel_message(peer, channel.id, message))
    return json_response({"delivered": True})


@routes.get("/v1/channels/{cid}/messages")
async def poll(request: web.Request) -> web.Response:
    """What the actor sent after message ``after`` (those up to ``after`` are dropped); waits up to ``wait`` s."""
    svc, channel = _channel(request)
    after = query_int(request, "after", -1, minimum=-1)
    wait = query_float(request, "wait", 0.0, maximum=MAX_POLL_WAIT_S)
    messages, closed = await channel.wait(after, wait)  # type: ignore[arg-type]
    if closed and not messages:
        svc.channels.forget(channel)
    return json_response({"channel": channel.id, "messages": _messages_json(messages), "closed": closed})


@routes.get("/v1/channels/{cid}/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """Stream what the actor sends (SSE, or WebSocket on upgrade), from message ``after`` + 1, until it closes."""
    svc, channel = _channel(request)
    after = query_int(request, "after", -1, minimum=-1)

    async def produce(sink: Sink) -> None:
        cursor = after
        while True:
            messages, closed = await channel.wait(cursor, 15.0)  # type: ignore[arg-type]
            if messages:
                await sink.send_many("message", [({"index": i, "message": bytes_json(m)}, i) for i, m in messages])
                cursor = messages[-1][0]
            elif closed:
                svc.channels.forget(channel)
                await sink.send("closed", {"channel": channel.id})
                return
            elif svc.hub.closed:
                return
            else:
                await sink.ping()

    return await run_stream(request, {"channel": channel.id, "after": after}, produce)


@routes.delete("/v1/channels/{cid}")
async def close(request: web.Request) -> web.Response:
    """Close the channel: the actor's ``handle-channel-close`` runs; answers once it has. A stream open on the
    channel sends what is left, then ``closed``, and ends."""
    svc, channel = _channel(request)
    svc.channels.forget(channel)
    try:
        peer = svc.channels.peer(channel)
    except ChannelClosed:
        peer = None  # the actor closed it first
    if peer is not None:
        svc.theater.router.channels.close(channel.id)
        try:
            await svc.settled(svc.theater.router.deliver_channel_close(peer, channel.id))
        finally:
            channel.on_close()  # ends the client's own streams of it
    return json_response({"channel": channel.id, "closed": True})


__all__ = ["routes"]
