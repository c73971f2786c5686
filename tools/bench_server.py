"""Benchmarks of ``theater server``: every figure is printed next to a floor measured in the same run.

    .venv/bin/python tools/bench_server.py                  # 4,000 sends each way
    .venv/bin/python tools/bench_server.py --messages 1000  # a quick look

* management API ``send`` requests/s to an echo actor from 32 concurrent aiohttp clients, next to the embedded
  API's messages/s (32 threads calling ``Theater.send``) on the same machine in the same run;
* event stream latency: from the commit of an event (a store commit listener notes the time) to its arrival at an
  SSE subscriber, next to one bare HTTP round trip to the same server.

The server runs in this process on its own thread and event loop (so the commit listener can be added), and the
clients run on another loop. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.components import wat  # noqa: E402
from tests.server._harness import start_body  # noqa: E402
from theater.runtime import Theater  # noqa: E402
from theater.server import ServerConfig, create_app  # noqa: E402
from theater.server.service import SERVICE, Service  # noqa: E402

CONCURRENCY = 32


def line(name: str, value: float, unit: str, floor: float | None = None, floor_name: str = "",
         target: float | None = None) -> None:
    text = f"{name:<64} {value:>12,.1f} {unit}"
    if floor is not None:
        ratio = value / floor if floor else float("nan")
        text += f"   floor ({floor_name}) {floor:,.1f} {unit}   ratio {ratio:.2f}"
        if target is not None:
            text += f"   target >= {target}  {'MET' if ratio >= target else 'NOT MET'}"
    print(text, flush=True)


def embedded_sends(home: Path, n: int) -> float:
    """Messages/s through the embedded API: 32 threads calling ``Theater.send`` on one echo actor."""
    with Theater(home) as theater:
        actor = theater.start(start_manifest(home.parent))
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(lambda i: theater.send(actor, b"ping"), range(50)))  # warm up
            began = time.perf_counter()
            list(pool.map(lambda i: theater.send(actor, b"ping"), range(n)))
            return n / (time.perf_counter() - began)


def start_manifest(directory: Path) -> Path:
    (directory / "echo.wat").write_text(wat.echo_actor())
    (directory / "echo.toml").write_text('name = "echo"\ncomponent = "echo.wat"\n')
    return directory / "echo.toml"


class ServerThread:
    """The server on its own thread and loop, on a free port."""

    def __init__(self, home: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.service: Service | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._run, args=(home,), daemon=True)
        self._thread.start()
        assert self.ready.wait(60), "the server did not start"

    def _run(self, home: Path) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start(home))
        self.loop.run_forever()

    async def _start(self, home: Path) -> None:
        app = await create_app(ServerConfig(home=home, port=0))
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.service = app[SERVICE]
        self.url = "http://127.0.0.1:%d" % self.runner.addresses[0][1]
        self.ready.set()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(60)


async def api_sends(url: str, actor: str, n: int) -> float:
    """Requests/s of ``POST /v1/actors/{id}/send`` from 32 concurrent clients."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        body = {"message": {"text": "ping"}}

        async def worker(todo: object) -> None:
            for _ in todo:  # type: ignore[attr-defined]
                async with session.post(f"{url}/v1/actors/{actor}/send", json=body) as response:
                    assert response.status == 200, await response.text()

        warm_up = iter(range(CONCURRENCY * 4))
        await asyncio.gather(*(worker(warm_up) for _ in range(CONCURRENCY)))
        todo = iter(range(n))
        began = time.perf_counter()
        await asyncio.gather(*(worker(todo) for _ in range(CONCURRENCY)))
        return n / (time.perf_counter() - began)


async def stream_latency(server: ServerThread, actor: str, count: int) -> tuple[list[float], list[float]]:
    """Per event: seconds from its commit to its arrival on an SSE stream; and bare round trips."""
    committed: dict[int, float] = {}
    store = server.service.theater.store  # type: ignore[union-attr]
    key = uuid.UUID(actor)
    store.add_commit_listener(lambda: committed.setdefault(store.log.head(key).seq, time.perf_counter()))
    latencies: list[float] = []
    trips: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            began = time.perf_counter()
            async with session.get(f"{server.url}/v1/server") as response:
                await response.read()
            trips.append(time.perf_counter() - began)
        async with session.get(f"{server.url}/v1/actors/{actor}/subscribe") as stream:
            await stream.content.readuntil(b"\n\n")  # ready
            for _ in range(count):
                async with session.post(f"{server.url}/v1/actors/{actor}/send", json={"message": {"text": "x"}}):
                    pass
                for _ in range(2):  # the call and its result
                    block = await stream.content.readuntil(b"\n\n")
                    arrived = time.perf_counter()
                    seq = int(block.split(b"\n", 1)[0].removeprefix(b"id: "))
                    start = min((t for s, t in committed.items() if s >= seq), default=arrived)
                    latencies.append(arrived - start)
    return latencies, trips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="theater-bench-server-") as tmp:
        root = Path(tmp)
        (root / "embedded").mkdir()
        print("== server ==", flush=True)
        floor = embedded_sends(root / "embedded" / "home", args.messages)
        server = ServerThread(root / "server-home")
        try:
            client_loop = asyncio.new_event_loop()
            http_start = client_loop.run_until_complete(_start_echo(server.url))
            rate = client_loop.run_until_complete(api_sends(server.url, http_start, args.messages))
            line("API send requests/s (32 concurrent aiohttp clients, durable)", rate, "req/s", floor,
                 "embedded Theater.send, 32 threads")
            latencies, trips = client_loop.run_until_complete(stream_latency(server, http_start, 200))
            client_loop.close()
        finally:
            server.close()
        p50, p99 = (statistics.quantiles(latencies, n=100)[i] * 1000 for i in (49, 98))
        trip = statistics.median(trips) * 1000
        line("event stream latency, commit -> SSE subscriber, p50", p50, "ms", trip, "one bare HTTP round trip")
        line("event stream latency, commit -> SSE subscriber, p99", p99, "ms")


async def _start_echo(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/v1/actors", json=start_body("echo", wat.echo_actor())) as response:
            return (await response.json())["id"]


if __name__ == "__main__":
    main()
