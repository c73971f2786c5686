"""Fork, revert and what-if through a real server and the real CLI, and what an API client may not fork."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Event, Store
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


def _roll_and_last_result(home: dict[str, str], tmp_path: Path) -> tuple[uuid.UUID, Event, Event]:
    """The counter of ``home``, its first random roll and its last call's result, read from the home's store."""
    counter = uuid.UUID(home["counter"])
    with Store(tmp_path / "home" / "store", readonly=True) as store:
        events = list(store.log.events(counter))
    roll = next(e for e in events if e.type == "theater:simple/random/random-range")
    last = next(e for e in reversed(events) if e.type == "wasm/result")
    return counter, roll, last


def test_cli_whatif_shows_the_departure_and_forks_its_result(server: ServerProcess, home: dict[str, str],
                                                             tmp_path: Path) -> None:
    counter, roll, last = _roll_and_last_result(home, tmp_path)
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


# Forks straight from a bundle file, and what a bundle offered to the home may not do.


def _bundle_of(tmp_path: Path, home_dir: Path, actor: str, name: str = "counter.bundle") -> Path:
    from replay.bundle import export_bundle

    with Store(home_dir / "store") as store:
        bundle = tmp_path / name
        bundle.write_bytes(export_bundle(store, uuid.UUID(actor)))
    return bundle


@pytest.fixture
def other(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server on an empty home of its own."""
    process = ServerProcess(tmp_path / "other").start()
    yield process
    assert process.stop() == 0, process.stderr()


def test_cli_fork_from_a_bundle_file_checks_imports_and_forks(tmp_path: Path, home: dict[str, str],
                                                              other: ServerProcess) -> None:
    bundle = _bundle_of(tmp_path, tmp_path / "home", home["counter"])
    done = other.cli("fork", "--bundle", str(bundle), home["counter_at_1"], "--name", "copy")
    assert f"imported {bundle}: actor {home['counter']}" in done.stderr and "re-executed" in done.stderr
    assert done.stdout.startswith("forked copy ")
    forked = done.stdout.split()[2]
    http = other.http()
    assert http.ok("POST", f"/v1/actors/{forked}/request", {"message": {"text": "+"}})
    assert http.ok("GET", f"/v1/actors/{forked}/state")["state"]["base64"] == "AgAAAAAAAAA="  # 1, then +1
    assert http.ok("POST", f"/v1/actors/{forked}/verify")["ok"]  # it follows into the imported source prefix
    assert http.ok("POST", f"/v1/actors/{home['counter']}/verify")["ok"]
    again = json.loads(other.cli("fork", "--bundle", str(bundle), home["counter_at_1"], "--json").stdout)
    assert again["id"] != forked  # importing the same bundle again changes nothing; a second fork is made


def test_cli_fork_from_a_truncated_bundle_is_refused_clearly(tmp_path: Path, home: dict[str, str],
                                                             other: ServerProcess) -> None:
    bundle = _bundle_of(tmp_path, tmp_path / "home", home["counter"])
    cut = tmp_path / "cut.bundle"
    cut.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    refused = other.cli("fork", "--bundle", str(cut), home["counter_at_1"], check=False)
    assert refused.returncode == 1, refused.stdout
    assert refused.stderr.startswith("BundleRefused: bundle (request body) refused: ")
    assert "not a Theater bundle" in refused.stderr and "Traceback" not in refused.stderr
    assert other.http().ok("GET", "/v1/actors?all=1")["actors"] == []
    with Store(tmp_path / "other" / "store", readonly=True) as store:
        assert store.log.head(uuid.UUID(home["counter"])).hash is None  # nothing of it reached the home


def test_fork_from_a_forged_bundle_is_refused_before_anything_is_imported(tmp_path: Path, home: dict[str, str],
                                                                          other: ServerProcess) -> None:
    from tests._forge import forge

    def edit(drafts):  # another random number, every hash recomputed: only re-execution can tell
        roll = next(d for d in drafts if d.type == "theater:simple/random/random-range")
        roll.data["result"] = {"ok": roll.data["result"]["ok"] + 1}

    with Store(tmp_path / "home" / "store") as store:
        forged = forge(store, uuid.UUID(home["counter"]), edit, tmp_path / "forged")
    refused = other.http().request("POST", "/v1/chains/import", data=forged.bundle.read_bytes())
    assert refused.status == 422, refused.body
    assert refused.json["error"] == "BundleRefused" and "does not re-execute" in refused.json["message"]
    cli = other.cli("fork", "--bundle", str(forged.bundle), home["counter_at_1"], check=False)
    assert cli.returncode == 1 and "does not re-execute" in cli.stderr
    with Store(tmp_path / "other" / "store", readonly=True) as store:
        assert store.log.head(forged.actor).hash is None


def test_bundle_with_an_event_changed_but_not_rehashed_is_refused_naming_it(tmp_path: Path, home: dict[str, str],
                                                                          other: ServerProcess) -> None:
    import cbor2

    bundle = cbor2.loads(_bundle_of(tmp_path, tmp_path / "home", home["counter"]).read_bytes())
    third = bytearray(bundle["events"][3])
    third[-1] ^= 1
    bundle["events"][3] = bytes(third)
    refused = other.http().request("POST", "/v1/chains/import", data=cbor2.dumps(bundle, canonical=True))
    assert refused.status == 422, refused.body
    assert "event 3" in refused.json["message"]


def test_bundle_that_would_extend_a_chain_of_the_home_is_refused(tmp_path: Path, home: dict[str, str]) -> None:
    """An API client may not append to a live actor's chain behind its back by importing a longer copy of it."""
    import shutil

    shutil.copytree(tmp_path / "home", tmp_path / "copy")
    from theater.porcelain.resume import resume_actors

    with Theater(tmp_path / "copy", durability="buffered") as theater:
        resume_actors(theater)
        theater.send(home["counter"], b"+")  # the copy's chain of the counter is one call longer
    longer = _bundle_of(tmp_path, tmp_path / "copy", home["counter"], "longer.bundle")
    server = ServerProcess(tmp_path / "home").start()
    try:
        http = server.http()
        head = http.ok("GET", f"/v1/actors/{home['counter']}")["head"]["seq"]
        refused = http.request("POST", "/v1/chains/import", data=longer.read_bytes())
        assert refused.status == 409, refused.body
        assert refused.json["error"] == "BundleConflict" and "may not extend a chain of the home" in \
            refused.json["message"]
        assert http.ok("GET", f"/v1/actors/{home['counter']}")["head"]["seq"] == head
        own = http.get(f"/v1/actors/{home['counter']}/export").body  # the home's own chain comes back: nothing new
        assert http.request("POST", "/v1/chains/import", data=own).status == 201
        assert http.ok("GET", f"/v1/actors/{home['counter']}")["head"]["seq"] == head
    finally:
        assert server.stop() == 0, server.stderr()


# What-if over the API.


def test_api_whatif_shows_the_departure_and_writes_nothing(server: ServerProcess, home: dict[str, str],
                                                           tmp_path: Path) -> None:
    counter, roll, last = _roll_and_last_result(home, tmp_path)
    http = server.http()
    before = http.ok("GET", f"/v1/actors/{counter}")["head"]
    run = http.ok("POST", f"/v1/actors/{counter}/whatif", {"to": last.hash.hex()[:16],
                                                            "overrides": {str(roll.seq): {"ok": 500}}})
    assert run["departure"] == roll.seq - 1 and run["stopped"] is None
    assert run["state"] == "hex:" + le64(501).hex()  # + then the roll of 500 then +... as the guest computes it
    assert run["recorded_state"] != run["state"] and run["last_seq"] == last.seq
    assert http.ok("GET", f"/v1/actors/{counter}")["head"] == before
    plain = http.ok("POST", f"/v1/actors/{counter}/whatif", {})
    assert plain["departure"] is None and plain["state"] == plain["recorded_state"]


def test_api_whatif_refuses_what_does_not_apply(server: ServerProcess, home: dict[str, str]) -> None:
    http = server.http()
    path = f"/v1/actors/{home['counter']}/whatif"
    other_actors = http.post(path, {"to": home["reaching_at_1"]})
    assert other_actors.status == 400 and "it belongs to" in other_actors.json["message"]
    not_a_host_call = http.post(path, {"overrides": {"1": {"ok": 1}}})
    assert not_a_host_call.status == 400 and "not a host call" in not_a_host_call.json["message"]
    too_many = http.post(path, {"overrides": {str(n): 0 for n in range(1025)}})
    assert too_many.status == 400 and "at most 1024 overrides" in too_many.json["message"]


def test_api_whatif_without_the_token_is_refused(tmp_path: Path, home: dict[str, str]) -> None:
    server = ServerProcess(tmp_path / "home", env={"THEATER_TOKEN": "whatif-token-0123456789"}).start()
    try:
        path = f"/v1/actors/{home['counter']}/whatif"
        assert server.http().post(path, {}).status == 401
        assert server.http().request("POST", "/v1/chains/import", data=b"x").status == 401
        assert server.http("whatif-token-0123456789").ok("POST", path, {})["departure"] is None
    finally:
        assert server.stop() == 0, server.stderr()
