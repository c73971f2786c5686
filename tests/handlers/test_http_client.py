"""The ``http-client`` handler against real servers on 127.0.0.1: what it refuses (and never sends), what it answers,
and how its config is checked. The actor is a stand-in with just what ``theater.host.ActorHost`` promises that the
handler uses; tests/handlers/test_http_actor.py runs a real component through it and replays the chain."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from theater import netloop
from theater.errors import ManifestError
from theater.handlers import IMPLEMENTED
from theater.handlers import http_client
from theater.handlers.http_client import Allowances, HttpClientHandler, address_kind
from tests.handlers._servers import MIB, TestServer, echoed, pattern, self_signed

LOCAL = {"allow_loopback": ["127.0.0.1"]}


class FakeStore:
    """Stands for the home's store: the key of the runtime's network loop."""


class FakeActor:
    """What the handler uses of an actor: its store (to find the runtime's loop), source, stop and wait."""

    def __init__(self) -> None:
        self.store = FakeStore()
        self.source = "fake.toml"
        self.stop_requested = threading.Event()
        self._wake: threading.Event | None = None

    def wait_for(self, future: Future[Any], timeout: float) -> bool:
        wake = threading.Event()
        future.add_done_callback(lambda _: wake.set())
        self._wake = wake
        if not self.stop_requested.is_set():
            wake.wait(timeout)
        return future.done()

    def stop(self) -> None:
        self.stop_requested.set()
        if self._wake is not None:
            self._wake.set()


@pytest.fixture
def actor() -> Iterator[FakeActor]:
    fake = FakeActor()
    yield fake
    netloop.close(fake.store)


@pytest.fixture
def server() -> Iterator[TestServer]:
    served = TestServer()
    yield served
    served.close()


def send(actor: FakeActor, config: dict[str, Any], uri: str, *, method: str = "GET",
         headers: list[list[str]] | None = None, body: bytes | None = None) -> dict[str, Any]:
    handler = HttpClientHandler(actor, config)  # type: ignore[arg-type]
    request = {"method": method, "uri": uri, "headers": headers or [],
               "body": None if body is None else {"some": body}}
    return handler.functions()["send-http"](request)


def call(handler: HttpClientHandler, uri: str, *, headers: list[list[str]] | None = None) -> dict[str, Any]:
    """One GET through ``handler`` (the same handler for several calls: what it keeps between them is used)."""
    return handler.send_http({"method": "GET", "uri": uri, "headers": headers or [], "body": None})


def err(result: dict[str, Any]) -> str:
    assert "err" in result, result
    return result["err"]


# What is answered.


def test_a_get_to_an_allowed_loopback_server_answers_status_headers_and_body(actor, server):
    result = send(actor, LOCAL, server.url("/hello"))
    response = result["ok"]
    assert response["status"] == 200
    assert response["body"] == {"some": b"hello from the test server"}
    assert ["X-Test", "yes"] in response["headers"]
    assert server.requests == ["GET /hello"]


def test_a_post_sends_the_actors_method_headers_and_body(actor, server):
    result = send(actor, LOCAL, server.url("/echo"), method="post", headers=[["X-Mine", "1"]], body=b"payload")
    seen = echoed(result)
    assert seen["method"] == "POST" and seen["body"] == "payload" and seen["headers"]["X-Mine"] == "1"
    assert "Accept-Encoding" not in seen["headers"]  # bodies are not decompressed, so none is asked for


def test_a_one_mib_body_comes_back_whole(actor, server):
    result = send(actor, LOCAL, server.url(f"/bytes?n={MIB}"))
    assert result["ok"]["body"]["some"] == pattern(MIB)


def test_a_redirect_is_followed_when_allowed_and_returned_when_not(actor, server):
    target = server.url("/hello")
    followed = send(actor, LOCAL, server.url(f"/redirect?to={target}"))
    assert followed["ok"]["status"] == 200
    kept = send(actor, {**LOCAL, "follow_redirects": False}, server.url(f"/redirect?to={target}"))
    assert kept["ok"]["status"] == 302
    assert server.requests == [f"GET /redirect?to={target}", "GET /hello", f"GET /redirect?to={target}"]


# What is refused, and never sent.


def test_loopback_without_an_allowance_is_refused_and_never_sent(actor, server):
    message = err(send(actor, {}, server.url("/hello")))
    assert message.startswith("refused: 127.0.0.1 is a loopback address") and "allow_loopback" in message
    assert server.requests == []


def test_a_name_resolving_to_loopback_is_refused_and_never_sent(actor, server):
    message = err(send(actor, LOCAL, f"http://localhost:{server.port}/hello"))
    assert message.startswith("refused: localhost is a loopback address") and "allow_loopback" in message
    assert server.requests == []


def test_a_loopback_address_in_another_spelling_is_refused(actor, server):
    for host in ("127.0.0.2", "[::ffff:127.0.0.1]", "2130706433", "127.1", "0.0.0.0"):
        result = send(actor, LOCAL, f"http://{host}:{server.port}/hello")
        assert "err" in result, (host, result)
    assert server.requests == []


def test_a_redirect_to_a_loopback_address_is_refused_and_never_sent(actor, server):
    # The first hop is allowed by name (127.0.0.1); the redirect goes to a name that resolves to loopback.
    target = f"http://localhost:{server.port}/hello"
    message = err(send(actor, LOCAL, server.url(f"/redirect?to={target}")))
    assert "refused: localhost is a loopback address" in message
    assert server.requests == [f"GET /redirect?to={target}"]


def test_a_redirect_to_a_private_or_metadata_address_is_refused(actor, server):
    for target in ("http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data/", "http://[fd00::1]/x"):
        message = err(send(actor, LOCAL, server.url(f"/redirect?to={target}")))
        assert message.startswith("refused: redirect to "), message
    assert len(server.requests) == 3  # only the first hops reached the server


def test_a_redirect_outside_the_allowed_urls_is_refused(actor, server):
    config = {**LOCAL, "allowed_urls": [f"http://127.0.0.1:{server.port}/redirect"]}
    message = err(send(actor, config, server.url(f"/redirect?to={server.url('/hello')}")))
    assert "is not in the allowed URLs" in message
    assert len(server.requests) == 1


def test_a_url_outside_the_allowed_urls_is_refused_and_never_sent(actor, server):
    config = {**LOCAL, "allowed_urls": [f"http://127.0.0.1:{server.port}/api/"]}
    for path in ("/hello", "/api", "/apiary", "/api/../hello"):
        message = err(send(actor, config, server.url(path)))
        assert message.startswith("refused: "), message
    assert server.requests == []
    assert send(actor, config, server.url("/api/items"))["ok"]["status"] == 200
    assert server.requests == ["GET /api/items"]


def test_a_host_pattern_allows_only_its_host(actor, server):
    assert "ok" in send(actor, {**LOCAL, "allowed_urls": ["127.0.0.1"]}, server.url("/hello"))
    message = err(send(actor, {**LOCAL, "allowed_urls": ["*.example.com"]}, server.url("/hello")))
    assert "is not in the allowed URLs (*.example.com)" in message
    assert server.requests == ["GET /hello"]


def test_a_scheme_other_than_http_is_refused(actor):
    for uri in ("file:///etc/passwd", "ftp://127.0.0.1/", "/relative"):
        assert "err" in send(actor, LOCAL, uri)


def test_header_injection_is_refused(actor, server):
    message = err(send(actor, LOCAL, server.url("/hello"), headers=[["X-A", "1\r\nX-B: 2"]]))
    assert message.startswith("invalid request: header 'X-A'")
    assert server.requests == []


# Network errors.


def test_a_body_over_the_limit_is_an_err(actor, server):
    config = {**LOCAL, "max_response_bytes": 1000}
    assert "larger than max_response_bytes (1000)" in err(send(actor, config, server.url("/bytes?n=1001")))
    assert "it was cut off" in err(send(actor, config, server.url("/stream?n=300000")))
    assert send(actor, config, server.url("/bytes?n=1000"))["ok"]["body"]["some"] == pattern(1000)


def test_a_server_sending_more_than_it_declares_passes_no_more_than_it_declared(actor):
    # A body with a declared length is read in one piece (the limit checked against the declaration): the bytes a
    # server sends beyond it must not come through, whatever the limit.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + b"x" * 100_000)

        answering = threading.Thread(target=serve)
        answering.start()
        port = listener.getsockname()[1]
        result = send(actor, {**LOCAL, "max_response_bytes": 1000}, f"http://127.0.0.1:{port}/")
        answering.join(10)
    # aiohttp takes the excess for a malformed next response and fails the exchange: an err, or the 10 bytes.
    assert result.get("ok", {}).get("body") == {"some": b"x" * 10} or "Bad status line" in result["err"], result


def test_a_server_that_does_not_answer_times_out(actor, server):
    message = err(send(actor, {**LOCAL, "timeout_ms": 200}, server.url("/hang")))
    assert message.startswith("timed out after 200 ms")


def test_a_refused_connection_is_an_err(actor):
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        message = err(send(actor, LOCAL, f"http://127.0.0.1:{port}/"))
    assert message.startswith(f"could not connect to http://127.0.0.1:{port}")


class FakeDns:
    """Stands for the system resolver (tests talk to 127.0.0.1 only): names map to addresses, others fail."""

    names: dict[str, list[str]] = {}

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        if host not in self.names:
            raise OSError(-2, "Name or service not known")
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST} for address in self.names[host]]

    async def close(self) -> None:
        pass


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    monkeypatch.setattr(FakeDns, "names", names)
    monkeypatch.setattr(http_client, "ThreadedResolver", FakeDns)
    return names


def test_an_unknown_name_is_a_dns_err(actor, dns):
    message = err(send(actor, {}, "http://no-such-host.invalid/"))
    assert message == "DNS lookup of no-such-host.invalid failed: Name or service not known"


def test_a_public_name_rebound_to_a_private_address_is_refused(actor, dns, server):
    dns["api.example.com"] = ["10.0.0.7"]
    dns["rebind.example.com"] = ["127.0.0.1"]
    message = err(send(actor, {"allow_loopback": ["127.0.0.1"]}, "http://api.example.com/"))
    assert message.startswith("refused: api.example.com is a private address (10.0.0.7)")
    message = err(send(actor, {"allow_loopback": ["127.0.0.1"]}, f"http://rebind.example.com:{server.port}/"))
    assert message.startswith("refused: rebind.example.com is a loopback address (127.0.0.1)")
    assert server.requests == []


def test_a_name_rebound_to_loopback_after_a_cached_check_is_refused(actor, dns, server):
    # The handler keeps each URL's verdict between calls; the address a name resolves to is checked on every lookup,
    # so a kept verdict on the URL never lets a name rebound to loopback through.
    handler = HttpClientHandler(actor, LOCAL)  # type: ignore[arg-type]
    uri = f"http://rebind.example.com:{server.port}/hello"
    assert err(call(handler, uri)).startswith("DNS lookup of rebind.example.com failed")
    dns["rebind.example.com"] = ["127.0.0.1"]
    for _ in range(2):
        assert err(call(handler, uri)).startswith("refused: rebind.example.com is a loopback address (127.0.0.1)")
    assert server.requests == []


def test_a_refused_url_stays_refused_on_every_later_call(actor, server):
    # A verdict kept between calls is the refusal itself, not only the permission.
    handler = HttpClientHandler(actor, {})  # type: ignore[arg-type]
    for _ in range(3):
        assert err(call(handler, server.url("/hello"))).startswith("refused: 127.0.0.1 is a loopback address")
    assert server.requests == []


def test_a_guest_asking_for_many_long_urls_cannot_grow_what_the_handler_keeps(actor):
    handler = HttpClientHandler(actor, {})  # type: ignore[arg-type]
    for index in range(600):
        padding = "x" * (5000 if index % 2 else 100)
        assert err(call(handler, f"http://127.0.0.1:9/{index}?{padding}")).startswith("refused: ")
    kept = handler._checked._kept
    assert len(kept) == http_client._CHECKED_URLS
    assert max(len(uri) for uri in kept) <= http_client._CHECKED_URL_CHARS
    assert "http://127.0.0.1:9/598?" + "x" * 100 in kept  # the latest are kept, the oldest dropped


def test_a_loopback_literal_allowed_for_one_actor_stays_refused_for_another(actor, server):
    # The kinds of addresses are kept by their text for every actor; who may reach them is decided per grant, and
    # connections are pooled per set of allowances: an actor allowed loopback lends neither to one that is not.
    allowed = HttpClientHandler(actor, LOCAL)  # type: ignore[arg-type]
    other = HttpClientHandler(FakeActor(), {})  # type: ignore[arg-type]
    assert err(call(other, server.url("/hello"))).startswith("refused: 127.0.0.1 is a loopback address")
    assert call(allowed, server.url("/hello"))["ok"]["status"] == 200
    assert err(call(other, server.url("/hello"))).startswith("refused: 127.0.0.1 is a loopback address")
    assert server.requests == ["GET /hello"]


def test_a_connection_pooled_for_a_name_allowed_loopback_is_not_lent_to_an_actor_that_is_not(actor, dns, server):
    # Both actors share the runtime's loop and this thread: the one allowed connects, the other must not ride on
    # its pooled connection (or its resolved addresses) to the same name.
    dns["app.test"] = ["127.0.0.1"]
    uri = f"http://app.test:{server.port}/hello"
    assert call(HttpClientHandler(actor, {"allow_loopback": ["app.test"]}), uri)["ok"]["status"] == 200  # type: ignore[arg-type]
    message = err(call(HttpClientHandler(actor, LOCAL), uri))  # type: ignore[arg-type]
    assert message.startswith("refused: app.test is a loopback address (127.0.0.1)")
    assert server.requests == ["GET /hello"]


def test_a_name_allowed_to_reach_loopback_connects_only_to_the_addresses_kept(actor, dns, server):
    # One name, a refused address first and an allowed one after: the connection goes to the allowed one only.
    dns["app.test"] = ["10.0.0.9", "127.0.0.1"]
    result = send(actor, {"allow_loopback": ["app.test"]}, f"http://app.test:{server.port}/hello")
    assert result["ok"]["status"] == 200
    assert server.requests == ["GET /hello"]


def test_a_self_signed_certificate_fails_verification(actor, tmp_path: Path):
    served = TestServer(tls=self_signed(tmp_path))
    try:
        message = err(send(actor, LOCAL, served.url("/hello")))
        assert message.startswith(f"TLS certificate verification failed for https://127.0.0.1:{served.port}")
        assert served.requests == []
    finally:
        served.close()


def test_a_stop_ends_the_wait_for_a_response(actor, server):
    handler = HttpClientHandler(actor, {**LOCAL, "timeout_ms": 60_000})  # type: ignore[arg-type]
    answer: list[dict[str, Any]] = []
    request = {"method": "GET", "uri": server.url("/hang"), "headers": [], "body": None}
    worker = threading.Thread(target=lambda: answer.append(handler.send_http(request)))
    worker.start()
    assert server.hits.wait(10)
    actor.stop()
    worker.join(10)
    assert answer == [{"err": "the request was cut short: the actor is stopping"}]


# The config.


@pytest.mark.parametrize(
    ("config", "field", "problem"),
    [
        ({"allowed_urls": "example.com"}, "allowed_urls", "expected a list"),
        ({"allowed_urls": [3]}, "allowed_urls", "expected a list of non-empty strings"),
        ({"allowed_urls": ["ftp://example.com/"]}, "allowed_urls", "must start with http:// or https://"),
        ({"allowed_urls": ["exa mple.com"]}, "allowed_urls", "a host pattern is"),
        ({"max_response_bytes": -1}, "max_response_bytes", "expected an integer from 0"),
        ({"timeout_ms": 0}, "timeout_ms", "expected an integer from 1"),
        ({"max_redirects": 1000}, "max_redirects", "expected an integer from 0 to 50"),
        ({"follow_redirects": "yes"}, "follow_redirects", "expected a boolean"),
        ({"allow_loopback": "127.0.0.1"}, "allow_loopback", "expected a list"),
        ({"proxy": "x"}, "proxy", "unknown key"),
    ],
)
def test_a_bad_config_is_refused_at_start_naming_the_key(actor, config, field, problem):
    with pytest.raises(ManifestError) as caught:
        HttpClientHandler(actor, config)  # type: ignore[arg-type]
    assert caught.value.field == f"handlers.http-client.config.{field}"
    assert problem in caught.value.problem


def test_the_handler_is_registered():
    assert IMPLEMENTED["http-client"] is HttpClientHandler


@pytest.mark.parametrize(
    ("parent", "child", "more"),
    [
        ({}, {}, None),
        ({}, {"allowed_urls": ["api.example.com"]}, None),
        ({"allowed_urls": ["api.example.com"]}, {}, "allowed_urls is empty"),
        ({"allowed_urls": ["*.example.com"]}, {"allowed_urls": ["api.example.com", "*.a.example.com"]}, None),
        ({"allowed_urls": ["*.example.com"]}, {"allowed_urls": ["example.com"]}, "'example.com' is not within"),
        ({"allowed_urls": ["api.example.com"]}, {"allowed_urls": ["*.api.example.com"]}, "is not within"),
        ({"allowed_urls": ["api.example.com"]}, {"allowed_urls": ["https://api.example.com/v1/"]}, None),
        ({"allowed_urls": ["https://api.example.com/v1"]}, {"allowed_urls": ["https://api.example.com/v1/x"]}, None),
        ({"allowed_urls": ["https://api.example.com/v1"]}, {"allowed_urls": ["https://api.example.com/v10"]},
         "is not within"),
        ({"allowed_urls": ["https://api.example.com/v1"]}, {"allowed_urls": ["http://api.example.com/v1"]},
         "is not within"),
        ({"allowed_urls": ["https://api.example.com/v1"]}, {"allowed_urls": ["api.example.com"]}, "is not within"),
        ({"allow_loopback": ["127.0.0.1"]}, {"allow_loopback": ["127.0.0.1"]}, None),
        ({}, {"allow_private": ["db.internal"]}, "allow_private names db.internal"),
        ({"max_response_bytes": 10}, {"max_response_bytes": 11}, "max_response_bytes 11 is more"),
        ({}, {"timeout_ms": 30_001}, "timeout_ms 30001 is more"),
        ({"follow_redirects": False}, {}, "follow_redirects is on"),
    ],
)
def test_a_childs_grant_must_lie_within_its_parents(parent, child, more):
    found = HttpClientHandler.config_within(parent, child)
    if more is None:
        assert found is None
    else:
        assert found is not None and more in found, found


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", "public"), ("2606:4700:4700::1111", "public"), ("127.0.0.1", "loopback"), ("::1", "loopback"),
        ("10.1.2.3", "private"), ("192.168.0.1", "private"), ("172.16.0.1", "private"), ("100.64.0.1", "private"),
        ("fd00::1", "private"), ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
        ("169.254.169.254", "cloud metadata"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
        ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "IPv4-mapped IPv6"), ("::ffff:8.8.8.8", "IPv4-mapped IPv6"),
    ],
)
def test_addresses_are_classified(address, kind):
    import ipaddress

    assert address_kind(ipaddress.ip_address(address)) == kind


def test_the_metadata_address_is_refused_even_when_link_local_is_allowed():
    allowances = Allowances(link_local=frozenset({"169.254.169.254"}))
    assert "never reachable" in (allowances.refusal("169.254.169.254", "169.254.169.254") or "")


def test_a_retired_threads_own_loop_and_pool_are_closed_when_another_thread_comes(actor, server):
    # Worker threads beyond the pool's size retire: what they made for their requests must not pile up.
    first = threading.Thread(target=lambda: send(actor, LOCAL, server.url("/hello")))
    first.start()
    first.join(10)
    loop = netloop.of(actor.store)
    [(_, retired, made)] = loop._here
    [session] = made.values()
    assert not retired.is_closed() and not session.closed
    second = threading.Thread(target=lambda: send(actor, LOCAL, server.url("/hello")))
    second.start()
    second.join(10)
    assert retired.is_closed() and session.closed and len(loop._here) == 1
    assert server.requests == ["GET /hello", "GET /hello"]
