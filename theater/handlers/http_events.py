"""One-line readings of the HTTP events of a chain, for ``theater events`` and ``theater replay``: the method, the
path, the status and the sizes, read from the recorded values (no handler runs).

- ``wasm/call`` of ``http-handlers.handle-request`` (and ``handle-middleware``): ``GET /items/tea (12 bytes)``;
- ``wasm/result`` of ``handle-request``: ``-> 200 (16 bytes)``;
- ``http-client/send-http``: ``POST http://host/v1/chat -> 200 (512 bytes)`` or ``GET http://host/ -> err: ...``;
- websocket calls: ``ws connect 3 /chat``, ``ws message 3 (text, 5 bytes)``, ``ws disconnect 3``;
- ``actor/http-timeout``: ``GET /slow -> 504 after 300 ms (dropped)``.
"""

from __future__ import annotations

from typing import Any

from replay.schema import ACTOR_HTTP_TIMEOUT

_HANDLERS = "theater:simple/http-handlers."
SEND_HTTP = "theater:simple/http-client/send-http"


def http_summary(event_type: str, data: Any) -> str | None:
    """A one-line reading of an HTTP event, or None for any other event (or a value not of the recorded shape)."""
    if not isinstance(data, dict):
        return None
    try:
        if event_type == SEND_HTTP:
            return _client(data)
        if event_type == ACTOR_HTTP_TIMEOUT:
            dropped = " (dropped: it never ran)" if data.get("dropped") else ""
            return f"{data['method']} {data['uri']} -> 504 after {data['timeout_ms']} ms{dropped}"
        export = data.get("export")
        if not isinstance(export, str) or not export.startswith(_HANDLERS):
            return None
        function = export[len(_HANDLERS):]
        if event_type == "wasm/call":
            return _call(function, data["params"])
        if event_type == "wasm/result" and function == "handle-request":
            return "-> " + _response(data["output"][0])
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return None


def _call(function: str, params: list[Any]) -> str | None:
    if function == "handle-request":
        return _request(params[1])
    if function == "handle-middleware":
        return "middleware: " + _request(params[1])
    if function == "handle-websocket-connect":
        return f"ws connect {params[1]} {params[2]}"
    if function == "handle-websocket-message":
        message = params[2]
        text, data = message.get("text"), message.get("data")
        kind = "text" if text is not None else "binary"
        size = len(text["some"].encode("utf-8")) if text is not None else len(data["some"]) if data else 0
        return f"ws message {params[1]} ({kind}, {size} bytes)"
    if function == "handle-websocket-disconnect":
        return f"ws disconnect {params[1]}"
    return None


def _request(request: dict[str, Any]) -> str:
    return f"{request['method']} {request['uri']}{_size(request.get('body'))}"


def _response(response: Any) -> str:
    while isinstance(response, list):  # the response inside the result tuple
        response = response[0]
    return f"{response['status']}{_size(response.get('body'))}"


def _client(data: dict[str, Any]) -> str:
    asked = _request(data["params"][0])
    result = data.get("result")
    if not isinstance(result, dict):
        return asked
    if "err" in result:
        return f"{asked} -> err: {result['err']}"
    return f"{asked} -> {_response(result['ok'])}"


def _size(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("some"), (bytes, bytearray)):
        return ""
    return f" ({len(body['some'])} bytes)"


__all__ = ["SEND_HTTP", "http_summary"]
