"""The wire of the management API: reading request bodies and query strings, and writing JSON answers.

A byte payload is sent as ``{"text": "hello"}`` (its UTF-8 bytes) or ``{"base64": "aGVsbG8="}``; every answer's
JSON form (payloads, events, reports) is ``theater.porcelain.forms``'s, the one the CLI's ``--json`` prints.
An actor id in a path may be a unique prefix of a recorded actor's id.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from typing import Any

from aiohttp import web

from store import Store
from theater.porcelain.actors import resolve_actor
from theater.server.errors import ApiError, bad_request

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_QUERY_INT = 2**64 - 2  # sequence numbers are 8-byte unsigned keys; ``to`` may have one added
_MISSING: Any = object()


def parse_bytes(value: Any, field: str) -> bytes:
    """A byte payload from a request: ``{"text": str}`` or ``{"base64": str}``.

    Raises:
        ApiError: 400 when it is neither.
    """
    if isinstance(value, dict) and len(value) == 1:
        if isinstance(value.get("text"), str):
            return value["text"].encode("utf-8")
        if isinstance(value.get("base64"), str):
            try:
                return base64.b64decode(value["base64"], validate=True)
            except (binascii.Error, ValueError):
                raise bad_request(f"{field}.base64 is not valid base64") from None
    raise bad_request(f'{field}: expected {{"text": "..."}} or {{"base64": "..."}}')


def dumps(value: Any) -> str:
    """Compact JSON text."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_response(value: Any, status: int = 200) -> web.Response:
    """A JSON answer. Text that is not valid Unicode (a lone surrogate from a client's input, quoted in an error
    message) is written as its JSON escape ``\\udcff``, never an encoding error."""
    body = dumps(value).encode("utf-8", "backslashreplace")  # only string contents can hold a surrogate
    return web.Response(body=body, status=status, content_type="application/json")


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object (an empty body is ``{}``).

    Raises:
        ApiError: 400 when the body is not a JSON object; 413 (from aiohttp) when it is over the size limit.
    """
    raw = await request.read()
    if not raw:
        return {}
    try:
        text = raw.decode("utf-8")
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}", "InvalidJSON") from None
    except RecursionError:
        raise bad_request("the body is not valid JSON: it is nested too deeply", "InvalidJSON") from None
    if not isinstance(value, dict):
        raise bad_request("the body must be a JSON object", "InvalidJSON")
    if _SURROGATE_ESCAPE.search(text) and not _is_text(value):
        raise bad_request("the body is not valid JSON text: a string in it holds a lone surrogate "
                          "(an unpaired \\ud800-\\udfff escape)", "InvalidJSON")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _is_text(value: Any) -> bool:
    """True when every string in ``value`` (keys too) is valid Unicode: no lone surrogate, which JSON's
    ``\\udcff`` escape can make but no text encoding can carry."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    """``body[name]``, checked to be of ``kind`` (None counts as absent).

    Raises:
        ApiError: 400 when it is missing (and has no default) or of the wrong type.
    """
    value = body.get(name)
    if value is None:
        if default is _MISSING:
            raise bad_request(f"the field {name!r} is required")
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise bad_request(f"the field {name!r} must be of type {names}")
    return value


def query_int(request: web.Request, name: str, default: int | None = None, *, minimum: int = 0,
              maximum: int = MAX_QUERY_INT) -> int | None:
    """An integer query parameter.

    Raises:
        ApiError: 400 when it is not an integer between ``minimum`` and ``maximum`` (by default the largest
            sequence number, so a position never overflows a stored key).
    """
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"the query parameter {name!r} must be an integer, got {text!r}") from None
    if value < minimum:
        raise bad_request(f"the query parameter {name!r} must be >= {minimum}, got {value}")
    if value > maximum:
        raise bad_request(f"the query parameter {name!r} must be <= {maximum}, got {text[:40]!r}")
    return value


def query_float(request: web.Request, name: str, default: float, *, maximum: float) -> float:
    """A number of seconds from the query string, between 0 and ``maximum``."""
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise bad_request(f"the query parameter {name!r} must be a number, got {text!r}") from None
    if not 0 <= value <= maximum:
        raise bad_request(f"the query parameter {name!r} must be between 0 and {maximum}, got {value}")
    return value


def query_flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter: ``1``, ``true`` or ``yes`` (or present without a value) is true."""
    text = request.query.get(name)
    return text is not None and text.lower() in ("", "1", "true", "yes")


def actor_id(request: web.Request, store: Store) -> uuid.UUID:
    """The ``{id}`` of the path as an actor id: a UUID, or a unique prefix of a recorded actor's id.

    Raises:
        InvalidInputError: neither (answered with 400).
        ActorNotFound, AmbiguousPrefixError: a prefix that names no recorded actor (404), or several (400).
    """
    return resolve_actor(store, request.match_info["id"])


def check_timeout(value: Any, default: float, maximum: float = 300.0) -> float:
    """A client-given timeout in seconds, between 0 and ``maximum``."""
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= maximum:
        raise ApiError(400, "InvalidRequest", f"timeout must be a number of seconds in (0, {maximum}]")
    return float(value)


__all__ = [
    "MAX_BODY_BYTES",
    "actor_id",
    "check_timeout",
    "dumps",
    "field",
    "json_response",
    "parse_bytes",
    "query_flag",
    "query_float",
    "query_int",
    "read_json",
]
