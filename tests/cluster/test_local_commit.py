"""An append acknowledged by JetStream whose local commit then fails (the node's disk is full: a real small tmpfs
under its home, ``tests._full_disk``): the local home is then behind the replicated chain. The node must not go on
from its local head (the fence refuses that), nothing acknowledged may be lost, and the actor must answer again,
on this node or another, with a chain that verifies."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._full_disk import FullDisk, full_disk_at
from tests.cluster.test_cluster import (
    _wait_until,
    answered_within,
    assert_every_chain_holds_together,
    cluster_status,
    count_of,
    start_counter,
)
from tests.server._harness import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

BIG = 300_000  # bytes: a message this large makes the local commit grow the store's file (no free page holds it)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    with full_disk_at(tmp_path / "mnt") as disk:
        yield disk


def node_on(disk: FullDisk, tmp_path: Path, nats_urls: str, name: str) -> ServerProcess:
    """A node whose home is on the small tmpfs (through a symlink: its server log stays off it)."""
    (disk.path / name).mkdir()
    (tmp_path / name).symlink_to(disk.path / name)
    return ServerProcess(tmp_path / name, args=("--cluster", nats_urls, "--node", name, "--lease-ttl", "2",
                                                "--placement", "here")).start()


def test_an_append_replicated_but_not_committed_locally_loses_nothing_and_the_actor_answers_again(
        full_disk, tmp_path, nodes, nats_cluster):
    a = node_on(full_disk, tmp_path, nats_cluster.urls, "a")
    nodes.started["a"] = a  # stopped with the others
    b = nodes("b")
    actor = start_counter(a.http())
    acked = [count_of(b.http().ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}}))
             for _ in range(3)]
    assert acked == [1, 2, 3]
    full_disk.fill()
    big = {"message": {"base64": base64.b64encode(b"+" * BIG).decode()}}
    failed = a.http().post(f"/v1/actors/{actor}/request", big)
    assert failed.status in (503, 507), (failed.status, failed.body)  # not acknowledged: the client may retry
    # The stream took the big call, a's home did not: a cannot go on from its local head. The actor answers again
    # (after a gives it up, from whichever node takes it over from the stream), counting the big call too.
    assert answered_within(b.http(), actor) == 5  # the big call is in the stream: it counts, though unanswered
    full_disk.free()
    assert answered_within(a.http(), actor) == 6
    _wait_until(lambda: actor in cluster_status(nats_cluster.urls)["leases"], "the actor has an owner")
    owner = cluster_status(nats_cluster.urls)["leases"][actor]
    assert_every_chain_holds_together(nats_cluster.urls, [actor])
    verifier = {"a": a, "b": b}[owner]
    assert verifier.http().ok("POST", f"/v1/actors/{actor}/verify")["ok"]
    _wait_until(lambda: a.http().ok("GET", "/v1/server")["running"] == (1 if owner == "a" else 0),
                "a runs the actor only if it holds its lease")

