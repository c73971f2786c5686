"""Live streams to a client: Server-Sent Events, or a WebSocket when the client asks for one.

Both carry the same messages, each a kind and a JSON payload:

* SSE (``curl -N``): ``event: <kind>``, ``id: <n>`` when the message has a position, ``data: <json>``; a comment
  line ``: ping`` every 15 s keeps the connection alive and notices a client that went away.
* WebSocket: one text frame per message, ``{"kind": "<kind>", ...payload}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from store.errors import TheaterError
from theater.server.errors import error_body
from theater.server.wire import dumps

HEARTBEAT_S = 15.0

log = logging.getLogger("theater.server")


class Sink:
    """Where a stream's messages go; ``response`` is what the handler returns."""

    response: web.StreamResponse

    async def send(self, kind: str, payload: dict[str, Any], position: int | None = None) -> None:
        """Send one message."""
        raise NotImplementedError

    async def send_many(self, kind: str, items: list[tuple[dict[str, Any], int | None]]) -> None:
        """Send several messages of one kind, as few writes as the transport allows."""
        for payload, position in items:
            await self.send(kind, payload, position)

    async def ping(self) -> None:
        """Keep the connection alive (and notice a client that went away)."""

    async def closed_by_client(self) -> None:
        """Return when the client closes the stream (never, for SSE: a write fails instead)."""
        await asyncio.Event().wait()

    async def finish(self) -> None:
        """End the stream cleanly."""


class SseSink(Sink):
    """A ``text/event-stream`` response."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response

    @staticmethod
    def frame(kind: str, payload: dict[str, Any], position: int | None) -> bytes:
        head = f"id: {position}\n" if position is not None else ""
        return f"{head}event: {kind}\ndata: {dumps(payload)}\n\n".encode()

    async def send(self, kind: str, payload: dict[str, Any], position: int | None = None) -> None:
        await self.response.write(self.frame(kind, payload, position))

    async def send_many(self, kind: str, items: list[tuple[dict[str, Any], int | None]]) -> None:
        if items:
            await self.response.write(b"".join(self.frame(kind, p, n) for p, n in items))

    async def ping(self) -> None:
        await self.response.write(b": ping\n\n")

    async def finish(self) -> None:
        try:
            await self.response.write_eof()
        except ConnectionError:
            pass


class WebSocketSink(Sink):
    """A WebSocket; frames the client sends are read and ignored, a close from the client ends the stream."""

    response: web.WebSocketResponse

    def __init__(self, response: web.WebSocketResponse) -> None:
        self.response = response

    async def send(self, kind: str, payload: dict[str, Any], position: int | None = None) -> None:
        await self.response.send_str(dumps({"kind": kind, **payload}))

    async def closed_by_client(self) -> None:
        async for message in self.response:
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                break

    async def finish(self) -> None:
        await self.response.close()


async def open_sink(request: web.Request) -> Sink:
    """Answer ``request`` with a WebSocket when it asks for an upgrade, else with an SSE stream."""
    websocket = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    if websocket.can_prepare(request).ok:
        await websocket.prepare(request)
        return WebSocketSink(websocket)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    return SseSink(response)


async def run_stream(
    request: web.Request, ready: dict[str, Any], produce: Callable[[Sink], Awaitable[None]]
) -> web.StreamResponse:
    """Open a stream, send the ``ready`` message, then run ``produce`` until it returns or the client goes.

    The ``ready`` message is sent before anything else, so a client that has read it knows where the stream
    starts.
    """
    sink = await open_sink(request)
    producer = asyncio.create_task(_produce(sink, ready, produce))
    watcher = asyncio.create_task(sink.closed_by_client())
    try:
        await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (producer, watcher):
            task.cancel()
        await asyncio.gather(producer, watcher, return_exceptions=True)
    failure = None if producer.cancelled() else producer.exception()
    if isinstance(failure, ConnectionError):
        return sink.response  # the client went away
    if failure is not None:
        log.error("a stream of %s failed", request.path, exc_info=failure)
    await sink.finish()
    return sink.response


async def _produce(sink: Sink, ready: dict[str, Any], produce: Callable[[Sink], Awaitable[None]]) -> None:
    await sink.send("ready", ready)
    try:
        await produce(sink)
    except TheaterError as exc:  # the headers are sent: the error becomes the stream's last message
        await sink.send("error", error_body(exc))


__all__ = ["HEARTBEAT_S", "SseSink", "Sink", "WebSocketSink", "open_sink", "run_stream"]
