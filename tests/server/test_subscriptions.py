"""Subscriptions: every event, exactly once, in chain order, history then live with no gap; SSE and WebSocket."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp

from tests.components import wat
from tests.server._harness import WAIT, Http


def send_many(http: Http, actor: str, count: int, start: threading.Event | None = None) -> threading.Thread:
    """Send ``count`` messages from a thread (after ``start`` is set, when given)."""

    def run() -> None:
        if start is not None:
            assert start.wait(WAIT)
        for i in range(count):
            assert http.post(f"/v1/actors/{actor}/send", {"message": {"text": str(i)}}).status == 200

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def events_until(stream: Iterator[tuple[str, Any]], last_seq: int) -> tuple[dict, list[dict]]:
    """The ready message and the events of a stream up to and including ``last_seq``."""
    kind, ready = next(stream)
    assert kind == "ready"
    seen: list[dict] = []
    for kind, payload in stream:
        assert kind == "event", (kind, payload)
        seen.append(payload)
        if payload["seq"] >= last_seq:
            break
    return ready, seen


def chain(http: Http, actor: str) -> list[dict]:
    return http.ok("GET", f"/v1/actors/{actor}/events?limit=10000")["events"]


def test_history_then_live_has_no_gap_and_no_duplicate(http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())
    before = send_many(http, actor, 10)
    before.join(WAIT)
    go = threading.Event()
    sender = send_many(http, actor, 30, go)
    stream = http.sse(f"/v1/actors/{actor}/subscribe?history=1")
    kind, ready = next(stream)
    assert kind == "ready" and ready["from"] == 0
    go.set()  # messages are appended while the history is being sent
    last = 3 + 40 * 2  # genesis, instantiate, init's call and result; then a call and a result per message
    seen = []
    for _, payload in stream:
        seen.append(payload)
        if payload["seq"] >= last:
            break
    sender.join(WAIT)
    assert [e["seq"] for e in seen] == list(range(last + 1))
    assert seen == chain(http, actor)


def test_a_live_subscription_starts_after_the_head_and_sees_every_new_event(http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())
    stream = http.sse(f"/v1/actors/{actor}/subscribe")
    kind, ready = next(stream)
    assert (kind, ready["from"], ready["head"]) == ("ready", 4, 3)
    send_many(http, actor, 5).join(WAIT)
    seen = [payload for _, (_, payload) in zip(range(10), stream)]
    assert [e["seq"] for e in seen] == list(range(4, 14))
    assert all(e["actor"] == actor for e in seen)


def test_a_subscription_from_a_sequence_number_with_type_filter_and_limit(http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())
    send_many(http, actor, 6).join(WAIT)
    found = list(http.sse(f"/v1/actors/{actor}/subscribe?from=5&type=wasm/result&limit=3"))
    assert [k for k, _ in found] == ["ready", "event", "event", "event"]  # the stream ends at the limit
    results = [e for e in chain(http, actor) if e["type"] == "wasm/result" and e["seq"] >= 5][:3]
    assert [p for _, p in found[1:]] == results


def test_two_subscribers_and_two_senders_at_once_see_the_same_chain(http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())
    last = 3 + 2 * 25 * 2
    results: list[list[dict]] = [[], []]

    def subscribe(slot: int) -> None:
        results[slot] = events_until(http.sse(f"/v1/actors/{actor}/subscribe?history=1"), last)[1]

    readers = [threading.Thread(target=subscribe, args=(i,)) for i in range(2)]
    for reader in readers:
        reader.start()
    senders = [send_many(http, actor, 25) for _ in range(2)]
    for thread in senders + readers:
        thread.join(WAIT)
    expected = chain(http, actor)
    assert len(expected) == last + 1
    assert results[0] == results[1] == expected


def test_sse_resumes_after_the_last_event_id(http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())
    found = list(http.request("GET", f"/v1/actors/{actor}/subscribe?limit=2",
                              headers={"Last-Event-ID": "1", "Accept": "text/event-stream"}).body.split(b"\n\n"))
    ids = [line for block in found for line in block.split(b"\n") if line.startswith(b"id: ")]
    assert ids == [b"id: 2", b"id: 3"]


def test_a_websocket_subscription_carries_the_same_events(server, http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())

    async def collect() -> tuple[dict, list[dict]]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{server.url}/v1/actors/{actor}/subscribe?history=1") as ws:
                ready = json.loads((await ws.receive(timeout=WAIT)).data)
                await asyncio.to_thread(lambda: send_many(http, actor, 3).join(WAIT))
                frames = [json.loads((await ws.receive(timeout=WAIT)).data) for _ in range(10)]
                return ready, frames

    ready, frames = asyncio.run(collect())
    assert ready == {"kind": "ready", "actor": actor, "from": 0, "head": 3}
    assert {f["kind"] for f in frames} == {"event"}
    assert [{k: v for k, v in f.items() if k != "kind"} for f in frames] == chain(http, actor)


def test_subscribing_to_an_unknown_actor_is_404(http):
    reply = http.get("/v1/actors/00000000-0000-0000-0000-000000000000/subscribe")
    assert reply.status == 404 and reply.json["error"] == "ActorNotFound"
