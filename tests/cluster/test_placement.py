"""Placement under concurrency: starts that name no node, sent at the same moment through several nodes, must not
all go to the node that was emptiest when each asked (a stale view of the loads): each start reserves its place on
the node it picks, and a reservation is refused when that node filled up since (``ClusterNode.place``)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.cluster.test_cluster import cluster_status, count_of
from tests.components import wat
from tests.server._harness import Http, start_body

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def start_all_at_once(entries: list[Http]) -> list[str]:
    """One start that names no node through each entry, all released at the same moment; the actors' ids."""
    barrier = threading.Barrier(len(entries))
    started: list[str | None] = [None] * len(entries)

    def start(index: int) -> None:
        barrier.wait(30)
        reply = entries[index].post("/v1/actors", start_body(f"placed-{index}", wat.counter_actor()))
        assert reply.status == 201, (reply.status, reply.body)
        started[index] = reply.json["id"]

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(entries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(started), started
    return [actor for actor in started if actor is not None]


def test_simultaneous_starts_through_two_nodes_do_not_pile_onto_the_emptiest_node(nodes, nats_cluster):
    a = nodes("a", lease_ttl=10, placement="least-loaded")
    b = nodes("b", lease_ttl=10, placement="least-loaded")
    nodes("c", lease_ttl=10)
    for name in ("a", "a", "b", "b"):  # a and b run two actors each, c none
        a.http().ok("POST", "/v1/actors", {**start_body("busy", wat.counter_actor()), "node": name}, status=201)
    placed = start_all_at_once([a.http(), a.http(), b.http(), b.http()])
    leases = cluster_status(nats_cluster.urls)["leases"]
    where = Counter(leases[actor] for actor in placed)
    # Starts that asked the loads before any of them had landed all saw c empty: two fill c up to the others' load,
    # the others find their reservation on c refused and go where the load is as low. (On a loaded machine a start
    # may land before another asks; then the loads it sees are fresh and a tie may still go to c.) Either way no
    # node ends up more than one above another; without reservations all four went to c (loads 2, 2, 4).
    assert where["c"] >= 2, where
    assert sorted(Counter(leases.values()).values()) == [2, 3, 3], leases
    for actor in placed:
        assert count_of(a.http().ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})) == 1
