"""What every handler of the server shares: its configuration, the runtime, the worker threads, the hub."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from store.checkpoint import CosignerKey
from theater.mailbox import DEFAULT_MAILBOX_MESSAGES
from theater.manifest import DEFAULT_MAXIMUMS, Maximums
from theater.runtime import DEFAULT_REQUEST_TIMEOUT_S, Theater
from theater.server.channels import ChannelTable
from theater.server.futures import settled
from theater.server.hub import CommitHub
from theater.server.wire import MAX_BODY_BYTES
from theater.telemetry import Telemetry

T = TypeVar("T")
WORKER_THREADS = 64
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 60.0
VERIFY_TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """How a server runs.

    Attributes:
        home: the Theater home it runs on.
        host, port: where it listens (port 0: any free port).
        token: when set, every request must carry ``Authorization: Bearer <token>``.
        durability: the store's durability mode (``sync`` or ``buffered``).
        request_timeout: seconds a request or open-channel waits for the actor's answer, by default.
        max_body_bytes: the largest request body accepted.
        header_timeout: seconds a connection may take to send a request's line and headers (from when it opens,
            or from the end of its previous response); then it is closed. Also how long an idle connection is
            kept open.
        body_timeout: seconds a request may take to send its whole body; then it is answered 408 and closed.
        verify_timeout: seconds one ``verify`` request may re-execute a chain; then it is answered 504
            ``ReplayTimeout`` (a chain in the home may come from a bundle: its calls must not hold the server).
        mailbox_messages: how many messages may wait in each actor's mailbox (more: 429 ``MailboxFull``).
        workers, max_threads: the runtime's worker threads (None: the defaults; see ``theater.scheduler``).
        resume: reopen the actors that were running when the home's last server stopped.
        access_log: log every request (logger ``aiohttp.access``).
        maximums: what manifests are held to (``theater.manifest.Maximums``).
        passivate_after: seconds idle before an actor drops its instance (``Theater(passivate_after=...)``);
            None: never. When set, durable resume is lazy for top-level actors (``theater.porcelain.resume``).
        checkpoint_every: seconds between signed checkpoints of the home's Merkle log (one only when the log
            grew); None: only on request (``docs/audit.md``).
        otel: export OpenTelemetry traces and metrics with OTLP (``theater.telemetry``); None: off.
        witness_keys: the witnesses whose cosignatures of checkpoints the server accepts and serves.
        cluster: a ``theater.cluster.ClusterConfig`` to run as a node of that cluster (docs/cluster.md); None:
            alone (durable actors are then resumed from the home as ``resume`` says; in a cluster, leases decide).
    """

    home: Path
    host: str = "127.0.0.1"
    port: int = 9000
    token: str | None = None
    durability: str = "sync"
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S
    max_body_bytes: int = MAX_BODY_BYTES
    header_timeout: float = HEADER_TIMEOUT_S
    body_timeout: float = BODY_TIMEOUT_S
    verify_timeout: float = VERIFY_TIMEOUT_S
    mailbox_messages: int = DEFAULT_MAILBOX_MESSAGES
    workers: int | None = None
    max_threads: int | None = None
    resume: bool = True
    access_log: bool = False
    maximums: Maximums = DEFAULT_MAXIMUMS
    passivate_after: float | None = None
    checkpoint_every: float | None = None
    witness_keys: tuple[CosignerKey, ...] = ()
    otel: OtelConfig | None = None
    cluster: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OtelConfig:
    """Where OpenTelemetry data goes: OTLP over HTTP to ``endpoint`` (None: the exporter's default,
    ``$OTEL_EXPORTER_OTLP_ENDPOINT`` or ``http://localhost:4318``), with ``headers``, as ``service_name``."""

    endpoint: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    service_name: str = "theater"
    export_interval_s: float = 10.0


RESUMED_LISTED = 1000
"""The most actors ``GET /v1/server`` lists by name in ``resumed`` (a home may hold a million passivated actors
coming back lazily; ``resumed_counts`` counts every one). Failures are listed first."""

_OUTCOME_ORDER = {"failed": 0, "resumed": 1, "not durable": 2, "lazy": 3}


def resumed_summary(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """What ``GET /v1/server`` shows of the actors resumed at start: at most ``RESUMED_LISTED`` of them (failures
    first, then resumed, not durable, lazy) and the count of each outcome."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
    listed = sorted(results, key=lambda result: _OUTCOME_ORDER.get(result["outcome"], 4))[:RESUMED_LISTED]
    return listed, counts


class Service:
    """The runtime behind the API, and the means to call its blocking methods from the event loop."""

    def __init__(self, config: ServerConfig, theater: Theater, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.theater = theater
        self.loop = loop
        self.pool = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="theater-api")
        self.hub = CommitHub(loop)
        self.channels = ChannelTable(theater.router, loop)
        self.resumed: list[dict[str, Any]] = []  # at most RESUMED_LISTED of them: ``resumed_counts`` has them all
        self.resumed_counts: dict[str, int] = {}
        self.telemetry: Telemetry | None = None  # set by ``create_app`` when ``config.otel`` is
        self.started_ms = 0
        self.cluster: Any = None  # the ``theater.cluster.node.ClusterNode`` of a server started with --cluster
        theater.store.add_commit_listener(self.hub.on_commit)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call on a worker thread and wait for it."""
        return await self.loop.run_in_executor(self.pool, fn, *args)

    @staticmethod
    async def settled(future: Future[T], timeout: float | None = None) -> T:
        """Wait for a runtime future without holding a thread (see ``theater.server.futures.settled``)."""
        return await settled(future, timeout)

    def close(self) -> None:
        """Stop the workers, then close the runtime (actors stay recorded as running), then flush telemetry.
        Close the hub first."""
        self.channels.close_all()
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.cluster is not None:
            self.cluster.close()  # no more heartbeats or takeovers
        self.theater.close()
        if self.cluster is not None:
            self.cluster.release()  # other nodes take its actors over at once
            self.cluster.link.close()
        if self.telemetry is not None:
            self.telemetry.shutdown()


SERVICE: web.AppKey[Service] = web.AppKey("theater.service", Service)


def service(request: web.Request) -> Service:
    """The service of the app that is handling ``request``."""
    return request.app[SERVICE]


__all__ = ["SERVICE", "OtelConfig", "ServerConfig", "Service", "service"]
