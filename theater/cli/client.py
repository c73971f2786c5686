"""The CLI's client of a running ``theater server``: JSON calls, raw blobs, and live streams (SSE), over urllib.

Errors from the server become ``RemoteError`` (printed as ``ErrorName: message``); a server that is not there
becomes ``ServerNotRunning``, with the hint to start one. Bodies always say their type (``application/json``, or
``application/octet-stream`` for raw bytes): the server refuses a body of any other type, as a web page sends them.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from typing import Any

import click

DEFAULT_ADDRESS = "127.0.0.1:9000"
TIMEOUT_S = 120.0
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
STREAM_TIMEOUT_S = 60.0  # the server pings every 15 s; longer silence means it is gone


class RemoteError(click.ClickException):
    """The server answered with an error: ``name`` and ``message`` are its ``error`` and ``message``."""

    def __init__(self, name: str, message: str, status: int) -> None:
        super().__init__(message)
        self.name = name
        self.status = status

    def show(self, file: Any = None) -> None:
        click.echo(f"{self.name}: {self.message}", err=True)


class ServerNotRunning(RemoteError):
    """Nothing answers at the address."""

    def __init__(self, address: str) -> None:
        super().__init__("ServerNotRunning", f"server not running at {address}, start it with `theater server`", 0)


def encode_bytes(value: bytes) -> dict[str, str]:
    """A byte payload for a request."""
    return {"base64": base64.b64encode(value).decode("ascii")}


def decode_bytes(value: dict[str, Any] | None) -> bytes | None:
    """A byte payload from a response."""
    return None if value is None else base64.b64decode(value["base64"])


class ApiClient:
    """Calls the management API at ``address`` (``HOST:PORT`` or a URL), with the bearer token if given."""

    def __init__(self, address: str, token: str | None = None, timeout: float = TIMEOUT_S) -> None:
        self.address = address
        self.base = address.rstrip("/") if "://" in address else f"http://{address}"
        self.token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        pairs = [(k, v) for k, v in (query or {}).items() if v is not None and v is not False]
        flat = [(k, x) for k, v in pairs for x in (v if isinstance(v, (list, tuple)) else [v])]
        # An argument that is not valid UTF-8 (surrogate-escaped argv) is sent as the bytes it was given.
        text = urllib.parse.urlencode([(k, "1" if x is True else str(x)) for k, x in flat], errors="surrogateescape")
        return self.base + path + (f"?{text}" if text else "")

    def _open(self, method: str, path: str, *, query: dict[str, Any] | None = None, data: bytes | None = None,
              content_type: str | None = None, timeout: float | None = None,
              headers: dict[str, str] | None = None) -> HTTPResponse:
        request = urllib.request.Request(self.url(path, query), data=data, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            return self._opener.open(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            raise _remote_error(exc) from None
        except (urllib.error.URLError, ConnectionError, HTTPException, socket.timeout) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (ConnectionRefusedError, socket.gaierror, FileNotFoundError)):
                raise ServerNotRunning(self.address) from None
            raise RemoteError("ConnectionError", f"talking to the server at {self.address}: {reason}", 0) from None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
             query: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """One JSON call; returns the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        with self._open(method, path, query=query, data=data, content_type=JSON_TYPE if data is not None else None,
                        timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, query=query)

    def post(self, path: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
        return self.call("POST", path, body or {}, query=query)

    def raw(self, method: str, path: str, data: bytes | None = None, **query: Any) -> bytes:
        """A call whose body and answer are raw bytes (blobs)."""
        content_type = BINARY_TYPE if data is not None else None
        with self._open(method, path, query=query, data=data, content_type=content_type) as response:
            return response.read()

    def stream(self, path: str, **query: Any) -> Iterator[tuple[str, Any]]:
        """The (kind, payload) messages of a Server-Sent Events stream, until the server ends it."""
        response = self._open("GET", path, query=query, timeout=STREAM_TIMEOUT_S,
                              headers={"Accept": "text/event-stream"})
        with response:
            yield from parse_sse(response)


def parse_sse(lines: Any) -> Iterator[tuple[str, Any]]:
    """(event, JSON data) pairs from an iterable of SSE lines (bytes)."""
    kind, data = "message", list[str]()
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)


def _remote_error(exc: urllib.error.HTTPError) -> RemoteError:
    try:
        body = json.loads(exc.read())
        return RemoteError(str(body["error"]), str(body["message"]), exc.code)
    except (ValueError, KeyError, TypeError):
        return RemoteError(f"HTTP{exc.code}", exc.reason or "error", exc.code)


def token_for(home: Path | None) -> str | None:
    """The token the CLI sends: ``$THEATER_TOKEN``, else the first line of ``<home>/token``, else none."""
    token = os.environ.get("THEATER_TOKEN", "").strip()
    if token:
        return token
    if home is not None and (home / "token").is_file():
        lines = (home / "token").read_text(encoding="utf-8").splitlines()
        return (lines[0].strip() if lines else "") or None
    return None


def client_for(ctx: click.Context | None = None, timeout: float = TIMEOUT_S) -> ApiClient:
    """The client for the current command: the root's ``--address`` and ``--home`` decide where and how."""
    root = (ctx or click.get_current_context()).find_root()
    address = root.params.get("address") or DEFAULT_ADDRESS
    home = root.params.get("home")
    home_path = Path(home).expanduser() if home else Path("~/.theater").expanduser()
    return ApiClient(address, token_for(home_path), timeout=timeout)


__all__ = [
    "DEFAULT_ADDRESS",
    "ApiClient",
    "RemoteError",
    "ServerNotRunning",
    "client_for",
    "decode_bytes",
    "encode_bytes",
    "parse_sse",
    "token_for",
]
