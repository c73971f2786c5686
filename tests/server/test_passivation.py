"""Passivation behind the server: passivated actors survive SIGKILL and answer after a restart; with
``--passivate-after`` durable resume is lazy (actors come back when first addressed), under the same rules."""

from __future__ import annotations

import base64

import pytest

from tests.components import wat
from tests.server._harness import Http, start_body
from theater.server.service import RESUMED_LISTED, resumed_summary

PASSIVATE = ("--passivate-after", "0.05")


def start(http: Http, name: str, component: str, extra: str = "") -> str:
    return http.ok("POST", "/v1/actors", start_body(name, component, extra=extra), status=201)["id"]


def ask(http: Http, actor: str) -> int:
    answer = http.ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})
    return int.from_bytes(base64.b64decode(answer["response"]["base64"]), "little")


def events(http: Http, actor: str) -> list[dict]:
    return http.ok("GET", f"/v1/actors/{actor}/events?limit=10000")["events"]


def wait_for_passivation(http: Http, actor: str) -> None:
    stream = http.sse(f"/v1/actors/{actor}/subscribe?type=actor/passivated&history=1")
    for kind, payload in stream:
        if kind == "event" and payload["type"] == "actor/passivated":
            return


def statuses(http: Http, **query: str) -> dict[str, str]:
    path = "/v1/actors" + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    return {a["id"]: a["status"] for a in http.ok("GET", path)["actors"]}


@pytest.mark.slow
def test_passivated_actors_survive_sigkill_and_answer_after_restart(servers):
    first = servers(args=PASSIVATE)
    http = first.http()
    counter = start(http, "counter", wat.counter_actor())
    for _ in range(3):
        http.ok("POST", f"/v1/actors/{counter}/send", {"message": {"text": "+"}})
    wait_for_passivation(http, counter)
    first.kill()

    second = servers(args=PASSIVATE)
    http = second.http()
    info = http.ok("GET", "/v1/server")
    assert {r["actor"]: r["outcome"] for r in info["resumed"]} == {counter: "lazy"}
    assert info["resumed_counts"] == {"lazy": 1}
    assert "1 lazy" in second.banner
    assert statuses(http) == {counter: "passivated"}
    assert ask(http, counter) == 4
    reasons = [e["data"]["reason"] for e in events(http, counter) if e["type"] == "wasm/instantiate"]
    assert reasons == ["start", "activate"]
    assert http.ok("POST", f"/v1/actors/{counter}/verify")["ok"]


@pytest.mark.slow
def test_lazy_resume_brings_an_interrupted_actor_back_when_first_addressed(servers):
    first = servers()
    http = first.http()
    counter = start(http, "counter", wat.counter_actor())
    volatile = start(http, "volatile", wat.counter_actor(), extra="durable = false")
    http.ok("POST", f"/v1/actors/{counter}/send", {"message": {"text": "+"}})
    first.kill()

    second = servers(args=("--passivate-after", "300"))
    http = second.http()
    resumed = {r["actor"]: r["outcome"] for r in http.ok("GET", "/v1/server")["resumed"]}
    assert resumed == {counter: "lazy", volatile: "not durable"}
    assert ask(http, counter) == 2
    reasons = [e["data"]["reason"] for e in events(http, counter) if e["type"] == "wasm/instantiate"]
    assert reasons == ["start", "resume"]
    refused = http.post(f"/v1/actors/{volatile}/send", {"message": {"text": "+"}})
    assert refused.status == 409


@pytest.mark.slow
def test_the_listing_pages_through_actors_in_id_order(servers):
    server = servers(args=("--passivate-after", "300"))
    http = server.http()
    ids = sorted(start(http, f"c{i}", wat.counter_actor()) for i in range(5))
    first = http.ok("GET", "/v1/actors?limit=2")
    second = http.ok("GET", f"/v1/actors?limit=2&after={first['next']}")
    third = http.ok("GET", f"/v1/actors?limit=2&after={second['next']}")
    assert third["next"] is None
    assert [a["id"] for page in (first, second, third) for a in page["actors"]] == ids
    assert http.get("/v1/actors?after=nope").status == 400
    listed = server.cli("list", "--limit", "2", "--after", ids[0])
    assert ids[1] in listed.stdout and ids[2] in listed.stdout and ids[3] not in listed.stdout


def test_a_million_lazy_actors_are_counted_not_listed_by_the_server_info():
    # A home of passivated actors brings them all back lazily: /v1/server names a bounded number, failures first.
    lazy = [{"actor": f"lazy-{i}", "outcome": "lazy", "detail": ""} for i in range(RESUMED_LISTED + 500)]
    failed = [{"actor": "broken", "outcome": "failed", "detail": "GuestFault: boom"}]
    listed, counts = resumed_summary(lazy + failed)
    assert len(listed) == RESUMED_LISTED and listed[0] == failed[0]
    assert counts == {"lazy": RESUMED_LISTED + 500, "failed": 1}
