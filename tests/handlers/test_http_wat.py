"""An actor written in component text (no SDK: ``tests/components/http_wat.py``) serving HTTP and a websocket
through the ``http-framework`` handler, to a real aiohttp client on 127.0.0.1: its routes answer, every request
is a recorded call, the chain verifies by replay; after SIGKILL of the server process, a new server on the same
home serves the same routes and websocket on the same port, with the state as it was, and the actor is told (once)
of each websocket connection that went with the old server."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests._chains import CommitWaiter
from tests._fixtures import ManifestWriter, chain_problems
from tests.components.http_wat import BODY, http_actor
from tests.server._harness import Http, ServerProcess, start_body
from theater.runtime import Theater

WAIT = 30.0
START_SERVER = "theater:simple/http-framework/start-server"
HANDLE_REQUEST = "theater:simple/http-handlers.handle-request"
WS_MESSAGE = "theater:simple/http-handlers.handle-websocket-message"
WS_DISCONNECT = "theater:simple/http-handlers.handle-websocket-disconnect"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, WAIT))


async def _talk(base: str) -> dict[str, Any]:
    """What a client sees: /bytes, /count, an unknown path, and a websocket echoing a text and a binary message."""
    seen: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/bytes") as response:
            seen["bytes"] = (response.status, await response.read())
        async with session.get(base + "/count") as response:
            seen["count"] = (response.status, int.from_bytes(await response.read(), "little"))
        async with session.get(base + "/nowhere") as response:
            seen["nowhere"] = response.status
        async with session.ws_connect(base + "/ws") as ws:
            await ws.send_str("hello")
            text = await ws.receive_str()
            await ws.send_bytes(b"\x00\xff")
            seen["ws"] = (text, await ws.receive_bytes())
    return seen


def test_a_component_route_answers_a_real_client_and_every_request_is_a_recorded_call(tmp_path: Path) -> None:
    manifest = ManifestWriter(tmp_path)("web", http_actor(), ["http-framework"])
    with Theater(tmp_path / "home") as theater:
        actor = theater.start(manifest)
        [started] = [e for e in theater.events(actor) if e.type == START_SERVER]
        base = f"http://127.0.0.1:{started.data['result']['ok']}"
        first, second = run(_talk(base)), run(_talk(base))
        assert first == {"bytes": (200, BODY), "count": (200, 1), "nowhere": 404, "ws": ("hello", b"\x00\xff")}
        assert second["count"] == (200, 2)
        calls = CommitWaiter(theater.store, WAIT).until(
            lambda: (c := [e.data["export"] for e in theater.events(actor) if e.type == "wasm/call"])
            and c.count(WS_DISCONNECT) == 2 and c, "two disconnects")
        assert calls.count(HANDLE_REQUEST) == 4  # the 404s reached no actor
        assert calls.count(WS_MESSAGE) == 4
        assert _disconnects(theater.state(actor)) == 2
        assert chain_problems(theater) == []


async def _count(base: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(base + "/count") as response:
        assert response.status == 200
        return int.from_bytes(await response.read(), "little")


def _disconnects(state: bytes | None) -> int:
    assert state is not None and len(state) == 24
    return int.from_bytes(state[16:], "little")


async def _open_and_hold(base: str, opened: asyncio.Event, done: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(base + "/ws") as ws:
        await ws.send_str("still here")
        assert await ws.receive_str() == "still here"
        opened.set()
        await done.wait()


def _port(http: Http, actor: str) -> int:
    events = http.ok("GET", f"/v1/actors/{actor}/events?limit=10000")["events"]
    ports = [e["data"]["result"]["ok"] for e in events if e["type"] == START_SERVER]
    assert len(ports) == 1, ports
    return int(ports[0])


@pytest.mark.slow
def test_after_sigkill_a_new_server_serves_the_routes_and_websocket_on_the_same_port_with_the_state(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = ServerProcess(home).start()
    second: ServerProcess | None = None
    try:
        created = first.http().ok("POST", "/v1/actors", start_body("web", http_actor(), handlers=("http-framework",)),
                                  status=201)
        actor = created["id"]
        port = _port(first.http(), actor)
        base = f"http://127.0.0.1:{port}"
        assert run(_talk(base))["count"] == (200, 1)

        async def kill_while_open() -> None:  # a connection the actor knows is open when the server dies
            opened, done = asyncio.Event(), asyncio.Event()
            holder = asyncio.ensure_future(_open_and_hold(base, opened, done))
            await opened.wait()
            await asyncio.get_running_loop().run_in_executor(None, first.kill)
            done.set()
            await asyncio.gather(holder, return_exceptions=True)

        run(kill_while_open())

        second = ServerProcess(home).start()
        http = second.http()
        resumed = {r["actor"]: r["outcome"] for r in http.ok("GET", "/v1/server")["resumed"]}
        assert resumed == {actor: "resumed"}
        assert _port(http, actor) == port  # no new start-server: the record's server listens again
        # A request queued after the disconnects the runtime queued before listening again: the actor heard of the
        # end of both connections of the old server, once each (one of them may have been told before the kill).
        assert run(_count(base)) == 2
        events = http.ok("GET", f"/v1/actors/{actor}/events?limit=10000")["events"]
        gone = [e["data"]["params"][1] for e in events
                if e["type"] == "wasm/call" and e["data"]["export"] == WS_DISCONNECT]
        assert sorted(gone) == [1, 2]
        state = http.ok("GET", f"/v1/actors/{actor}/state")["state"]
        assert _disconnects(base64.b64decode(state["base64"])) == 2
        assert run(_talk(base)) == {"bytes": (200, BODY), "count": (200, 3), "nowhere": 404,
                                    "ws": ("hello", b"\x00\xff")}
        assert http.ok("POST", f"/v1/actors/{actor}/verify")["ok"]
    finally:
        first.kill()
        if second is not None:
            assert second.stop() == 0, second.stderr()
