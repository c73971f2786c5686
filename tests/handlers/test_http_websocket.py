"""Websockets of the ``http-framework`` handler: a real Python actor (componentize-py, cached) serving a websocket
path, a real aiohttp client on 127.0.0.1. Each connect, message and disconnect is a recorded call; what the actor
sends goes out after it; a flood beyond the mailbox, an oversized message, too many connections and a stopping
actor each close the connection with a clear code; the chains replay with the servers gone."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from replay import Replayer
from tests._chains import CommitWaiter
from tests.sdk._support import build, chain_problems, seed_compiled
from theater.build import BuildResult
from theater.errors import ManifestError
from theater.handlers.http_framework import FrameworkGrant, HttpFrameworkHandler
from theater.mailbox import MailboxLimits
from theater.runtime import Theater

pytestmark = [pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")

START_SERVER = "theater:simple/http-framework/start-server"
SEND = "theater:simple/http-framework/send-websocket-message"
PREFIX = "theater:simple/http-handlers.handle-websocket-"
WAIT = 30.0

CHAT = '''
from theater_sdk import Actor, HostError, Response, route, run, timing, web


class Chat(Actor):
    websocket_paths = ("/ws",)

    @route("GET", "/serve")
    def serve(self, request):
        """Serve again, on a TLS server with the paths the query names."""
        try:
            return str(web.serve(self, tls=(request.query.get("cert"), request.query.get("key"))))
        except HostError as exc:
            return Response(exc.message, status=403)

    def init(self):
        self.state = {"open": [], "seen": 0}

    @web.middleware("/private")
    def guard(self, request):
        if request.header("X-Key") != "sesame":
            return False
        request.headers = [(k, v) for k, v in request.headers if k.lower() != "x-user"] + [("X-User", "ann")]
        return request

    @route("GET", "/private/who")
    def who(self, request):
        return request.header("X-User") or "nobody"

    def on_ws_connect(self, connection, path, query):
        self.state["open"].append(connection)

    def on_ws_message(self, connection, message):
        self.state["seen"] += 1
        if isinstance(message, bytes):
            return [message, message[::-1]]
        if message == "broadcast":
            for other in self.state["open"]:
                web.send(other, "to all from " + str(connection))
            return None
        if message.startswith("sleep "):
            timing.sleep(int(message.split()[1]))
            return "slept"
        if message.startswith("send "):
            try:
                web.send(int(message.split()[1]), "hello")
            except HostError as exc:
                return "refused: " + exc.message
            return None
        if message == "boom":
            raise ValueError("boom")
        if message == "bye":
            web.send(connection, "closing")
            web.close(connection)
            return "never sent: the connection closed first"
        return "echo " + str(self.state["seen"]) + ": " + message

    def on_ws_disconnect(self, connection):
        self.state["open"].remove(connection)


run(Chat)
'''

WORLD = '''package test:chat;

world chat {
    import theater:simple/runtime;
    import theater:simple/timing;
    import theater:simple/http-framework;

    export theater:simple/actor;
    export theater:simple/http-handlers;
}
'''

MANIFEST = '''{top}name = "chat"
component = "{component}"

[[handlers]]
type = "timing"

[[handlers]]
type = "http-framework"
config = {{ {config} }}
'''


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    root = tmp_path_factory.mktemp("chat")
    (root / "wit").mkdir()
    (root / "app.py").write_text(CHAT)
    (root / "wit" / "world.wit").write_text(WORLD)
    (root / "manifest.toml").write_text(MANIFEST.format(component="build/chat.wasm", config="", top=""))
    return build(root)


class Served:
    """A runtime serving one chat actor: its id and the port of its websocket."""

    def __init__(self, home: Path, result: BuildResult, config: str, mailbox: MailboxLimits | None,
                 top: str = "") -> None:
        self.theater = Theater(home, mailbox=mailbox) if mailbox is not None else Theater(home)
        self.waiter = CommitWaiter(self.theater.store, WAIT)
        self.theater.store.blobs.put(result.wasm.read_bytes())
        seed_compiled(self.theater.store, self.theater.engine, result.digest)
        manifest = home.parent / "manifest.toml"
        manifest.write_text(MANIFEST.format(component=result.digest.hex(), config=config, top=top))
        self.actor = self.theater.start(manifest)
        [started] = [e for e in self.theater.events(self.actor) if e.type == START_SERVER]
        self.port = started.data["result"]["ok"]
        self.url = f"http://127.0.0.1:{self.port}/ws"

    def disconnected(self, count: int) -> list[tuple[str, Any]]:
        """The websocket calls once ``count`` disconnects are recorded (they are queued after the close)."""
        return self.waiter.until(lambda: [kind for kind, _ in self.calls()].count("disconnect") >= count
                                 and self.calls(), f"{count} disconnects")

    def calls(self) -> list[tuple[str, Any]]:
        """The websocket calls in the chain: (connect|message|disconnect, params)."""
        return [(e.data["export"][len(PREFIX):], e.data["params"]) for e in self.theater.events(self.actor)
                if e.type == "wasm/call" and e.data.get("export", "").startswith(PREFIX)]


@pytest.fixture
def serve(tmp_path: Path, chat: BuildResult) -> Iterator[Callable[..., Served]]:
    opened: list[Served] = []

    def open_(config: str = "", mailbox: MailboxLimits | None = None, top: str = "") -> Served:
        served = Served(tmp_path / f"home-{len(opened)}" / "home", chat, config, mailbox, top)
        opened.append(served)
        return served

    yield open_
    for served in opened:
        served.theater.close()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, WAIT))


async def _receive_until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[Any]:
    """Every message until the server closes the connection (the close included)."""
    seen = []
    while True:
        message = await ws.receive()
        seen.append(message)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return seen


def test_messages_echo_broadcast_and_close_as_recorded_calls_and_the_chain_replays(serve):
    served = serve()

    async def talk() -> tuple[list[Any], list[Any]]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(served.url) as first, session.ws_connect(served.url) as second:
                await first.send_str("hi")
                assert await first.receive_str() == "echo 1: hi"
                await second.send_bytes(b"\x00\x01\xff")
                assert [await second.receive_bytes() for _ in range(2)] == [b"\x00\x01\xff", b"\xff\x01\x00"]
                await first.send_str("broadcast")
                heard = sorted([await first.receive_str(), await second.receive_str()])
                await second.send_str("bye")
                closing = await _receive_until_closed(second)
                return heard, closing

    heard, closing = run(talk())
    assert heard == ["to all from 1", "to all from 1"]
    assert [m.data for m in closing] == ["closing", 1000]  # in the order the actor sent them, then nothing

    calls = served.disconnected(2)
    assert [kind for kind, _ in calls].count("connect") == 2
    assert [kind for kind, _ in calls].count("disconnect") == 2  # the actor's close, then the client's
    assert ("message", [calls[0][1][0], 1, {"ty": {"text": None}, "data": None, "text": {"some": "hi"}}]) in calls
    sends = [e for e in served.theater.events(served.actor) if e.type == SEND]
    assert len(sends) == 3 and all(e.data["result"] == {"ok": None} for e in sends)

    served.theater.stop(served.actor)  # its server stops: replay needs no socket
    assert chain_problems(served.theater) == []
    report = Replayer(served.theater.store).replay(uuid.UUID(served.actor))
    assert report.ok, report.divergence


def test_sending_on_a_connection_that_is_not_open_is_refused(serve):
    served = serve()

    async def talk() -> str:
        async with aiohttp.ClientSession() as session, session.ws_connect(served.url) as ws:
            await ws.send_str("send 999")
            return await ws.receive_str()

    assert run(talk()) == "refused: no open websocket connection 999 on this actor's servers"


def test_a_flood_beyond_the_mailbox_closes_the_connection_with_1013(serve):
    served = serve(mailbox=MailboxLimits(messages=2))

    async def flood() -> list[Any]:
        async with aiohttp.ClientSession() as session, session.ws_connect(served.url) as ws:
            await ws.send_str("sleep 2000")  # holds the actor while the rest arrive
            for n in range(50):
                await ws.send_str(f"m{n}")
            return await _receive_until_closed(ws)

    seen = run(flood())
    close = seen[-1]
    assert close.type == aiohttp.WSMsgType.CLOSE and close.data == 1013 and close.extra == "the actor's mailbox is full"
    messages = [kind for kind, _ in served.calls() if kind == "message"]
    assert len(messages) < 51  # the flood was refused, not queued without bound
    assert chain_problems(served.theater) == []


def test_an_oversized_message_is_refused_with_1009_and_reaches_no_actor(serve):
    served = serve("max_websocket_message_bytes = 1000")

    async def talk() -> tuple[bytes, list[Any]]:
        async with aiohttp.ClientSession() as session, session.ws_connect(served.url) as ws:
            await ws.send_bytes(b"x" * 1000)
            fits = await ws.receive_bytes()
            await ws.receive_bytes()
            await ws.send_bytes(b"x" * 1001)
            return fits, await _receive_until_closed(ws)

    fits, seen = run(talk())
    assert fits == b"x" * 1000
    assert seen[-1].type == aiohttp.WSMsgType.CLOSE and seen[-1].data == 1009
    assert [kind for kind, _ in served.disconnected(1)] == ["connect", "message", "disconnect"]


def test_too_many_connections_are_refused_before_the_upgrade(serve):
    served = serve("max_websockets = 1")

    async def talk() -> int:
        async with aiohttp.ClientSession() as session, session.ws_connect(served.url) as ws:
            await ws.send_str("hi")
            await ws.receive_str()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(served.url)
            return refused.value.status

    assert run(talk()) == 503
    assert [kind for kind, _ in served.calls()].count("connect") == 1


def test_an_idle_connection_is_closed_with_1001(serve):
    served = serve("websocket_idle_timeout_ms = 200")

    async def talk() -> list[Any]:
        async with aiohttp.ClientSession() as session, session.ws_connect(served.url, autoping=False) as ws:
            return await _receive_until_closed(ws)

    seen = run(talk())
    assert seen[-1].data == 1001 and seen[-1].extra == "idle for 200 ms"


def test_connections_close_when_the_actor_stops_and_it_holds_live_while_one_is_open(serve):
    served = serve()
    actor = served.theater.actor(served.actor)

    async def talk() -> list[Any]:
        async with aiohttp.ClientSession() as session, session.ws_connect(served.url) as ws:
            await ws.send_str("hi")
            await ws.receive_str()
            assert HttpFrameworkHandler(actor, {}).holds_live()
            await asyncio.get_running_loop().run_in_executor(None, served.theater.stop, served.actor)
            return await _receive_until_closed(ws)

    seen = run(talk())
    assert seen[-1].type == aiohttp.WSMsgType.CLOSE and seen[-1].data == 1001
    assert not HttpFrameworkHandler(actor, {}).holds_live()
    assert chain_problems(served.theater) == []


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"max_websockets": -1}, "max_websockets"),
        ({"max_websocket_message_bytes": 0}, "max_websocket_message_bytes"),
        ({"websocket_idle_timeout_ms": "1s"}, "websocket_idle_timeout_ms"),
    ],
)
def test_a_bad_websocket_limit_is_refused_naming_the_key(config, problem):
    with pytest.raises(ManifestError) as caught:
        FrameworkGrant.parse(config, "m.toml")
    assert problem in str(caught.value)


def test_a_childs_websocket_limits_must_lie_within_its_parents():
    parent = FrameworkGrant.parse({"max_websockets": 4, "max_websocket_message_bytes": 1000}, "p")
    assert FrameworkGrant.parse({"max_websockets": 5}, "c").within(parent) == (
        "max_websockets 5 is more than the parent's 4")
    assert "max_websocket_message_bytes" in FrameworkGrant.parse({"max_websockets": 4}, "c").within(parent)
    assert FrameworkGrant.parse({"max_websockets": 2, "max_websocket_message_bytes": 10}, "c").within(parent) is None


def test_a_reopened_actor_serves_its_websocket_again_with_new_connection_ids(chat, tmp_path):
    home = tmp_path / "home"
    first = Served(home, chat, "", None)

    async def talk(url: str) -> str:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str("hi")
            return await ws.receive_str()

    assert run(talk(first.url)) == "echo 1: hi"
    first.disconnected(1)
    actor, url = first.actor, first.url
    first.theater.close()  # as after a crash: the actor is not stopped, its socket goes with the runtime
    with Theater(home) as second:
        second.reopen(actor)
        assert run(talk(url)) == "echo 2: hi"  # the same port and path, the state as it was
        connects = [e.data["params"][1] for e in second.events(actor) if e.type == "wasm/call"
                    and e.data["export"] == PREFIX + "connect"]
        assert connects == [1, 2]  # a new connection never takes the id of one the actor knew
        second.stop(actor)
        assert chain_problems(second) == []


class _Home:
    """Stands for a runtime's store: the key of its network loop."""


def test_a_sent_message_goes_out_only_once_its_events_are_durable_and_never_when_they_fail():
    from theater import netloop
    from theater.files import FileAccess
    from theater.handlers.http_framework import _Conn, _Server

    effects: list[Callable[[BaseException | None], None]] = []
    home = _Home()
    actor = SimpleNamespace(id=uuid.uuid4(), source="m.toml", store=home,
                            manifest=SimpleNamespace(files=FileAccess.trusted()), defer=effects.append)
    handler = HttpFrameworkHandler(actor, {})  # type: ignore[arg-type]
    conn = _Conn(id=7, ws=None, queue=asyncio.Queue())  # type: ignore[arg-type]
    handler._state.servers[1] = _Server(id=1, host="127.0.0.1", port=0, connections={7: conn})
    loop = netloop.of(home)
    text = {"ty": {"text": None}, "data": None, "text": {"some": "hi"}}
    try:
        assert handler.send_websocket_message(1, 7, text) == {"ok": None}
        assert handler.send_websocket_message(0, 8, text) == {
            "err": "no open websocket connection 8 on this actor's servers"}
        assert conn.queue.qsize() == 0 and len(effects) == 1  # recorded, not sent
        effects[0](OSError("the disk is full"))  # its events could not be committed
        loop.submit(asyncio.sleep(0)).result(WAIT)
        assert conn.queue.qsize() == 0
        assert handler.send_websocket_message(1, 7, text) == {"ok": None}
        effects[1](None)  # durable
        loop.submit(asyncio.sleep(0)).result(WAIT)
        assert conn.queue.get_nowait() == ("text", "hi")
    finally:
        netloop.close(home)


def test_sdk_middleware_refuses_or_rewrites_a_request_before_its_route_in_a_recorded_call(serve):
    served = serve()

    def who(headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{served.port}/private/who", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    assert who({})[0] == 403
    assert who({"X-Key": "sesame"}) == (200, b"ann")
    assert who({"X-Key": "sesame", "X-User": "mallory"}) == (200, b"ann")  # the route sees the rewritten request
    guards = [e for e in served.theater.events(served.actor) if e.type == "wasm/call"
              and e.data["export"] == "theater:simple/http-handlers.handle-middleware"]
    assert len(guards) == 3
    served.theater.stop(served.actor)
    assert chain_problems(served.theater) == []


def test_a_failing_websocket_handler_fails_the_actor_and_its_connections_close_with_1001(serve):
    served = serve(top='on_err = "fail"\n')  # an err fails the actor only when the manifest says so

    async def talk() -> tuple[list[Any], list[Any]]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(served.url) as failing, session.ws_connect(served.url) as other:
                await failing.send_str("boom")
                return await _receive_until_closed(failing), await _receive_until_closed(other)

    failing, other = run(talk())
    assert [m.data for m in failing] == [1001] and [m.data for m in other] == [1001]
    assert served.theater.status(served.actor) == "failed"
    assert chain_problems(served.theater) == []


def test_a_websocket_handler_answering_err_keeps_the_actor_and_its_connections(serve):
    served = serve()  # on_err defaults to "answer": the err is recorded, the state change dropped, the actor goes on

    async def talk() -> tuple[str, bytes]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(served.url) as first, session.ws_connect(served.url) as second:
                await first.send_str("boom")
                await second.send_bytes(b"ab")
                answer = await second.receive_bytes()
                await first.send_str("hi")
                return await first.receive_str(), answer

    echoed, answer = run(talk())
    assert answer == b"ab" and echoed.endswith(": hi")
    assert served.theater.status(served.actor) == "running"
    assert "wasm/err-answer" in [e.type for e in served.theater.events(served.actor)]
    assert chain_problems(served.theater) == []


class _StuckSocket:
    """A websocket whose client does not read: every send waits until ``release`` is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.release = asyncio.Event()

    async def send_str(self, text: str) -> None:
        await self.release.wait()
        self.sent.append(("text", text))

    async def close(self, *, code: int, message: bytes) -> None:
        self.sent.append(("close", code, message))


def test_a_client_that_does_not_read_its_messages_is_closed_with_1008():
    from theater.handlers.http_framework import WS_QUEUE, _Conn, _enqueue, _write

    async def scenario() -> tuple[list[tuple[Any, ...]], bool]:
        ws = _StuckSocket()
        conn = _Conn(id=1, ws=ws, queue=asyncio.Queue())  # type: ignore[arg-type]
        writer = asyncio.ensure_future(_write(conn))
        _enqueue(conn, ("text", "first"))
        await asyncio.sleep(0)  # the writer takes it and waits on the client
        for n in range(WS_QUEUE + 5):  # more than may wait: the connection is closed instead
            _enqueue(conn, ("text", f"m{n}"))
        closing = conn.closing
        ws.release.set()
        await writer
        return ws.sent, closing

    sent, closing = run(scenario())
    assert closing
    assert sent[0] == ("text", "first")
    assert sent[-1] == ("close", 1008, b"the client does not read its messages")
    # WS_QUEUE frames waited; the next became the close, and nothing after it was sent.
    assert [frame[1] for frame in sent[1:-1]] == [f"m{n}" for n in range(WS_QUEUE)]


def test_an_invalid_message_from_the_actor_closes_the_connection_with_1011():
    from concurrent.futures import Future

    from theater.handlers.http_framework import _answered, _Conn

    conn = _Conn(id=1, ws=None, queue=asyncio.Queue())  # type: ignore[arg-type]
    done: Future[Any] = Future()
    no_data = {"ty": {"binary": None}, "data": None, "text": None}  # a binary message without its bytes
    ok = {"ty": {"text": None}, "data": None, "text": {"some": "ok"}}
    done.set_result(SimpleNamespace(output=[[[ok, no_data]]]))  # the messages, inside the result tuple
    _answered(conn, done)
    # The close goes first: what the call returned before the invalid message is dropped with it.
    assert [conn.queue.get_nowait() for _ in range(conn.queue.qsize())] == [
        ("close", 1011, b"the actor returned an invalid message")]
    assert conn.closing


def test_a_message_the_actor_cannot_take_closes_the_connection_with_1011_and_a_full_mailbox_with_1013():
    from concurrent.futures import Future

    from theater.errors import ActorNotRunning, MailboxFull
    from theater.handlers.http_framework import _Conn, _queue_call

    def refusing(error: BaseException) -> Any:
        def submit(op: Callable[[], Any], *, size: int = 0, force: bool = False) -> Future[Any]:
            future: Future[Any] = Future()
            future.set_exception(error)
            return future

        return SimpleNamespace(actor=SimpleNamespace(submit=submit))

    full = MailboxFull("a", waiting=1, waiting_bytes=0, max_messages=1, max_bytes=0)
    for error, code in ((ActorNotRunning("a", "failed", None), 1011), (full, 1013)):
        conn = _Conn(id=1, ws=None, queue=asyncio.Queue())  # type: ignore[arg-type]
        assert _queue_call(refusing(error), conn, "export", [], 5) is False
        assert conn.queue.get_nowait()[:2] == ("close", code) and conn.closing
