"""Durable actors: after SIGKILL (or a clean stop) a new server brings back the actors that were running, from
their last committed state and without init; the others stay as they were. One server per home."""

from __future__ import annotations

import base64
import subprocess

import pytest

from tests.components import wat
from tests.server._harness import CLI, ROOT, WAIT, Http, cli_env, start_body

INIT_CALL = "theater:simple/actor.init"


def count(http: Http, actor: str) -> int:
    state = http.ok("GET", f"/v1/actors/{actor}/state")["state"]
    return 0 if state is None else int.from_bytes(base64.b64decode(state["base64"]), "little")


def events(http: Http, actor: str) -> list[dict]:
    return http.ok("GET", f"/v1/actors/{actor}/events?limit=10000")["events"]


def start(http: Http, name: str, component: str, extra: str = "") -> str:
    return http.ok("POST", "/v1/actors", start_body(name, component, extra=extra), status=201)["id"]


@pytest.mark.slow
def test_sigkill_then_restart_resumes_running_actors_from_their_last_state(servers):
    first = servers()
    http = first.http()
    counter = start(http, "counter", wat.counter_actor())
    volatile = start(http, "volatile", wat.counter_actor(), extra="durable = false")
    stopped = start(http, "stopped", wat.counter_actor())
    failed = start(http, "faulty", wat.faulty_actor())
    for _ in range(5):
        http.ok("POST", f"/v1/actors/{counter}/send", {"message": {"text": "+"}})
    http.ok("POST", f"/v1/actors/{stopped}/stop")
    assert http.post(f"/v1/actors/{failed}/send", {"message": {"text": "trap"}}).status == 422
    before = events(http, counter)
    first.kill()

    second = servers()
    http = second.http()
    resumed = {r["actor"]: r["outcome"] for r in http.ok("GET", "/v1/server")["resumed"]}
    assert resumed == {counter: "resumed", volatile: "not durable"}
    assert {a["id"]: a["status"] for a in http.ok("GET", "/v1/actors")["actors"]} == {counter: "running"}
    assert count(http, counter) == 5
    answer = http.ok("POST", f"/v1/actors/{counter}/request", {"message": {"text": "+"}})
    assert int.from_bytes(base64.b64decode(answer["response"]["base64"]), "little") == 6
    after = events(http, counter)
    assert after[: len(before)] == before
    resume = after[len(before)]
    assert (resume["type"], resume["data"]["reason"]) == ("wasm/instantiate", "resume")
    init_calls = [e for e in after if e["type"] == "wasm/call" and e["data"]["export"] == INIT_CALL]
    assert len(init_calls) == 1 and init_calls[0]["seq"] == 2
    assert http.ok("POST", f"/v1/actors/{counter}/verify")["ok"]
    everything = {a["id"]: a["status"] for a in http.ok("GET", "/v1/actors?all=1")["actors"]}
    assert everything == {counter: "running", volatile: "interrupted", stopped: "stopped", failed: "failed"}
    refused = http.post(f"/v1/actors/{stopped}/send", {"message": {"text": "+"}})
    assert refused.status == 409 and refused.json["status"] == "stopped"


@pytest.mark.slow
def test_a_clean_stop_leaves_actors_to_be_resumed(servers):
    first = servers()
    counter = start(first.http(), "counter", wat.counter_actor())
    first.http().ok("POST", f"/v1/actors/{counter}/send", {"message": {"text": "+"}})
    assert first.stop() == 0
    second = servers()
    assert "1 resumed" in second.banner
    assert count(second.http(), counter) == 1
    types = [e["type"] for e in events(second.http(), counter)]
    assert "actor/stop" not in types and types.count("wasm/instantiate") == 2


@pytest.mark.slow
def test_repeated_kills_keep_every_acknowledged_message(servers):
    acknowledged = 0
    counter = None
    for _ in range(3):
        server = servers()
        http = server.http()
        counter = counter or start(http, "counter", wat.counter_actor())
        assert count(http, counter) == acknowledged
        for _ in range(4):
            http.ok("POST", f"/v1/actors/{counter}/send", {"message": {"text": "+"}})
            acknowledged += 1
        server.kill()
    final = servers()
    assert count(final.http(), counter) == acknowledged
    assert final.http().ok("POST", f"/v1/actors/{counter}/verify")["ok"]


def test_a_second_server_on_the_same_home_is_refused(servers):
    servers()
    done = subprocess.run([*CLI, "--home", str(servers.root / "home"), "server", "--address", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=WAIT, cwd=ROOT, env=cli_env())
    assert done.returncode == 1
    assert done.stderr.strip() == f"ServerError: another theater server is running on the home {servers.root / 'home'}"


def test_the_address_must_be_free(servers):
    first = servers()
    done = subprocess.run([*CLI, "--home", str(servers.root / "other"), "server", "--address", first.address],
                          capture_output=True, text=True, timeout=WAIT, cwd=ROOT, env=cli_env())
    assert done.returncode == 1 and done.stderr.startswith(f"ServerError: cannot listen on {first.address}")


def kill_in_the_middle_of_a_call(servers) -> tuple[Http, str, int]:
    """Start a counter that sleeps on ``sleep``; SIGKILL the server while it sleeps; start a new server.

    Returns the new server's client, the actor, and the number of acknowledged messages.
    """
    first = servers()
    http = first.http()
    component = wat.actor_wat(send=wat.match_msg({b"sleep": wat.sleep(60_000)}, wat.count()))
    actor = start(http, "sleeper", component, extra='[[handlers]]\ntype = "timing"')
    for _ in range(3):
        http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "+"}})
    stream = http.sse(f"/v1/actors/{actor}/subscribe?type=wasm/call")
    assert next(stream)[0] == "ready"
    sleeper = subprocess.Popen([*CLI, "--address", first.address, "message", actor, "sleep"], cwd=ROOT,
                               env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kind, call = next(stream)
    assert kind == "event" and call["data"]["params"] == ["hex:" + b"sleep".hex()]
    first.kill()
    sleeper.wait(WAIT)
    return servers().http(), actor, 3


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_call_resumes_from_the_state_before_it(servers):
    http, actor, acknowledged = kill_in_the_middle_of_a_call(servers)
    assert count(http, actor) == acknowledged
    types = [e["type"] for e in events(http, actor)]
    assert types[-2:] == ["wasm/call", "wasm/instantiate"]  # the interrupted call has no outcome
    http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "+"}})
    assert count(http, actor) == acknowledged + 1


@pytest.mark.slow
def test_a_chain_interrupted_by_sigkill_verifies(servers):
    http, actor, _ = kill_in_the_middle_of_a_call(servers)
    report = http.ok("POST", f"/v1/actors/{actor}/verify")
    assert report["ok"], report
