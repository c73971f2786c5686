"""Bearer-token authentication: when the server has a token, every request must carry it.

The CLI decides the token (``$THEATER_TOKEN``, else ``<home>/token``) and passes it in ``ServerConfig``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from theater.server.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_middleware(token: str | None, admits: Callable[[web.Request], bool] | None = None) -> Middleware:
    """A middleware that refuses (401) every request without ``Authorization: Bearer <token>``, except those
    ``admits`` lets pass (the web explorer's login page and session cookie: ``theater.server.explorer.session``)."""
    expected = None if token is None else token.encode("utf-8")

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is not None:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if (scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), expected)) \
                    and not (admits is not None and admits(request)):
                raise ApiError(401, "Unauthorized", "this server needs 'Authorization: Bearer <token>'")
        return await handler(request)

    return check


__all__ = ["Handler", "token_middleware"]
