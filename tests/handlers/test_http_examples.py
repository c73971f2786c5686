"""``examples/http-api`` and ``examples/agent`` built with the real componentize-py (cached) and served: a real
client on 127.0.0.1 reads and writes items (asks the agent); the chains verify and replay with the servers stopped."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from replay import Replayer
from tests.sdk._support import EXAMPLES, Stage, build, chain_problems, copy_project

pytestmark = [pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")

START_SERVER = "theater:simple/http-framework/start-server"


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    opened = Stage(tmp_path / "home")
    try:
        yield opened
    finally:
        opened.theater.close()


def test_the_http_api_example_serves_items_from_its_state_and_replays(stage: Stage, tmp_path: Path) -> None:
    project = copy_project(EXAMPLES / "http-api", tmp_path / "http-api")
    app = project / "app.py"
    app.write_text(app.read_text().replace("http_port = 8080", "http_port = 0"))  # tests take any free port
    actor = stage.start(build(project))
    [started] = stage.events(actor, START_SERVER)
    base = f"http://127.0.0.1:{started.data['result']['ok']}"

    def fetch(path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(base + path, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    assert fetch("/items/tea", "PUT", b'{"kind": "green"}') == (200, b'{"stored": "tea"}')
    assert json.loads(fetch("/items/tea")[1]) == {"kind": "green"}
    assert json.loads(fetch("/items")[1]) == {"tea": {"kind": "green"}}
    assert fetch("/items/tea", "PUT", b"not json")[0] == 400
    assert fetch("/items/tea", "DELETE") == (204, b"")
    assert fetch("/items/tea")[0] == 404
    assert json.loads(fetch("/stats")[1]) == {"items": 0, "writes": 2}
    assert fetch("/items", "POST")[0] == 405

    async def watch() -> list[str]:
        async with aiohttp.ClientSession() as session, session.ws_connect(base + "/changes") as ws:
            await ws.send_str("items?")
            seen = [await ws.receive_str()]
            put = asyncio.get_running_loop().run_in_executor(None, fetch, "/items/rice", "PUT", b"1")
            seen.append(await ws.receive_str())
            await put
            return seen

    assert asyncio.run(asyncio.wait_for(watch(), 30)) == ["{}", '{"stored": "rice", "value": 1}']

    stage.theater.stop(actor)
    assert chain_problems(stage.theater) == []
    assert Replayer(stage.theater.store).replay(uuid.UUID(actor)).ok


def _stand_in_module(project: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"stand_in_{uuid.uuid4().hex}", project / "stand_in.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_agent_example_asks_the_model_keeps_the_conversation_and_replays_without_it(
        stage: Stage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"sk-{uuid.uuid4().hex}"  # the model's API key: the stand-in refuses requests without it
    monkeypatch.setenv("MODEL_API_KEY", key)
    project = copy_project(EXAMPLES / "agent", tmp_path / "agent")
    model = _stand_in_module(project).StandIn(key=key)
    try:
        settings = {"port": 0, "base_url": model.base_url}
        actor = stage.start(build(project), init_state=json.dumps(settings).encode())
        [started] = stage.events(actor, START_SERVER)
        base = f"http://127.0.0.1:{started.data['result']['ok']}"

        def ask(question: Any) -> tuple[int, Any]:
            request = urllib.request.Request(base + "/ask", data=json.dumps({"question": question}).encode(),
                                             method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        assert ask("what is a theater?") == (200, {"answer": "You asked: what is a theater? (question 1 of this "
                                                             "conversation)"})
        assert ask("and an actor?") == (200, {"answer": "You asked: and an actor? (question 2 of this conversation)"})
        assert ask("")[0] == 400
        with urllib.request.urlopen(base + "/history", timeout=30) as response:
            history = json.loads(response.read())
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        # The model saw the whole conversation each time, and the key the host added.
        assert [len(r["messages"]) for r in model.requests] == [2, 4]
        assert model.authorizations == [f"Bearer {key}"] * 2
    finally:
        model.close()  # the model is gone: replay must not need it

    stage.theater.stop(actor)
    calls = stage.events(actor, "theater:simple/http-client/send-http")
    assert len(calls) == 2 and all("ok" in c.data["result"] for c in calls)
    assert [h for h, _ in calls[0].data["params"][0]["headers"]] == ["Content-Type"]  # as the actor sent it
    # The key is in no event and no blob: the guest never received it (everything it receives is recorded).
    assert all(key not in repr(e.data) for e in stage.theater.events(actor))
    blobs = stage.theater.store.blobs
    assert all(key.encode() not in blobs.get(digest) for digest in blobs)
    assert chain_problems(stage.theater) == []
    report = Replayer(stage.theater.store).replay(uuid.UUID(actor))
    assert report.ok, report.divergence
    assert report.state == stage.theater.state(actor)
    stage.theater.close()
    home = tmp_path / "home"
    assert all(key.encode() not in f.read_bytes() for f in home.rglob("*") if f.is_file())
