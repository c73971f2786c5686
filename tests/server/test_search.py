"""``GET /v1/events/search`` and ``theater events --search``: events across actors by actor, type, time and text,
paged with tamper-checked cursors, under the same token rules as the rest of the API."""

from __future__ import annotations

import datetime
import json
import urllib.parse

import pytest

from tests.components import wat
from tests.server._harness import start_body
from theater.porcelain.forms import from_jsonable, readable_text


def q(**params: object) -> str:
    pairs = [(k, x) for k, v in params.items() for x in (v if isinstance(v, (list, tuple)) else [v])]
    return "/v1/events/search?" + urllib.parse.urlencode(pairs)


@pytest.fixture(scope="module")
def two(http, start_actor):
    """An echo and a logger, each sent three messages with words to find."""
    echo = start_actor(http, "echo", wat.echo_actor())
    logger = start_actor(http, "logger", wat.logger_actor())
    for word in ("alpha", "Bravo", "charlie"):
        http.ok("POST", f"/v1/actors/{echo}/send", {"message": {"text": f"echo-{word}"}})
        http.ok("POST", f"/v1/actors/{logger}/send", {"message": {"text": f"log-{word}"}})
    return echo, logger


def test_search_finds_text_in_decoded_data_across_actors_ignoring_case(http, two):
    echo, logger = two
    found = http.ok("GET", q(q="bravo"))
    hits = {(e["actor"], e["type"]) for e in found["events"]}
    assert (echo, "wasm/call") in hits and (logger, "wasm/call") in hits
    assert found["next"] is None and found["partial"] is False
    shown = [readable_text(from_jsonable(e["data"])).lower() for e in found["events"]]  # as the CLI shows it
    assert all("bravo" in text for text in shown)
    first = found["events"][0]
    assert set(first) >= {"hash", "actor", "seq", "type", "timestamp_ms", "data", "cause"}


def test_search_combines_actor_type_and_time_filters(http, two):
    echo, logger = two
    every = http.ok("GET", q(actor=[echo, logger], limit=1000))["events"]
    times = sorted(e["timestamp_ms"] for e in every)
    assert [(e["timestamp_ms"]) for e in every] == times  # time order
    calls = http.ok("GET", q(actor=echo[:8], type="wasm/call"))["events"]
    assert {e["actor"] for e in calls} == {echo} and {e["type"] for e in calls} == {"wasm/call"}
    assert len(calls) == 4  # init and three messages
    middle = calls[2]["timestamp_ms"]
    iso = datetime.datetime.fromtimestamp(middle / 1000, tz=datetime.UTC).isoformat()
    since = http.ok("GET", q(actor=echo, type="wasm/call", since=iso))["events"]
    assert [e["hash"] for e in since] == [e["hash"] for e in calls if e["timestamp_ms"] >= middle]
    until = http.ok("GET", q(actor=echo, type="wasm/call", until=str(middle * 1_000_000)))["events"]
    assert [e["hash"] for e in until] == [e["hash"] for e in calls if e["timestamp_ms"] < middle]


def test_search_pages_with_next_until_the_end(http, two):
    echo, logger = two
    whole = http.ok("GET", q(actor=[echo, logger], limit=1000))["events"]
    seen, after = [], None
    while True:
        page = http.ok("GET", q(actor=[echo, logger], limit=3, **({"after": after} if after else {})))
        seen.extend(e["hash"] for e in page["events"])
        after = page["next"]
        if after is None:
            break
    assert seen == [e["hash"] for e in whole]


def test_tampered_cursor_is_refused_with_400(http, two):
    echo, _ = two
    page = http.ok("GET", q(actor=echo, limit=2))
    cursor = page["next"]
    assert cursor
    altered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    for bad in (altered, "garbage!", "A" * 500):
        reply = http.get(q(actor=echo, limit=2, after=bad))
        assert reply.status == 400 and reply.json["error"] == "SearchCursorError", reply.body
        assert "cursor" in reply.json["message"]
    other = http.get(q(actor=echo, type="wasm/call", after=cursor))  # another search's cursor
    assert other.status == 400 and "another search" in other.json["message"]


def test_bad_filters_are_refused_with_400(http, two):
    for query, word in ((q(limit=1001), "limit"), (q(limit=0), "limit"), (q(since="yesterday"), "since"),
                        (q(until="12:xx"), "until"), (q(q="x" * 1001), "search text")):
        reply = http.get(query)
        assert reply.status == 400, (query, reply.body)
        assert word in reply.json["message"]
    assert http.get(q(actor="ffffffff")).status == 404  # a prefix that names no actor
    assert http.ok("GET", q(actor="ffffffff-ffff-ffff-ffff-ffffffffffff"))["events"] == []  # an id without events


def test_search_needs_the_token_like_every_route(servers):
    server = servers(env={"THEATER_TOKEN": "s3cret"})
    assert server.http().get("/v1/events/search").status == 401
    assert server.http(token="s3cret").ok("GET", "/v1/events/search") == {
        "events": [], "next": None, "partial": False, "scanned": 0}


def test_cli_searches_through_the_server_and_in_the_home(servers, tmp_path):
    server = servers()
    http = server.http()
    actor = http.ok("POST", "/v1/actors", start_body("echo", wat.echo_actor()), status=201)["id"]
    http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "needle-in-hay"}})
    through = json.loads(server.cli("events", "--search", "NEEDLE", "--json").stdout)
    assert [e["type"] for e in through["events"]] == ["wasm/call"]
    page = server.cli("events", "--search", "", "--actor", actor[:8], "--limit", "2")
    assert "--after" in page.stderr
    assert server.stop() == 0
    home = server.cli("events", "--search", "needle", "--type", "wasm/*", "--format", "compact")
    assert home.stdout.count("\n") == 1 and "wasm/call" in home.stdout and actor in home.stdout
    bad = server.cli("events", "--search", "x", "--after", "nope", check=False)
    assert bad.returncode == 1 and "SearchCursorError" in bad.stderr
