"""HTTP: client calls/s through ``send-http`` and requests/s served by an actor's route, each next to a floor
measured in the same run.

    .venv/bin/python tools/bench_http.py
    .venv/bin/python tools/bench_http.py --calls 500 --requests 2000 --concurrency 10 --rounds 5

Client: a Python actor makes ``--calls`` sequential GETs of a 1 KiB body from a local aiohttp server inside one
request (each a recorded host call through the runtime's loop); the floor is aiohttp's own client on its own loop
making the same GETs to the same server. The handler alone: the same GETs through ``HttpClientHandler.send_http``
called from a plain thread (no actor, no wasm, no record), so the line above splits into the handler's part and the
runtime's (guest, boundary, recording). Server: a Python actor's ``@route`` answering 1 KiB (each request a
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


async def _gets(url: str, n: int) -> float:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        for _ in range(n):
            async with session.get(url) as response:
                await response.read()
        return n / (time.perf_counter() - started)


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


def _handler_alone(url: str, n: int) -> float:
    bare = _Bare()
    handler = HttpClientHandler(bare, {"allow_loopback": ["127.0.0.1"]})  # type: ignore[arg-type]
    request = {"method": "GET", "uri": url, "headers": [], "body": None}
    try:
        handler.send_http(request)  # warm: the thread's loop and pool
        started = time.perf_counter()
        for _ in range(n):
            handler.send_http(request)
        return n / (time.perf_counter() - started)
    finally:
        netloop.close(bare.store)


def _client(theater: Theater, client_manifest: Path, url: str, args: argparse.Namespace) -> None:
    client = theater.start(client_manifest)
    theater.request(client, json.dumps({"url": url, "n": 10}).encode(), timeout=60)  # warm
    ask = json.dumps({"url": url, "n": args.calls}).encode()

    def through_client() -> float:
        started = time.perf_counter()
        theater.request(client, ask, timeout=600)
        return args.calls / (time.perf_counter() - started)

    through, floor = best(args.rounds, through_client, lambda: asyncio.run(_gets(url, args.calls)))
    line("client calls/s through send-http", through, "/s", floor, "aiohttp client direct")
    alone, floor = best(args.rounds, lambda: _handler_alone(url, args.calls),
                        lambda: asyncio.run(_gets(url, args.calls)))
    line("  of which the handler alone (no actor)", alone, "/s", floor, "aiohttp client direct")


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
    parser.add_argument("--calls", type=int, default=300)
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
                _client(theater, client_manifest, url, args)
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
