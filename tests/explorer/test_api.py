"""The explorer's JSON routes on a server running the ping-pong and supervisor examples: an event in detail with
its state diff, replay to here, verify with progress, the message flow, the tree; bad input answered clearly."""

from __future__ import annotations

import json

import pytest

from theater.server.explorer.record import MAX_FLOW_ACTORS, MAX_FLOW_EVENTS, state_diff

pytestmark = [pytest.mark.integration]


def events(stage, actor, type_=None):
    query = f"&type={type_}" if type_ else ""
    return stage.http.ok("GET", f"/v1/actors/{actor}/events?limit=1000{query}")["events"]


def test_an_event_shows_its_call_its_state_blob_and_the_state_diff(stage):
    answer = events(stage, stage.pong, "wasm/result")[1]  # pong's answer to "ping 0"
    detail = stage.http.ok("GET", f"/v1/explorer/event?actor={stage.pong}&seq={answer['seq']}")
    assert detail["event"] == answer
    assert detail["call"]["kind"] == "actor" and detail["call"]["name"].endswith(".handle-request")
    assert detail["call"]["result"] == [[{"some": "pong 0"}]]
    assert detail["state"]["before"]["json"] == {"value": {"pings": 0}}
    assert detail["state"]["after"]["json"] == {"value": {"pings": 1}}
    assert detail["state"]["changed"] is True
    assert detail["state"]["diff"]["entries"] == [{"path": "$.pings", "op": "changed", "before": 0, "after": 1}]
    state_hash = answer["data"]["state"].removeprefix("hex:")
    assert detail["blobs"] == [{"field": "state", "hash": state_hash, "size": len(b'{"pings":1}')}]
    assert (detail["previous"], detail["next"]) == (answer["seq"] - 1, answer["seq"] + 1)


def test_a_host_call_shows_its_parameters_and_result(stage):
    request = events(stage, stage.ping, "theater:simple/message-server-host/request")[0]
    by_hash = stage.http.ok("GET", f"/v1/explorer/event?event={request['hash'][:16]}")
    assert by_hash["event"]["seq"] == request["seq"]
    assert by_hash["call"] == {"kind": "host", "name": "theater:simple/message-server-host/request",
                               "params": [stage.pong, "ping 0"], "result": {"ok": "pong 0"}}
    assert by_hash["state"]["changed"] is False and by_hash["state"]["diff"]["kind"] == "same"


@pytest.mark.parametrize(("query", "status", "error"), [
    ("actor=00000000-0000-4000-8000-000000000000&seq=0", 404, "ActorNotFound"),
    ("actor={pong}&seq=100000", 404, "NotFoundError"),
    ("actor={pong}&seq=-1", 400, "InvalidRequest"),
    ("actor={pong}&seq=x", 400, "InvalidRequest"),
    ("actor={pong}", 400, "InvalidInputError"),
    ("event=zz", 400, "InvalidInputError"),
    ("event=" + "ab" * 32, 404, "NotFoundError"),
    ("actor=<script>&seq=1", 400, "InvalidInputError"),
])
def test_a_bad_event_reference_is_a_clear_json_error(stage, query, status, error):
    reply = stage.http.get("/v1/explorer/event?" + query.format(pong=stage.pong))
    assert (reply.status, reply.json["error"]) == (status, error), reply.body
    assert reply.json["message"]


def test_an_event_of_another_actor_is_refused_when_an_actor_is_named(stage):
    other = events(stage, stage.ping)[3]
    reply = stage.http.get(f"/v1/explorer/event?actor={stage.pong}&event={other['hash']}")
    assert (reply.status, reply.json["error"]) == (400, "InvalidInputError")
    assert "belongs to" in reply.json["message"]


def test_replay_to_here_re_executes_up_to_the_event(stage):
    answer = events(stage, stage.pong, "wasm/result")[2]
    report = stage.http.ok("POST", "/v1/explorer/replay", {"actor": stage.pong, "seq": answer["seq"]})
    assert report["ok"] is True
    assert report["replay"]["to_seq"] == answer["seq"] and report["replay"]["divergence"] is None


@pytest.mark.parametrize(("body", "error"), [
    ({"actor": "{pong}", "seq": 10**6}, "InvalidRequest"),
    ({"actor": "{pong}", "seq": -1}, "InvalidRequest"),
    ({"actor": "{pong}", "seq": "3"}, "InvalidRequest"),
    ({"seq": 3}, "InvalidRequest"),
])
def test_replay_to_a_bad_point_is_refused(stage, body, error):
    given = {k: (v.format(pong=stage.pong) if isinstance(v, str) else v) for k, v in body.items()}
    reply = stage.http.post("/v1/explorer/replay", given)
    assert (reply.status, reply.json["error"]) == (400, error), reply.body


def test_verify_streams_progress_then_the_report(stage):
    stream = stage.http.sse(f"/v1/explorer/verify?actor={stage.supervisor}")
    kind, ready = next(stream)
    assert kind == "ready" and ready["actor"] == stage.supervisor
    seen = []
    for kind, payload in stream:
        seen.append((kind, payload))
        if kind == "result":
            break
    steps = [p["step"] for k, p in seen if k == "progress"]
    assert steps[0] == "integrity" and "replay" in steps
    assert all(p["total"] == ready["events"] for k, p in seen if k == "progress")
    assert seen[-1][0] == "result" and seen[-1][1]["ok"] is True


def test_the_flow_ties_each_request_to_its_delivery_and_its_reply(stage):
    flow = stage.http.ok("GET", f"/v1/explorer/flow?actor={stage.ping}&actor={stage.pong}")
    requests = [m for m in flow["messages"] if m["kind"] == "request"]
    replies = [m for m in flow["messages"] if m["kind"] == "reply"]
    assert [m["message"] for m in requests] == ["ping 0", "ping 1", "ping 2"]
    assert [m["message"] for m in replies] == ["pong 0", "pong 1", "pong 2"]
    sent = {e["seq"] for e in events(stage, stage.ping, "theater:simple/message-server-host/request")}
    delivered = {e["seq"] for e in events(stage, stage.pong, "wasm/call")
                 if e["data"]["export"].endswith("handle-request")}
    assert {m["from"]["seq"] for m in requests} == sent and {m["from"]["actor"] for m in requests} == {stage.ping}
    assert {m["to"]["seq"] for m in requests} == delivered and {m["to"]["actor"] for m in requests} == {stage.pong}
    assert all(m["link"] in ("matched", "recorded") for m in requests)
    play = [m for m in flow["messages"] if m["kind"] == "send"]
    assert play[0]["from"] is None and play[0]["to"]["actor"] == stage.ping  # from the API
    assert play[0]["message"] == f"play {stage.pong} 3"


def test_flow_sizes_are_bounded(stage):
    too_many = "&".join(f"actor={stage.pong}" for _ in range(MAX_FLOW_ACTORS + 1))
    reply = stage.http.get(f"/v1/explorer/flow?{too_many}")
    assert reply.status == 400 and str(MAX_FLOW_ACTORS) in reply.json["message"]
    reply = stage.http.get(f"/v1/explorer/flow?limit={MAX_FLOW_EVENTS + 1}")
    assert (reply.status, reply.json["error"]) == (400, "InvalidRequest")


def test_the_tree_has_the_worker_under_its_supervisor_with_its_restart(stage):
    rows = {row["id"]: row for row in stage.http.ok("GET", "/v1/explorer/actors")["actors"]}
    assert rows[stage.worker]["parent"] == stage.supervisor
    assert rows[stage.worker]["restarts"] == 1 and rows[stage.worker]["status"] == "running"
    assert {rows[a]["name"] for a in (stage.ping, stage.pong)} == {"ping", "pong"}


@pytest.mark.parametrize("path", [
    "/explorer/..%2F..%2Fsession.py",
    "/explorer/%2e%2e%2fviews.py",
    "/explorer/../explorer/record.py",
    "/explorer/static%2Fapp.js",
    "/explorer/index.html",
    "/explorer/app.js%00.css",
    "/explorer/..%5c..%5cviews.py",
])
def test_static_path_traversal_is_refused(stage, path):
    reply = stage.http.get(path)
    assert reply.status == 404, (path, reply.status, reply.body[:200])
    assert b"import" not in reply.body


@pytest.mark.parametrize("path", ["/", "/explorer/app.js", "/explorer/app.css"])
def test_pages_carry_a_content_security_policy_without_inline_script(stage, path):
    reply = stage.http.get(path)
    assert reply.status == 200
    policy = reply.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_the_explorer_page_has_no_inline_script(stage):
    page = stage.http.get("/").body.decode()
    assert "<script src=" in page and "<script>" not in page and "onclick" not in page


def test_state_diff_of_json_states_names_each_changed_path():
    before = json.dumps({"a": 1, "b": [1, 2], "c": {"d": "x"}, "gone": True}).encode()
    after = json.dumps({"a": 2, "b": [1, 3], "c": {"d": "x", "e": None}}).encode()
    assert state_diff(before, after)["entries"] == [
        {"path": "$.a", "op": "changed", "before": 1, "after": 2},
        {"path": "$.b[1]", "op": "changed", "before": 2, "after": 3},
        {"path": "$.c.e", "op": "added", "before": None, "after": None},
        {"path": "$.gone", "op": "removed", "before": True, "after": None},
    ]


def test_state_diff_of_text_and_of_bytes():
    assert state_diff(b"one\ntwo", b"one\nthree")["kind"] == "text"
    assert "+three" in state_diff(b"one\ntwo", b"one\nthree")["entries"]
    assert state_diff(b"\xff\x00", b"\xfe")== {"kind": "bytes", "entries": [], "sizes": [2, 1]}
    assert state_diff(b"same", b"same") == {"kind": "same", "entries": []}
    assert state_diff(None, b'{"n": 1}')["entries"] == [{"path": "$", "op": "changed", "before": None,
                                                          "after": {"n": 1}}]


def test_replay_to_here_of_a_forged_answer_reports_the_divergence(forged):
    http = forged.server.http()
    before = http.ok("POST", "/v1/explorer/replay", {"actor": forged.actor, "seq": forged.seq - 1})
    assert before["ok"] is True  # up to the forged event, the record re-executes
    report = http.ok("POST", "/v1/explorer/replay", {"actor": forged.actor, "seq": forged.seq})
    assert report["ok"] is False and report["integrity"]["ok"] is True
    divergence = report["replay"]["divergence"]
    assert divergence["seq"] == forged.seq and divergence["kind"] == "execution"
    assert divergence["expected"]["output"] == [[{"some": "hex:" + b"pong 9".hex()}]]  # the record's
    assert divergence["actual"]["output"] == [[{"some": "hex:" + b"pong 0".hex()}]]  # what the code answers


def test_a_recorded_causal_link_ties_the_delivery_to_its_sender_over_a_same_content_decoy(linked):
    flow = linked.server.http().ok("GET", f"/v1/explorer/flow?actor={linked.sender}&actor={linked.receiver}")
    hellos = [m for m in flow["messages"] if m["message"] == "hello"]
    assert [(m["from"], m["to"]["seq"], m["link"]) for m in hellos] == [
        (None, 1, None),  # from the API, although its content matches a's send
        ({"actor": linked.sender, "seq": 2, "hash": hellos[1]["from"]["hash"]}, 3, "recorded"),
    ]
    request = next(m for m in flow["messages"] if m["kind"] == "request")
    assert (request["from"]["seq"], request["to"]["seq"], request["link"]) == (4, 5, "recorded")
    reply = next(m for m in flow["messages"] if m["kind"] == "reply")
    assert (reply["from"]["seq"], reply["to"]["seq"], reply["message"]) == (6, 4, "r")


def test_an_event_shows_the_sending_event_its_causal_link_names(linked):
    http = linked.server.http()
    send = http.ok("GET", f"/v1/explorer/event?actor={linked.receiver}&seq=3")["cause"]
    assert (send["actor"], send["seq"], send["named_seq"]) == (linked.sender, 2, 2)
    request = http.ok("GET", f"/v1/explorer/event?actor={linked.receiver}&seq=5")["cause"]
    assert (request["actor"], request["seq"], request["named_seq"]) == (linked.sender, 4, 3)
    assert http.ok("GET", f"/v1/explorer/event?actor={linked.receiver}&seq=1")["cause"] is None


def test_the_flow_of_one_actor_brings_in_those_it_sends_to(stage):
    alone = stage.http.ok("GET", f"/v1/explorer/flow?actor={stage.ping}")
    assert [a["id"] for a in alone["actors"]] == [stage.ping]
    widened = stage.http.ok("GET", f"/v1/explorer/flow?actor={stage.ping}&with_correspondents=1")
    assert [a["id"] for a in widened["actors"]] == [stage.ping, stage.pong]
    assert sum(m["kind"] == "reply" and m["to"]["actor"] == stage.ping for m in widened["messages"]) == 3


def test_the_flow_of_a_receiver_brings_in_the_senders_its_causal_links_name(linked):
    http = linked.server.http()
    widened = http.ok("GET", f"/v1/explorer/flow?actor={linked.receiver}&with_correspondents=1")
    assert [a["id"] for a in widened["actors"]] == [linked.receiver, linked.sender]


def test_a_blob_opened_in_the_browser_is_sandboxed_and_never_sniffed(stage):
    digest = stage.http.request("POST", "/v1/blobs", data=b"<html><script>alert(1)</script></html>").json["hash"]
    for path in (f"/v1/blobs/{digest}", f"/v1/explorer/event?actor={stage.pong}&seq=0", "/v1/nothing-here"):
        reply = stage.http.get(path)
        assert reply.headers["X-Content-Type-Options"] == "nosniff", path
        assert reply.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'; sandbox"
    assert stage.http.get(f"/v1/blobs/{digest}").headers["Content-Type"] == "application/octet-stream"
