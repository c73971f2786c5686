"""Clients' labels across the cluster (``theater.cluster.labels``): a label set or removed through one node's API
reaches every node's home, with its blob; a node that joins later gets the labels already set; what is put on the
labels bucket by anyone else is checked before a node applies it."""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.test_cluster import _wait_until
from theater.cluster.labels import label_key

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def labels_of(node) -> dict[str, str]:
    return {row["label"]: row["hash"] for row in node.http().ok("GET", "/v1/labels")["labels"]}


def test_a_label_set_through_one_node_reaches_every_node_with_its_blob(nodes):
    a, b = nodes("a", lease_ttl=10), nodes("b", lease_ttl=10)
    put = a.http().request("POST", "/v1/blobs?label=greeting", data=b"hello from a")
    assert put.status == 201, put.body
    digest = put.json["hash"]
    _wait_until(lambda: labels_of(b).get("greeting") == digest, "b has a's label")
    fetched = b.http().get("/v1/blobs/greeting")
    assert fetched.status == 200 and fetched.body == b"hello from a"  # the blob came with it
    other = b.http().request("POST", "/v1/blobs", data=b"second").json["hash"]
    assert b.http().request("PUT", "/v1/labels/greeting", {"hash": other}).status == 200
    _wait_until(lambda: labels_of(a).get("greeting") == other, "a follows b's change")
    c = nodes("c", lease_ttl=10)  # joins later: it gets what is set already
    _wait_until(lambda: labels_of(c).get("greeting") == other, "a node joining later has the label")
    assert a.http().delete("/v1/labels/greeting").status == 200
    _wait_until(lambda: "greeting" not in labels_of(b) and "greeting" not in labels_of(c), "the removal reaches all")


def test_a_label_forged_on_the_bucket_is_not_applied(nodes, nats_cluster):
    import nats

    a = nodes("a", lease_ttl=10)
    assert a.http().request("POST", "/v1/blobs?label=honest", data=b"honest").status == 201
    real = bytes(range(32)).hex()

    async def forge() -> None:
        nc = await nats.connect(nats_cluster.urls.split(","))
        try:
            js = nc.jetstream()
            labels = await js.key_value("theater-labels")
            store = await js.object_store("theater-blobs")
            await store.put(real, b"these bytes do not hash to the name")  # a blob whose bytes lie
            await labels.put(label_key("forged"), real.encode())
            await labels.put(label_key("theater/forged"), a_digest.encode())  # the runtime's own: never from outside
            await labels.put(label_key("garbage"), b"not hex")
            await labels.put(label_key("last"), a_digest.encode())  # applied: the watch went past the others
        finally:
            await nc.close()

    a_digest = labels_of(a)["honest"]
    asyncio.run(forge())
    _wait_until(lambda: labels_of(a).get("last") == a_digest, "the watch reaches the last entry")
    assert set(labels_of(a)) == {"honest", "last"}
