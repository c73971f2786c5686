"""``get-child-events`` for a child on another node (``theater server --child-placement least-loaded``): the parent's
node asks the child's node for its durable head, reads the chain from the stream up to it, checks it and keeps it
in its home, so the supervisor gets the child's events and its record (a reference to that head) verifies; a node
that does not hold the parent's lease is refused the head."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.cluster.test_cluster import _echoes, cluster_status
from tests.cluster.test_remote_children import ask_node, events, verified
from tests.components import supervisor_wat as sw
from tests.components import wat
from tests.server._harness import Http, start_body

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def child_events(http: Http, boss: str, child: str) -> int:
    """The number of events the supervisor's ``get-child-events`` answered (its response, 8 bytes LE)."""
    reply = http.ok("POST", f"/v1/actors/{boss}/request", {"message": {"text": f"events\0{child}"}})
    raw = base64.b64decode(reply["response"]["base64"])
    assert len(raw) == 8, raw  # not an err (ERR_MARKER + message)
    return int.from_bytes(raw, "little")


def references(http: Http, boss: str) -> list[dict[str, Any]]:
    """The chain references (``result_ref``) the supervisor's record holds, in order."""
    found = []
    for event in events(http, boss):
        ref = event["data"].get("result_ref") if isinstance(event["data"], dict) else None
        if ref is not None:
            found.append(ref["ok"]["chain"])
    return found


def test_a_supervisor_reads_the_events_of_its_child_on_another_node_and_its_record_verifies(nodes, nats_cluster):
    a = nodes("a", args=("--child-placement", "least-loaded"))
    b = nodes("b")
    boss_body = start_body("boss", sw.supervisor_actor(), handlers=("message-server", "supervisor"))
    boss = a.http().ok("POST", "/v1/actors", boss_body, status=201)["id"]
    worker_body = {**start_body("worker", wat.echo_actor(), handlers=("message-server",)), "parent": boss}
    worker = a.http().ok("POST", "/v1/actors", worker_body, status=201)["id"]
    assert cluster_status(nats_cluster.urls)["leases"][worker] == "b"
    assert _echoes(b.http(), worker, "hello")

    first = child_events(a.http(), boss, worker)
    child = events(b.http(), worker)  # the child's chain, through its own node's API
    assert first == len(child)
    assert _echoes(b.http(), worker, "again")  # the chain grows; a second read brings the copy up to the new head
    second = child_events(a.http(), boss, worker)
    child = events(b.http(), worker)
    assert second == len(child) > first

    refs = references(a.http(), boss)
    assert [r["to_seq"] for r in refs] == [first - 1, second - 1]
    assert [r["head"] for r in refs] == ["hex:" + child[first - 1]["hash"], "hex:" + child[second - 1]["hash"]]
    assert verified(a.http(), boss)  # the replay finds the referenced events in a's home
    assert verified(b.http(), worker)


def test_asking_a_child_s_head_from_a_node_without_the_parent_s_lease_is_refused(nodes, nats_cluster):
    a = nodes("a", args=("--child-placement", "least-loaded"))
    b = nodes("b")
    boss_body = start_body("boss", sw.supervisor_actor(), handlers=("message-server", "supervisor"))
    boss = a.http().ok("POST", "/v1/actors", boss_body, status=201)["id"]
    other = a.http().ok("POST", "/v1/actors", start_body("other", wat.echo_actor()), status=201)["id"]
    worker_body = {**start_body("worker", wat.echo_actor(), handlers=("message-server",)), "parent": boss}
    worker = a.http().ok("POST", "/v1/actors", worker_body, status=201)["id"]
    assert cluster_status(nats_cluster.urls)["leases"][worker] == "b"
    servers = nats_cluster.urls
    assert ask_node(servers, "b", "child-head", worker, {"from": "c", "parent": boss})["status"] == 403
    assert ask_node(servers, "b", "child-head", worker, {"from": "b", "parent": boss})["status"] == 403
    assert ask_node(servers, "b", "child-head", worker, {"from": "a", "parent": other})["status"] == 403
    answer = ask_node(servers, "b", "child-head", worker, {"from": "a", "parent": boss})  # the parent's node
    assert answer["status"] == 200 and answer["seq"] == len(events(b.http(), worker)) - 1
