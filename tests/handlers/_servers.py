"""Real HTTP servers on 127.0.0.1 for the network handlers' tests, each on its own event loop thread, counting every
request they receive (so a test can show a refused request was never sent)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from theater.netloop import NetLoop

MIB = 1024 * 1024


class TestServer:
    """An aiohttp app on 127.0.0.1 (plain or TLS) with routes the client tests use.

    Routes: ``/hello`` (text), ``/bytes?n=N`` (N bytes, with a length), ``/stream?n=N`` (N bytes, chunked, no
    length), ``/echo`` (the request as JSON), ``/redirect?to=URL`` (302), ``/hang`` (never answers until the server
    closes).
    """

    __test__ = False  # not a pytest class

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.loop = NetLoop("test-server")
        self.requests: list[str] = []
        self.hits = threading.Event()
        self._tls = tls
        self._release: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.port = self.loop.submit(self._start()).result(10)
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/hello", self._hello)
        app.router.add_route("*", "/bytes", self._bytes)
        app.router.add_route("*", "/stream", self._stream)
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_route("*", "/redirect", self._redirect)
        app.router.add_route("*", "/hang", self._hang)
        app.router.add_route("*", "/{tail:.*}", self._hello)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls)
        await site.start()
        server = site._server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    def _seen(self, request: web.Request) -> None:
        self.requests.append(f"{request.method} {request.path_qs}")
        self.hits.set()

    async def _hello(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.Response(text="hello from the test server", headers={"X-Test": "yes"})

    async def _bytes(self, request: web.Request) -> web.Response:
        self._seen(request)
        n = int(request.query["n"])
        return web.Response(body=pattern(n), content_type="application/octet-stream")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        n = int(request.query["n"])
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        data = pattern(n)
        for at in range(0, n, 64 * 1024):
            await response.write(data[at:at + 64 * 1024])
        await response.write_eof()
        return response

    async def _echo(self, request: web.Request) -> web.Response:
        self._seen(request)
        body = await request.read()
        return web.json_response({"method": request.method, "headers": dict(request.headers),
                                  "body": body.decode("latin-1")})

    async def _redirect(self, request: web.Request) -> web.Response:
        self._seen(request)
        raise web.HTTPFound(request.query["to"])

    async def _hang(self, request: web.Request) -> web.Response:
        self._seen(request)
        assert self._release is not None
        await self._release.wait()
        return web.Response(text="late")

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        """Stop serving (a second call does nothing)."""
        if self._runner is None:
            return

        async def stop() -> None:
            assert self._release is not None and self._runner is not None
            self._release.set()
            await self._runner.cleanup()
            self._runner = None

        try:
            self.loop.submit(stop()).result(10)
        finally:
            self.loop.close()


def pattern(n: int) -> bytes:
    """``n`` bytes that are not all alike (so a body cut or shifted is noticed)."""
    block = bytes(range(256)) * 4
    return (block * (n // len(block) + 1))[:n]


def self_signed(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1, made by ``openssl``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def echoed(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON an ``/echo`` response carries, from a recorded ``send-http`` result."""
    return json.loads(result["ok"]["body"]["some"])
