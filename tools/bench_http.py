"""HTTP: client calls/s through ``send-http`` and requests/s served by an actor's route, each next to a floor
measured in the same run.

    .venv/bin/python tools/bench_http.py
    .venv/bin/python tools/bench_http.py --calls 2000 --requests 2000 --concurrency 10 --rounds 5

Client: an actor written in component text with no SDK (``tests/components/http_client_wat.py``: the figure the
issue sets a floor for, as for the server) makes ``--calls`` sequential GETs of a 1 KiB body from a local aiohttp
server inside one request (each a recorded host call on its worker's own loop), then a Python actor built with the
SDK makes the same GETs (its guest's own Python adds its share); the floor is aiohttp's own client on its own loop
making the same GETs to the same server, one at a time, with the session settings the handler uses (no cookies, no
decompression, the same headers and pool) and its keep-alive connection opened before the clock starts, as the
handler's is. The handler alone: the same GETs through ``HttpClientHandler.send_http`` called from a plain thread
(no actor, no wasm, no record), so the lines above split into the handler's part and the runtime's (guest,
boundary, recording). The floor and the three are measured in turn in every round and every line stands next to
the same floor; under each, the CPU time of the whole process per call (the server's included, the same in all)
next to the floor's. Server: a Python actor's ``@route`` answering 1 KiB (each request a
recorded export call) under ``--concurrency`` clients, first an actor written in component text with no SDK
(``tests/components/http_wat.py``: the figure the issue sets a floor for), then the same route of a Python actor
built with the SDK; the floor is a bare aiohttp handler returning the same bytes to the same clients. ``--part``
measures only the client or only the server figures. Under each server figure, the CPU time of the whole process
per request (clients included) next to the bare handler's: a ratio that a machine busy with other work disturbs
less than requests/s (which then measure thread wake-up latency as much as work); the machine's load average is
printed before and after the server figures. Each figure and its floor are measured in turn ``--rounds`` times and the best of each is kept
(the machine is shared: the best round is the one least disturbed). Nothing here is asserted by the tests. The actors are built with the SDK (componentize-py,
cached under ``$THEATER_TEST_BUILD_CACHE`` or ``.cache/theater-build``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from theater.build import build_project  # noqa: E402
from theater import netloop  # noqa: E402
from theater.handlers.http_client import HttpClientHandler  # noqa: E402
from theater.netloop import NetLoop  # noqa: E402
from theater.runtime import Theater  # noqa: E402
from tests.components.http_wat import BODY as WAT_BODY, http_actor  # noqa: E402
from tests.components.http_client_wat import client_actor  # noqa: E402

CACHE = Path(os.environ.get("THEATER_TEST_BUILD_CACHE") or ROOT / ".cache" / "theater-build")
BODY = bytes(range(256)) * 4

CLIENT_APP = '''
import json
from theater_sdk import Actor, http, run

class Client(Actor):
    def on_request(self, message):
        ask = json.loads(message)
        total = 0
        for _ in range(ask["n"]):
            total += len(http.get(ask["url"]).content)
        return str(total)

run(Client)
'''
CLIENT_WORLD = '''package bench:client;
world client {
    import theater:simple/runtime;
    import theater:simple/http-client;
    export theater:simple/actor;
    export theater:simple/message-server-client;
}
'''
CLIENT_MANIFEST = '''name = "client"
component = "build/client.wasm"
[[handlers]]
type = "http-client"
config = { allow_loopback = ["127.0.0.1"] }
'''
SERVER_APP = '''
from theater_sdk import Actor, Response, route, run

BODY = bytes(range(256)) * 4

class Server(Actor):
    @route("GET", "/bytes")
    def body(self, request):
        return Response(BODY)

run(Server)
'''
SERVER_WORLD = '''package bench:server;
world server {
    import theater:simple/runtime;
    import theater:simple/http-framework;
    export theater:simple/actor;
    export theater:simple/http-handlers;
}
'''
SERVER_MANIFEST = '''name = "server"
component = "build/server.wasm"
[[handlers]]
type = "http-framework"
'''


def line(name: str, value: float, unit: str, floor: float, floor_name: str) -> None:
    print(f"{name:<44} {value:>10,.1f} {unit:<6}  floor ({floor_name}) {floor:,.1f} {unit}  x{value / floor:.2f}")


def _load_line(when: str) -> str:
    """The machine's load averages (1, 5, 15 minutes) next to its cores: figures taken on a machine busy with other
    work say more about its scheduling than about Theater, and should be quoted with it."""
    one, five, fifteen = os.getloadavg()
    return f"load average {when}: {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def best(rounds: int, measured: Callable[[], float], floor: Callable[[], float]) -> tuple[float, float]:
    """The best of ``rounds`` measurements of each, taken in turn."""
    values, floors = [], []
    for _ in range(rounds):
        floors.append(floor())
        values.append(measured())
    return max(values), max(floors)


def project(root: Path, name: str, app: str, world: str, manifest: str) -> Path:
    (root / name / "wit").mkdir(parents=True)
    (root / name / "app.py").write_text(app)
    (root / name / "wit" / "world.wit").write_text(world)
    (root / name / "manifest.toml").write_text(manifest)
    build_project(root / name, cache_dir=CACHE)
    return root / name / "manifest.toml"


async def _bare_server() -> tuple[web.AppRunner, int]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    app = web.Application()
    app.router.add_get("/bytes", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def _direct_session() -> aiohttp.ClientSession:
    """aiohttp's own client with the settings of the handler's sessions (no cookies, no decompression, no
    ``Accept-Encoding``, the same ``User-Agent`` and pool size): the floor differs from the handler only by what
    the handler adds."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100), cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
        trust_env=False, skip_auto_headers=("Accept-Encoding",), headers={"User-Agent": "theater-http-client"},
    )


async def _gets(url: str, n: int) -> tuple[float, float]:
    """Calls/s and CPU microseconds per call (the whole process) of ``n`` sequential GETs by aiohttp's own client on
    its own loop, its connection opened before the clock starts (as the handler's is, by its warm call)."""
    async with _direct_session() as session:
        async with session.get(url) as response:
            await response.read()
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            async with session.get(url) as response:
                await response.read()
        return _rates(n, started, cpu)


def _rates(n: int, started: float, cpu: float) -> tuple[float, float]:
    """Calls/s and CPU microseconds per call of ``n`` calls since ``started`` (``perf_counter``) and ``cpu``
    (``process_time``)."""
    return n / (time.perf_counter() - started), (time.process_time() - cpu) / n * 1e6


async def _load(url: str, n: int, concurrency: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one() -> None:
            async with session.get(url) as response:
                await response.read()
                assert response.status == 200, response.status

        async def worker(count: int) -> None:
            for _ in range(count):
                await one()

        await one()  # warm the connection pool
        started = time.perf_counter()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        return (n // concurrency * concurrency) / (time.perf_counter() - started)


class _Key:
    """Stands for a home's store: the key of a network loop."""


class _Bare:
    """Just what ``HttpClientHandler`` uses of an actor: a key for the runtime's loop, a source and a stop flag."""

    def __init__(self) -> None:
        self.store = _Key()
        self.source = "bench"
        self.stop_requested = threading.Event()


def _handler_alone(url: str, n: int) -> tuple[float, float]:
    """Calls/s and CPU microseconds per call of ``n`` GETs through ``HttpClientHandler.send_http`` called from this
    thread (no actor), its loop and connection made by a warm call before the clock starts."""
    bare = _Bare()
    handler = HttpClientHandler(bare, {"allow_loopback": ["127.0.0.1"]})  # type: ignore[arg-type]
    request = {"method": "GET", "uri": url, "headers": [], "body": None}
    try:
        assert "ok" in handler.send_http(request), "the warm call failed"
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            handler.send_http(request)
        return _rates(n, started, cpu)
    finally:
        netloop.close(bare.store)


def _client(theater: Theater, client_manifest: Path, wat_manifest: Path, url: str, args: argparse.Namespace) -> None:
    """Calls/s through ``send-http`` from a component-text actor and from an SDK Python actor, and through the
    handler alone, next to aiohttp's own client making the same GETs: the four are measured in turn in every round,
    so every line stands next to one floor."""
    client = theater.start(client_manifest)
    theater.request(client, json.dumps({"url": url, "n": 10}).encode(), timeout=60)  # warm
    ask = json.dumps({"url": url, "n": args.calls}).encode()
    component = theater.start(wat_manifest)
    answer = theater.request(component, url.encode(), timeout=600)  # warm (it makes --calls GETs per request)
    assert answer == b"done", answer

    def through(actor: str, message: bytes) -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        theater.request(actor, message, timeout=600)
        return _rates(args.calls, started, cpu)

    figures: dict[str, list[tuple[float, float]]] = {"floor": [], "wat": [], "sdk": [], "alone": []}
    for _ in range(args.rounds):
        figures["floor"].append(asyncio.run(_gets(url, args.calls)))
        figures["wat"].append(through(component, url.encode()))
        figures["sdk"].append(through(client, ask))
        figures["alone"].append(_handler_alone(url, args.calls))
    floor, floor_cpu = max(r for r, _ in figures["floor"]), min(c for _, c in figures["floor"])
    for key, label in (("wat", "client calls/s through send-http (component)"),
                       ("sdk", "  the same from an SDK Python actor"),
                       ("alone", "  the handler alone (no actor, no record)")):
        rate, cpu = max(r for r, _ in figures[key]), min(c for _, c in figures[key])
        line(label, rate, "/s", floor, "aiohttp client direct")
        print(f"{'    CPU per call (the whole process)':<44} {cpu:>10,.0f} us      direct {floor_cpu:,.0f} us"
              f"  x{floor_cpu / cpu:.2f}")


def _serve(theater: Theater, manifest: Path, url: str, args: argparse.Namespace) -> tuple[float, float, float, float]:
    """Requests/s an actor's ``/bytes`` route serves and the bare handler's (best of the rounds), and the CPU time
    of the whole process per request in each (least of the rounds; the clients included, the same for both)."""
    server = theater.start(manifest)
    [started_event] = [e for e in theater.events(server) if e.type == "theater:simple/http-framework/start-server"]
    actor_url = f"http://127.0.0.1:{started_event.data['result']['ok']}/bytes"
    cpu: dict[str, list[float]] = {actor_url: [], url: []}

    def load(target: str) -> float:
        started = time.process_time()
        rate = asyncio.run(_load(target, args.requests, args.concurrency))
        cpu[target].append((time.process_time() - started) / args.requests * 1e6)
        return rate

    try:
        served, bare = best(args.rounds, lambda: load(actor_url), lambda: load(url))
    finally:
        theater.stop(server)
    return served, bare, min(cpu[actor_url]), min(cpu[url])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--part", choices=("all", "client", "server"), default="all")
    args = parser.parse_args()
    assert WAT_BODY == BODY
    loop = NetLoop("bench-server")
    runner, port = loop.submit(_bare_server()).result(10)
    url = f"http://127.0.0.1:{port}/bytes"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        client_manifest = project(root, "client", CLIENT_APP, CLIENT_WORLD, CLIENT_MANIFEST)
        server_manifest = project(root, "server", SERVER_APP, SERVER_WORLD, SERVER_MANIFEST)
        with Theater(root / "home", durability="buffered") as theater:
            if args.part in ("all", "client"):
                (root / "wat-client").mkdir()
                (root / "wat-client" / "client.wat").write_text(client_actor(args.calls))
                (root / "wat-client" / "manifest.toml").write_text(
                    'name = "wat-client"\ncomponent = "client.wat"\n[[handlers]]\ntype = "http-client"\n'
                    'config = { allow_loopback = ["127.0.0.1"] }\n')
                _client(theater, client_manifest, root / "wat-client" / "manifest.toml", url, args)
            if args.part in ("all", "server"):
                print(_load_line("before the server figures"))
                (root / "wat").mkdir()
                (root / "wat" / "server.wat").write_text(http_actor())
                (root / "wat" / "manifest.toml").write_text(
                    'name = "wat-server"\ncomponent = "server.wat"\n[[handlers]]\ntype = "http-framework"\n')
                for label, manifest in ((f"requests/s served by a component route (x{args.concurrency})",
                                         root / "wat" / "manifest.toml"),
                                        (f"  the same through an SDK Python actor (x{args.concurrency})",
                                         server_manifest)):
                    served, bare, cpu, bare_cpu = _serve(theater, manifest, url, args)
                    line(label, served, "/s", bare, "bare aiohttp handler")
                    print(f"{'    CPU per request (the whole process)':<44} {cpu:>10,.0f} us      bare {bare_cpu:,.0f} us"
                          f"  x{bare_cpu / cpu:.2f}")
                print(_load_line("after them"))
    loop.submit(runner.cleanup()).result(10)
    loop.close()


if __name__ == "__main__":
    main()
