"""Every Python example, built with the real componentize-py (cached) and run under the runtime; the ``stage``
fixture verifies and replays every chain afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from replay import state_at
from replay.boundary import import_functions
from store import parse_actor_id
from theater.cli import cli
from theater.errors import GuestFault

from tests.server._harness import ServerProcess

from ._support import CACHE, Stage, build, seed_compiled, seed_home

pytestmark = [pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")

PROJECTS = ["counter", "ping-pong/ping", "ping-pong/pong", "chat-room", "supervisor"]


@pytest.mark.parametrize("name", PROJECTS)
def test_examples_build_into_components_that_import_only_theater_simple(
    example: Callable[[str], Path], stage: Stage, name: str
) -> None:
    result = build(example(name))
    stage.theater.store.blobs.put(result.wasm.read_bytes())
    seed_compiled(stage.theater.store, stage.theater.engine, result.digest)
    component = stage.theater.engine.load(stage.theater.store, result.digest)
    imports = import_functions(stage.theater.engine, component)
    assert imports and all(i.startswith("theater:simple/") for i in imports), sorted(imports)
    assert "theater:simple/runtime" in imports


def test_counter_counts_logs_and_keeps_its_state_in_the_chain(example: Callable[[str], Path], stage: Stage) -> None:
    actor = stage.start(build(example("counter")))
    for message in (b"+2", b"+3", b"hello"):
        stage.theater.send(actor, message)
    assert stage.theater.request(actor, b"get") == b"6"
    logs = [e.data["params"][0] for e in stage.events(actor, "theater:simple/runtime/log")]
    assert logs[1:] == ["count is now 2", "count is now 5", "count is now 6"]
    first_send = stage.events(actor, "wasm/result")[1]
    assert json.loads(state_at(stage.theater.store, parse_actor_id(actor), first_send.seq)) == {"count": 2}
    assert json.loads(stage.theater.state(actor)) == {"count": 6}


def test_ping_plays_pong_over_requests(example: Callable[[str], Path], stage: Stage) -> None:
    pong = stage.start(build(example("ping-pong/pong")))
    ping = stage.start(build(example("ping-pong/ping")))
    stage.theater.send(ping, f"play {pong} 4".encode())
    assert json.loads(stage.theater.request(ping, b"score")) == {"rallies": 4, "last": "pong 3"}
    answers = [e.data["result"] for e in stage.events(ping, "theater:simple/message-server-host/request")]
    assert answers == [{"ok": f"pong {i}".encode()} for i in range(4)]
    assert json.loads(stage.theater.state(pong)) == {"pings": 4}


def test_chat_room_passes_messages_between_members(example: Callable[[str], Path], stage: Stage) -> None:
    theater = stage.theater
    room = stage.start(build(example("chat-room")))
    alice = theater.open_channel(room, b"alice")
    assert alice.welcome == b"welcome alice; here: nobody yet"
    bob = theater.open_channel(room, b"bob")
    assert alice.receive(30) == b"* bob joined"
    alice.send(b"hi bob")
    assert bob.receive(30) == b"alice: hi bob"
    with pytest.raises(Exception, match="rejected the channel"):
        theater.open_channel(room, b"bob")
    alice.close()
    assert bob.receive(30) == b"* alice left"
    assert json.loads(theater.request(room, b"members")) == ["bob"]
    bob.close()


def test_supervisor_hears_a_crashing_worker_which_is_restarted(example: Callable[[str], Path], stage: Stage) -> None:
    theater = stage.theater
    result = build(example("supervisor"))
    boss = stage.start(result)
    worker = theater.request(boss, b"start").decode()
    assert theater.request(worker, b"work") == b"done by worker 1"
    with pytest.raises(GuestFault, match="RuntimeError: worker 1 was asked to crash"):
        theater.request(worker, b"crash")
    stage.until(lambda: stage.events(boss, "wasm/result")[-1].data["export"].endswith("handle-child-error"),
                "the supervisor's handle-child-error")
    report = json.loads(theater.request(boss, b"report"))
    assert report == {"failures": [[worker, "internal"]], "exits": []}
    stage.until(lambda: theater.status(worker) == "running", "the worker's restart")
    assert theater.request(worker, b"work") == b"done by worker 1"


@pytest.mark.slow
def test_the_supervisor_example_runs_on_a_server_as_it_does_embedded(example: Callable[[str], Path],
                                                                     tmp_path: Path) -> None:
    result = build(example("supervisor"))
    home = tmp_path / "server-home"
    seed_home(home, result)  # its compiled form, so the server does not compile the component again
    server = ServerProcess(home).start()
    try:
        boss = server.cli("start", str(result.project.manifest), "--id-only").stdout.strip()
        worker = server.cli("message", boss, "start", "--request").stdout.strip()
        assert server.cli("message", worker, "work", "--request").stdout.strip() == "done by worker 1"
        assert server.http().ok("GET", f"/v1/actors/{boss}")["status"] == "running"
    finally:
        assert server.stop() == 0, server.stderr()


def test_quickstart_builds_runs_and_verifies_the_counter(example: Callable[[str], Path], tmp_path: Path) -> None:
    project = example("counter")
    home = tmp_path / "qs-home"

    seed_home(home, build(project))
    done = CliRunner().invoke(cli, ["--home", str(home), "quickstart", str(project), "--cache-dir", str(CACHE)])
    assert done.exit_code == 0, done.output
    assert "request get -> 6" in done.output
    assert 'state right after event 7: {"count":1}' in done.output
    assert "5. verify: integrity ok; replay ok" in done.output
