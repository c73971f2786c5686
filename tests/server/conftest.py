"""Fixtures of the server tests: real server processes on fresh homes, stopped after the test; actor files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server._harness import Http, ServerProcess, start_body, write_actor


class Servers:
    """Starts servers on homes under one directory; stops them all at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[ServerProcess] = []

    def __call__(self, home: str = "home", **kwargs: Any) -> ServerProcess:
        server = ServerProcess(self.root / home, **kwargs).start()
        self.started.append(server)
        return server

    def close(self) -> None:
        for server in self.started:
            if server.alive():
                code = server.stop()
                assert code == 0, f"the server exited with {code} on SIGTERM: {server.stderr()}"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """``servers(home="home", env=..., args=...)``: a started server on ``tmp_path/home``."""
    opened = Servers(tmp_path)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server shared by the tests of a module."""
    opened = Servers(tmp_path_factory.mktemp("server"))
    yield opened()
    opened.close()


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Http:
    return server.http()


@pytest.fixture
def actor_files(tmp_path: Path) -> Callable[..., Path]:
    """``actor_files(name, wat_text, handlers=(...), extra="toml lines")`` -> the manifest's path."""
    return lambda name, component, **kw: write_actor(tmp_path / "actors", name, component, **kw)


@pytest.fixture(scope="session")
def start_actor() -> Callable[..., str]:
    """``start_actor(http, name, wat_text, **start_body_kw)`` -> the new actor's id (started over HTTP)."""

    def start(http: Http, name: str, component: str, **kw: Any) -> str:
        reply = http.post("/v1/actors", start_body(name, component, **kw))
        assert reply.status == 201, reply.body
        return reply.json["id"]

    return start
