"""The explorer's login: the API's token, given once on a login page, becomes a session cookie.

A browser cannot add ``Authorization: Bearer`` to the page loads, ``EventSource`` streams and blob links the
explorer makes, so on a server with a token the login page posts the token (JSON, from the page's own script) and
the server answers with a session cookie:

- ``HttpOnly`` (no script, the explorer's or an injected one, reads it), ``SameSite=Strict`` (no other site's page
  makes the browser send it), ``Path=/``, expiring after ``SESSION_S``;
- ``Secure`` unless the request came over plain http from a loopback address (a browser on the server's own
  machine: a browser keeps no ``Secure`` cookie it was given over http, and on loopback nothing crosses a
  network). A login over plain http from another machine is refused: the cookie would cross the network in
  clear, and the browser would drop it anyway. Behind a TLS proxy on the same machine the cookie is not marked
  ``Secure`` (the server sees plain http from loopback).

The session id is random and held only in the server's memory (a restart logs everyone out); it is not the
token, so it never lets anyone learn the token. A request carrying a live session cookie passes the token check
(``admits``, given to ``theater.server.auth.token_middleware``). Writes with the cookie (replay to here) must also
carry the session's CSRF token in the ``X-Theater-CSRF`` header, which only the explorer's own pages can read
(``GET /v1/explorer/session``), on top of the origin checks every request goes through
(``theater.server.origin``).
"""

from __future__ import annotations

import collections
import hmac
import math
import ipaddress
import secrets
import time

from aiohttp import web

from theater.server.errors import ApiError

COOKIE = "theater_session"
CSRF_HEADER = "X-Theater-CSRF"
SESSION_S = 12 * 3600
MAX_SESSIONS = 10_000  # the oldest is dropped beyond this: a flood of logins cannot grow the server's memory
MAX_FAILURES = 20  # wrong tokens accepted per FAILURE_WINDOW_S; then every login waits (429) until the window clears
FAILURE_WINDOW_S = 60.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STATIC_PREFIX = "/explorer/"
PUBLIC = frozenset({("GET", "/"), ("HEAD", "/"), ("GET", "/login"), ("HEAD", "/login"),
                    ("POST", "/v1/explorer/login"), ("POST", "/v1/explorer/logout"), ("GET", "/v1/explorer/session")})


class Sessions:
    """The live sessions: id -> (expiry on the monotonic clock, CSRF token)."""

    def __init__(self) -> None:
        self._live: dict[str, tuple[float, str]] = {}
        self._failures: collections.deque[float] = collections.deque()

    def failed(self) -> None:
        """Count a login with a wrong token."""
        self._failures.append(time.monotonic())

    def throttled(self) -> float:
        """Seconds until the next login is taken (0: now): more than ``MAX_FAILURES`` wrong tokens within
        ``FAILURE_WINDOW_S`` close the login, for everyone, until the oldest of them is that old."""
        now = time.monotonic()
        while self._failures and self._failures[0] <= now - FAILURE_WINDOW_S:
            self._failures.popleft()
        if len(self._failures) < MAX_FAILURES:
            return 0.0
        return self._failures[0] + FAILURE_WINDOW_S - now

    def open(self) -> tuple[str, str]:
        """A new session: its id (the cookie's value) and its CSRF token."""
        while len(self._live) >= MAX_SESSIONS:
            self._live.pop(next(iter(self._live)))
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._live[sid] = (time.monotonic() + SESSION_S, csrf)
        return sid, csrf

    def csrf(self, sid: str | None) -> str | None:
        """The CSRF token of a live session, None when ``sid`` names none (or it expired)."""
        if not sid:
            return None
        found = self._live.get(sid)
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self._live[sid]
            return None
        return found[1]

    def close(self, sid: str | None) -> None:
        """End a session (logout)."""
        if sid:
            self._live.pop(sid, None)


SESSIONS: web.AppKey[Sessions] = web.AppKey("theater.explorer.sessions", Sessions)


def session_csrf(request: web.Request) -> str | None:
    """The CSRF token of the request's session cookie, or None when it carries no live session."""
    return request.app[SESSIONS].csrf(request.cookies.get(COOKIE))


def admits(request: web.Request) -> bool:
    """True when a request without the bearer token may pass the token check: the login page, the explorer's
    static files and its page (which redirects to the login without a session), and requests with a live session
    cookie (writes only with the session's CSRF token).

    Raises:
        ApiError: 403 ``CsrfRefused``: a write with the cookie but without the session's CSRF token.
    """
    if (request.method, request.path) in PUBLIC:
        return True
    if request.method in SAFE_METHODS and request.path.startswith(STATIC_PREFIX):
        return True
    csrf = session_csrf(request)
    if csrf is None:
        return False
    if request.method not in SAFE_METHODS and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, "").encode(), csrf.encode()):
        raise ApiError(403, "CsrfRefused", f"a write with the explorer's session cookie must carry the session's "
                                           f"{CSRF_HEADER} header (from GET /v1/explorer/session)")
    return True


def loopback_peer(request: web.Request) -> bool:
    """True when the request came from this machine (the peer's address is a loopback address)."""
    try:
        return ipaddress.ip_address((request.remote or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def login(request: web.Request, given: str, token: str | None) -> web.Response:
    """Check ``given`` against the server's token and answer with a new session's cookie and CSRF token.

    Raises:
        ApiError: 401 ``Unauthorized`` when the token is wrong; 429 ``TooManyLogins`` after too many wrong ones
            (``Sessions.throttled``); 403 ``InsecureLogin`` over plain http from another machine; 400 when the
            server has no token (there is nothing to log in to).
    """
    if token is None:
        raise ApiError(400, "NoLogin", "this server has no token: the explorer needs no login")
    sessions = request.app[SESSIONS]
    wait = sessions.throttled()
    if wait > 0:
        raise ApiError(429, "TooManyLogins", f"more than {MAX_FAILURES} wrong tokens in {FAILURE_WINDOW_S:g} s: "
                                             f"logins are closed for {math.ceil(wait)} s")
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8")):
        sessions.failed()
        raise ApiError(401, "Unauthorized", "wrong token")
    secure = request.secure
    if not secure and not loopback_peer(request):
        raise ApiError(403, "InsecureLogin", "log in over https, or from the server's own machine: over plain http "
                                             "the session cookie would cross the network in clear")
    sid, csrf = sessions.open()
    response = web.json_response({"csrf": csrf, "expires_s": SESSION_S})
    response.set_cookie(COOKIE, sid, max_age=SESSION_S, path="/", httponly=True, samesite="Strict",
                        secure=secure)
    return response


def logout(request: web.Request) -> web.Response:
    """End the request's session and clear its cookie."""
    request.app[SESSIONS].close(request.cookies.get(COOKIE))
    response = web.json_response({"logged_out": True})
    response.del_cookie(COOKIE, path="/")
    return response


__all__ = ["COOKIE", "CSRF_HEADER", "SESSIONS", "Sessions", "admits", "login", "logout", "session_csrf"]
