"""The explorer's login on a token-protected server: the token once, then a session cookie that the API and the
event streams accept, and that no other site can use."""

from __future__ import annotations

import http.cookies
import time
import urllib.request
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from tests.components import wat
from tests.explorer.conftest import TOKEN
from tests.server._harness import Http, ServerProcess, start_body
from theater.server.errors import ApiError
from theater.server.explorer.session import COOKIE, FAILURE_WINDOW_S, MAX_FAILURES, SESSIONS, Sessions, login


def log_in(server, token=TOKEN):
    """POST the token; the reply and the session cookie's morsel (None when none was set)."""
    reply = server.http().post("/v1/explorer/login", {"token": token})
    raw = reply.headers.get("Set-Cookie")
    if raw is None:
        return reply, None
    jar = http.cookies.SimpleCookie()
    jar.load(raw)
    return reply, jar[COOKIE]


def with_cookie(server, morsel, csrf=None):
    headers = {"Cookie": f"{COOKIE}={morsel.value}"}
    if csrf is not None:
        headers["X-Theater-CSRF"] = csrf
    return headers


def test_without_a_session_the_explorer_sends_the_login_page(token_server):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(token_server.url + "/", timeout=30) as reply:  # follows the redirect
        assert reply.url.endswith("/login")
        page = reply.read().decode()
    assert 'id="login-form"' in page and 'type="password"' in page
    assert token_server.http().get("/v1/actors").status == 401


def test_a_wrong_token_is_refused_and_sets_no_cookie(token_server):
    reply, morsel = log_in(token_server, "not-the-token")
    assert (reply.status, reply.json["error"], morsel) == (401, "Unauthorized", None)
    reply, morsel = log_in(token_server, TOKEN + "x")
    assert (reply.status, morsel) == (401, None)


def test_the_session_cookie_is_httponly_strict_and_not_secure_over_loopback_http(token_server):
    reply, morsel = log_in(token_server)
    assert reply.status == 200 and morsel is not None
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert not morsel["secure"]  # plain http on loopback: a browser would not keep a Secure cookie
    assert TOKEN not in morsel.value and len(reply.json["csrf"]) >= 32


def test_the_session_cookie_opens_the_api_and_the_event_streams(token_server):
    _, morsel = log_in(token_server)
    bearer = token_server.http(TOKEN)
    actor = bearer.ok("POST", "/v1/actors", start_body("counter", wat.counter_actor()), status=201)["id"]
    browser = Http(token_server.url)
    page = browser.get("/", headers=with_cookie(token_server, morsel))
    assert page.status == 200 and b'src="/explorer/app.js"' in page.body
    assert browser.get(f"/v1/actors/{actor}", headers=with_cookie(token_server, morsel)).status == 200
    request = browser._request("GET", f"/v1/actors/{actor}/subscribe?history=1&limit=2", None, None,
                               {"Accept": "text/event-stream", **with_cookie(token_server, morsel)})
    with browser._opener.open(request, timeout=30) as stream:
        head = b"".join(stream.readline() for _ in range(3))
    assert b"event: ready" in head


def test_a_cross_site_post_with_the_cookie_is_refused(token_server):
    reply, morsel = log_in(token_server)
    headers = with_cookie(token_server, morsel, reply.json["csrf"])
    browser = Http(token_server.url)
    evil = browser.post("/v1/audit/checkpoints", headers={**headers, "Origin": "http://evil.example"})
    assert (evil.status, evil.json["error"]) == (403, "CrossOrigin")
    site = browser.post("/v1/audit/checkpoints", headers={**headers, "Sec-Fetch-Site": "cross-site"})
    assert (site.status, site.json["error"]) == (403, "CrossOrigin")


def test_a_write_with_the_cookie_but_without_the_csrf_token_is_refused(token_server):
    reply, morsel = log_in(token_server)
    browser = Http(token_server.url)
    bare = browser.post("/v1/audit/checkpoints", headers=with_cookie(token_server, morsel))
    assert (bare.status, bare.json["error"]) == (403, "CsrfRefused")
    wrong = browser.post("/v1/audit/checkpoints", headers=with_cookie(token_server, morsel, "forged"))
    assert (wrong.status, wrong.json["error"]) == (403, "CsrfRefused")
    right = browser.post("/v1/audit/checkpoints", headers=with_cookie(token_server, morsel, reply.json["csrf"]))
    assert right.status == 201, right.body


def test_a_forged_or_logged_out_session_cookie_is_refused(token_server):
    browser = Http(token_server.url)
    forged = browser.get("/v1/actors", headers={"Cookie": f"{COOKIE}=made-up"})
    assert forged.status == 401
    reply, morsel = log_in(token_server)
    headers = with_cookie(token_server, morsel)
    assert browser.get("/v1/actors", headers=headers).status == 200
    assert browser.post("/v1/explorer/logout", headers=headers).status == 200
    assert browser.get("/v1/actors", headers=headers).status == 401
    assert browser.get("/", headers=headers).status == 200  # the redirect, followed: the login page
    session = browser.get("/v1/explorer/session", headers=headers).json
    assert session == {"auth": True, "session": False, "csrf": None, "cookie": None}


def test_the_token_itself_still_works_without_a_cookie(token_server):
    assert token_server.http(TOKEN).get("/v1/actors").status == 200


def test_a_login_over_plain_http_from_another_machine_is_refused():
    app = mock.MagicMock()
    app.__getitem__.side_effect = lambda key: Sessions() if key is SESSIONS else None
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: ("203.0.113.9", 5555) if name == "peername" \
        else default
    request = make_mocked_request("POST", "/v1/explorer/login", app=app, transport=transport)
    with pytest.raises(ApiError) as refused:
        login(request, TOKEN, TOKEN)
    assert (refused.value.status, refused.value.name) == (403, "InsecureLogin")


def test_sessions_expire_and_are_bounded():
    sessions = Sessions()
    sid, csrf = sessions.open()
    assert sessions.csrf(sid) == csrf
    with mock.patch("theater.server.explorer.session.time.monotonic", return_value=10**12):
        assert sessions.csrf(sid) is None
    with mock.patch("theater.server.explorer.session.MAX_SESSIONS", 3):
        opened = [sessions.open()[0] for _ in range(5)]
        assert [sessions.csrf(s) is not None for s in opened] == [False, False, True, True, True]


def test_guessing_the_token_is_refused_after_too_many_wrong_ones(tmp_path):
    server = ServerProcess(tmp_path / "home", env={"THEATER_TOKEN": TOKEN}).start()
    try:
        for _ in range(MAX_FAILURES):
            assert log_in(server, "guess")[0].status == 401
        reply, morsel = log_in(server)  # even the right token, until the window clears
        assert (reply.status, reply.json["error"], morsel) == (429, "TooManyLogins", None)
        assert server.http(TOKEN).get("/v1/actors").status == 200  # the API's bearer token is not affected
    finally:
        assert server.stop() == 0, server.stderr()


def test_the_login_throttle_clears_after_its_window():
    sessions = Sessions()
    for _ in range(MAX_FAILURES):
        sessions.failed()
    assert sessions.throttled() > 0
    later = time.monotonic() + FAILURE_WINDOW_S + 1
    with mock.patch("theater.server.explorer.session.time.monotonic", return_value=later):
        assert sessions.throttled() == 0


def test_a_cross_site_websocket_with_the_cookie_is_refused(token_server):
    _, morsel = log_in(token_server)
    browser = Http(token_server.url)
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example",
               **with_cookie(token_server, morsel)}
    reply = browser.get("/v1/explorer/session", headers=upgrade)
    assert (reply.status, reply.json["error"]) == (403, "CrossOrigin")
    reply = browser.get("/v1/audit/checkpoints", headers=upgrade)
    assert (reply.status, reply.json["error"]) == (403, "CrossOrigin")
