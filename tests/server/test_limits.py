"""Attacks on the server's resources and its input: slowloris connections, full mailboxes, malformed ids, bodies
and paths. Real server processes on 127.0.0.1, real sockets."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.components import wat
from replay.errors import GuestFault
from store import Store
from tests._forge import forge
from tests.server._harness import CLI, WAIT, ServerProcess, cli_env, start_body
from theater.runtime import Theater

HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 1.0
SLOW = ("--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT))


def connect(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; a timeout (socket.timeout) if it never does."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@pytest.fixture
def slow_server(servers):
    """A server with short header and body timeouts."""
    return servers("slow", args=SLOW)


def test_slowloris_connections_are_closed(slow_server):
    sockets = []
    partial = [
        b"",  # connects and sends nothing
        b"GET /v1/ser",  # half a request line
        b"GET /v1/server HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",  # half the headers
    ]
    try:
        for i in range(60):
            sock = connect(slow_server.address)
            sock.sendall(partial[i % len(partial)])
            sockets.append(sock)
        for sock in sockets:
            assert read_until_closed(sock) == b""  # closed without an answer: no request ever arrived
    finally:
        for sock in sockets:
            sock.close()
    assert slow_server.http().get("/v1/server").status == 200  # and the server lives on


def test_a_trickled_body_is_answered_408_and_closed(slow_server):
    with connect(slow_server.address) as sock:
        sock.sendall(b"POST /v1/actors HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"manifest\": ")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"error":"RequestTimeout"' in answer
    assert b"the request body did not arrive within 1 s" in answer


def test_an_idle_keep_alive_connection_is_closed(slow_server):
    with connect(slow_server.address) as sock:
        sock.sendall(b"GET /v1/server HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_streams_outlive_the_header_timeout(slow_server, start_actor):
    http = slow_server.http()
    actor = start_actor(http, "counter", wat.counter_actor())
    stream = http.sse(f"/v1/actors/{actor}/subscribe")
    kind, _ = next(stream)
    assert kind == "ready"
    with connect(slow_server.address) as sock:  # wait, on the record of a timeout, until one has passed
        sock.sendall(b"GET /v1/ser")
        assert read_until_closed(sock) == b""
    assert http.post(f"/v1/actors/{actor}/send", {"message": {"text": "still there?"}}).status == 200
    kind, event = next(stream)
    assert kind == "event" and event["type"] == "wasm/call"


# mailboxes


def test_a_full_mailbox_is_429_with_the_error_json(servers, start_actor):
    http = servers("mailbox", args=("--mailbox-size", "1")).http()
    actor = start_actor(http, "sleeper", wat.actor_wat(send=wat.sleep(60_000)), handlers=("timing",))
    stream = http.sse(f"/v1/actors/{actor}/subscribe")
    assert next(stream)[0] == "ready"
    with ThreadPoolExecutor(max_workers=3) as pool:
        post = lambda text: http.post(f"/v1/actors/{actor}/send", {"message": {"text": text}})  # noqa: E731
        sleeping = pool.submit(post, "sleep")
        for kind, event in stream:  # wait until the actor sleeps in that call: its mailbox is empty
            if kind == "event" and event["type"] == "wasm/call" and event["seq"] > 3:
                break
        # Two more messages: one waits in the mailbox, the other finds it full.
        replies = [pool.submit(post, text) for text in ("one", "two")]
        refused = next(r for r in as_completed(replies))
        stopped = http.post(f"/v1/actors/{actor}/stop")  # jumps the queue and cuts the sleep short
        assert stopped.status == 200, stopped.body
        statuses = sorted(r.result().status for r in replies)
        sleeping.result()
    assert refused.result().status == 429
    body = refused.result().json
    assert body["error"] == "MailboxFull"
    assert body["message"].startswith(f"mailbox of actor {actor} is full: 1 messages ")
    assert (body["actor"], body["waiting"], body["max_messages"]) == (actor, 1, 1)
    assert refused.result().headers["Retry-After"] == "1"
    assert statuses == [409, 429]  # the waiting one was refused when the actor stopped


# bad input


def test_non_utf8_actor_id_is_clear_error(http_server):
    server, _ = http_server
    for path in ("/v1/actors/%FF", "/v1/actors/%FF%FE/events", "/v1/actors/%ED%B3%BF/send"):
        method = "POST" if path.endswith("send") else "GET"
        status, body = raw_request(server.address, method, path, b"{}")
        assert status == 400, (path, status, body)
        assert json.loads(body)["error"] == "InvalidInputError"
    argv_id = b"\xff\xfe".decode("utf-8", "surrogateescape")  # what Python makes of non-UTF-8 argv bytes
    for command in (["inspect", argv_id], ["events", argv_id], ["subscribe", argv_id]):
        done = server.cli(*command, check=False)
        assert done.returncode != 0
        assert done.stderr.startswith("InvalidInputError: invalid actor id '\\udcff\\udcfe': expected a UUID"), done
        assert "Traceback" not in done.stderr


def test_events_from_negative_is_clear_error(http_server):
    server, actor = http_server
    for option in (["--from", "-5"], ["--to", "-1"], ["--from", str(2**70)]):
        done = server.cli("events", actor, *option, check=False)
        assert done.returncode == 2, done
        assert f"Invalid value for '{option[0]}'" in done.stderr and "Traceback" not in done.stderr
    for query in ("from=-5", f"from={2**70}", f"to={2**64}", "limit=0"):
        status, body = raw_request(server.address, "GET", f"/v1/actors/{actor}/events?{query}")
        assert status == 400, (query, status, body)
        assert json.loads(body)["error"] == "InvalidRequest"


def test_lone_surrogates_and_deep_nesting_in_a_body_are_400(http_server):
    server, actor = http_server
    cases = {
        f"/v1/actors/{actor}/send": b'{"message": {"text": "\\udcff"}}',
        "/v1/actors": b'{"manifest": "name = \\"a\\"\\n", "source": "\\udcff"}',
        "/v1/labels/x": b'[' * 100_000,
    }
    for path, body in cases.items():
        status, answer = raw_request(server.address, "POST" if path != "/v1/labels/x" else "PUT", path, body)
        assert status == 400, (path, status, answer)
        assert json.loads(answer)["error"] == "InvalidJSON"
    nested = json.dumps({"manifest": "a = " + "[" * 5000}).encode()
    status, answer = raw_request(server.address, "POST", "/v1/actors", nested)
    assert status == 422, answer
    assert json.loads(answer)["message"] == "<api>: invalid TOML: arrays or tables are nested too deeply"


BODY_ROUTES = [
    ("POST", "/v1/actors"), ("POST", "/v1/actors/{id}/send"), ("POST", "/v1/actors/{id}/request"),
    ("POST", "/v1/actors/{id}/channels"), ("POST", "/v1/actors/{id}/verify"), ("POST", "/v1/blobs"),
    ("PUT", "/v1/labels/{id}"), ("POST", "/v1/channels/{id}/send"),
]
PATH_ROUTES = [
    ("GET", "/v1/actors/{id}"), ("POST", "/v1/actors/{id}/restart"), ("GET", "/v1/actors/{id}/events"),
    ("GET", "/v1/actors/{id}/state"), ("GET", "/v1/actors/{id}/export"), ("GET", "/v1/blobs/{id}"),
    ("GET", "/v1/blobs"), ("GET", "/v1/labels"), ("DELETE", "/v1/labels/{id}"), ("GET", "/v1/actors"),
    ("GET", "/v1/channels/{id}/messages"), ("DELETE", "/v1/channels/{id}"), ("POST", "/v1/actors/{id}/stop"),
]
KEYS = ["manifest", "component", "component_hash", "init_state", "parent", "source", "message", "timeout", "text",
        "base64", "label"]
LONE = st.sampled_from(["\udcff", "a\ud800", "\udfff\udfff"])
TEXT = st.text(max_size=30) | LONE | st.sampled_from(["", "-1", "0", str(2**70), "nan", "[[[[", "\x00"])
SCALAR = st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.floats() | TEXT
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT | st.sampled_from(KEYS),
                                                                                        inner, max_size=4),
                    max_leaves=12)
DEEP = st.integers(min_value=1500, max_value=20_000)  # deeper than Python's recursion limit
TOML = DEEP.map(lambda n: "a = " + "[" * n) | TEXT
PAYLOAD = st.builds(lambda t: {"text": t}, TEXT) | st.builds(lambda t: {"base64": t}, TEXT) | JSON
BODY = st.one_of(
    st.fixed_dictionaries({}, optional={k: PAYLOAD | TOML for k in KEYS}).map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"message": PAYLOAD}, optional={"timeout": JSON}).map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"manifest": TOML}, optional={"source": TEXT, "component": PAYLOAD,
                                                        "parent": TEXT}).map(lambda d: json.dumps(d).encode()),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    DEEP.map(lambda n: b"[" * n + b"]" * (n % 3)),
)
IDS = st.sampled_from(["live", "uuid"]) | st.binary(max_size=40) | TEXT
QUERY = st.lists(st.tuples(st.sampled_from(["from", "to", "limit", "after", "type", "all", "seq", "event",
                                              "label", "prefix", "wait", "history"]),
                           st.binary(max_size=12) | st.integers(min_value=-(2**70), max_value=2**70).map(
                               lambda n: str(n).encode())), max_size=3)
FUZZ = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """A server of its own with one live echo actor: (server, actor id)."""
    server = ServerProcess(tmp_path_factory.mktemp("fuzz") / "home").start()
    try:
        reply = server.http().post("/v1/actors", start_body("echo", wat.echo_actor()))
        assert reply.status == 201, reply.body
        yield server, reply.json["id"]
    finally:
        assert server.stop() == 0, server.stderr()


@pytest.mark.parametrize("route", BODY_ROUTES, ids=" ".join)
@FUZZ
@given(ident=IDS, body=BODY)
def test_fuzzed_bodies_get_a_4xx_with_the_error_json_never_a_500(http_server, route, ident, body):
    server, live = http_server
    method, template = route
    check_answer(server, method, fuzz_path(template, ident, live), body)


@pytest.mark.parametrize("route", PATH_ROUTES, ids=" ".join)
@FUZZ
@given(ident=IDS, query=QUERY)
def test_fuzzed_paths_and_queries_get_a_4xx_with_the_error_json_never_a_500(http_server, route, ident, query):
    server, live = http_server
    method, template = route
    path = fuzz_path(template, ident, live)
    if query:
        path += "?" + "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in query)
    check_answer(server, method, path, b"{}" if method == "POST" else None)


def fuzz_path(template: str, ident: str | bytes, live: str) -> str:
    """The route's path with ``{id}`` replaced: the live actor, an unknown UUID, or any bytes, percent-encoded."""
    raw = {"live": live, "uuid": str(uuid.UUID(int=7))}.get(ident, ident) if isinstance(ident, str) else ident
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return template.replace("{id}", urllib.parse.quote(data, safe=""))


def check_answer(server: ServerProcess, method: str, path: str, body: bytes | None) -> None:
    status, answer = raw_request(server.address, method, path, body)
    assert status < 500, (method, path, (body or b"")[:200], status, answer[:500])
    if status >= 400:
        error = json.loads(answer)
        assert isinstance(error["error"], str) and isinstance(error["message"], str), answer


def test_the_server_survives_the_fuzzing(http_server):
    server, _ = http_server
    assert server.alive()
    assert server.http().get("/v1/server").status == 200
    assert "Traceback" not in server.stderr()


def raw_request(address: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request with the path sent exactly as given (percent-encoded bytes included)."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        if body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()



def test_a_verify_that_re_executes_too_long_is_answered_504_and_the_server_goes_on(servers, tmp_path):
    # A chain in the home may come from a bundle. This forged one names a fuel limit a verifier accepts but that
    # would let its spinning call run for many minutes when re-executed; the server bounds the request instead.
    source = tmp_path / "source"
    (tmp_path / "spin.wat").write_text(wat.faulty_actor())
    (tmp_path / "spin.toml").write_text('name = "spin"\ncomponent = "spin.wat"\n[limits]\nfuel_per_call = 200000\n')
    with Theater(source) as theater:
        actor = theater.start(tmp_path / "spin.toml")
        with pytest.raises(GuestFault, match="fuel"):
            theater.send(actor, b"spin")

    def raise_fuel(drafts):
        drafts[0].data["limits"]["fuel_per_call"] = 10**12

    with Store(source / "store") as store:
        forged = forge(store, uuid.UUID(actor), raise_fuel, tmp_path / "forged")
    home = tmp_path / "home"
    subprocess.run([*CLI, "--home", str(home), "chain", "import", str(forged.bundle)], check=True,
                   capture_output=True, env=cli_env(), timeout=WAIT)
    server = servers(home="home", args=["--verify-timeout", "0.3"])
    http = server.http()
    answer = http.post(f"/v1/actors/{actor}/verify")
    assert answer.status == 504, answer.body
    assert answer.json["error"] == "ReplayTimeout"
    assert http.ok("GET", f"/v1/actors/{actor}")["id"] == actor  # the server goes on serving
