"""The management API over plain HTTP: actors' lives, messages, state, events, channels, the store, verify."""

from __future__ import annotations

import base64
import json
import socket

import cbor2

from tests.components import wat
from tests.server._harness import channel_component, start_body


JSON = {"Content-Type": "application/json"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text(payload: dict) -> bytes:
    return base64.b64decode(payload["base64"])


def test_start_send_request_and_inspect_an_actor(http, start_actor):
    actor = start_actor(http, "echo", wat.echo_actor())
    assert http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "hello"}}) == {"delivered": True}
    answer = http.ok("POST", f"/v1/actors/{actor}/request", {"message": {"base64": b64(b"\x00\xffhi")}})
    assert text(answer["response"]) == b"\x00\xffhi"
    assert answer["response"]["size"] == 4 and answer["response"]["text"] is None
    info = http.ok("GET", f"/v1/actors/{actor}")
    assert (info["id"], info["name"], info["status"], info["live"]) == (actor, "echo", "running", True)
    assert info["head"]["type"] == "wasm/result" and info["events"] == info["head"]["seq"] + 1
    assert info["state"]["size"] == len(b"hello")  # the request echoes without changing the state


def test_start_answers_201_with_the_actor(http):
    reply = http.post("/v1/actors", start_body("counter", wat.counter_actor()))
    assert reply.status == 201
    assert reply.json["status"] == "running" and reply.json["name"] == "counter"


def test_state_now_and_at_an_earlier_event(http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())
    for _ in range(3):
        http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "+"}})
    now = http.ok("GET", f"/v1/actors/{actor}/state")
    assert int.from_bytes(text(now["state"]), "little") == 3
    results = http.ok("GET", f"/v1/actors/{actor}/events?type=wasm/result")["events"]
    first = results[1]  # results[0] is init's
    by_seq = http.ok("GET", f"/v1/actors/{actor}/state?seq={first['seq']}")
    assert int.from_bytes(text(by_seq["state"]), "little") == 1
    by_hash = http.ok("GET", f"/v1/actors/{actor}/state?event={first['hash'][:10]}")
    assert by_hash == by_seq


def test_events_are_filtered_by_type_range_and_limit(http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())
    for _ in range(4):
        http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "+"}})
    every = http.ok("GET", f"/v1/actors/{actor}/events")
    assert [e["seq"] for e in every["events"]] == list(range(every["head"] + 1))
    assert every["next"] is None
    calls = http.ok("GET", f"/v1/actors/{actor}/events?type=wasm/call")["events"]
    assert {e["type"] for e in calls} == {"wasm/call"} and len(calls) == 5
    wasm = http.ok("GET", f"/v1/actors/{actor}/events?type=wasm/*&from=2&to=6")["events"]
    assert [e["seq"] for e in wasm] == [2, 3, 4, 5, 6]
    page = http.ok("GET", f"/v1/actors/{actor}/events?limit=3")
    assert [e["seq"] for e in page["events"]] == [0, 1, 2] and page["next"] == 3
    assert every["events"][0]["type"] == "actor/created"
    assert every["events"][0]["data"]["component"].startswith("hex:")


def test_stop_then_restart_resumes_from_the_last_state(http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())
    http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "+"}})
    assert http.ok("POST", f"/v1/actors/{actor}/stop")["status"] == "stopped"
    refused = http.post(f"/v1/actors/{actor}/send", {"message": {"text": "+"}})
    assert refused.status == 409 and refused.json["error"] == "ActorNotRunning"
    assert http.ok("POST", f"/v1/actors/{actor}/restart")["status"] == "running"
    answer = http.ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})
    assert int.from_bytes(text(answer["response"]), "little") == 2
    types = [e["type"] for e in http.ok("GET", f"/v1/actors/{actor}/events")["events"]]
    stop_at = types.index("actor/stop")
    resumed = http.ok("GET", f"/v1/actors/{actor}/events?from={stop_at + 1}&limit=1")["events"][0]
    assert resumed["type"] == "wasm/instantiate" and resumed["data"]["reason"] == "resume"


def test_restart_of_a_running_actor_records_stop_and_resume(http, start_actor):
    actor = start_actor(http, "echo", wat.echo_actor())
    assert http.ok("POST", f"/v1/actors/{actor}/restart")["status"] == "running"
    types = [e["type"] for e in http.ok("GET", f"/v1/actors/{actor}/events")["events"]]
    assert types[-2:] == ["actor/stop", "wasm/instantiate"]
    assert types.count("wasm/call") == 1  # init ran once, at start


def test_list_shows_status_and_parent_and_inspect_shows_children(http, start_actor):
    parent = start_actor(http, "parent", wat.echo_actor())
    body = start_body("child", wat.echo_actor())
    child = http.ok("POST", "/v1/actors", {**body, "parent": parent}, status=201)["id"]
    rows = {a["id"]: a for a in http.ok("GET", "/v1/actors")["actors"]}
    assert rows[child]["parent"] == parent and rows[child]["status"] == "running"
    assert rows[parent]["parent"] is None
    assert child in http.ok("GET", f"/v1/actors/{parent}")["children"]


def test_unknown_parent_is_404(http):
    body = {**start_body("orphan", wat.echo_actor()), "parent": "00000000-0000-0000-0000-000000000001"}
    reply = http.post("/v1/actors", body)
    assert reply.status == 404 and reply.json["error"] == "ActorNotFound"


def test_start_by_blob_hash_and_by_label(http):
    put = http.request("POST", "/v1/blobs?label=echo-component", data=wat.echo_actor().encode())
    assert put.status == 201
    digest = put.json["hash"]
    manifest = 'name = "by-hash"\ncomponent = "whatever.wasm"\n'
    by_hash = http.ok("POST", "/v1/actors", {"manifest": manifest, "component_hash": digest}, status=201)
    assert by_hash["component"] == digest
    labelled = 'name = "by-label"\ncomponent = "store:echo-component"\n'
    assert http.ok("POST", "/v1/actors", {"manifest": labelled}, status=201)["component"] == digest


def test_the_server_never_reads_a_component_path(http):
    reply = http.post("/v1/actors", {"manifest": 'name = "x"\ncomponent = "/etc/passwd"\n'})
    assert reply.status == 422
    assert reply.json["error"] == "ManifestError" and reply.json["field"] == "component"


def test_an_init_state_file_needs_the_bytes_and_is_recorded_inline(http):
    manifest = 'name = "stateful"\ncomponent = "echo.wat"\ninit_state = { file = "/etc/hostname" }\n'
    component = {"text": wat.echo_actor()}
    refused = http.post("/v1/actors", {"manifest": manifest, "component": component})
    assert refused.status == 422 and refused.json["field"] == "init_state.file"
    started = http.ok("POST", "/v1/actors", {"manifest": manifest, "component": component,
                                             "init_state": {"text": "seed"}}, status=201)
    assert text(http.ok("GET", f"/v1/actors/{started['id']}/state")["state"]) == b"seed"
    recorded = http.get(f"/v1/blobs/{started['manifest']}").body.decode()
    assert "file" not in recorded and b64(b"seed") in recorded


def test_a_guest_failure_is_422_with_its_kind(http, start_actor):
    actor = start_actor(http, "faulty", wat.faulty_actor())
    reply = http.post(f"/v1/actors/{actor}/send", {"message": {"text": "trap"}})
    assert reply.status == 422
    assert (reply.json["error"], reply.json["kind"]) == ("GuestFault", "trap")
    assert http.ok("GET", f"/v1/actors/{actor}")["status"] == "failed"


def test_a_request_answered_with_err_is_422_naming_the_actor_and_the_actor_goes_on(http, start_actor):
    actor = start_actor(http, "faulty", wat.faulty_actor())
    reply = http.post(f"/v1/actors/{actor}/request", {"message": {"text": "fail"}})
    assert reply.status == 422
    assert (reply.json["error"], reply.json["kind"], reply.json["answered"]) == ("ErrAnswered", "err", True)
    assert reply.json["actor"] == actor and reply.json["detail"] == "failure requested"
    assert reply.json["message"] == (f"actor {actor} (faulty) answered message-server-client.handle-request with "
                                     "err: failure requested")
    assert http.ok("GET", f"/v1/actors/{actor}")["status"] == "running"
    answered = http.ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "again"}})
    assert text(answered["response"]) == b"again"


def test_a_request_without_an_answer_times_out_with_504(http, start_actor):
    actor = start_actor(http, "deferred", wat.deferred_actor(), handlers=("message-server",))
    reply = http.post(f"/v1/actors/{actor}/request", {"message": {"text": "?"}, "timeout": 0.2})
    assert reply.status == 504 and reply.json["error"] == "ReplyTimeout" and reply.json["timeout"] == 0.2
    assert http.ok("GET", f"/v1/actors/{actor}")["status"] == "running"


def test_a_message_over_the_actors_limit_is_413(http, start_actor):
    actor = start_actor(http, "small", wat.echo_actor(), extra="[limits]\nmax_message_bytes = 8")
    reply = http.post(f"/v1/actors/{actor}/send", {"message": {"text": "123456789"}})
    assert reply.status == 413 and reply.json["error"] == "MessageTooLarge"
    assert (reply.json["size"], reply.json["limit"]) == (9, 8)
    assert http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "12345678"}})["delivered"]


def test_a_channel_carries_messages_both_ways(http, start_actor):
    actor = start_actor(http, "chat", channel_component(welcome=b"hi!"), handlers=("message-server",))
    opened = http.ok("POST", f"/v1/actors/{actor}/channels", {"message": {"text": "hello"}}, status=201)
    assert text(opened["welcome"]) == b"hi!"
    cid = opened["channel"]
    for word in ("one", "two"):
        http.ok("POST", f"/v1/channels/{cid}/send", {"message": {"text": word}})
    first = http.ok("GET", f"/v1/channels/{cid}/messages?wait=10")
    assert [(m["index"], text(m["message"])) for m in first["messages"]] == [(0, b"one"), (1, b"two")]
    again = http.ok("GET", f"/v1/channels/{cid}/messages?after=0")
    assert [m["index"] for m in again["messages"]] == [1]  # message 0 was acknowledged
    assert http.ok("DELETE", f"/v1/channels/{cid}") == {"channel": cid, "closed": True}
    assert text(http.ok("GET", f"/v1/actors/{actor}/state")["state"]) == b"closed"
    assert http.get(f"/v1/channels/{cid}/messages").status == 404


def test_a_channel_stream_ends_when_the_actor_closes_it(http, start_actor):
    actor = start_actor(http, "chat", channel_component(), handlers=("message-server",))
    cid = http.ok("POST", f"/v1/actors/{actor}/channels", {}, status=201)["channel"]
    http.ok("POST", f"/v1/channels/{cid}/send", {"message": {"text": "ping"}})
    http.ok("POST", f"/v1/channels/{cid}/send", {"message": {"text": "bye"}})
    seen = [(kind, payload) for kind, payload in http.sse(f"/v1/channels/{cid}/stream")]
    assert [k for k, _ in seen] == ["ready", "message", "closed"]
    assert text(seen[1][1]["message"]) == b"ping"


def test_verify_re_executes_the_chain(http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())
    http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "+"}})
    report = http.ok("POST", f"/v1/actors/{actor}/verify")
    assert report["ok"] and report["integrity"]["ok"] and report["replay"]["calls"] == 2


def test_export_gives_a_bundle_of_the_chain(http, start_actor):
    actor = start_actor(http, "counter", wat.counter_actor())
    reply = http.get(f"/v1/actors/{actor}/export")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/octet-stream"
    bundle = cbor2.loads(reply.body)
    assert bundle["format"] == "theater-bundle/1" and len(bundle["events"]) == 4


def test_blobs_and_labels(http):
    put = http.request("POST", "/v1/blobs", data=b"some bytes")
    digest = put.json["hash"]
    assert http.get(f"/v1/blobs/{digest[:8]}").body == b"some bytes"
    assert {"hash": digest, "size": 10} in http.ok("GET", "/v1/blobs?limit=10000")["blobs"]
    assert http.ok("PUT", "/v1/labels/mine", {"hash": digest[:10]}) == {"label": "mine", "hash": digest}
    assert {"label": "mine", "hash": digest} in http.ok("GET", "/v1/labels")["labels"]
    assert http.get("/v1/blobs/mine").body == b"some bytes"
    http.ok("DELETE", "/v1/labels/mine")
    assert http.get("/v1/blobs/mine").status == 404


def test_server_info_counts_the_actors_it_runs(http, start_actor):
    before = http.ok("GET", "/v1/server")
    assert before["auth"] is False and before["resumed"] == []
    assert before["actors"] == len(http.ok("GET", "/v1/actors")["actors"])
    start_actor(http, "counted", wat.echo_actor())
    after = http.ok("GET", "/v1/server")
    assert (after["actors"], after["running"]) == (before["actors"] + 1, before["running"] + 1)


def test_malformed_requests_get_a_json_4xx(http, start_actor):
    actor = start_actor(http, "echo", wat.echo_actor())
    cases = [
        (http.request("POST", "/v1/actors", data=b"{not json", headers=JSON), 400, "InvalidJSON"),
        (http.request("POST", "/v1/actors", data=b"[1, 2]", headers=JSON), 400, "InvalidJSON"),
        (http.post("/v1/actors", {"manifest": 42}), 400, "InvalidRequest"),
        (http.post("/v1/actors", {}), 400, "InvalidRequest"),
        (http.post("/v1/actors", {"manifest": "name = ["}), 422, "ManifestError"),
        (http.post(f"/v1/actors/{actor}/send", {"message": {"base64": "***"}}), 400, "InvalidRequest"),
        (http.post(f"/v1/actors/{actor}/send", {"message": "plain"}), 400, "InvalidRequest"),
        (http.post(f"/v1/actors/{actor}/request", {"message": {"text": "x"}, "timeout": -1}), 400, "InvalidRequest"),
        (http.post("/v1/actors/not-a-uuid/send", {"message": {"text": "x"}}), 400, "InvalidInputError"),
        (http.post("/v1/actors/00000000-0000-0000-0000-000000000000/send", {"message": {"text": "x"}}), 404,
         "ActorNotFound"),
        (http.get(f"/v1/actors/{actor}/events?limit=zero"), 400, "InvalidRequest"),
        (http.get("/v1/blobs/abcd"), 404, "NotFoundError"),
        (http.get("/v1/nothing-here"), 404, "NotFound"),
        (http.request("PATCH", "/v1/actors"), 405, "MethodNotAllowed"),
    ]
    for reply, status, name in cases:
        assert (reply.status, reply.json["error"]) == (status, name), reply.body
        assert reply.json["message"]
    assert http.ok("GET", "/v1/server")["version"]


def test_an_oversized_body_is_413_and_the_server_lives_on(http):
    reply = http.request("POST", "/v1/blobs", data=b"\0" * (64 * 1024 * 1024 + 1))
    assert reply.status == 413 and json.loads(reply.body)["error"] == "RequestEntityTooLarge"
    assert http.ok("GET", "/v1/server")["version"]


def test_garbage_on_the_socket_gets_a_400_and_the_server_lives_on(server, http):
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = raw.recv(4096)
    assert answer.split(b" ", 2)[1] == b"400"  # aiohttp answers this itself, in text/plain: no JSON here
    assert http.ok("GET", "/v1/server")["version"]


def test_a_body_that_is_not_utf8_json_is_400(http):
    reply = http.request("POST", "/v1/actors", data=b"\xff\xfe{}", headers=JSON)
    assert reply.status == 400 and reply.json["error"] == "InvalidJSON"


def test_restart_of_a_supervised_child_goes_through_its_supervisor(http, start_actor):
    parent = start_actor(http, "boss", wat.echo_actor())
    body = start_body("worker", wat.counter_actor())
    child = http.ok("POST", "/v1/actors", {**body, "parent": parent}, status=201)["id"]
    assert http.ok("POST", f"/v1/actors/{child}/restart")["status"] == "running"
    restarts = http.ok("GET", f"/v1/actors/{parent}/events?type=supervisor/restart")["events"]
    assert [e["data"]["child"] for e in restarts] == [child]
    assert http.ok("POST", f"/v1/actors/{child}/request", {"message": {"text": "+"}})["response"]["size"] == 8
