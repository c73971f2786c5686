"""A parent and its children on different nodes (``theater server --child-placement least-loaded``): the child
starts on another node, its failure there reaches its parent, the parent's restart is carried out on the child's
node at most once, a node that does not hold a child (or its parent) cannot stop or restart it, and the tree goes
on when either node is SIGKILLed; every chain verifies afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from typing import Any

import cbor2
import pytest

from tests.cluster.test_cluster import _echoes, _wait_until, assert_every_chain_holds_together, cluster_status
from tests.components import wat
from tests.server._harness import Http, start_body

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def tree(nodes, lease_ttl: float = 2.0) -> tuple[Any, Any, Any, str, str]:
    """Nodes a (children placed on the least loaded node), b and c; a supervisor on a and its worker on b."""
    a = nodes("a", lease_ttl=lease_ttl, args=("--child-placement", "least-loaded"))
    b, c = nodes("b", lease_ttl=lease_ttl), nodes("c", lease_ttl=lease_ttl)
    boss_body = start_body("boss", wat.echo_actor(), handlers=("message-server", "supervisor"),
                           extra="[supervision]\nintensity = 5\nperiod_s = 60")
    boss = a.http().ok("POST", "/v1/actors", boss_body, status=201)["id"]
    worker_body = {**start_body("worker", wat.faulty_actor(), handlers=("message-server",)), "parent": boss}
    worker = a.http().ok("POST", "/v1/actors", worker_body, status=201)["id"]
    return a, b, c, boss, worker


def events(http: Http, actor: str) -> list[dict[str, Any]]:
    return http.ok("GET", f"/v1/actors/{actor}/events?limit=1000")["events"]


def of_type(http: Http, actor: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in events(http, actor) if e["type"] == kind]


def instantiations(http: Http, actor: str) -> list[str]:
    return [e["data"]["reason"] for e in of_type(http, actor, "wasm/instantiate")]


def verified(http: Http, actor: str) -> bool:
    return bool(http.ok("POST", f"/v1/actors/{actor}/verify")["ok"])


def ask_node(servers: str, node: str, op: str, actor: str, fields: dict[str, Any]) -> dict[str, Any]:
    """One request to node ``node`` over NATS, as another node (or an attacker on the cluster's NATS) sends it."""
    import nats

    async def ask() -> dict[str, Any]:
        nc = await nats.connect(servers.split(","))
        try:
            request = cbor2.dumps({"op": op, "actor": uuid.UUID(actor).bytes, "body": cbor2.dumps(fields)})
            return cbor2.loads((await nc.request(f"theater.node.{node}.rpc", request, timeout=30)).data)
        finally:
            await nc.close()

    return asyncio.run(ask())


def test_a_child_spawned_on_another_node_is_restarted_there_by_its_parent(nodes, nats_cluster):
    a, b, c, boss, worker = tree(nodes)
    leases = cluster_status(nats_cluster.urls)["leases"]
    assert (leases[boss], leases[worker]) == ("a", "b")
    assert a.http().ok("GET", f"/v1/actors/{boss}")["children"] == [worker]
    assert _echoes(c.http(), worker, "hello")

    assert c.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "trap"}}).status == 422
    _wait_until(lambda: _echoes(a.http(), worker, "restarted"), "the parent restarts its child on b")
    assert instantiations(b.http(), worker) == ["start", "restart"]  # on b, once
    assert cluster_status(nats_cluster.urls)["leases"][worker] == "b"
    restarts = of_type(a.http(), boss, "supervisor/restart")
    assert [(r["data"]["child"], r["data"]["reason"], r["data"]["cause"]["how"]) for r in restarts] == [
        (worker, "failure", "failure")]
    assert verified(a.http(), boss) and verified(a.http(), worker)


def test_a_parent_stops_and_restarts_its_child_on_another_node_on_request(nodes, nats_cluster):
    a, b, c, boss, worker = tree(nodes)
    # Through the API of a node that runs neither: the restart is the parent's (recorded in its chain).
    c.http().ok("POST", f"/v1/actors/{worker}/restart")
    _wait_until(lambda: instantiations(b.http(), worker) == ["start", "restart"], "the requested restart on b")
    assert _echoes(a.http(), worker, "again")
    assert [r["data"]["reason"] for r in of_type(a.http(), boss, "supervisor/restart")] == ["requested"]
    # A stop through the child's own node: its parent records it and forgets the child, as for a local child.
    b.http().ok("POST", f"/v1/actors/{worker}/stop")
    _wait_until(lambda: [s["data"]["child"] for s in of_type(a.http(), boss, "supervisor/stop")] == [worker],
                "the parent records the stop")
    assert a.http().ok("GET", f"/v1/actors/{boss}")["children"] == []
    assert instantiations(b.http(), worker) == ["start", "restart"]  # not restarted after its stop
    assert verified(a.http(), boss) and verified(b.http(), worker)


def test_a_restart_or_stop_from_a_node_without_the_lease_or_a_forged_end_is_refused(nodes, nats_cluster):
    a, b, c, boss, worker = tree(nodes)
    other = a.http().ok("POST", "/v1/actors", start_body("other", wat.echo_actor()), status=201)["id"]
    servers = nats_cluster.urls
    before = len(events(b.http(), worker))
    head = before - 1
    # c runs no such child; c does not hold the parent's lease; `other` is not the child's parent.
    assert ask_node(servers, "c", "child-restart", worker, {"from": "a", "parent": boss, "seq": head})["status"] == 404
    assert ask_node(servers, "b", "child-stop", worker, {"from": "c", "parent": boss})["status"] == 403
    assert ask_node(servers, "b", "child-restart", worker, {"from": "c", "parent": boss, "seq": head})["status"] == 403
    assert ask_node(servers, "b", "child-stop", worker, {"from": "a", "parent": other})["status"] == 403
    assert ask_node(servers, "b", "child-state", worker, {"from": "c", "parent": boss})["status"] == 403
    # A running child is not restarted behind its parent's back, even by the parent's node.
    assert ask_node(servers, "b", "child-restart", worker, {"from": "a", "parent": boss, "seq": head})["status"] == 409
    # An end nobody recorded: refused by the parent's node (it is not on the stream).
    forged = {"from": "b", "parent": boss, "how": "failure", "seq": head,
              "fault": {"kind": "trap", "export": "x", "detail": "forged"}}
    assert ask_node(servers, "a", "child-ended", worker, forged)["status"] == 409
    assert ask_node(servers, "a", "child-start", worker, {"from": "c", "parent": boss, "manifest": "", "component": b"",
                                                         "state": None})["status"] == 403
    assert len(events(b.http(), worker)) == before
    assert of_type(a.http(), boss, "supervisor/restart") == [] and of_type(a.http(), boss, "supervisor/stop") == []
    assert a.http().ok("GET", f"/v1/actors/{boss}")["children"] == [worker]

    # A genuine failure is restarted once; the same restart asked again (the seq of that end) is refused.
    assert b.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "trap"}}).status == 422
    _wait_until(lambda: _echoes(b.http(), worker, "restarted"), "the parent restarts its child")
    ended = of_type(b.http(), worker, "wasm/error")[-1]["seq"]
    again = ask_node(servers, "b", "child-restart", worker, {"from": "a", "parent": boss, "seq": ended})
    assert again["status"] == 409
    assert instantiations(b.http(), worker) == ["start", "restart"]
    assert verified(a.http(), boss) and verified(b.http(), worker)


def test_sigkill_of_the_child_s_node_brings_the_child_to_its_parent_which_goes_on_supervising_it(nodes,
                                                                                                 nats_cluster):
    a, b, c, boss, worker = tree(nodes)
    b.kill()
    _wait_until(lambda: _echoes(c.http(), worker, "back"), "the child answers again")
    leases = cluster_status(nats_cluster.urls)["leases"]
    assert leases[worker] == leases[boss] == "a"  # it went to its parent's node
    assert c.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "trap"}}).status == 422
    _wait_until(lambda: _echoes(c.http(), worker, "restarted"), "the parent restarts its child on a")
    assert instantiations(a.http(), worker) == ["start", "resume", "restart"]
    assert verified(a.http(), boss) and verified(a.http(), worker)
    assert_every_chain_holds_together(nats_cluster.urls, [boss, worker])


def test_sigkill_of_the_parent_s_node_leaves_the_child_supervised_where_it_runs(nodes, nats_cluster):
    a, b, c, boss, worker = tree(nodes)
    a.kill()
    _wait_until(lambda: cluster_status(nats_cluster.urls)["leases"].get(boss) in ("b", "c"), "the parent moves")
    leases = cluster_status(nats_cluster.urls)["leases"]
    assert leases[worker] == "b"  # the child stays where it runs
    owner = {"b": b, "c": c}[leases[boss]]
    _wait_until(lambda: owner.http().ok("GET", f"/v1/actors/{boss}")["children"] == [worker],
                "the parent knows its child again")
    assert b.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "trap"}}).status == 422
    _wait_until(lambda: _echoes(c.http(), worker, "restarted"), "the moved parent restarts its child")
    assert instantiations(b.http(), worker) == ["start", "restart"]
    restarts = of_type(owner.http(), boss, "supervisor/restart")
    assert [r["data"]["child"] for r in restarts] == [worker]
    assert verified(owner.http(), boss) and verified(b.http(), worker)
    assert_every_chain_holds_together(nats_cluster.urls, [boss, worker])


def test_a_parent_back_on_a_restarted_node_supervises_its_child_on_another_node_again(nodes, nats_cluster):
    a, b, c, boss, worker = tree(nodes, lease_ttl=120)  # nobody else takes the parent before a is back
    a.kill()
    a.start()  # takes its leases back at its first scan: the parent is reopened on a, its child runs on b
    _wait_until(lambda: a.http().ok("GET", f"/v1/actors/{boss}")["children"] == [worker],
                "the reopened parent adopts its child on b")
    assert cluster_status(nats_cluster.urls)["leases"][worker] == "b"
    assert b.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "trap"}}).status == 422
    _wait_until(lambda: _echoes(c.http(), worker, "restarted"), "the reopened parent restarts its child on b")
    assert instantiations(b.http(), worker) == ["start", "restart"]
    assert [r["data"]["child"] for r in of_type(a.http(), boss, "supervisor/restart")] == [worker]
    c.http().ok("POST", f"/v1/actors/{boss}/stop")  # the parent's end stops its child on b, recorded by both
    _wait_until(lambda: of_type(b.http(), worker, "actor/stop") != [], "the child is stopped with its parent")
    assert [s["data"]["reason"] for s in of_type(a.http(), boss, "supervisor/stop")] == ["parent stop"]
    assert verified(a.http(), boss) and verified(b.http(), worker)
    assert_every_chain_holds_together(nats_cluster.urls, [boss, worker])


def test_a_child_s_node_too_busy_to_answer_when_its_parent_is_reopened_does_not_leave_the_child_unsupervised(
        nodes, nats_cluster):
    a, b, c, boss, worker = tree(nodes, lease_ttl=120)  # b keeps the child's lease while it is stopped
    a.kill()
    os.kill(b.process.pid, signal.SIGSTOP)  # b cannot answer the reopened parent's "child-info"
    try:
        a.start()
        _wait_until(lambda: "not adopted" in a.stderr(), "the reopened parent asks b in vain")
        assert a.http().ok("GET", f"/v1/actors/{boss}")["children"] == []
    finally:
        os.kill(b.process.pid, signal.SIGCONT)
    _wait_until(lambda: a.http().ok("GET", f"/v1/actors/{boss}")["children"] == [worker],
                "the parent asks again and adopts its child on b")
    assert b.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "trap"}}).status == 422
    _wait_until(lambda: _echoes(c.http(), worker, "restarted"), "the parent restarts its child on b")
    assert [r["data"]["child"] for r in of_type(a.http(), boss, "supervisor/restart")] == [worker]
    assert verified(a.http(), boss) and verified(b.http(), worker)


@pytest.mark.integration
def test_the_supervisor_example_supervises_its_worker_on_another_node_and_after_that_node_dies(tmp_path, nodes,
                                                                                               nats_cluster):
    pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")
    from tests.sdk._support import EXAMPLES, build, copy_project, seed_home

    project = copy_project(EXAMPLES / "supervisor", tmp_path / "projects" / "supervisor")
    result = build(project)
    for node in ("a", "b", "c"):
        seed_home(tmp_path / node, result)
    a = nodes("a", args=("--child-placement", "least-loaded"))
    b, c = nodes("b"), nodes("c")
    boss = a.cli("start", str(project / "manifest.toml"), "--id-only").stdout.strip()
    worker = c.http().ok("POST", f"/v1/actors/{boss}/request", {"message": {"text": "start"}})["response"]["text"]
    leases = cluster_status(nats_cluster.urls)["leases"]
    assert (leases[boss], leases[worker]) == ("a", "b")

    def works(node) -> bool:
        reply = node.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "work"}})
        return reply.status == 200 and reply.json["response"]["text"] == "done by worker 1"

    def failures() -> list[str]:
        reply = a.http().ok("POST", f"/v1/actors/{boss}/request", {"message": {"text": "report"}})
        return [child for child, _ in json.loads(reply["response"]["text"])["failures"]]

    assert works(c)
    assert c.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "crash"}}).status == 422
    _wait_until(lambda: works(a), "the supervisor on a restarts its crashed worker on b")
    assert failures() == [worker]  # its guest heard the failure (handle-child-error), across nodes
    children = a.http().ok("POST", f"/v1/actors/{boss}/request", {"message": {"text": "children"}})
    assert children["response"]["text"] == worker
    assert verified(b.http(), worker)

    b.kill()  # the worker's node: the worker comes to its supervisor's node, which goes on supervising it
    _wait_until(lambda: works(c), "the worker answers again")
    assert cluster_status(nats_cluster.urls)["leases"][worker] == "a"
    assert c.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "crash"}}).status == 422
    _wait_until(lambda: works(c), "the supervisor restarts its worker, now on a")
    assert failures() == [worker, worker]
    for actor in (boss, worker):
        assert verified(a.http(), actor)
    assert_every_chain_holds_together(nats_cluster.urls, [boss, worker])
