"""The ``http-client`` interface (handler ``http-client``): HTTP requests from an actor, in the style of ``requests``.

    from theater_sdk import http

    response = http.get("https://api.example.com/items", params={"q": "tea"})
    response.raise_for_status()
    items = response.json()
    http.post("https://api.example.com/items", json={"name": "tea"})

Every request and its whole response are recorded in the actor's chain, and replay answers from the record. What
an actor may reach is its manifest's business (``allowed_urls``, ``allow_loopback``, ... in the handler's config);
a refused request, a network error, a timeout or a body over the limit raises ``HttpError``. The body is what the
server sent (not decompressed); ``text`` decodes it with the charset of ``Content-Type`` (UTF-8 by default).
"""

import json as _json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from ._host import HostError, binding, call

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class HttpError(HostError):
    """A request failed: refused by the actor's grants, a network error, a timeout, a body over the limit, or (from
    ``Response.raise_for_status``) an error status. ``status`` is set for the last."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__("http-client.send-http", message)
        self.status = status


class Response:
    """An HTTP response.

    Attributes:
        status: the status code. headers: the headers in the order sent (``header(name)`` finds one).
        content: the body bytes (empty when there is none). url: the URL asked for.
    """

    def __init__(self, url: str, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
        self.url = url
        self.status = status
        self.headers = headers
        self.content = content

    @property
    def status_code(self) -> int:
        """``status``, by the name ``requests`` uses."""
        return self.status

    @property
    def ok(self) -> bool:
        """True for a status below 400."""
        return self.status < 400

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first header called ``name`` (any case), or ``default``."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return default

    @property
    def text(self) -> str:
        """The body decoded with the charset of ``Content-Type`` (UTF-8 when none is given)."""
        charset = "utf-8"
        for part in (self.header("Content-Type") or "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: it is not JSON.
        """
        return _json.loads(self.content)

    def raise_for_status(self) -> None:
        """Raise ``HttpError`` for a status of 400 or more."""
        if self.status >= 400:
            raise HttpError(f"{self.url} answered with status {self.status}", self.status)

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.content)} bytes>"


def request(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Headers | None = None,
    data: bytes | str | None = None,
    json: Any = None,
) -> Response:
    """Send an HTTP request and return the whole response.

    Args:
        method: ``GET``, ``POST``, ...
        url: an absolute ``http://`` or ``https://`` URL.
        params: added to the URL's query string.
        headers: a mapping or (name, value) pairs.
        data: the body (``str`` is sent as UTF-8).
        json: a value sent as a JSON body (sets ``Content-Type: application/json``).

    Raises:
        HttpError: refused, a network error, a timeout, or a body over the actor's limit (the message says which).
        CapabilityError: the actor's world does not import ``theater:simple/http-client``.
    """
    if params:
        url = url + ("&" if "?" in url else "?") + urlencode(params, doseq=True)
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    body: bytes | None
    if json is not None:
        if data is not None:
            raise ValueError("give data or json, not both")
        body = _json.dumps(json).encode("utf-8")
        if not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("Content-Type", "application/json"))
    elif isinstance(data, str):
        body = data.encode("utf-8")
    else:
        body = None if data is None else bytes(data)
    binding("http_client")  # first, so a world without it names the interface to import
    types = binding("http_types")
    wire = types.HttpRequest(method=method.upper(), uri=url, headers=[(str(k), str(v)) for k, v in pairs],
                             body=body)
    try:
        answer = call("http_client", "send_http", wire)
    except HostError as exc:
        raise HttpError(exc.message) from None
    return Response(url, answer.status, [(k, v) for k, v in answer.headers], answer.body or b"")


def get(url: str, **options: Any) -> Response:
    """``request("GET", url, ...)``."""
    return request("GET", url, **options)


def post(url: str, **options: Any) -> Response:
    """``request("POST", url, ...)``."""
    return request("POST", url, **options)


def put(url: str, **options: Any) -> Response:
    """``request("PUT", url, ...)``."""
    return request("PUT", url, **options)


def patch(url: str, **options: Any) -> Response:
    """``request("PATCH", url, ...)``."""
    return request("PATCH", url, **options)


def delete(url: str, **options: Any) -> Response:
    """``request("DELETE", url, ...)``."""
    return request("DELETE", url, **options)


def head(url: str, **options: Any) -> Response:
    """``request("HEAD", url, ...)``."""
    return request("HEAD", url, **options)


__all__ = ["HttpError", "Response", "delete", "get", "head", "patch", "post", "put", "request"]
