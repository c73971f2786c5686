"""Running a server until it is told to stop: one server per home (a lock file), SIGINT/SIGTERM end it cleanly.

Connections are bounded in time: one that does not send a complete request line and headers within the header
timeout (from when it opens, or from its previous response) is closed, and so is an idle keep-alive connection;
a body must arrive within the body timeout (see ``theater.server.app``). Streams are requests in progress and are
not cut.

A clean stop does not record a stop in the actors' chains: they were not asked to stop, so the next server on the
home brings them back, as it does after a crash.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web

from theater.errors import AddressUnavailable, HomeLocked, ServerError
from theater.server.app import create_app
from theater.server.service import SERVICE, ServerConfig

LOCK_FILE = "server.lock"
SHUTDOWN_TIMEOUT_S = 5.0
LINGERING_S = 2.0  # after an answer given before the whole body came (408, 413), how long the rest is read


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) to its parts.

    Raises:
        ValueError: not of that form, or the port is not in 0..65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9000, got {text!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Hold ``<home>/server.lock`` for as long as the server runs (released by the OS even after SIGKILL).

    Raises:
        HomeLocked: another server holds it.
    """
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HomeLocked(str(home)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def serve(config: ServerConfig, ready: Callable[[str, web.Application], None]) -> None:
    """Run the server until SIGINT or SIGTERM; ``ready(url, app)`` is called once it accepts connections.

    Raises:
        HomeLocked: another server runs on the home.
        AddressUnavailable: the address cannot be bound.
        StoreOpenError: the home's store cannot be opened.
    """
    with home_lock(config.home):
        asyncio.run(_serve(config, ready))


async def _serve(config: ServerConfig, ready: Callable[[str, web.Application], None]) -> None:
    app = await create_app(config)
    access_log = logging.getLogger("aiohttp.access") if config.access_log else None
    # keepalive_timeout doubles as the header timeout: aiohttp arms it when a connection opens and after each
    # response, and closes the connection when it fires while no complete request has arrived; a request in
    # progress (a stream) is never cut by it. The body timeout is the ``body_deadline`` middleware's.
    runner = web.AppRunner(app, handle_signals=False, access_log=access_log, handler_cancellation=True,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_S, keepalive_timeout=config.header_timeout,
                           lingering_time=LINGERING_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise AddressUnavailable(config.host, config.port, str(exc.strerror or exc)) from None
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        ready(f"http://{shown}:{port}", app)
        await _until_signalled()
    finally:
        await runner.cleanup()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


__all__ = ["SERVICE", "ServerError", "home_lock", "is_loopback", "parse_address", "serve"]
