"""The ping-pong example with its two actors on different nodes of a cluster: ping's requests reach pong on
another node, pong fails over when its node is SIGKILLed, and both chains verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.test_cluster import _wait_until, cluster_status
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
