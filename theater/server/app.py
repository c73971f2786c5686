"""The aiohttp application: the runtime opened on the home, the routes, and the middlewares: errors become JSON
answers, cross-origin browser requests and writes of the wrong content type are refused (``origin``), and the
token is checked (``auth``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from store.errors import TheaterError
from theater import __version__
from theater.errors import MailboxFull
from theater.mailbox import MailboxLimits
from theater.runtime import Theater
from theater.server import explorer
from theater.server.auth import Handler, token_middleware
from theater.server.durable import resume_actors
from theater.server.errors import ApiError, error_body, status_of
from theater.server.origin import origin_middleware
from theater.server.routes import ROUTE_TABLES
from theater.server.service import SERVICE, ServerConfig, Service, resumed_summary, service
from theater.server.wire import json_response
from theater.status import ActorStatus
from theater.telemetry import Telemetry

log = logging.getLogger("theater.server")
RETRY_AFTER_S = "1"  # seconds a client refused for a full mailbox is told to wait


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error with ``{"error": name, "message": text}`` and its status; never let one escape."""
    try:
        return await handler(request)
    except (ApiError, TheaterError) as exc:
        response = json_response(error_body(exc), status=status_of(exc))
        if isinstance(exc, MailboxFull):
            response.headers["Retry-After"] = RETRY_AFTER_S
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        name = type(exc).__name__.removeprefix("HTTP")
        response = json_response({"error": name, "message": exc.text or exc.reason}, status=exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:  # the top of the server: a bug must not drop the connection
        log.exception("%s %s failed", request.method, request.path)
        return json_response({"error": "InternalError", "message": f"{type(exc).__name__}: {exc}"}, status=500)


def body_deadline(timeout: float) -> Middleware:
    """A middleware that reads a request's body before its handler runs, within ``timeout`` seconds: a client
    that trickles a body (or announces one and never sends it) is answered 408 and its connection closed."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(timeout):
                    await request.read()  # kept by aiohttp: the handler's read() returns it
            except TimeoutError:
                message = f"the request body did not arrive within {timeout:g} s"
                response = json_response({"error": "RequestTimeout", "message": message}, status=408)
                response.force_close()
                return response
        return await handler(request)

    return middleware


async def server_info(request: web.Request) -> web.Response:
    """``GET /v1/server``: what this server is and runs."""
    svc = service(request)
    actors = svc.theater.router.all()  # those it holds: not the evicted passivated ones (a scan of the home)
    return json_response({
        "version": __version__,
        "home": str(svc.config.home),
        "actors": len(actors),
        "running": sum(a.reported_status == ActorStatus.RUNNING for a in actors),
        "auth": svc.config.token is not None,
        "started_ms": svc.started_ms,
        "resumed": svc.resumed,
        "resumed_counts": svc.resumed_counts,
    })


async def create_app(config: ServerConfig) -> web.Application:
    """Open the runtime on the home, bring its durable actors back, and build the application around it.

    Raises:
        StoreOpenError: the home's store cannot be opened.
    """
    loop = asyncio.get_running_loop()
    mailbox = MailboxLimits(messages=config.mailbox_messages)
    otel = config.otel
    telemetry = None if otel is None else Telemetry.otlp(
        endpoint=otel.endpoint, headers=dict(otel.headers), service_name=otel.service_name,
        export_interval_s=otel.export_interval_s)
    node, store = None, None
    if config.cluster is not None:
        from theater.cluster.serve import join  # NATS is imported only by a server that joins a cluster

        node, store = await loop.run_in_executor(None, join, config.cluster, config.home, config.durability)
    theater = await loop.run_in_executor(
        None, lambda: Theater(config.home, durability=config.durability, request_timeout=config.request_timeout,
                              maximums=config.maximums, mailbox=mailbox, passivate_after=config.passivate_after,
                              workers=config.workers, max_threads=config.max_threads, telemetry=telemetry,
                              store=store)
    )
    svc = Service(config, theater, loop)
    svc.telemetry = telemetry
    if node is not None:
        from theater.cluster.api import owner_handler

        svc.cluster = node
        await loop.run_in_executor(None, node.attach, theater, owner_handler(svc))
    elif config.resume:
        svc.resumed, svc.resumed_counts = resumed_summary(
            [dataclasses.asdict(r) for r in await svc.run(resume_actors, theater)])
    svc.started_ms = time.time_ns() // 1_000_000
    browsers = origin_middleware(check_host=config.token is None, listen_host=config.host)
    tokens = token_middleware(config.token, explorer.admits)
    app = web.Application(
        middlewares=[errors_middleware, browsers, tokens, body_deadline(config.body_timeout), *_cluster(node)],
        client_max_size=config.max_body_bytes,
    )
    app[SERVICE] = svc
    app.router.add_get("/v1/server", server_info)
    for table in ROUTE_TABLES:
        app.add_routes(table)
    explorer.install(app)
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_close)
    if config.checkpoint_every is not None:
        app.cleanup_ctx.append(_checkpoints(config.checkpoint_every))
    return app


def _cluster(node: Any) -> list[Middleware]:
    """In a cluster, the middleware that forwards requests about actors other nodes run (``theater.cluster.api``)."""
    if node is None:
        return []
    from theater.cluster.api import cluster_middleware

    return [cluster_middleware(node)]


def _checkpoints(every: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """Sign a checkpoint of the home's Merkle log every ``every`` seconds while the log grows, until shutdown."""

    async def loop(app: web.Application) -> None:
        svc = app[SERVICE]
        audit = svc.theater.store.audit
        while True:
            await asyncio.sleep(every)
            try:
                grew = await svc.run(lambda: audit.checkpoints_behind())
                if grew:
                    await svc.run(lambda: audit.checkpoint())
            except TheaterError as exc:  # an unsafe key, a full disk: say so, keep serving, try again next time
                log.warning("no checkpoint of the audit log: %s: %s", type(exc).__name__, exc)

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(app))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


async def _end_streams(app: web.Application) -> None:
    app[SERVICE].hub.close()


async def _close(app: web.Application) -> None:
    await asyncio.get_running_loop().run_in_executor(None, app[SERVICE].close)


__all__ = ["body_deadline", "create_app", "errors_middleware"]
