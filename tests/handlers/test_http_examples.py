"""``examples/http-api`` built with the real componentize-py (cached) and served: a real client on 127.0.0.1 reads
and writes items, and the chain verifies and replays with the server stopped."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

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
