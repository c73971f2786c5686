"""The ``Actor`` base class an actor module subclasses, and ``run`` that registers it.

One object per call: for every export call the SDK creates a fresh instance of the registered class, sets
``state`` from the bytes the runtime passed in (decoded by ``decode_state``), calls the handler and encodes
``state`` again (``encode_state``). Only ``state`` survives between calls: it is what the runtime records in the
actor's chain. Attributes set on ``self`` and module globals do not reliably survive (a restart or a replay
starts from a fresh instance), so keep everything that matters in ``state``.
"""

import json
from dataclasses import dataclass
from typing import Any

from . import web


class _Defer:
    """The type of ``DEFER``."""

    def __repr__(self) -> str:
        return "DEFER"


DEFER = _Defer()
"""Return this from ``on_request`` to answer later with ``messaging.respond(request_id, ...)``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelAnswer:
    """What ``on_channel_open`` decides: accept or reject, with an optional first message back."""

    accepted: bool
    message: bytes | None = None


def accept(message: bytes | str | None = None) -> ChannelAnswer:
    """Accept a channel, optionally sending ``message`` back as its first message."""
    return ChannelAnswer(accepted=True, message=_optional_bytes(message))


def reject(reason: bytes | str | None = None) -> ChannelAnswer:
    """Reject a channel; ``reason`` reaches the opener in its error."""
    return ChannelAnswer(accepted=False, message=_optional_bytes(reason))


def _optional_bytes(value: bytes | str | None) -> bytes | None:
    if value is None:
        return None
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildError:
    """A child actor's failure as reported to its supervisor.

    Attributes:
        kind: the WIT ``wit-error-type`` case, e.g. ``internal`` or ``operation-timeout``.
        data: extra bytes from the runtime (often a UTF-8 description), or None.
    """

    kind: str
    data: bytes | None


class Actor:
    """Base class of a Python actor: override the handlers you need.

    Attributes:
        state: the actor's state as a Python value (JSON by default); None until ``init`` sets it.
        raw_state: the state bytes the runtime passed into this call (None when there is none).
        id: the actor's id, during ``init`` only (None otherwise).
        request_id: during ``on_request``, the id to pass to ``messaging.respond`` when deferring.
    """

    http_host: str | None = None  # where the routes (``@route``) are served: the address and port asked for
    http_port: int = 0  # 0: an ephemeral port (the chain records the one bound)
    http_tls: tuple[str, str] | None = None  # (certificate, key): the manifest's tls_cert and tls_key, for HTTPS
    websocket_paths: tuple[str, ...] = ()  # served as websockets (``on_ws_*``) on the routes' server

    def __init__(self) -> None:
        self.state: Any = None
        self.raw_state: bytes | None = None
        self.id: str | None = None
        self.request_id: str | None = None

    # State encoding: override both for another format (return/accept raw bytes for binary state).

    def encode_state(self, value: Any) -> bytes:
        """Encode ``state`` for the runtime: compact JSON with sorted keys (deterministic)."""
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")

    def decode_state(self, raw: bytes) -> Any:
        """Decode the runtime's state bytes into ``state`` (JSON by default)."""
        return json.loads(raw)

    # Handlers.

    def init(self) -> None:
        """Called once when the actor starts; ``self.state`` holds the manifest's ``init_state`` (or None)."""

    def on_send(self, message: bytes) -> None:
        """Handle a one-way message."""
        raise NotImplementedError(f"{type(self).__name__} does not handle one-way messages: override on_send")

    def on_request(self, message: bytes) -> bytes | str | _Defer:
        """Handle a request: return the reply (bytes or str), or ``DEFER`` to answer later."""
        raise NotImplementedError(f"{type(self).__name__} does not handle requests: override on_request")

    def on_channel_open(self, channel_id: str, message: bytes) -> bool | ChannelAnswer:
        """Decide whether to accept a channel: True/False, or ``accept(...)``/``reject(...)``. Rejects by default."""
        return False

    def on_channel_message(self, channel_id: str, message: bytes) -> None:
        """Handle a message on an open channel."""
        raise NotImplementedError(f"{type(self).__name__} does not handle channels: override on_channel_message")

    def on_channel_close(self, channel_id: str) -> None:
        """A channel was closed by the other end."""

    def on_child_error(self, child_id: str, error: ChildError) -> None:
        """A child actor failed (supervisor actors only)."""

    def on_child_exit(self, child_id: str, data: bytes | None) -> None:
        """A child actor exited normally (supervisor actors only)."""

    def on_process_stdout(self, pid: int, data: bytes) -> None:
        """Output of a process this actor started (``theater_sdk.process``), in the mode it asked for."""

    def on_process_stderr(self, pid: int, data: bytes) -> None:
        """Error output of a process this actor started."""

    def on_process_exit(self, pid: int, code: int) -> None:
        """A process this actor started ended (``code`` is minus the signal when one ended it: -9 when killed)."""
    def on_ws_connect(self, connection: int, path: str, query: str | None) -> None:
        """A websocket connection opened on one of ``websocket_paths`` (``connection`` is unique per actor)."""

    def on_ws_message(self, connection: int, message: "str | bytes") -> "str | bytes | list[str | bytes] | None":
        """A websocket message (text as ``str``, binary as ``bytes``); what it returns is sent back on the same
        connection (``web.send`` and ``web.close`` reach any open connection)."""
        return None

    def on_ws_disconnect(self, connection: int) -> None:
        """A websocket connection ended (closed by either side, or idle)."""

    # What the SDK runs around the handlers.

    def _theater_init(self) -> None:
        """``init``, then serve the class's routes (``@route``) if it has any."""
        self.init()
        if web.routes(type(self)) or self.websocket_paths:
            web.serve(self, host=self.http_host, port=self.http_port, tls=self.http_tls)

    def _theater_middleware(self, request: "web.Request") -> "web.Request | None":
        """A request under the class's middleware (``@middleware``): the request to go on with, or None."""
        return web.run_middleware(self, request)

    def _theater_http(self, request: "web.Request") -> "web.Response":
        """An HTTP request to one of the routes."""
        return web.dispatch(self, request)


_registry: dict[str, type[Actor]] = {}


def run(actor_class: type[Actor]) -> type[Actor]:
    """Register ``actor_class`` as this component's actor; call it once, at the bottom of the actor module.

    Returns the class, so it can also be used as a decorator.

    Raises:
        TypeError: ``actor_class`` is not a subclass of ``Actor``.
        RuntimeError: another class was registered already.
    """
    if not (isinstance(actor_class, type) and issubclass(actor_class, Actor)):
        raise TypeError(f"run() takes a subclass of theater_sdk.Actor, got {actor_class!r}")
    current = _registry.get("actor")
    if current is not None and current is not actor_class:
        raise RuntimeError(f"run() was already called with {current.__name__}; a component has one actor class")
    _registry["actor"] = actor_class
    return actor_class


def registered() -> type[Actor]:
    """The registered actor class.

    Raises:
        RuntimeError: ``run`` was never called.
    """
    actor_class = _registry.get("actor")
    if actor_class is None:
        raise RuntimeError("no actor class registered: call theater_sdk.run(YourActor) at the end of your module")
    return actor_class
