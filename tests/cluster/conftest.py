"""Fixtures of the cluster tests: a real three-server NATS cluster with JetStream and real ``theater server
--cluster`` processes on 127.0.0.1, each node on its own home; everything stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster._nats import NatsCluster
from tests.server._harness import ServerProcess


class Nodes:
    """Theater nodes of one cluster, ``nodes(name)`` starts one; all stopped at the end. A node starts the actors
    started through it itself (``--placement here``) unless the test asks for another placement: the tests of
    failover and forwarding need to know where each actor runs."""

    def __init__(self, root: Path, nats: NatsCluster) -> None:
        self.root = root
        self.nats = nats
        self.started: dict[str, ServerProcess] = {}

    def __call__(self, name: str, *, servers: str | None = None, lease_ttl: float = 2.0,
                 placement: str = "here", args: tuple[str, ...] = ()) -> ServerProcess:
        process = ServerProcess(self.root / name, args=(
            "--cluster", servers or self.nats.urls, "--node", name, "--lease-ttl", str(lease_ttl),
            "--placement", placement, *args))
        self.started[name] = process.start()
        return process

    def close(self) -> None:
        for process in self.started.values():
            if process.alive():
                process.kill()


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path / "nats")
    try:
        cluster.start()
    except BaseException:
        cluster.close()  # servers that did start (a port taken meanwhile, a slow machine) must not outlive the test
        raise
    yield cluster
    cluster.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()
STDERR_TAIL = 60  # lines of each node's log shown with a failed test


@pytest.fixture
def nodes(request: pytest.FixtureRequest, tmp_path: Path, nats_cluster: NatsCluster) -> Iterator[Any]:
    opened = Nodes(tmp_path, nats_cluster)
    yield opened
    opened.close()
    if request.node.stash.get(_CALL_FAILED, False):  # what the nodes logged (warnings: takeovers, refusals)
        for name, process in opened.started.items():
            tail = process.stderr().splitlines()[-STDERR_TAIL:]
            print(f"--- node {name}, last {len(tail)} lines of its log ---", *tail, sep="\n")
