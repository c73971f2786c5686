"""Browser protection: web pages the operator's browser visits must not drive the API.

A browser lets any page send "simple" requests (GET, and POST with a form or ``text/plain`` body) to any address,
including ``127.0.0.1``, without asking the server first; other requests need a CORS preflight, which this server
never grants. So every request is checked before anything else runs:

- ``Sec-Fetch-Site`` (sent by browsers): only ``same-origin`` or ``none`` (the user typed the URL) pass.
- ``Origin`` (sent by browsers on cross-origin and non-GET requests): when present it must be this server's own
  origin, ``http://<Host>``.
- ``Host``, on a server without a token: an IP address, ``localhost`` (or ``*.localhost``), or the host name the
  server was told to listen on, so a page that rebinds its own DNS name to 127.0.0.1 is still refused (its
  requests are "same-origin" to the browser, but carry the page's name as ``Host``).
- Content types of writes: ``application/json`` for every body but a blob upload or a bundle import, which take
  ``application/octet-stream``; a form or ``text/plain`` body is never accepted (a write without a body may omit
  the header).

Non-browser clients (the CLI, curl, scripts) send none of the browser headers and pass unchanged.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web
from aiohttp.typedefs import Middleware

from theater.server.auth import Handler
from theater.server.errors import ApiError

JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BINARY_UPLOADS = frozenset({("POST", "/v1/blobs"), ("POST", "/v1/chains/import")})
SAFE_FETCH_SITES = frozenset({"same-origin", "none"})


def origin_middleware(*, check_host: bool, listen_host: str = "") -> Middleware:
    """A middleware that refuses cross-origin browser requests (403) and writes of the wrong content type (415).

    Args:
        check_host: also require a ``Host`` that no web page can rebind (for a server without a token).
        listen_host: the host the server listens on; its name is accepted as ``Host`` too.
    """

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if check_host:
            _check_host(request, listen_host)
        _check_fetch_site(request)
        _check_origin(request)
        if request.method in WRITE_METHODS:
            _check_content_type(request)
        return await handler(request)

    return check


def _check_fetch_site(request: web.Request) -> None:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in SAFE_FETCH_SITES:
        raise ApiError(403, "CrossOrigin", f"refused a browser request from another site (Sec-Fetch-Site: {site}); "
                                           "this API answers its own origin and non-browser clients only")


def _check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return
    own = f"http://{request.headers.get('Host', '')}".lower()
    if origin.strip().lower() != own:
        raise ApiError(403, "CrossOrigin", f"refused a browser request from the origin {origin!r}; this API answers "
                                           "its own origin and non-browser clients only")


def _check_host(request: web.Request, listen_host: str) -> None:
    host = request.headers.get("Host")
    if host is not None and not unrebindable_host(host, listen_host):
        raise ApiError(403, "HostNotAllowed", f"refused a request for the host {host!r}: a server without a token "
                                              "answers requests for an IP address or localhost only")


def unrebindable_host(host: str, listen_host: str = "") -> bool:
    """True when a ``Host`` header value (``name[:port]``, ``[v6]:port``) cannot come from a DNS-rebinding page.

    That is an IP address, ``localhost`` or a name under ``.localhost`` (browsers resolve those to loopback
    themselves), or ``listen_host``, the name the operator told the server to listen on.
    """
    host = host.strip().lower()
    if host.startswith("["):
        name, sep, rest = host[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return False
    else:
        name, sep, port = host.partition(":")
        if sep and not port.isdigit():
            return False
    if name == "localhost" or name.endswith(".localhost") or (listen_host and name == listen_host.lower()):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _check_content_type(request: web.Request) -> None:
    header = request.headers.get("Content-Type")
    media = None if header is None else header.split(";", 1)[0].strip().lower()
    if (request.method, request.path) in BINARY_UPLOADS:
        if media != BINARY_TYPE:
            raise _unsupported(request, BINARY_TYPE, header)
        return
    if media is None and not request.body_exists:
        return
    if media != JSON_TYPE:
        raise _unsupported(request, JSON_TYPE, header)


def _unsupported(request: web.Request, expected: str, given: str | None) -> ApiError:
    shown = "no Content-Type" if given is None else f"Content-Type {given!r}"
    return ApiError(415, "UnsupportedMediaType",
                    f"{request.method} {request.path} takes a body of Content-Type {expected}, not {shown}")


__all__ = ["origin_middleware", "unrebindable_host"]
