"""One porcelain behind the CLI, the API and Python: the same queries give the same JSON through all three; and
the API's behaviour fixed on the way (live flags, a client's channel close, actor-id prefixes, multi-line text)."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from typing import Any

from store import Store
from tests.components import wat
from tests.server._harness import WAIT, channel_component, start_body
from theater.porcelain import actor_rows, blob_info, describe, select_events, state_point, verify_actor
from theater.porcelain.forms import blob_json, event_json, state_json, verify_json


def test_cli_api_and_porcelain_give_the_same_json(servers, actor_files):
    server = servers()
    http = server.http()
    manifest = actor_files("counter", wat.counter_actor())
    actor = server.cli("start", str(manifest), "--id-only").stdout.strip()
    for _ in range(3):
        server.cli("message", actor, "+")
    server.cli("stop", actor)
    blob = http.request("POST", "/v1/blobs?label=parity", data=b"some bytes").json["hash"]
    events = http.ok("GET", f"/v1/actors/{actor}/events")["events"]
    third = events[7]

    def cli(*args: str) -> Any:
        return json.loads(server.cli(*args, "--json").stdout)

    with Store(server.home / "store", readonly=True) as store:
        actor_id = uuid.UUID(actor)
        same = {
            "events": (
                cli("events", actor, "--type", "wasm/*", "--from", "1", "--limit", "5"),
                http.ok("GET", f"/v1/actors/{actor}/events?type=wasm/*&from=1&limit=5")["events"],
                [event_json(e) for e in select_events(store, actor_id, types=("wasm/*",), start=1, limit=5).events],
            ),
            "state at a seq": (
                cli("state", actor, "--seq", "7"),
                http.ok("GET", f"/v1/actors/{actor}/state?seq=7"),
                state_json(state_point(store, actor_id, seq=7)),
            ),
            "state at an event prefix": (
                cli("state", actor, "--at", third["hash"][:10]),
                http.ok("GET", f"/v1/actors/{actor}/state?event={third['hash'][:10]}"),
                state_json(state_point(store, actor_id, event=third["hash"][:10])),
            ),
            "verify": (
                cli("verify", actor),
                http.ok("POST", f"/v1/actors/{actor}/verify"),
                verify_json(verify_actor(store, actor_id)),
            ),
            "list": (
                cli("list", "--all"),
                http.ok("GET", "/v1/actors?all=1")["actors"],
                actor_rows(store),
            ),
            "inspect": (
                cli("inspect", actor),
                http.ok("GET", f"/v1/actors/{actor}"),
                describe(store, actor_id),
            ),
            "blob by label": (
                cli("store", "resolve", "store:parity"),
                http.ok("GET", "/v1/blobs/store:parity/info"),
                blob_json(blob_info(store, "store:parity")),
            ),
            "blob by prefix": (
                cli("store", "resolve", blob[:8]),
                http.ok("GET", f"/v1/blobs/{blob[:8]}/info"),
                blob_json(blob_info(store, blob[:8])),
            ),
        }
    for query, (by_cli, by_api, by_python) in same.items():
        assert by_cli == by_api == by_python, query
    assert [e["seq"] for e in same["events"][0]] == [1, 2, 3, 4, 5]
    assert same["state at a seq"][0]["seq"] == 7 and same["verify"][0]["ok"] is True
    assert same["blob by label"][0] == {"hash": blob, "size": 10}


def test_stopped_and_failed_actors_are_not_live(server, http, start_actor):
    running = start_actor(http, "counter", wat.counter_actor())
    stopped = start_actor(http, "counter", wat.counter_actor())
    failed = start_actor(http, "failing", wat.actor_wat(send=wat.trap()))
    http.ok("POST", f"/v1/actors/{stopped}/stop")
    http.post(f"/v1/actors/{failed}/send", {"message": {"text": "boom"}})
    rows = {a["id"]: a for a in http.ok("GET", "/v1/actors")["actors"]}
    assert (rows[running]["status"], rows[running]["live"]) == ("running", True)
    assert (rows[stopped]["status"], rows[stopped]["live"]) == ("stopped", False)
    assert (rows[failed]["status"], rows[failed]["live"]) == ("failed", False)
    assert http.ok("GET", f"/v1/actors/{stopped}")["live"] is False


def test_a_channel_closed_by_the_client_ends_its_stream_with_closed(http, start_actor):
    actor = start_actor(http, "chat", channel_component(), handlers=("message-server",))
    cid = http.ok("POST", f"/v1/actors/{actor}/channels", {}, status=201)["channel"]
    seen: queue.Queue[tuple[str, Any]] = queue.Queue()

    def read() -> None:
        for kind, payload in http.sse(f"/v1/channels/{cid}/stream"):
            seen.put((kind, payload))
        seen.put(("ended", None))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert seen.get(timeout=WAIT)[0] == "ready"
    http.ok("POST", f"/v1/channels/{cid}/send", {"message": {"text": "ping"}})
    assert seen.get(timeout=WAIT)[0] == "message"
    assert http.ok("DELETE", f"/v1/channels/{cid}") == {"channel": cid, "closed": True}
    assert seen.get(timeout=WAIT) == ("closed", {"channel": cid})
    assert seen.get(timeout=WAIT) == ("ended", None)
    reader.join(WAIT)


def test_actor_id_prefixes_are_accepted_where_ids_are(server, http, start_actor):
    actor = start_actor(http, "echo", wat.echo_actor())
    prefix = actor[:8]
    assert http.ok("GET", f"/v1/actors/{prefix}")["id"] == actor
    assert json.loads(server.cli("inspect", prefix, "--json").stdout)["id"] == actor
    assert json.loads(server.cli("events", prefix, "--json", "--limit", "1").stdout)[0]["actor"] == actor
    assert server.cli("message", prefix, "hi", "--request").stdout == "hi\n"
    unknown = server.cli("inspect", "ffff0000", check=False)
    assert unknown.returncode == 1 and unknown.stderr.startswith("ActorNotFound: no actor ffff0000"), unknown.stderr
    assert http.get("/v1/actors/ffff0000").status == 404


def test_a_multi_line_utf8_reply_prints_as_text(server, http, start_actor):
    actor = start_actor(http, "echo", wat.echo_actor())
    text = "first line\nsecond line — ünïcode\n\tindented"
    assert server.cli("message", actor, text, "--request").stdout == text + "\n"
    binary = server.cli("message", actor, "--file", "-", "--request", input="\x00\x01").stdout
    assert binary == "<2 bytes> 0001\n"


def test_an_api_restart_of_a_child_records_the_documented_reason(http, start_actor):
    parent = start_actor(http, "parent", wat.echo_actor())
    child = http.ok("POST", "/v1/actors", {**start_body("child", wat.echo_actor()), "parent": parent}, status=201)
    assert http.ok("POST", f"/v1/actors/{child['id']}/restart")["status"] == "running"
    restarts = http.ok("GET", f"/v1/actors/{parent}/events?type=supervisor/restart")["events"]
    assert [e["data"]["reason"] for e in restarts] == ["requested"]  # one of docs/events.md's reasons
