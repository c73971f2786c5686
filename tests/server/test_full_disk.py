"""A server whose home is on a really full disk (a small tmpfs): a failed commit answers 507 ``StoreFullError``, the
actor reports ``recovering``, and once space is freed it takes messages and stops again, without a restart of the
server. Before, the answer was 503 ``StoreWriteError`` and then 409 ``StaleHeadError`` for every later request."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._full_disk import FullDisk, full_disk_at
from tests.components import wat
from tests.server._harness import Http, ServerProcess

BIG = 300_000  # bytes: a message this large makes a commit grow the store's file


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    with full_disk_at(tmp_path / "mnt") as disk:
        yield disk


@pytest.fixture
def server(full_disk: FullDisk, servers) -> ServerProcess:
    """A server on a home that is the tmpfs itself (its log goes next to it, on the ordinary disk)."""
    return servers(home="mnt")


def send(http: Http, actor: str, message: bytes):
    return http.post(f"/v1/actors/{actor}/send", {"message": {"base64": base64.b64encode(message).decode()}})


def test_full_disk_is_reported_as_507(server, full_disk, start_actor):
    http = server.http()
    actor = start_actor(http, "counter", wat.counter_actor(), handlers=("message-server",))
    assert send(http, actor, b"+1").status == 200
    full_disk.fill()

    refused = send(http, actor, b"lost" + b"." * BIG)
    assert refused.status == 507, refused.body
    assert refused.json["error"] == "StoreFullError"
    assert "the disk is full" in refused.json["message"]
    assert http.ok("GET", f"/v1/actors/{actor}")["status"] == "recovering"

    full_disk.free()
    assert send(http, actor, b"+1").status == 200
    inspected = http.ok("GET", f"/v1/actors/{actor}")
    assert inspected["status"] == "running"
    state = http.ok("GET", f"/v1/actors/{actor}/state")["state"]
    assert base64.b64decode(state["base64"]) == (2).to_bytes(8, "little")
    stopped = http.ok("POST", f"/v1/actors/{actor}/stop")
    assert stopped["status"] == "stopped" and stopped["head"]["type"] == "actor/stop"
    verified = http.ok("POST", f"/v1/actors/{actor}/verify")
    assert verified["ok"], verified
