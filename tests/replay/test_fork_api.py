"""Fork, revert and what-if through a real server and the real CLI, and what an API client may not fork."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Store
from tests.components import wat
from tests.replay._lineage import le64, project
from tests.server._harness import ServerProcess, start_body
from theater.runtime import Theater

DICE = wat.actor_wat(send=wat.match_msg({b"r": wat.random_range(0, 1000)}, default=wat.count()),
                     request=wat.count())


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """A home holding, started by the operator: a counter at 3, and a counter granted environment variables."""
    with Theater(tmp_path / "home", durability="buffered") as theater:
        counter = theater.start(project(tmp_path / "counter", DICE, ("message-server", "random")))
        for message in (b"+", b"r", b"+"):
            theater.send(counter, message)
        reaching = theater.start(project(tmp_path / "env", wat.counter_actor(), ("message-server", "environment")))
        theater.send(reaching, b"+")
        results = {
            "counter": counter, "reaching": reaching,
            "counter_at_1": [e for e in theater.events(counter) if e.type == "wasm/result"][1].hash.hex(),
            "reaching_at_1": [e for e in theater.events(reaching) if e.type == "wasm/result"][1].hash.hex(),
        }
    return results


@pytest.fixture
def server(tmp_path: Path, home: dict[str, str]) -> Iterator[ServerProcess]:
    """A server on the home, once the home holds its actors (it resumes them)."""
    process = ServerProcess(tmp_path / "home").start()
    yield process
    assert process.stop() == 0, process.stderr()


def test_cli_fork_and_revert_through_the_server(server: ServerProcess, home: dict[str, str]) -> None:
    http = server.http()
    forked = json.loads(server.cli("fork", home["counter_at_1"], "--name", "copy", "--json").stdout)
    assert forked["name"] == "copy"
    assert http.ok("POST", f"/v1/actors/{forked['id']}/request", {"message": {"text": "+"}})
    reverted = json.loads(server.cli("revert", home["counter"], "--to", home["counter_at_1"], "--json").stdout)
    assert reverted["revert_seq"] > 0
    state = http.ok("GET", f"/v1/actors/{home['counter']}/state")
    assert state["state"]["base64"] == "AQAAAAAAAAA="  # 1, as after the first message
    assert http.ok("POST", f"/v1/actors/{forked['id']}/verify")["ok"]
    assert http.ok("POST", f"/v1/actors/{home['counter']}/verify")["ok"]


def test_api_fork_of_an_actor_granted_host_variables_is_refused(server: ServerProcess, home: dict[str, str]) -> None:
    http = server.http()
    refused = http.post(f"/v1/actors/{home['reaching']}/fork", {"event": home["reaching_at_1"]})
    assert refused.status == 422, refused.body
    assert refused.json["error"] == "ManifestError" and "reaches the host" in refused.json["message"]
    # Nor may a client's own manifest widen the grants of a fork.
    body = start_body("wide", wat.counter_actor(), handlers=("message-server", "environment"))
    refused = http.post(f"/v1/actors/{home['counter']}/fork", {"event": home["counter_at_1"],
                                                               "manifest": body["manifest"]})
    assert refused.status == 422 and "reaches the host" in refused.json["message"]
    actors = http.ok("GET", "/v1/actors?all=1")["actors"]
    assert len(actors) == 2  # nothing was started


def test_api_fork_naming_an_event_of_another_actor_is_refused(server: ServerProcess, home: dict[str, str]) -> None:
    refused = server.http().post(f"/v1/actors/{home['counter']}/fork", {"event": home["reaching_at_1"]})
    assert refused.status == 400 and "it belongs to" in refused.json["message"]


def test_api_revert_to_an_event_of_another_actor_is_refused(server: ServerProcess, home: dict[str, str]) -> None:
    refused = server.http().post(f"/v1/actors/{home['counter']}/revert", {"to": home["reaching_at_1"]})
    assert refused.status == 400 and "it belongs to" in refused.json["message"]


def test_cli_whatif_shows_the_departure_and_forks_its_result(server: ServerProcess, home: dict[str, str],
                                                             tmp_path: Path) -> None:
    counter = uuid.UUID(home["counter"])
    with Store(tmp_path / "home" / "store", readonly=True) as store:
        events = list(store.log.events(counter))
    roll = next(e for e in events if e.type == "theater:simple/random/random-range")
    last = next(e for e in reversed(events) if e.type == "wasm/result")
    shown = server.cli("replay", last.hash.hex(), "--override", f'{roll.seq}={{"ok": 500}}').stdout
    assert f"first departure: the call at event {roll.seq - 1}" in shown
    assert "reached event" in shown
    report = json.loads(server.cli("replay", last.hash.hex(), "--override", f'{roll.seq}={{"ok": 500}}', "--fork",
                                   "--json").stdout)
    assert report["state"] == "hex:" + le64(501).hex()
    fork = report["fork"]["id"]
    assert server.http().ok("POST", f"/v1/actors/{fork}/verify")["ok"]
    refused = server.cli("replay", last.hash.hex(), "--override", f"{roll.seq - 1}=1", check=False)
    assert refused.returncode != 0 and "not a host call" in refused.stderr


def test_cli_override_that_is_not_json_is_refused_clearly(server: ServerProcess, home: dict[str, str]) -> None:
    refused = server.cli("replay", home["counter_at_1"], "--override", "3=ok", check=False)
    assert refused.returncode == 2 and "not JSON" in refused.stderr


def test_cli_fork_from_an_imported_bundle(tmp_path: Path, home: dict[str, str]) -> None:
    from replay.bundle import export_bundle

    with Store(tmp_path / "home" / "store") as store:
        bundle = tmp_path / "counter.bundle"
        bundle.write_bytes(export_bundle(store, uuid.UUID(home["counter"])))
    other = ServerProcess(tmp_path / "other").start()
    try:
        other.cli("chain", "import", str(bundle))
        forked = json.loads(other.cli("fork", home["counter_at_1"], "--json").stdout)
        http = other.http()
        assert http.ok("POST", f"/v1/actors/{forked['id']}/request", {"message": {"text": "+"}})
        assert http.ok("POST", f"/v1/actors/{forked['id']}/verify")["ok"]
    finally:
        assert other.stop() == 0, other.stderr()


def test_api_revert_of_a_stopped_actor_is_refused(server: ServerProcess, home: dict[str, str]) -> None:
    http = server.http()
    http.ok("POST", f"/v1/actors/{home['counter']}/stop")
    refused = http.post(f"/v1/actors/{home['counter']}/revert", {"to": home["counter_at_1"]})
    assert refused.status == 409, refused.body
    assert refused.json["error"] == "ActorNotRunning"
