"""Handler ``http-framework``: an actor serves HTTP. Its servers run on the runtime's network loop
(``theater.netloop``) with aiohttp's low-level server; each incoming request is queued to the actor like any
message (its mailbox bounds apply) and becomes recorded export calls: ``handle-middleware`` for each middleware
whose path covers the request, then ``handle-request`` of the matched route. The response is released only once
those events are durable.

Config (checked at start):

- ``bind_hosts``: the addresses a server may bind (default ``["127.0.0.1"]``);
- ``ports``: the ports it may bind, integers or ``"first-last"`` ranges (default: any; port 0, an ephemeral port,
  is allowed only when ``ports`` is not given or lists 0);
- ``max_servers`` (default 4), ``max_routes`` (default 256) per actor;
- ``max_request_bytes``: the largest request body (default and ceiling: the actor's message limit); larger gets
  413;
- ``request_timeout_ms`` (default 30 s): an actor that does not answer in time gives 504, recorded as
  ``actor/http-timeout`` (a request still queued is dropped: it never runs);
- ``header_timeout_ms`` (default 10 s): a connection that has not sent a whole request head in time is closed;
  ``body_timeout_ms`` (default 10 s): a body not received in time gives 408 (slow clients cannot hold the actor).

- ``max_websockets`` (default 64): open websocket connections per actor (more get 503 before the upgrade);
- ``max_websocket_message_bytes``: the largest incoming websocket message (default and ceiling: the actor's message
  limit); larger closes the connection with 1009;
- ``websocket_idle_timeout_ms`` (default 5 min): a connection whose client sends nothing for that long is closed
  with 1001.

A full mailbox answers 503; an actor that is not running (stopped, failed) answers 503; a handler that fails
answers 500 (the actor is then failed, as for any message). Servers stop when the actor stops, exits or fails, and
when the runtime closes. When a runtime reopens the actor, or its supervisor restarts it from its last state,
``reattach`` brings its servers back from the record, on the same ports.

TLS: ``tls_cert`` and ``tls_key`` name a certificate chain and its private key (PEM, absolute paths). Only the
operator's own manifests may name them (a manifest from a guest's ``spawn`` or an API client naming them is refused
with ``ManifestError``: a guest must not make the host read files of its choosing), and a guest's ``tls-config`` must
name exactly those two paths; a server created with it serves HTTPS (and ``wss://``). Without them, ``tls-config``
is refused.

Websockets (``enable-websocket``): each connect, message and disconnect is queued to the actor like any message
and becomes a recorded call of ``handle-websocket-connect``/``-message``/``-disconnect`` (the connect before the
upgrade is answered); a message finding the mailbox full closes the connection with 1013, a connect finding it full
gets 503. What the actor sends (``send-websocket-message``, the messages ``handle-websocket-message`` returns,
``close-websocket``) goes out in order once the events that produced it are durable. Connection ids are unique per
actor across its servers; a ``server-id`` of 0 in ``send-websocket-message`` and ``close-websocket`` means the
server holding the connection. Connections close (1001) when their server stops, i.e. when the actor stops or fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import os
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import WSMsgType, web

from replay.errors import GuestFault
from replay.schema import ACTOR_HTTP_TIMEOUT, INIT_EXPORT, ActorHttpTimeout
from store.errors import TheaterError
from theater import netloop
from theater.errors import ActorNotRunning, ErrAnswered, ExportMissing, MailboxFull, ManifestError, MessageTooLarge
from theater.handlers._base import Handler
from theater.host import ActorHost

HANDLE_REQUEST = "theater:simple/http-handlers.handle-request"
HANDLE_MIDDLEWARE = "theater:simple/http-handlers.handle-middleware"
WS_CONNECT = "theater:simple/http-handlers.handle-websocket-connect"
WS_MESSAGE = "theater:simple/http-handlers.handle-websocket-message"
WS_DISCONNECT = "theater:simple/http-handlers.handle-websocket-disconnect"
WS_EXPORTS = frozenset({WS_CONNECT, WS_MESSAGE, WS_DISCONNECT})

DEFAULT_MAX_SERVERS = 4
DEFAULT_MAX_ROUTES = 256
DEFAULT_REQUEST_TIMEOUT_MS = 30_000
DEFAULT_HEADER_TIMEOUT_MS = 10_000
DEFAULT_BODY_TIMEOUT_MS = 10_000
DEFAULT_MAX_WEBSOCKETS = 64
DEFAULT_WS_IDLE_TIMEOUT_MS = 5 * 60_000
MAX_WS_IDLE_TIMEOUT_MS = 24 * 3600_000
WS_QUEUE = 1024  # messages waiting to go out on one connection; more: the client does not read, it is closed
# Close codes (RFC 6455, 7.4.1).
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_ERROR, CLOSE_TRY_LATER = 1000, 1001, 1008, 1009, \
    1011, 1013
MAX_TIMEOUT_MS = 10 * 60_000
KEEPALIVE_S = 15.0
DRAIN_S = 5.0  # how long a stopped server's open connections may take to get their answers
LOOP_WAIT_S = 10.0  # how long a host function waits for the loop to bind or stop a server
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*"})
# Response headers aiohttp sets itself from the body (an actor's own would contradict it).
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})


# Paths.


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def check_pattern(path: str) -> str | None:
    """Why ``path`` is not a route pattern (``/items/{id}``, ``/static/*``), or None."""
    if not path.startswith("/"):
        return f"path {path!r} must start with /"
    segments = _segments(path)
    for i, segment in enumerate(segments):
        if segment == "*" and i != len(segments) - 1:
            return f"path {path!r}: * may only be the last segment"
        if ("{" in segment or "}" in segment) and not (segment.startswith("{") and segment.endswith("}")
                                                       and segment[1:-1].isidentifier()):
            return f"path {path!r}: a parameter is a whole segment {{name}}"
    return None


def matches(pattern: str, path: str) -> bool:
    """Whether the request path ``path`` matches the route ``pattern`` (``{name}`` one segment, ``*`` the rest)."""
    want, have = _segments(pattern), _segments(path)
    if want and want[-1] == "*":
        return len(have) >= len(want) - 1 and all(_segment(w, h) for w, h in zip(want[:-1], have))
    return len(want) == len(have) and all(_segment(w, h) for w, h in zip(want, have))


def _segment(want: str, have: str) -> bool:
    return want == have or (want.startswith("{") and want.endswith("}"))


def _under(prefix: str, path: str) -> bool:
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


# The config.


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameworkGrant:
    """What an ``http-framework`` config grants, as comparable values."""

    bind_hosts: frozenset[str]
    ports: tuple[tuple[int, int], ...] | None  # None: any port
    max_servers: int
    max_routes: int
    max_request_bytes: int | None  # None: the actor's message limit
    request_timeout_ms: int
    header_timeout_ms: int
    body_timeout_ms: int
    max_websockets: int
    max_websocket_message_bytes: int | None  # None: the actor's message limit
    websocket_idle_timeout_ms: int
    tls: tuple[str, str] | None  # (certificate chain, private key), absolute paths the operator named

    @classmethod
    def parse(cls, config: dict[str, Any], source: str) -> FrameworkGrant:
        """Raises ManifestError naming the key."""

        def field_(key: str) -> str:
            return f"handlers.http-framework.config.{key}"

        def bounded(key: str, default: int | None, low: int, high: int) -> int | None:
            value = config.get(key, default)
            if value is None:
                return None
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ManifestError(source, field_(key), f"expected an integer from {low} to {high}, got {value!r}")
            return value

        hosts = config.get("bind_hosts", ["127.0.0.1"])
        if not isinstance(hosts, list) or not hosts:
            raise ManifestError(source, field_("bind_hosts"), f"expected a non-empty list of addresses, got {hosts!r}")
        for host in hosts:
            try:
                ipaddress.ip_address(host)
            except (ValueError, TypeError):
                raise ManifestError(source, field_("bind_hosts"), f"{host!r} is not an IP address") from None
        tls: tuple[str, str] | None = None
        if "tls_cert" in config or "tls_key" in config:
            for key in ("tls_cert", "tls_key"):
                path = config.get(key)
                if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
                    raise ManifestError(source, field_(key), f"expected an absolute path (tls_cert and tls_key go "
                                                             f"together), got {path!r}")
            tls = (config["tls_cert"], config["tls_key"])
        ports: list[tuple[int, int]] | None = None
        if "ports" in config:
            ports = []
            for entry in config["ports"]:
                low, high = _port_range(entry)
                if low is None or high is None or not 0 <= low <= high <= 65535:
                    raise ManifestError(source, field_("ports"),
                                        f"{entry!r} is not a port (0-65535) or a range \"first-last\"")
                ports.append((low, high))
        return cls(
            bind_hosts=frozenset(str(ipaddress.ip_address(h)) for h in hosts),
            ports=None if ports is None else tuple(ports),
            max_servers=cast(int, bounded("max_servers", DEFAULT_MAX_SERVERS, 0, 64)),
            max_routes=cast(int, bounded("max_routes", DEFAULT_MAX_ROUTES, 0, 4096)),
            max_request_bytes=bounded("max_request_bytes", None, 0, 1 << 30),
            request_timeout_ms=cast(int, bounded("request_timeout_ms", DEFAULT_REQUEST_TIMEOUT_MS, 1, MAX_TIMEOUT_MS)),
            header_timeout_ms=cast(int, bounded("header_timeout_ms", DEFAULT_HEADER_TIMEOUT_MS, 1, MAX_TIMEOUT_MS)),
            body_timeout_ms=cast(int, bounded("body_timeout_ms", DEFAULT_BODY_TIMEOUT_MS, 1, MAX_TIMEOUT_MS)),
            max_websockets=cast(int, bounded("max_websockets", DEFAULT_MAX_WEBSOCKETS, 0, 100_000)),
            max_websocket_message_bytes=bounded("max_websocket_message_bytes", None, 1, 1 << 30),
            websocket_idle_timeout_ms=cast(int, bounded("websocket_idle_timeout_ms", DEFAULT_WS_IDLE_TIMEOUT_MS, 1,
                                                        MAX_WS_IDLE_TIMEOUT_MS)),
            tls=tls,
        )

    def port_refusal(self, port: int) -> str | None:
        if self.ports is None or any(low <= port <= high for low, high in self.ports):
            return None
        allowed = ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports)
        what = "an ephemeral port (0)" if port == 0 else f"port {port}"
        return f"{what} is not among the ports this actor may bind ({allowed})"

    def within(self, parent: FrameworkGrant) -> str | None:
        """What this grant allows beyond ``parent``'s, or None."""
        if self.tls is not None and self.tls != parent.tls:
            return "tls_cert and tls_key name files the parent's config does not"
        more_hosts = self.bind_hosts - parent.bind_hosts
        if more_hosts:
            return f"bind_hosts names {', '.join(sorted(more_hosts))}, which the parent may not bind"
        if parent.ports is not None:
            if self.ports is None:
                return "ports is not limited, the parent's is"
            for low, high in self.ports:
                if not any(pl <= low and high <= ph for pl, ph in parent.ports):
                    return f"ports {low}-{high} are not within the parent's"
        for key in ("max_servers", "max_routes", "request_timeout_ms", "header_timeout_ms", "body_timeout_ms",
                    "max_websockets", "websocket_idle_timeout_ms"):
            if getattr(self, key) > getattr(parent, key):
                return f"{key} {getattr(self, key)} is more than the parent's {getattr(parent, key)}"
        if parent.max_request_bytes is not None and (self.max_request_bytes is None
                                                     or self.max_request_bytes > parent.max_request_bytes):
            return f"max_request_bytes is more than the parent's {parent.max_request_bytes}"
        if parent.max_websocket_message_bytes is not None and (
                self.max_websocket_message_bytes is None
                or self.max_websocket_message_bytes > parent.max_websocket_message_bytes):
            return f"max_websocket_message_bytes is more than the parent's {parent.max_websocket_message_bytes}"
        return None


def _port_range(entry: Any) -> tuple[int | None, int | None]:
    if isinstance(entry, int) and not isinstance(entry, bool):
        return entry, entry
    if isinstance(entry, str) and entry.count("-") == 1:
        low, high = entry.split("-")
        if low.strip().isdigit() and high.strip().isdigit():
            return int(low), int(high)
    return None, None


# What an actor serves (kept per actor on the runtime's loop, across its instances).


@dataclass(slots=True, kw_only=True)
class _Server:
    id: int
    host: str
    port: int
    bound: int = 0
    running: bool = False
    routes: dict[int, tuple[str, str, int]] = field(default_factory=dict)  # route id: (method, path, handler)
    middleware: dict[int, tuple[str, int]] = field(default_factory=dict)  # middleware id: (path, handler)
    # websocket path: (connect handler, message handler, disconnect handler)
    websockets: dict[str, tuple[int | None, int, int | None]] = field(default_factory=dict)
    connections: dict[int, _Conn] = field(default_factory=dict)  # open websockets by connection id (loop's)
    stop: Callable[[], Any] | None = None  # a coroutine function that stops the listening server
    tls: ssl.SSLContext | None = None


@dataclass(slots=True, kw_only=True)
class _Conn:
    """An open websocket connection; its queue (on the loop) holds what goes out, in order."""

    id: int
    ws: web.WebSocketResponse
    queue: asyncio.Queue[tuple[Any, ...] | None]
    closing: bool = False


class _Actor:
    """One actor's servers, handlers, routes and middleware; ids count up per actor."""

    def __init__(self, actor: ActorHost, grant: FrameworkGrant, loop: netloop.NetLoop) -> None:
        self.actor = actor
        self.grant = grant
        self.loop = loop
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.servers: dict[int, _Server] = {}
        self.handlers: dict[int, str] = {}
        self.connection_ids = itertools.count(1)
        self.ended = False

    def live(self) -> bool:
        return any(server.running or server.connections for server in self.servers.values())

    def connection(self, server_id: int, connection_id: int) -> _Conn:
        """The open connection ``connection_id`` of server ``server_id`` (0: any of the actor's servers).

        Raises:
            _NoSuch: there is none.
        """
        servers = list(self.servers.values()) if server_id == 0 else [self.servers.get(server_id)]
        for server in servers:
            if server is not None:
                conn = server.connections.get(connection_id)
                if conn is not None and not conn.closing:
                    return conn
        where = "this actor's servers" if server_id == 0 else f"server {server_id}"
        raise _NoSuch(f"no open websocket connection {connection_id} on {where}")

    def end(self) -> None:
        """Stop every server: they stop listening at once; requests in flight still get their answers (the
        connections are drained on the loop, without the actor waiting for them)."""
        with self.lock:
            self.ended = True
            stops = [s.stop for s in self.servers.values() if s.stop is not None]
            for server in self.servers.values():
                server.running, server.stop = False, None
        for stop in stops:
            _stop_now(self.loop, stop)


def _stop_now(loop: netloop.NetLoop, stop: Callable[[], Any]) -> None:
    """Close a server's listening socket now (waiting for the loop to do it) and drain its connections later."""
    try:
        loop.submit(stop()).result(LOOP_WAIT_S)
    except (RuntimeError, TimeoutError):
        pass  # the loop is closing: it closes the servers itself


class HttpFrameworkHandler(Handler):
    """The ``http-framework`` interface (see the module's docstring for its config)."""

    type = "http-framework"
    interface = "theater:simple/http-framework"
    config_keys = {
        "bind_hosts": list,
        "ports": list,
        "max_servers": int,
        "max_routes": int,
        "max_request_bytes": int,
        "request_timeout_ms": int,
        "header_timeout_ms": int,
        "body_timeout_ms": int,
        "max_websockets": int,
        "max_websocket_message_bytes": int,
        "websocket_idle_timeout_ms": int,
        "tls_cert": str,
        "tls_key": str,
    }

    def __init__(self, actor: ActorHost, config: dict[str, Any]) -> None:
        super().__init__(actor, config)
        self.grant = FrameworkGrant.parse(config, actor.source)
        files = actor.manifest.files
        if self.grant.tls is not None and files.mode not in ("trusted", "recorded"):
            raise ManifestError(actor.source, "handlers.http-framework.config.tls_cert",
                                f"tls_cert and tls_key name host files: only the operator's own manifests may name "
                                f"them, and this one comes from {files.origin}")

    @classmethod
    def config_within(cls, parent_config: dict[str, Any], child_config: dict[str, Any]) -> str | None:
        """What a child's config grants beyond its parent's (a text naming it), or None.

        Raises:
            ManifestError: either config is malformed.
        """
        return FrameworkGrant.parse(child_config, "<child>").within(FrameworkGrant.parse(parent_config, "<parent>"))

    @property
    def _state(self) -> _Actor:
        loop = netloop.of(self.actor.store)
        actor = self.actor

        def make() -> _Actor:
            state = _Actor(actor, self.grant, loop)

            def ended() -> None:
                state.end()
                loop.forget(("http-framework", actor.id))

            loop.when_ended(actor.id, ended)
            return state

        return cast(_Actor, loop.shared(("http-framework", actor.id), make))

    @classmethod
    def reattach(cls, actor: ActorHost, config: dict[str, Any]) -> list[str]:
        """Bring back the servers an actor had when its runtime stopped or it failed (the runtime calls this on the
        actor's thread after reopening it, and after a supervisor restarted it from its last state: no ``init``
        made them again): the framework's host calls since its last ``init`` are read from its chain and applied
        again with their recorded results (the same ids), and each server that was listening listens again on the
        port it had. Returns a text per server that could not listen again (the actor is not told: its chain
        already says the server runs).

        The websocket connections the actor knew (a connect or a message recorded) and was not told the end of
        went with the old runtime: before the servers listen again, a ``handle-websocket-disconnect`` call is queued
        for each whose path has a disconnect handler, as when a connection closes (so an actor keeping a list of
        open connections does not keep the dead ones).
        """
        handler = cls(actor, config)
        state = handler._state
        calls: list[tuple[str, list[Any], Any]] = []
        prefix = handler.interface + "/"
        connections = 0  # the highest websocket connection id the actor was told of: new ones count on from it
        known: dict[int, tuple[str, int]] = {}  # connections told of and not ended: (export, handler id) first seen
        for event in actor.store.log.events(actor.id):
            if event.type == "wasm/call" and event.data.get("export") == INIT_EXPORT:
                calls = []  # ``init`` makes the servers afresh (a start, a restart from init)
                known = {}
            elif event.type == "wasm/call" and event.data.get("export") in WS_EXPORTS:
                export, params = event.data["export"], event.data["params"]
                connection = int(params[1])
                connections = max(connections, connection)
                if export == WS_DISCONNECT:
                    known.pop(connection, None)
                else:
                    known.setdefault(connection, (export, int(params[0])))
            elif event.type.startswith(prefix) and isinstance(event.data.get("result"), dict):
                result = event.data["result"]
                if "ok" in result:
                    calls.append((event.type[len(prefix):], event.data["params"], result["ok"]))
        highest = 0
        listening: dict[int, int] = {}
        problems: list[str] = []
        with state.lock:
            for function, params, value in calls:
                if function in ("create-server", "register-handler", "add-route", "add-middleware"):
                    highest = max(highest, value)
                if function == "create-server":
                    asked = params[0]
                    host = "127.0.0.1" if asked["host"] is None else str(ipaddress.ip_address(asked["host"]["some"]))
                    port = 0 if asked["port"] is None else asked["port"]["some"]
                    tls = handler._tls(asked["tls-config"]["some"]) if asked["tls-config"] is not None else None
                    if isinstance(tls, str):  # never served without the TLS it was created with
                        problems.append(f"server {value} on {host}:{port}: {tls}")
                    else:
                        state.servers[value] = _Server(id=value, host=host, port=port, tls=tls)
                elif function == "register-handler":
                    state.handlers[value] = params[0]
                elif function == "add-route" and params[0] in state.servers:
                    state.servers[params[0]].routes[value] = (params[2].upper(), params[1], params[3])
                elif function == "add-middleware" and params[0] in state.servers:
                    state.servers[params[0]].middleware[value] = (params[1], params[2])
                elif function == "enable-websocket" and params[0] in state.servers:
                    state.servers[params[0]].websockets[params[1]] = (_some(params[2]), params[3], _some(params[4]))
                elif function == "remove-route":
                    for server in state.servers.values():
                        server.routes.pop(params[0], None)
                elif function == "remove-middleware":
                    for server in state.servers.values():
                        server.middleware.pop(params[0], None)
                elif function == "start-server":
                    listening[params[0]] = value
                elif function == "stop-server":
                    listening.pop(params[0], None)
                elif function == "destroy-server":
                    listening.pop(params[0], None)
                    state.servers.pop(params[0], None)
            state.ids = itertools.count(highest + 1)
            state.connection_ids = itertools.count(connections + 1)
            websockets = [handlers for server in state.servers.values() for handlers in server.websockets.values()]
        for connection, (export, handler_id) in sorted(known.items()):
            slot = 0 if export == WS_CONNECT else 1  # the handler that call was made to: connect's or message's
            disconnect = next((h[2] for h in websockets if h[slot] == handler_id and h[2] is not None), None)
            if disconnect is not None:
                _tell_ended(actor, disconnect, connection)
        for server_id, port in listening.items():
            again = state.servers.get(server_id)
            if again is None:
                continue
            again.port = port
            outcome = handler.start_server(server_id)
            if "err" in outcome:
                problems.append(f"server {server_id} on {again.host}:{port}: {outcome['err']}")
        return problems

    def holds_live(self) -> bool:
        """True while one of the actor's servers is listening (passivating it would drop the sockets)."""
        return self._state.live()

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "create-server": self.create_server,
            "get-server-info": self.get_server_info,
            "start-server": self.start_server,
            "stop-server": self.stop_server,
            "destroy-server": self.destroy_server,
            "register-handler": self.register_handler,
            "add-route": self.add_route,
            "remove-route": self.remove_route,
            "add-middleware": self.add_middleware,
            "remove-middleware": self.remove_middleware,
            "enable-websocket": self.enable_websocket,
            "send-websocket-message": self.send_websocket_message,
            "close-websocket": self.close_websocket,
        }

    # Servers.

    def create_server(self, config: dict[str, Any]) -> dict[str, Any]:
        state = self._state
        tls: ssl.SSLContext | None = None
        if config["tls-config"] is not None:
            loaded = self._tls(config["tls-config"]["some"])
            if isinstance(loaded, str):
                return {"err": loaded}
            tls = loaded
        host = "127.0.0.1" if config["host"] is None else config["host"]["some"]
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            return {"err": f"host {host!r} is not an IP address"}
        if host not in self.grant.bind_hosts:
            allowed = ", ".join(sorted(self.grant.bind_hosts))
            return {"err": f"refused: this actor may not bind {host} (it may bind {allowed})"}
        port = 0 if config["port"] is None else config["port"]["some"]
        refusal = self.grant.port_refusal(port)
        if refusal is not None:
            return {"err": f"refused: {refusal}"}
        with state.lock:
            if len(state.servers) >= self.grant.max_servers:
                return {"err": f"refused: this actor may have at most {self.grant.max_servers} servers"}
            server = _Server(id=next(state.ids), host=host, port=port, tls=tls)
            state.servers[server.id] = server
        return {"ok": server.id}

    def _tls(self, asked: dict[str, str]) -> ssl.SSLContext | str:
        """The server context for a guest's ``tls-config``, or why it is refused (it must name the very files the
        operator's config names: a guest never makes the host read a file of its choosing)."""
        if self.grant.tls is None:
            return "refused: this actor may not serve TLS (its manifest's config names no tls_cert and tls_key)"
        if (asked["cert-path"], asked["key-path"]) != self.grant.tls:
            return "refused: tls-config must name the tls_cert and tls_key of the actor's manifest"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(*self.grant.tls)
        except (OSError, ssl.SSLError) as exc:
            return f"cannot load the TLS certificate and key: {getattr(exc, 'strerror', None) or exc}"
        return context

    def _server(self, server_id: int) -> _Server:
        server = self._state.servers.get(server_id)
        if server is None:
            raise _NoSuch(f"no server {server_id}")
        return server

    def get_server_info(self, server_id: int) -> dict[str, Any]:
        try:
            server = self._server(server_id)
        except _NoSuch as exc:
            return {"err": str(exc)}
        return {"ok": {
            "id": server.id, "host": server.host, "port": server.bound or server.port, "running": server.running,
            "routes-count": len(server.routes), "middleware-count": len(server.middleware),
            "websocket-enabled": bool(server.websockets),
        }}

    def start_server(self, server_id: int) -> dict[str, Any]:
        try:
            server = self._server(server_id)
        except _NoSuch as exc:
            return {"err": str(exc)}
        if server.running:
            return {"ok": server.bound}
        state = self._state
        future = state.loop.submit(_listen(state, server))
        if not self.actor.wait_for(future, LOOP_WAIT_S):
            future.cancel()
            return {"err": "the server could not be started: " + (
                "the actor is stopping" if self.actor.stop_requested.is_set() else "the network loop is busy")}
        try:
            bound, stop = future.result()
        except CancelledError:
            return {"err": "the server could not be started: the runtime is closing"}
        except OSError as exc:
            return {"err": f"cannot bind {server.host}:{server.port}: {exc.strerror or exc}"}
        with state.lock:
            ended = state.ended
            if not ended:
                server.bound, server.stop, server.running = bound, stop, True
        if ended:
            _stop_now(state.loop, stop)
            return {"err": "the actor has ended"}
        return {"ok": bound}

    def stop_server(self, server_id: int) -> dict[str, Any]:
        try:
            server = self._server(server_id)
        except _NoSuch as exc:
            return {"err": str(exc)}
        stop, server.stop, server.running = server.stop, None, False
        if stop is not None:
            _stop_now(self._state.loop, stop)
        return {"ok": None}

    def destroy_server(self, server_id: int) -> dict[str, Any]:
        stopped = self.stop_server(server_id)
        if "err" in stopped:
            return stopped
        self._state.servers.pop(server_id, None)
        return {"ok": None}

    # Handlers, routes and middleware.

    def register_handler(self, name: str) -> dict[str, Any]:
        state = self._state
        with state.lock:
            if len(state.handlers) >= self.grant.max_routes:
                return {"err": f"refused: this actor may register at most {self.grant.max_routes} handlers"}
            handler_id = next(state.ids)
            state.handlers[handler_id] = name
        return {"ok": handler_id}

    def add_route(self, server_id: int, path: str, method: str, handler_id: int) -> dict[str, Any]:
        try:
            server = self._server(server_id)
        except _NoSuch as exc:
            return {"err": str(exc)}
        method = method.upper()
        problem = check_pattern(path)
        if problem is None and method not in METHODS:
            problem = f"method {method!r} is not one of {', '.join(sorted(METHODS))}"
        if problem is None and handler_id not in self._state.handlers:
            problem = f"no handler {handler_id} (register it first)"
        if problem is None and self._endpoints() >= self.grant.max_routes:
            problem = f"refused: this actor may have at most {self.grant.max_routes} routes"
        if problem is not None:
            return {"err": problem}
        with self._state.lock:
            route_id = next(self._state.ids)
            server.routes[route_id] = (method, path, handler_id)
        return {"ok": route_id}

    def remove_route(self, route_id: int) -> dict[str, Any]:
        for server in self._state.servers.values():
            if server.routes.pop(route_id, None) is not None:
                return {"ok": None}
        return {"err": f"no route {route_id}"}

    def add_middleware(self, server_id: int, path: str, handler_id: int) -> dict[str, Any]:
        try:
            server = self._server(server_id)
        except _NoSuch as exc:
            return {"err": str(exc)}
        problem = check_pattern(path)
        if problem is None and handler_id not in self._state.handlers:
            problem = f"no handler {handler_id} (register it first)"
        if problem is not None:
            return {"err": problem}
        with self._state.lock:
            middleware_id = next(self._state.ids)
            server.middleware[middleware_id] = (path, handler_id)
        return {"ok": middleware_id}

    def remove_middleware(self, middleware_id: int) -> dict[str, Any]:
        for server in self._state.servers.values():
            if server.middleware.pop(middleware_id, None) is not None:
                return {"ok": None}
        return {"err": f"no middleware {middleware_id}"}

    # Websockets.

    def _endpoints(self) -> int:
        return sum(len(s.routes) + len(s.websockets) for s in self._state.servers.values())

    def enable_websocket(
        self, server_id: int, path: str, connect: dict[str, int] | None, message: int,
        disconnect: dict[str, int] | None,
    ) -> dict[str, Any]:
        try:
            server = self._server(server_id)
        except _NoSuch as exc:
            return {"err": str(exc)}
        handlers = (_some(connect), message, _some(disconnect))
        problem = check_pattern(path)
        for handler_id in handlers:
            if problem is None and handler_id is not None and handler_id not in self._state.handlers:
                problem = f"no handler {handler_id} (register it first)"
        if problem is None and path not in server.websockets and self._endpoints() >= self.grant.max_routes:
            problem = f"refused: this actor may have at most {self.grant.max_routes} routes and websocket paths"
        if problem is not None:
            return {"err": problem}
        with self._state.lock:
            server.websockets[path] = handlers
        return {"ok": None}

    def send_websocket_message(self, server_id: int, connection_id: int, message: dict[str, Any]) -> dict[str, Any]:
        state = self._state
        try:
            conn = state.connection(server_id, connection_id)
        except _NoSuch as exc:
            return {"err": str(exc)}
        frame = _frame(message)
        if isinstance(frame, str):
            return {"err": frame}
        self.actor.defer(lambda failed: _enqueue_soon(state.loop, conn, frame, failed))
        return {"ok": None}

    def close_websocket(self, server_id: int, connection_id: int) -> dict[str, Any]:
        state = self._state
        try:
            conn = state.connection(server_id, connection_id)
        except _NoSuch as exc:
            return {"err": str(exc)}
        frame = ("close", CLOSE_NORMAL, b"closed by the actor")
        self.actor.defer(lambda failed: _enqueue_soon(state.loop, conn, frame, failed))
        return {"ok": None}


def _tell_ended(actor: ActorHost, disconnect: int, connection_id: int) -> None:
    """Queue the ``handle-websocket-disconnect`` call telling the actor a connection it knew has ended."""
    try:
        actor.submit(lambda: actor.call(WS_DISCONNECT, [disconnect, connection_id]), force=True)
    except TheaterError:
        pass  # the actor has ended: nobody to tell


def _some(option: dict[str, Any] | None) -> Any:
    return None if option is None else option["some"]


class _NoSuch(Exception):
    pass


# Serving (on the runtime's loop).


async def _listen(state: _Actor, server: _Server) -> tuple[int, Callable[[], Any]]:
    """Bind and serve ``server``; the bound port and a coroutine function that stops it."""
    loop = asyncio.get_running_loop()
    # Connections (by id of their protocol) whose header timeout is pending: whether a whole request head arrived.
    # An entry goes when its timer fires (the timer holds the protocol: its id is not reused meanwhile).
    heads: dict[int, bool] = {}
    # No access log: every request is in the actor's chain already.
    factory = web.Server(lambda request: _dispatch(state, server, request, heads), keepalive_timeout=KEEPALIVE_S,
                         handler_cancellation=True, access_log=None)

    def protocol() -> Any:
        proto = factory()
        heads[id(proto)] = False
        loop.call_later(state.grant.header_timeout_ms / 1000, _close_unless_started, proto, heads)
        return proto

    listening = await loop.create_server(protocol, server.host, server.port, reuse_address=True, ssl=server.tls)
    bound = int(listening.sockets[0].getsockname()[1])

    async def stop() -> None:
        """Stop listening now; drain the open connections in the background (in-flight answers still go out)."""
        if not listening.is_serving():
            return
        listening.close()
        for conn in list(server.connections.values()):
            _enqueue(conn, ("close", CLOSE_GOING_AWAY, b"the server stopped"), urgent=True)

        async def drain() -> None:
            await factory.shutdown(DRAIN_S)
            await listening.wait_closed()

        drains.add(task := asyncio.ensure_future(drain()))
        task.add_done_callback(drains.discard)

    async def close() -> None:
        await stop()
        await asyncio.gather(*drains, return_exceptions=True)

    drains: set[asyncio.Future[None]] = set()
    state.loop.close_with(close)
    return bound, stop


def _close_unless_started(proto: Any, heads: dict[int, bool]) -> None:
    """The header timeout of a connection: close it unless a whole request head arrived (slowloris)."""
    if heads.pop(id(proto), False):
        return
    transport = getattr(proto, "transport", None)
    if transport is not None:
        transport.close()


async def _dispatch(
    state: _Actor, server: _Server, request: web.BaseRequest, heads: dict[int, bool]
) -> web.StreamResponse:
    key = id(request.protocol)
    if key in heads:
        heads[key] = True
    path = request.rel_url.path
    method = request.method.upper()
    if method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
        for pattern, handlers in list(server.websockets.items()):
            if matches(pattern, path):
                return await _websocket(state, server, request, handlers)
    route = None
    for route_method, pattern, handler_id in list(server.routes.values()):
        if route_method in (method, "*") and matches(pattern, path):
            route = handler_id
            break
    if route is None:
        known = any(matches(pattern, path) for _, pattern, _ in server.routes.values())
        return web.Response(status=405 if known else 404, text="method not allowed" if known else "not found")
    grant = state.grant
    actor = state.actor
    body = b""
    if request.body_exists:  # a request without one (most GETs) has nothing to wait for
        try:
            async with asyncio.timeout(grant.body_timeout_ms / 1000):
                body = await _read_body(request, actor, grant.max_request_bytes)
        except MessageTooLarge as exc:
            return web.Response(status=413, text=f"request body too large: {exc}")
        except TimeoutError:
            return web.Response(status=408,
                                text=f"the request body did not arrive within {grant.body_timeout_ms} ms")
    uri = str(request.rel_url)
    wire = {
        "uri": uri,
        "body": {"some": body} if body else None,
        "method": method,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
    }
    middlewares = [h for prefix, h in list(server.middleware.values()) if _under(prefix, path)]
    answer = actor.submit(lambda: _handle(actor, middlewares, route, wire), size=len(body))
    try:
        async with asyncio.timeout(grant.request_timeout_ms / 1000):
            response = await state.loop.answer(answer)
    except TimeoutError:
        _record_timeout(actor, server.id, method, uri, grant.request_timeout_ms, dropped=answer.cancel())
        return web.Response(status=504, text=f"the actor did not answer within {grant.request_timeout_ms} ms")
    except (MailboxFull, ActorNotRunning) as exc:
        return web.Response(status=503, text=f"the actor cannot take the request: {exc}",
                            headers={"Retry-After": "1"})
    except ExportMissing as exc:
        return web.Response(status=500, text=str(exc))
    except ErrAnswered:  # the actor answered err and keeps serving; its text (a traceback, say) stays in its chain
        return web.Response(status=500, text="the actor's handler answered err")
    except GuestFault as exc:
        return web.Response(status=500, text=f"the actor's handler failed ({exc.kind})")
    except TheaterError as exc:
        return web.Response(status=500, text=f"{type(exc).__name__}: {exc}")
    return _to_web(response)


def _record_timeout(actor: ActorHost, server: int, method: str, uri: str, timeout_ms: int, *, dropped: bool) -> None:
    """Record a 504 in the actor's chain (``actor/http-timeout``), as its next operation: its call, if it had not
    started (``dropped``), never runs; else the event follows it."""
    data = ActorHttpTimeout(server=server, method=method, uri=uri, timeout_ms=timeout_ms, dropped=dropped).encode()
    try:
        actor.submit(lambda: actor.tape.append(ACTOR_HTTP_TIMEOUT, data), force=True)
    except TheaterError:
        pass  # the actor has ended: its chain takes nothing more


async def _read_body(request: web.BaseRequest, actor: ActorHost, limit: int | None) -> bytes:
    declared = request.content_length
    if declared is not None:
        _check_size(actor, declared, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        _check_size(actor, size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_size(actor: ActorHost, size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        raise MessageTooLarge(str(actor.id), size=size, limit=limit, declared=limit, call_limit=limit)
    actor.check_message(size)


def _handle(actor: ActorHost, middlewares: list[int], handler_id: int, request: dict[str, Any]) -> dict[str, Any]:
    """On the actor's thread: the middleware calls, then the route's; the response (recorded form)."""
    for middleware in middlewares:
        result = actor.call(HANDLE_MIDDLEWARE, [middleware, request])
        outcome = result.output[0][0]
        if not outcome["proceed"]:
            return {"body": {"some": b"refused by middleware"}, "status": 403, "headers": []}
        request = outcome["request"]
    return cast(dict[str, Any], actor.call(HANDLE_REQUEST, [handler_id, request]).output[0][0])


# Websockets (on the runtime's loop).


async def _websocket(
    state: _Actor, server: _Server, request: web.BaseRequest, handlers: tuple[int | None, int, int | None]
) -> web.StreamResponse:
    """Serve one websocket connection: connect, each message and the disconnect are queued to the actor as calls;
    what it sends goes out through the connection's queue."""
    grant, actor = state.grant, state.actor
    with state.lock:
        open_ = sum(len(s.connections) for s in state.servers.values())
        if state.ended or not server.running:
            return web.Response(status=503, text="the actor cannot take the connection: it is not serving")
        if open_ >= grant.max_websockets:
            return web.Response(status=503, text=f"too many websocket connections: this actor may have "
                                                 f"{grant.max_websockets} open", headers={"Retry-After": "1"})
        connection_id = next(state.connection_ids)
    limit = actor.max_message_bytes
    if grant.max_websocket_message_bytes is not None:
        limit = min(limit, grant.max_websocket_message_bytes)
    ws = web.WebSocketResponse(max_msg_size=limit + 1, autoping=True)  # aiohttp refuses a message of its max
    conn = _Conn(id=connection_id, ws=ws, queue=asyncio.Queue())
    server.connections[connection_id] = conn
    loop = asyncio.get_running_loop()
    connect, on_message, disconnect = handlers
    # The connect is queued before the upgrade is answered: whatever the client does once it sees the upgrade (a
    # message, a request on another connection) reaches the actor after it.
    if connect is not None:
        query = request.rel_url.query_string
        params = [connect, connection_id, request.rel_url.path, {"some": query} if query else None]
        if not _queue_call(state, conn, WS_CONNECT, params, 0):
            server.connections.pop(connection_id, None)
            return web.Response(status=503, text="the actor cannot take the connection: its mailbox is full",
                                headers={"Retry-After": "1"})
    writer: asyncio.Future[None] | None = None
    try:
        await ws.prepare(request)
        writer = asyncio.ensure_future(_write(conn))
        idle = grant.websocket_idle_timeout_ms / 1000
        while not conn.closing:
            try:
                message = await ws.receive(timeout=idle)
            except TimeoutError:
                _enqueue(conn, ("close", CLOSE_GOING_AWAY, f"idle for {grant.websocket_idle_timeout_ms} ms".encode()),
                         urgent=True)
                break
            if message.type == WSMsgType.TEXT:
                wire = {"ty": {"text": None}, "data": None, "text": {"some": message.data}}
                size = len(message.data.encode("utf-8"))
            elif message.type == WSMsgType.BINARY:
                wire = {"ty": {"binary": None}, "data": {"some": message.data}, "text": None}
                size = len(message.data)
            else:  # CLOSE, CLOSING, CLOSED; ERROR (a message over max_msg_size: aiohttp closes with 1009)
                break
            if not _queue_call(state, conn, WS_MESSAGE, [on_message, connection_id, wire], size,
                               answers=loop):
                break
    finally:
        server.connections.pop(connection_id, None)
        conn.closing = True
        # The actor was told of the connection: it is told of its end, unless the actor itself has ended (its
        # instance that comes back, after a restart or a reopen, is told by ``reattach``: once, not twice).
        if disconnect is not None and not state.ended:
            _tell_ended(actor, disconnect, connection_id)
        conn.queue.put_nowait(None)
        if writer is not None:
            try:
                await asyncio.wait_for(writer, DRAIN_S)
            except (TimeoutError, asyncio.CancelledError):
                writer.cancel()
        if ws.prepared and not ws.closed:
            await ws.close()
    return ws


def _queue_call(
    state: _Actor, conn: _Conn, export: str, params: list[Any], size: int,
    answers: asyncio.AbstractEventLoop | None = None,
) -> bool:
    """Queue a websocket call to the actor; False (and the connection closing with a clear code) when its mailbox
    refuses it. With ``answers``, the messages the call returns are sent once it is durable."""
    actor = state.actor
    future = actor.submit(lambda: actor.call(export, params), size=size)
    if future.done() and future.exception() is not None:
        error = future.exception()
        if isinstance(error, MailboxFull):
            _enqueue(conn, ("close", CLOSE_TRY_LATER, b"the actor's mailbox is full"), urgent=True)
        else:
            _enqueue(conn, ("close", CLOSE_ERROR, b"the actor cannot take the message"), urgent=True)
        return False
    if answers is not None:
        loop = answers
        future.add_done_callback(lambda done: loop.call_soon_threadsafe(_answered, conn, done))
    return True


def _answered(conn: _Conn, future: Future[Any]) -> None:
    """A ``handle-websocket-message`` call ended (its events are durable): send what it returned."""
    if future.cancelled() or future.exception() is not None:
        return  # a failed call failed the actor: its servers stop and close the connection
    for message in future.result().output[0][0]:
        frame = _frame(message)
        if isinstance(frame, str):
            _enqueue(conn, ("close", CLOSE_ERROR, b"the actor returned an invalid message"), urgent=True)
            return
        _enqueue(conn, frame)


def _frame(message: dict[str, Any]) -> tuple[Any, ...] | str:
    """A websocket message (recorded form) as a frame to send, or why it cannot be sent."""
    ty = message["ty"]
    kind = ty if isinstance(ty, str) else next(iter(ty))
    text, data = _some(message["text"]), _some(message["data"])
    if kind == "text":
        return ("text", text) if text is not None else "a text message needs its text"
    if kind == "binary":
        return ("binary", data) if data is not None else "a binary message needs its data"
    if kind in ("ping", "pong"):
        return (kind, data or b"")
    if kind == "close":
        return ("close", CLOSE_NORMAL, b"closed by the actor")
    return f"a message of type {kind} cannot be sent"


def _enqueue_soon(loop: netloop.NetLoop, conn: _Conn, frame: tuple[Any, ...], failed: BaseException | None) -> None:
    """An effect released once the events that produced ``frame`` are durable: queue it on the connection (on the
    loop); nothing goes out when they could not be committed (``failed``)."""
    if failed is not None:
        return
    try:
        loop.loop.call_soon_threadsafe(_enqueue, conn, frame)
    except RuntimeError:
        pass  # the loop is closed: so is the connection


def _enqueue(conn: _Conn, frame: tuple[Any, ...], *, urgent: bool = False) -> None:
    """On the loop: queue ``frame`` to go out after what is queued; a close ends what may be queued after it. A
    client that does not read (``WS_QUEUE`` frames waiting) is closed with 1008; ``urgent`` closes go first."""
    if conn.closing:
        return
    if frame[0] == "close":
        conn.closing = True
        if urgent:
            while not conn.queue.empty():
                conn.queue.get_nowait()
    elif conn.queue.qsize() >= WS_QUEUE:
        conn.closing = True
        frame = ("close", CLOSE_POLICY, b"the client does not read its messages")
    conn.queue.put_nowait(frame)


async def _write(conn: _Conn) -> None:
    """Send the connection's queued frames in order until a close or the end of the connection."""
    ws = conn.ws
    while True:
        frame = await conn.queue.get()
        if frame is None:
            return
        try:
            kind = frame[0]
            if kind == "text":
                await ws.send_str(frame[1])
            elif kind == "binary":
                await ws.send_bytes(frame[1])
            elif kind == "ping":
                await ws.ping(frame[1])
            elif kind == "pong":
                await ws.pong(frame[1])
            else:
                await ws.close(code=frame[1], message=frame[2])
                return
        except (ConnectionError, RuntimeError):
            return  # the client went away


def _to_web(response: dict[str, Any]) -> web.Response:
    status = response["status"]
    if not 100 <= status <= 599:
        return web.Response(status=500, text=f"the actor answered with an invalid status {status}")
    body = response["body"]
    out = web.Response(status=status, body=None if body is None else body["some"])
    for name, value in response["headers"]:
        if not name or any(c in name for c in "\r\n:\0 ") or any(c in value for c in "\r\n\0"):
            return web.Response(status=500, text=f"the actor answered with an invalid header {name!r}")
        if name.lower() not in _FRAMING:
            out.headers.add(name, value)
    return out


__all__ = ["FrameworkGrant", "HttpFrameworkHandler", "check_pattern", "matches"]
