"""A real Python actor (componentize-py, cached) serving HTTP through the ``http-framework`` handler, with a real
client (``urllib``, raw sockets) on 127.0.0.1: routes answer from the actor's state, every request is a recorded
call, the chain replays with the server gone, and what the manifest does not allow (addresses, ports, large
bodies, slow clients, a full mailbox) is refused."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from replay import Replayer
from replay.schema import ACTOR_HTTP_TIMEOUT
from tests._chains import CommitWaiter
from tests._fixtures import drain
from tests.sdk._support import Stage, build, chain_problems, seed_compiled
from theater.build import BuildResult
from theater.errors import GuestFault
from theater.handlers.http_events import http_summary
from theater.handlers.http_framework import FrameworkGrant, HttpFrameworkHandler, check_pattern, matches
from theater.mailbox import MailboxLimits
from theater.runtime import Theater

pytestmark = [pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")

START_SERVER = "theater:simple/http-framework/start-server"
HANDLE_REQUEST = "theater:simple/http-handlers.handle-request"
WAIT = 30.0

API = '''
from theater_sdk import Actor, HostError, Response, route, run, timing, web


class Api(Actor):
    def init(self):
        self.state = {"items": {}, "hits": 0}

    @route("GET", "/hello")
    def hello(self, request):
        self.state["hits"] += 1
        return "hello " + str(self.state["hits"])

    @route("GET", "/items/{id}")
    def get_item(self, request, id):
        item = self.state["items"].get(id)
        return item if item is not None else Response("no such item", status=404)

    @route("PUT", "/items/{id}")
    def put_item(self, request, id):
        self.state["items"][id] = request.json()
        return {"stored": id}

    @route("POST", "/echo")
    def echo(self, request):
        return Response(request.body, headers={"X-Size": str(len(request.body))})

    @route("GET", "/slow")
    def slow(self, request):
        timing.sleep(int(request.query.get("ms", "1000")))
        return "slow"

    @route("GET", "/fail")
    def fail(self, request):
        raise ValueError("boom")

    @route("GET", "/serve")
    def serve(self, request):
        try:
            return str(web.serve(self, host=request.query.get("host"), port=int(request.query.get("port", "0"))))
        except HostError as exc:
            return Response(exc.message, status=403)


run(Api)
'''

WORLD = '''package test:web;

world web {
    import theater:simple/runtime;
    import theater:simple/timing;
    import theater:simple/http-framework;

    export theater:simple/actor;
    export theater:simple/http-handlers;
}
'''

MANIFEST = '''name = "api"
component = "build/api.wasm"

[[handlers]]
type = "timing"

[[handlers]]
type = "http-framework"
config = {{ {config} }}
'''

DEFAULT_CONFIG = 'ports = [0, "20000-20010"], request_timeout_ms = 10000'


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    root = tmp_path_factory.mktemp("api")
    (root / "wit").mkdir()
    (root / "app.py").write_text(API)
    (root / "wit" / "world.wit").write_text(WORLD)
    (root / "manifest.toml").write_text(MANIFEST.format(config=DEFAULT_CONFIG))
    return build(root)


class Served:
    """A runtime serving one actor of ``api``: its id, the port it serves on, and requests to it."""

    def __init__(self, home: Path, result: BuildResult, config: str, mailbox: MailboxLimits | None,
                 on_err: str | None = None) -> None:
        self.stage = Stage.__new__(Stage)  # a Stage around a runtime with the options this test needs
        theater = Theater(home, mailbox=mailbox) if mailbox is not None else Theater(home)
        self.stage.theater = theater
        from tests._chains import CommitWaiter

        self.stage._waiter = CommitWaiter(theater.store, WAIT)
        theater.store.blobs.put(result.wasm.read_bytes())
        seed_compiled(theater.store, theater.engine, result.digest)
        manifest = home.parent / "manifest.toml"
        text = MANIFEST.format(config=config).replace("build/api.wasm", result.digest.hex())
        if on_err is not None:
            text = f'on_err = "{on_err}"\n' + text
        manifest.write_text(text)
        self.theater = theater
        self.actor = theater.start(manifest)
        [started] = [e for e in theater.events(self.actor) if e.type == START_SERVER]
        self.port = started.data["result"]["ok"]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fetch(self, path: str, *, method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url(path), data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def timeouts(self) -> list[Any]:
        return [e for e in self.theater.events(self.actor) if e.type == ACTOR_HTTP_TIMEOUT]

    def calls(self) -> list[Any]:
        return [e for e in self.theater.events(self.actor) if e.type == "wasm/call"
                and e.data.get("export") == HANDLE_REQUEST]


@pytest.fixture
def serve(tmp_path: Path, api: BuildResult) -> Iterator[Callable[..., Served]]:
    opened: list[Served] = []

    def open_(config: str = DEFAULT_CONFIG, mailbox: MailboxLimits | None = None, on_err: str | None = None) -> Served:
        served = Served(tmp_path / f"home-{len(opened)}" / "home", api, config, mailbox, on_err)
        opened.append(served)
        return served

    yield open_
    for served in opened:
        served.theater.close()


def test_routes_answer_from_the_actors_state_and_every_request_is_a_recorded_call(serve):
    served = serve()
    assert served.fetch("/hello")[::2] == (200, b"hello 1")
    status, _, body = served.fetch("/items/tea", method="PUT", body=b'{"kind": "green"}')
    assert (status, json.loads(body)) == (200, {"stored": "tea"})
    status, headers, body = served.fetch("/items/tea")
    assert (status, json.loads(body), headers["Content-Type"]) == (200, {"kind": "green"}, "application/json")
    assert served.fetch("/items/coffee")[::2] == (404, b"no such item")
    assert served.fetch("/nowhere")[0] == 404  # no route: answered by the host, nothing recorded
    assert served.fetch("/hello", method="DELETE")[0] == 405
    big = bytes(range(256)) * 3000  # 750 KiB, under the actor's 1 MiB message limit
    status, headers, body = served.fetch("/echo", method="POST", body=big)
    assert (status, headers["X-Size"], body) == (200, str(len(big)), big)

    calls = served.calls()
    assert len(calls) == 5
    events = served.theater.events(served.actor)
    results = [e for e in events if e.type == "wasm/result"]
    assert results, "each call's result is recorded"
    echo_call = calls[-1]
    assert echo_call.data["params"][1]["body"] == {"some": big}
    # ``theater events`` and ``theater replay`` read method, path, status and sizes.
    assert http_summary(echo_call.type, echo_call.data) == f"POST /echo ({len(big)} bytes)"
    [echoed] = [e for e in results if e.seq > echo_call.seq][:1]
    assert http_summary(echoed.type, echoed.data) == f"-> 200 ({len(big)} bytes)"
    assert http_summary(calls[0].type, calls[0].data) == "GET /hello"

    served.theater.stop(served.actor)  # its server stops with it: replay needs no socket
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", served.port), timeout=WAIT).close()
    assert chain_problems(served.theater) == []
    report = Replayer(served.theater.store).replay(uuid.UUID(served.actor))
    assert report.ok, report.divergence


def test_a_body_over_the_limit_gets_413_and_reaches_no_actor(serve):
    served = serve(DEFAULT_CONFIG + ", max_request_bytes = 1000")
    status, _, body = served.fetch("/echo", method="POST", body=b"x" * 1001)
    assert status == 413 and b"request body too large" in body
    assert served.fetch("/echo", method="POST", body=b"x" * 1000)[0] == 200
    assert len(served.calls()) == 1


def test_a_body_over_the_actors_message_limit_gets_413(serve):
    served = serve()
    assert served.fetch("/echo", method="POST", body=b"x" * (1024 * 1024 + 1))[0] == 413
    assert served.calls() == []


def test_a_slow_actor_gets_504_while_another_actor_keeps_answering(serve):
    slow = serve('request_timeout_ms = 300')
    other = serve()
    answers: list[int] = []
    worker = threading.Thread(target=lambda: answers.append(slow.fetch("/slow?ms=3000")[0]))
    worker.start()
    assert other.fetch("/hello")[::2] == (200, b"hello 1")
    worker.join(WAIT)
    assert answers == [504]
    # The request queued behind the slow one times out too: it is dropped and never runs.
    assert slow.fetch("/hello")[0] == 504
    timeouts = slow.stage.until(lambda: len(slow.timeouts()) == 2 and slow.timeouts(), "two timeouts recorded")
    assert [(t.data["method"], t.data["uri"], t.data["timeout_ms"], t.data["dropped"]) for t in timeouts] == [
        ("GET", "/slow?ms=3000", 300, False), ("GET", "/hello", 300, True)]
    assert timeouts[0].data["server"] == timeouts[1].data["server"] == 1
    assert http_summary(timeouts[1].type, timeouts[1].data) == "GET /hello -> 504 after 300 ms (dropped: it never ran)"
    assert [c.data["params"][1]["uri"] for c in slow.calls()] == ["/slow?ms=3000"]
    slow.theater.stop(slow.actor)
    assert chain_problems(slow.theater) == []  # replay passes over the timeouts


def test_a_handler_that_answers_err_gives_500_and_the_actor_keeps_serving(serve):
    served = serve()
    status, _, body = served.fetch("/fail")
    assert (status, body) == (500, b"the actor's handler answered err")  # the traceback stays in the chain
    assert served.theater.status(served.actor) == "running"
    assert served.fetch("/hello")[::2] == (200, b"hello 1")
    [answer] = [e for e in served.theater.events(served.actor) if e.type == "wasm/err-answer"]
    assert answer.data["detail"].endswith("ValueError: boom")


def test_a_failing_handler_gives_500_and_then_the_failed_actor_503(serve):
    served = serve(on_err="fail")  # its err fails it
    status, _, body = served.fetch("/fail")
    assert status == 500 and b"the actor's handler failed (err)" in body
    assert served.theater.status(served.actor) == "failed"
    # The failed actor's server stopped with it (servers stop when the actor fails).
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", served.port), timeout=WAIT).close()


def test_a_full_mailbox_answers_503(serve):
    served = serve('request_timeout_ms = 20000', mailbox=MailboxLimits(messages=1))
    # While a slow call runs, the mailbox (one place) fills: further requests are refused, never queued forever.
    # Nothing outside the actor shows the slow call has begun, so on a loaded machine the flood can take the one
    # place first and the slow request is the one refused: that round proves nothing and is run again.
    rounds: list[tuple[list[int], set[int]]] = []
    for _ in range(5):
        slow: list[int] = []
        worker = threading.Thread(target=lambda into=slow: into.append(served.fetch("/slow?ms=1500")[0]))
        worker.start()
        statuses: set[int] = set()
        with ThreadPoolExecutor(max_workers=8) as pool:
            while worker.is_alive() and 503 not in statuses:
                statuses.update(status for status, _, _ in pool.map(lambda _: served.fetch("/hello"), range(8)))
        worker.join(WAIT)
        rounds.append((slow, statuses))
        if slow != [503]:
            break
    slow, statuses = rounds[-1]
    assert 503 in statuses and slow == [200], rounds


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("host=0.0.0.0", "refused: this actor may not bind 0.0.0.0 (it may bind 127.0.0.1)"),
        ("host=10.1.2.3", "refused: this actor may not bind 10.1.2.3 (it may bind 127.0.0.1)"),
        ("port=8080", "refused: port 8080 is not among the ports this actor may bind (0, 20000-20010)"),
    ],
)
def test_binding_what_the_manifest_does_not_allow_is_refused(serve, query, problem):
    served = serve()
    status, _, body = served.fetch(f"/serve?{query}")
    assert (status, body.decode()) == (403, problem)


def test_an_ephemeral_port_is_refused_when_ports_are_listed_without_0(api, tmp_path):
    with Theater(tmp_path / "home") as theater:
        theater.store.blobs.put(api.wasm.read_bytes())
        seed_compiled(theater.store, theater.engine, api.digest)
        manifest = tmp_path / "manifest.toml"
        manifest.write_text(MANIFEST.format(config="ports = [20001]").replace("build/api.wasm", api.digest.hex()))
        with pytest.raises(GuestFault) as caught:
            theater.start(manifest)  # init serves its routes on port 0, which this manifest does not allow
    assert "an ephemeral port (0) is not among the ports this actor may bind (20001)" in caught.value.detail


def test_a_slowloris_connection_is_closed_after_the_header_timeout(serve):
    served = serve(DEFAULT_CONFIG + ", header_timeout_ms = 200")
    with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as connection:
        connection.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
        assert connection.recv(1024) == b""  # closed by the server, not by our timeout
    assert served.calls() == []


def test_a_hundred_concurrent_requests_are_all_answered_and_recorded_in_order(serve):
    served = serve()
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: served.fetch("/hello"), range(100)))
    assert all(status == 200 for status, _, _ in answers)
    assert sorted(int(body.split()[1]) for _, _, body in answers) == list(range(1, 101))
    assert len(served.calls()) == 100
    assert chain_problems(served.theater) == []


def test_the_actor_holds_a_live_socket_while_it_serves(serve):
    served = serve()
    actor = served.theater.actor(served.actor)
    handler = HttpFrameworkHandler(actor, {})
    assert handler.holds_live()
    served.theater.stop(served.actor)
    assert not HttpFrameworkHandler(actor, {}).holds_live()


# The config and paths, without a component.


@pytest.mark.parametrize(
    ("parent", "child", "more"),
    [
        ({}, {}, None),
        ({}, {"bind_hosts": ["0.0.0.0"]}, "bind_hosts names 0.0.0.0"),
        ({"ports": ["8000-8010"]}, {"ports": [8005]}, None),
        ({"ports": ["8000-8010"]}, {}, "ports is not limited"),
        ({"ports": ["8000-8010"]}, {"ports": ["8005-8020"]}, "ports 8005-8020 are not within"),
        ({"max_request_bytes": 100}, {}, "max_request_bytes is more"),
        ({}, {"max_servers": 5}, "max_servers 5 is more"),
    ],
)
def test_a_childs_framework_grant_must_lie_within_its_parents(parent, child, more):
    found = HttpFrameworkHandler.config_within(parent, child)
    assert found is None if more is None else (found is not None and more in found), found


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"bind_hosts": ["example.com"]}, "'example.com' is not an IP address"),
        ({"bind_hosts": []}, "expected a non-empty list"),
        ({"ports": [70000]}, "70000 is not a port"),
        ({"ports": ["10-5"]}, "'10-5' is not a port"),
        ({"request_timeout_ms": 0}, "expected an integer from 1"),
    ],
)
def test_a_bad_framework_config_is_refused_naming_the_key(config, problem):
    from theater.errors import ManifestError

    with pytest.raises(ManifestError) as caught:
        FrameworkGrant.parse(config, "api.toml")
    assert caught.value.field.startswith("handlers.http-framework.config.") and problem in caught.value.problem


def test_route_patterns_match_whole_segments():
    assert matches("/items/{id}", "/items/7") and not matches("/items/{id}", "/items/7/x")
    assert matches("/static/*", "/static/a/b") and matches("/static/*", "/static")
    assert not matches("/items", "/itemsx") and matches("/", "/")
    assert check_pattern("items") and check_pattern("/a/*/b") and check_pattern("/a/{x")
    assert check_pattern("/a/{id}/*") is None



def test_a_reopened_actor_serves_again_on_the_same_port_with_its_state(api, tmp_path):
    home = tmp_path / "home"
    with Theater(home) as first:
        first.store.blobs.put(api.wasm.read_bytes())
        seed_compiled(first.store, first.engine, api.digest)
        manifest = tmp_path / "manifest.toml"
        manifest.write_text(MANIFEST.format(config=DEFAULT_CONFIG).replace("build/api.wasm", api.digest.hex()))
        actor = first.start(manifest)
        [started] = [e for e in first.events(actor) if e.type == START_SERVER]
        port = started.data["result"]["ok"]
        put = urllib.request.Request(f"http://127.0.0.1:{port}/items/tea", data=b'"green"', method="PUT")
        with urllib.request.urlopen(put, timeout=WAIT) as response:
            assert response.status == 200
    # The runtime closed without stopping the actor (as after a crash): its socket is gone with it.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
    with Theater(home) as second:
        second.reopen(actor)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/items/tea", timeout=WAIT) as response:
            assert response.read() == b"green"  # a str item is sent as text
        assert chain_problems(second) == []


@pytest.mark.parametrize("restart_from", ["last_state", "init"])
def test_a_child_restarted_by_its_supervisor_serves_again(api, tmp_path, restart_from):
    from tests.components import wat

    home = tmp_path / "home"
    boss = tmp_path / "boss.toml"
    (tmp_path / "boss.wat").write_text(wat.echo_actor())
    boss.write_text('name = "boss"\ncomponent = "boss.wat"\n[[handlers]]\ntype = "supervisor"\n'
                    '[[handlers]]\ntype = "timing"\n[[handlers]]\ntype = "http-framework"\n'
                    f'config = {{ {DEFAULT_CONFIG} }}\n[supervision]\nintensity = 5\nperiod_s = 60\n')
    with Theater(home) as theater:
        theater.store.blobs.put(api.wasm.read_bytes())
        seed_compiled(theater.store, theater.engine, api.digest)
        manifest = tmp_path / "manifest.toml"
        manifest.write_text('on_err = "fail"\n' + MANIFEST.format(config=DEFAULT_CONFIG).replace(
            "build/api.wasm", api.digest.hex()))
        parent = theater.start(boss)
        child = theater.start(manifest, parent=parent, restart_from=restart_from)
        [started] = [e for e in theater.events(child) if e.type == START_SERVER]
        port = started.data["result"]["ok"]

        def fetch(port: int, path: str) -> tuple[int, bytes]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=WAIT) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as error:
                return error.code, error.read()

        assert fetch(port, "/hello") == (200, b"hello 1")
        assert fetch(port, "/fail")[0] == 500  # its err fails it; its supervisor restarts it
        waiter = CommitWaiter(theater.store, WAIT)
        waiter.until(lambda: [e for e in theater.events(child) if e.type == "wasm/instantiate"
                              and e.data["reason"] == "restart"], "the restart")
        drain(theater, child)  # the restart's operation is over: the servers are back
        if restart_from == "last_state":  # no init: its server comes back from the record, on its port
            assert fetch(port, "/hello") == (200, b"hello 2")
        else:  # init made a new server, with the state init left
            starts = [e for e in theater.events(child) if e.type == START_SERVER]
            assert len(starts) == 2
            assert fetch(starts[-1].data["result"]["ok"], "/hello") == (200, b"hello 1")
        theater.stop(child)
        assert chain_problems(theater) == []


class _Calls:
    """An actor whose export calls answer from a script, recording what they were asked."""

    def __init__(self, middleware: list[dict[str, Any]]) -> None:
        self.asked: list[tuple[str, list[Any]]] = []
        self._middleware = iter(middleware)

    def call(self, export: str, params: list[Any]) -> Any:
        self.asked.append((export, params))
        if export.endswith("handle-middleware"):
            return _Result([[next(self._middleware)]])
        return _Result([[{"body": None, "status": 204, "headers": []}]])


class _Result:
    def __init__(self, output: list[Any]) -> None:
        self.output = output


def test_middleware_runs_in_order_as_its_own_call_and_can_refuse_or_rewrite():
    from theater.handlers.http_framework import _handle

    request = {"uri": "/a", "body": None, "method": "GET", "headers": []}
    rewritten = {**request, "headers": [["X-User", "ann"]]}
    actor = _Calls([{"proceed": True, "request": rewritten}, {"proceed": True, "request": rewritten}])
    assert _handle(actor, [1, 2], 3, request)["status"] == 204  # type: ignore[arg-type]
    assert [(e.rsplit(".", 1)[1], p[0]) for e, p in actor.asked] == [
        ("handle-middleware", 1), ("handle-middleware", 2), ("handle-request", 3)]
    assert actor.asked[2][1][1] == rewritten  # the route sees the request as the middleware left it

    refusing = _Calls([{"proceed": False, "request": request}])
    assert _handle(refusing, [1, 2], 3, request)["status"] == 403  # type: ignore[arg-type]
    assert len(refusing.asked) == 1  # neither the next middleware nor the route ran
