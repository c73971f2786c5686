"""Serving HTTP from an actor (handler ``http-framework``): routes as decorated methods, set up at ``init``.

    from theater_sdk import Actor, route, run

    class Api(Actor):
        http_port = 8080          # 0 (the default): an ephemeral port, recorded in the chain

        def init(self):
            self.state = {"items": {}}

        @route("GET", "/items/{id}")
        def get_item(self, request, id):
            return self.state["items"].get(id) or Response(status=404, body="no such item")

        @route("PUT", "/items/{id}")
        def put_item(self, request, id):
            self.state["items"][id] = request.json()
            return {"stored": id}

    run(Api)

After ``init``, an actor class with routes creates a server (``http_host``, ``http_port``), adds one route per
decorated method and starts it. Each request is a recorded call of the actor with its current state; the method
gets a ``Request`` and the path parameters by name and returns a dict or list (sent as JSON), ``str`` (text),
``bytes``, None (204) or a ``Response``. The world imports ``theater:simple/http-framework`` and exports
``theater:simple/http-handlers``.

Middleware: ``@middleware("/admin")`` marks a method that sees every request under that path before its route
(in definition order, all of them in one recorded ``handle-middleware`` call); it returns None or True to let the
request through, a ``Request`` to pass that one on instead (e.g. with a header added), or False to refuse it (the
host answers 403).

Websockets: the paths in the class attribute ``websocket_paths`` are served on the same server; each connection,
message and disconnect is a recorded call of ``on_ws_connect(connection, path, query)``,
``on_ws_message(connection, message)`` (``str`` for text, ``bytes`` for binary; what it returns, ``str``, ``bytes``
or a list of them, is sent back) and ``on_ws_disconnect(connection)``. ``send(connection, message)`` and
``close(connection)`` reach any open connection of the actor (e.g. to broadcast); what is sent goes out once the
call is durable.

    class Chat(Actor):
        websocket_paths = ("/ws",)

        def on_ws_message(self, connection, message):
            return "echo: " + message
"""

import json as _json
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._host import HostError, binding, call

ROUTE_ATTR = "_theater_route"
MIDDLEWARE_ATTR = "_theater_middleware"


def route(method: str, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve ``method`` (``GET``, ..., or ``*``) on ``path`` (``/items/{id}``: ``{name}`` matches one segment and is
    passed by name; a last segment ``*`` matches the rest) with the decorated method."""

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(function, ROUTE_ATTR, (method.upper(), path))
        return function

    return mark


def middleware(path: str = "/") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the decorated method on every request whose path is ``path`` or under it, before its route; it returns
    None or True (go on), a ``Request`` (go on with it) or False (refused: 403)."""

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(function, MIDDLEWARE_ATTR, path)
        return function

    return mark


def middlewares(actor_class: type) -> list[tuple[str, str]]:
    """The (path, attribute name) of every middleware of ``actor_class``, in definition order."""
    found = []
    for klass in reversed(actor_class.__mro__):
        for name, value in vars(klass).items():
            path = getattr(value, MIDDLEWARE_ATTR, None)
            if path is not None:
                found.append((path, name))
    return found


def run_middleware(actor: Any, request: "Request") -> "Request | None":
    """Run ``actor``'s middleware covering ``request``: the request to go on with, or None when one refused it."""
    for path, name in middlewares(type(actor)):
        prefix = path.rstrip("/")
        if prefix and request.path != prefix and not request.path.startswith(prefix + "/"):
            continue
        outcome = getattr(actor, name)(request)
        if outcome is False:
            return None
        if isinstance(outcome, Request):
            request = outcome
        elif outcome is not None and outcome is not True:
            raise TypeError(f"middleware {name} must return None, True, False or a Request, got {outcome!r}")
    return request


class Request:
    """An HTTP request as the actor sees it.

    Attributes:
        method: ``GET``, ``POST``, ... uri: the path with its query string. path: the path. query: the query
        parameters (the last of each name). headers: (name, value) pairs in order. body: the body bytes.
    """

    def __init__(self, method: str, uri: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.method = method
        self.uri = uri
        parts = urlsplit(uri)
        self.path = parts.path or "/"
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.headers = headers
        self.body = body

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first header called ``name`` (any case), or ``default``."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return default

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError when it is not)."""
        return _json.loads(self.body)


class Response:
    """An HTTP response to return from a route: ``body`` is bytes, ``str`` (UTF-8) or a value sent as JSON."""

    def __init__(self, body: Any = b"", *, status: int = 200, headers: Mapping[str, str] | Iterable[tuple[str, str]]
                 | None = None, content_type: str | None = None) -> None:
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        if isinstance(body, (bytes, bytearray, memoryview)):
            data, kind = bytes(body), "application/octet-stream"
        elif isinstance(body, str):
            data, kind = body.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            data, kind = _json.dumps(body).encode("utf-8"), "application/json"
        if not any(k.lower() == "content-type" for k, _ in pairs) and data:
            pairs.append(("Content-Type", content_type or kind))
        self.status = int(status)
        self.headers = [(str(k), str(v)) for k, v in pairs]
        self.body = data


def routes(actor_class: type) -> list[tuple[str, str, str]]:
    """The (method, path, attribute name) of every route of ``actor_class``, in definition order."""
    found = []
    for klass in reversed(actor_class.__mro__):
        for name, value in vars(klass).items():
            mark = getattr(value, ROUTE_ATTR, None)
            if mark is not None:
                found.append((mark[0], mark[1], name))
    return found


def match(pattern: str, path: str) -> dict[str, str] | None:
    """The path parameters when ``path`` matches ``pattern``, else None."""
    want = [s for s in pattern.split("/") if s]
    have = [s for s in path.split("/") if s]
    if want and want[-1] == "*":
        if len(have) < len(want) - 1:
            return None
        want, have = want[:-1], have[:len(want) - 1]
    if len(want) != len(have):
        return None
    params = {}
    for w, h in zip(want, have):
        if w.startswith("{") and w.endswith("}"):
            params[w[1:-1]] = h
        elif w != h:
            return None
    return params


def serve(actor: Any, *, host: str | None = None, port: int = 0, tls: "tuple[str, str] | None" = None) -> int:
    """Create a server for ``actor``'s routes and websocket paths, start it and return its port (``init`` does this
    by itself). ``tls``: (certificate, key) paths, the very ``tls_cert`` and ``tls_key`` of the actor's manifest
    config, to serve HTTPS.

    Raises:
        HostError: the host refused (an address or port the manifest does not allow, a bad route).
    """
    types = binding("http_types")
    tls_config = None if tls is None else types.TlsConfig(cert_path=tls[0], key_path=tls[1])
    config = types.ServerConfig(port=port, host=host, tls_config=tls_config)
    server = call("http_framework", "create_server", config)
    handler = call("http_framework", "register_handler", "routes")
    for method, path, _ in routes(type(actor)):
        call("http_framework", "add_route", server, path, method, handler)
    if middlewares(type(actor)):
        guard = call("http_framework", "register_handler", "middleware")
        call("http_framework", "add_middleware", server, "/", guard)
    paths = tuple(getattr(actor, "websocket_paths", ()))
    if paths:
        sockets = call("http_framework", "register_handler", "websockets")
        for path in paths:
            call("http_framework", "enable_websocket", server, path, sockets, sockets, sockets)
    return call("http_framework", "start_server", server)


def send(connection: int, message: "str | bytes") -> None:
    """Send ``message`` (``str``: text, ``bytes``: binary) on the websocket ``connection`` once this call is durable.

    Raises:
        HostError: the connection is not open (or the message is too large).
    """
    call("http_framework", "send_websocket_message", 0, connection, ws_message(message))


def close(connection: int) -> None:
    """Close the websocket ``connection`` (after what was sent before), once this call is durable.

    Raises:
        HostError: the connection is not open.
    """
    call("http_framework", "close_websocket", 0, connection)


def ws_message(message: "str | bytes") -> Any:
    """``message`` as the binding's ``WebsocketMessage``."""
    types = binding("websocket_types")
    if isinstance(message, str):
        return types.WebsocketMessage(ty=types.MessageType_Text(), data=None, text=message)
    if isinstance(message, (bytes, bytearray, memoryview)):
        return types.WebsocketMessage(ty=types.MessageType_Binary(), data=bytes(message), text=None)
    raise TypeError(f"a websocket message is str or bytes, got {type(message).__name__}")


def ws_payload(message: Any) -> "str | bytes":
    """What the actor sees of an incoming ``WebsocketMessage``: its text, or its data."""
    if message.text is not None:
        return message.text
    return bytes(message.data or b"")


def ws_messages(value: Any) -> list[Any]:
    """What ``on_ws_message`` returned, as the messages to send back."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [ws_message(item) for item in items]


def dispatch(actor: Any, request: Request) -> Response:
    """Run the route of ``actor`` that matches ``request`` (404 or 405 when none does)."""
    allowed = False
    for method, path, name in routes(type(actor)):
        params = match(path, request.path)
        if params is None:
            continue
        if method not in (request.method, "*"):
            allowed = True
            continue
        return to_response(getattr(actor, name)(request, **params))
    return Response("method not allowed" if allowed else "not found", status=405 if allowed else 404)


def to_response(value: Any) -> Response:
    """What a route returned, as a ``Response``."""
    if isinstance(value, Response):
        return value
    if value is None:
        return Response(status=204)
    return Response(value)


__all__ = ["HostError", "Request", "Response", "close", "dispatch", "match", "middleware", "middlewares", "route",
           "routes", "run_middleware", "send", "serve", "to_response", "ws_message", "ws_messages", "ws_payload"]
