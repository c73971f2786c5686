"""A start body's ``"node"`` names the cluster node to start the actor on (docs/cluster.md). A server that is not
part of a cluster must refuse it, naming the field, rather than start the actor where the client did not ask."""

from __future__ import annotations

from tests.components import wat
from tests.server._harness import start_body


def test_a_start_naming_a_node_on_a_server_without_a_cluster_is_refused(http):
    before = http.ok("GET", "/v1/server")["running"]
    refused = http.post("/v1/actors", {**start_body("placed", wat.counter_actor()), "node": "b"})
    assert refused.status == 422
    assert refused.json["error"] == "NotInACluster"
    assert refused.json["message"].startswith("node: this server is not part of a cluster")
    assert http.ok("GET", "/v1/server")["running"] == before  # nothing was started
    plain = http.post("/v1/actors", {**start_body("plain", wat.counter_actor()), "node": None})
    assert plain.status == 201  # "node": null names no node
