"""An actor written in component text (no SDK: ``tests/components/http_client_wat.py``) calling ``send-http`` in a
loop against a real server on 127.0.0.1, as ``tools/bench_http.py`` does: every call is answered and recorded whole,
a refused one is never sent and its refusal is recorded, and the chain verifies by replay with the server stopped
(replay never touches the network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._fixtures import ManifestWriter, chain_problems
from tests.components.http_client_wat import client_actor
from tests.components.wat import ERR_MARKER
from tests.handlers._servers import TestServer
from theater.runtime import Theater

SEND_HTTP = "theater:simple/http-client/send-http"


@pytest.fixture
def server() -> Iterator[TestServer]:
    served = TestServer()
    yield served
    served.close()


def test_a_components_calls_are_answered_recorded_whole_and_replayed_with_the_server_stopped(
    tmp_path: Path, server: TestServer,
) -> None:
    manifest = ManifestWriter(tmp_path)("client", client_actor(3), ["http-client"],
                                        config={"http-client": {"allow_loopback": ["127.0.0.1"]}})
    with Theater(tmp_path / "home") as theater:
        actor = theater.start(manifest)
        assert theater.request(actor, server.url("/hello").encode(), timeout=30) == b"done"
        assert server.requests == ["GET /hello"] * 3
        calls = [e for e in theater.events(actor) if e.type == SEND_HTTP]
        assert [c.data["params"][0] for c in calls] == [
            {"method": "GET", "uri": server.url("/hello"), "headers": [], "body": None}] * 3
        for call in calls:
            response = call.data["result"]["ok"]
            assert response["status"] == 200 and response["body"] == {"some": b"hello from the test server"}
            assert ["X-Test", "yes"] in response["headers"]
        server.close()
        assert chain_problems(theater) == []


def test_a_component_asking_for_loopback_without_an_allowance_is_refused_and_never_sent(
    tmp_path: Path, server: TestServer,
) -> None:
    manifest = ManifestWriter(tmp_path)("client", client_actor(2), ["http-client"])
    with Theater(tmp_path / "home") as theater:
        actor = theater.start(manifest)
        answer = theater.request(actor, server.url("/hello").encode(), timeout=30)
        assert answer.startswith(ERR_MARKER + b"refused: 127.0.0.1 is a loopback address"), answer
        [call] = [e for e in theater.events(actor) if e.type == SEND_HTTP]  # the loop stops at the first err
        assert call.data["result"]["err"] == answer[len(ERR_MARKER):].decode()
        assert server.requests == []
        assert chain_problems(theater) == []
