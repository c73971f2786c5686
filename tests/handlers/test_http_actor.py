"""A real Python actor (componentize-py, cached) making HTTP calls through ``theater_sdk.http`` against a server on
127.0.0.1: each call is recorded whole, refusals and network errors are ``HttpError`` in the actor and ``err`` in
the chain, and the chain replays with the server stopped."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from replay import Replayer
from theater.build import BuildResult
from tests.handlers._servers import MIB, TestServer, pattern
from tests.sdk._support import Stage, build, chain_problems

pytestmark = [pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")

SEND_HTTP = "theater:simple/http-client/send-http"

FETCH = '''
import json

from theater_sdk import Actor, http, run


class Fetch(Actor):
    def init(self):
        self.state = {"calls": 0, "digests": []}

    def on_request(self, message):
        ask = json.loads(message)
        self.state["calls"] += 1
        try:
            response = http.request(ask.get("method", "GET"), ask["url"], json=ask.get("json"))
        except http.HttpError as exc:
            return json.dumps({"error": exc.message})
        self.state["digests"].append(len(response.content))
        return json.dumps({"status": response.status, "size": len(response.content), "head": response.text[:40],
                           "type": response.header("content-type")})


run(Fetch)
'''

WORLD = '''package test:fetch;

world fetch {
    import theater:simple/runtime;
    import theater:simple/http-client;

    export theater:simple/actor;
    export theater:simple/message-server-client;
}
'''

MANIFEST = '''name = "fetch"
component = "build/fetch.wasm"

[[handlers]]
type = "http-client"
config = { allow_loopback = ["127.0.0.1"], max_response_bytes = 2097152, timeout_ms = 10000 }
'''


@pytest.fixture(scope="module")
def fetch(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    root = tmp_path_factory.mktemp("fetch")
    (root / "wit").mkdir()
    (root / "app.py").write_text(FETCH)
    (root / "wit" / "world.wit").write_text(WORLD)
    (root / "manifest.toml").write_text(MANIFEST)
    return build(root)


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    opened = Stage(tmp_path / "home")
    try:
        yield opened
    finally:
        opened.theater.close()


@pytest.fixture
def server() -> Iterator[TestServer]:
    served = TestServer()
    yield served
    served.close()


def ask(stage: Stage, actor: str, **request: object) -> dict[str, object]:
    return json.loads(stage.theater.request(actor, json.dumps(request).encode(), timeout=30))


def test_calls_are_recorded_whole_and_replay_with_the_server_stopped(stage: Stage, fetch: BuildResult,
                                                                      server: TestServer) -> None:
    actor = stage.start(fetch)
    hello = ask(stage, actor, url=server.url("/hello"))
    assert hello == {"status": 200, "size": 26, "head": "hello from the test server",
                     "type": "text/plain; charset=utf-8"}
    posted = ask(stage, actor, method="POST", url=server.url("/echo"), json={"a": 1})
    assert posted["status"] == 200
    refused = ask(stage, actor, url=f"http://localhost:{server.port}/hello")
    assert str(refused["error"]).startswith("refused: localhost is a loopback address")
    assert server.requests == ["GET /hello", "POST /echo"]

    calls = stage.events(actor, SEND_HTTP)
    assert [c.data["params"][0]["uri"] for c in calls] == [
        server.url("/hello"), server.url("/echo"), f"http://localhost:{server.port}/hello"]
    assert calls[1].data["params"][0]["body"] == {"some": b'{"a": 1}'}
    assert calls[0].data["result"]["ok"]["body"] == {"some": b"hello from the test server"}
    assert calls[2].data["result"]["err"].startswith("refused: ")

    server.close()  # the network is gone: replay must not need it
    assert chain_problems(stage.theater) == []
    report = Replayer(stage.theater.store).replay(uuid.UUID(actor))
    assert report.ok, report.divergence
    assert report.host_calls >= 3 and report.state == stage.theater.state(actor)  # the same state, bit for bit


def test_a_one_mib_response_is_recorded_whole_in_a_blob(stage: Stage, fetch: BuildResult,
                                                         server: TestServer) -> None:
    actor = stage.start(fetch)
    answer = ask(stage, actor, url=server.url(f"/bytes?n={MIB}"))
    assert answer["status"] == 200 and answer["size"] == MIB
    [call] = stage.events(actor, SEND_HTTP)
    body = call.data["result"]["ok"]["body"]["some"]
    assert body == pattern(MIB)
    # The payload spilled to the blob store: the event holds its hash, the blob the bytes.
    assert stage.theater.store.blobs.get(blake3.blake3(body).digest()) == body
    server.close()
    assert chain_problems(stage.theater) == []


def test_a_network_error_is_an_http_error_in_the_actor_and_recorded(stage: Stage, fetch: BuildResult) -> None:
    actor = stage.start(fetch)
    with socket.socket() as probe:  # bound, never listening: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        answer = ask(stage, actor, url=f"http://127.0.0.1:{port}/")
    assert str(answer["error"]).startswith(f"could not connect to http://127.0.0.1:{port}")
    [call] = stage.events(actor, SEND_HTTP)
    assert call.data["result"] == {"err": answer["error"]}
    assert chain_problems(stage.theater) == []
