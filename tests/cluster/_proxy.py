"""A TCP proxy on 127.0.0.1 for the cluster tests: it stands between one Theater node and a NATS server, so a test
can sever that node's connections to the cluster (and only that node's) while its process keeps running.

``cut()`` aborts every connection through the proxy (whatever was read and not yet passed on is dropped, as a
broken link drops it) and stops listening, so the node's reconnections are refused; ``restore()`` listens again on
the same port. The proxy runs on an event loop thread of its own; its methods are called from the test's thread.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

from tests.cluster._nats import free_port

WAIT = 30.0  # seconds any proxy operation may take before the test fails
CHUNK = 64 * 1024


class Proxy:
    """Forwards each connection to ``127.0.0.1:upstream`` from a free port of 127.0.0.1 (``url``)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.accepted = 0  # connections passed on since the start (each reconnection of the node counts)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.BaseTransport] = set()  # every socket the proxy opened or accepted

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Sever every connection through the proxy now and refuse new ones until ``restore``."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept connections again (the node reconnects by itself)."""
        self._call(self._listen())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        self._loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(WAIT)

    async def _listen(self) -> None:
        if self._server is None:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(lambda: _Tracked(self), "127.0.0.1", self.port,
                                                    reuse_address=True)

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for near, far in list(self._links):
            near.transport.abort()  # an abort, not a close: nothing buffered is sent on
            far.transport.abort()
        self._links.clear()
        for transport in list(self._transports):  # those accepted whose task had not started yet, too
            transport.abort()  # type: ignore[attr-defined]
        self._transports.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(3):  # let the aborted transports' connection_lost callbacks close their sockets
            await asyncio.sleep(0)

    async def _shutdown(self) -> None:
        """Cut, then let every task still on the loop end (a connection accepted just before the cut has its task
        scheduled but not started: it finds the proxy cut and aborts its connection)."""
        await self._cut()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=WAIT)
        await self._cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted just before a cut
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # a cut while it connects upstream ends it too
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            self._transports.add(up_writer.transport)
        except OSError:
            writer.transport.abort()
            return
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        finally:
            self._tasks.discard(task)
        if self._server is None:  # cut while connecting upstream
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self.accepted += 1
        link = (writer, up_writer)
        self._links.add(link)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(source, sink, link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    link: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        try:
            while data := await source.read(CHUNK):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:  # one side ended: so does the other
            self._links.discard(link)
            for writer in link:
                writer.transport.abort()


class Proxies:
    """One ``Proxy`` for each server of a NATS cluster: the URLs a node is given, and a cut of them all."""

    def __init__(self, ports: list[int]) -> None:
        self.proxies = [Proxy(port) for port in ports]

    @property
    def urls(self) -> str:
        return ",".join(p.url for p in self.proxies)

    def start(self) -> Proxies:
        for proxy in self.proxies:
            proxy.start()
        return self

    def cut(self) -> None:
        for proxy in self.proxies:
            proxy.cut()

    def restore(self) -> None:
        for proxy in self.proxies:
            proxy.restore()

    def accepted(self) -> int:
        return sum(p.accepted for p in self.proxies)

    def close(self) -> None:
        for proxy in self.proxies:
            proxy.close()
        gc.collect()  # anything left for the collector is reported now, within the test that made it


class _Tracked(asyncio.StreamReaderProtocol):
    """An accepted connection's protocol that registers its socket with the proxy as soon as it is accepted, so a
    cut aborts it even before its task has started."""

    def __init__(self, proxy: Proxy) -> None:
        super().__init__(asyncio.StreamReader(), proxy._accept)
        self._proxy = proxy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._proxy._transports.add(transport)
        super().connection_made(transport)
