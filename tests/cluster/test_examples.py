"""The examples in a cluster. Ping-pong with its two actors on different nodes: ping's requests reach pong on
another node, pong fails over when its node is SIGKILLed, and both chains verify. The supervisor: started through
one node, placed on the least loaded one, driven from the others; its tree fails over whole and the supervisor
goes on restarting its crashed worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.test_cluster import _wait_until, cluster_status
from tests.components import wat
from tests.server._harness import start_body
from tests.sdk._support import EXAMPLES, build, copy_project, seed_home

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")


def start(http, project: Path, digest: bytes) -> str:
    text = (project / "manifest.toml").read_text()
    body = {"manifest": text, "component_hash": digest.hex(), "source": project.name}
    return http.ok("POST", "/v1/actors", body, status=201)["id"]


def text_of(reply) -> str:
    return reply["response"]["text"]


def test_ping_plays_pong_on_another_node_and_on_after_pong_s_node_dies(tmp_path: Path, nodes):
    built = {}
    for name in ("ping", "pong"):
        project = copy_project(EXAMPLES / "ping-pong" / name, tmp_path / "projects" / name)
        built[name] = (project, build(project))
    for node in ("a", "b", "c"):  # the components and their compiled forms, as an operator would install them
        for _, result in built.values():
            seed_home(tmp_path / node, result)
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    pong = start(b.http(), built["pong"][0], built["pong"][1].digest)
    ping = start(a.http(), built["ping"][0], built["ping"][1].digest)
    a.http().ok("POST", f"/v1/actors/{ping}/send", {"message": {"text": f"play {pong} 3"}})
    score = a.http().ok("POST", f"/v1/actors/{ping}/request", {"message": {"text": "score"}})
    assert json.loads(text_of(score)) == {"rallies": 3, "last": "pong 2"}

    b.kill()  # pong's node: pong comes back on a or c from its replicated chain

    def pong_answers() -> bool:
        reply = c.http().post(f"/v1/actors/{pong}/request", {"message": {"text": "ping 7"}})
        return reply.status == 200 and text_of(reply.json) == "pong 7"

    _wait_until(pong_answers, "pong answers from another node")
    a.http().ok("POST", f"/v1/actors/{ping}/send", {"message": {"text": f"play {pong} 2"}})
    score = a.http().ok("POST", f"/v1/actors/{ping}/request", {"message": {"text": "score"}})
    assert json.loads(text_of(score)) == {"rallies": 5, "last": "pong 1"}
    owner = {"a": a, "c": c}[cluster_status(nodes.nats.urls)["leases"][pong]]
    assert a.http().ok("POST", f"/v1/actors/{ping}/verify")["ok"]
    assert owner.http().ok("POST", f"/v1/actors/{pong}/verify")["ok"]


def test_the_supervisor_example_runs_on_the_node_placement_picks_and_fails_over_whole(tmp_path: Path, nodes):
    project = copy_project(EXAMPLES / "supervisor", tmp_path / "projects" / "supervisor")
    result = build(project)
    for node in ("a", "b", "c"):
        seed_home(tmp_path / node, result)
    a = nodes("a", placement="least-loaded")
    b, c = nodes("b"), nodes("c")
    a.http().ok("POST", "/v1/actors", start_body("busy", wat.counter_actor()), status=201)  # a runs one
    boss = a.cli("start", str(project / "manifest.toml"), "--id-only").stdout.strip()  # so b, least loaded
    worker = text_of(c.http().ok("POST", f"/v1/actors/{boss}/request", {"message": {"text": "start"}}))
    leases = cluster_status(nodes.nats.urls)["leases"]
    assert (leases[boss], leases[worker]) == ("b", "b")  # its project's files reached b through the object store

    def works(node) -> bool:
        reply = node.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "work"}})
        return reply.status == 200 and text_of(reply.json) == "done by worker 1"

    assert works(a)
    assert c.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "crash"}}).status == 422
    _wait_until(lambda: works(a), "the supervisor restarts its crashed worker")

    b.kill()  # the tree's node: supervisor and worker come back together on a or c
    _wait_until(lambda: works(c), "the worker answers from another node")
    leases = cluster_status(nodes.nats.urls)["leases"]
    assert leases[boss] == leases[worker] and leases[boss] in ("a", "c")
    assert a.http().post(f"/v1/actors/{worker}/request", {"message": {"text": "crash"}}).status == 422
    _wait_until(lambda: works(c), "the supervisor restarts its worker on its new node")
    report = json.loads(text_of(a.http().ok("POST", f"/v1/actors/{boss}/request", {"message": {"text": "report"}})))
    assert [child for child, _ in report["failures"]] == [worker, worker]  # heard before and after the failover
    owner = {"a": a, "c": c}[leases[boss]]
    for actor in (boss, worker):
        assert owner.http().ok("POST", f"/v1/actors/{actor}/verify")["ok"]
