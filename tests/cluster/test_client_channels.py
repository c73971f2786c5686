"""An API client's channel to an actor another node runs, opened through the node the client talks to: its open,
sends, polls and close go to the actor's owner (where the channel is); its stream is refused with a clear error
(stream it from the owner); a forwarded channel request that is not one of those is refused."""

from __future__ import annotations

import asyncio
import base64
import uuid

import pytest

from tests.cluster.test_cluster import _wait_until
from tests.server._harness import channel_component, start_body

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def text(message: dict) -> str:
    return base64.b64decode(message["base64"]).decode() if "base64" in message else message["text"]


def test_a_client_channel_through_a_node_that_does_not_run_the_actor_reaches_it_both_ways(nodes):
    a, b = nodes("a", lease_ttl=10), nodes("b", lease_ttl=10)
    body = start_body("acceptor", channel_component(welcome=b"welcome"), handlers=("message-server",))
    actor = b.http().ok("POST", "/v1/actors", body, status=201)["id"]
    opened = a.http().ok("POST", f"/v1/actors/{actor}/channels", {"message": {"text": "hello"}}, status=201)
    channel = opened["channel"]
    assert text(opened["welcome"]) == "welcome"
    assert a.http().ok("POST", f"/v1/channels/{channel}/send", {"message": {"text": "ping"}}) == {"delivered": True}
    polled = a.http().ok("GET", f"/v1/channels/{channel}/messages?wait=10")
    assert [text(m["message"]) for m in polled["messages"]] == ["ping"]  # the actor's echo, from b
    streamed = a.http().get(f"/v1/channels/{channel}/stream")
    assert streamed.status == 501 and streamed.json["error"] == "NotForwarded"
    assert a.http().delete(f"/v1/channels/{channel}").json == {"channel": channel, "closed": True}
    _wait_until(lambda: b.http().ok("GET", f"/v1/actors/{actor}/state")["state"]["text"] == "closed",
                "the actor on b hears the close")
    assert a.http().post(f"/v1/channels/{channel}/send", {"message": {"text": "late"}}).status == 404
    assert b.http().ok("POST", f"/v1/actors/{actor}/verify")["ok"]


def test_a_forwarded_channel_request_with_another_method_is_refused(nodes, nats_cluster):
    import cbor2
    import nats

    a = nodes("a", lease_ttl=10)
    body = start_body("acceptor", channel_component(), handlers=("message-server",))
    actor = a.http().ok("POST", "/v1/actors", body, status=201)["id"]
    channel = a.http().ok("POST", f"/v1/actors/{actor}/channels", {"message": {"text": "hi"}}, status=201)["channel"]
    asks = [(method, f"/v1/channels/{channel}{path}") for method, path in
            (("PUT", "/send"), ("POST", ""), ("GET", "/stream"), ("DELETE", "/messages"), ("POST", "/other"))]

    async def ask_all() -> list[int]:
        nc = await nats.connect(nats_cluster.urls.split(","))
        try:
            statuses = []
            for method, path in asks:
                request = {"op": "http", "actor": uuid.UUID(actor).bytes,
                           "body": f'{{"method":"{method}","path":"{path}"}}\n'.encode()}
                reply = await nc.request("theater.node.a.rpc", cbor2.dumps(request), timeout=10)
                statuses.append(cbor2.loads(reply.data)["status"])
            return statuses
        finally:
            await nc.close()

    assert asyncio.run(ask_all()) == [400] * len(asks)
    assert a.http().ok("GET", f"/v1/channels/{channel}/messages")["closed"] is False  # untouched
