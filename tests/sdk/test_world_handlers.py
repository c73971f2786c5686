"""A Python actor using the ``store``, ``filesystem``, ``environment`` and ``process`` handlers through the SDK, in a
real component: every call answered, every escape refused, and every chain replayed with the world gone (files
deleted, variables unset, the program's output never produced again)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from store.blobs import blob_digest
from store.codec import collect_blob_refs, decode_stored
from theater.build import BuildResult
from theater.errors import ManifestError

from ._support import WAIT, Stage, build, chain_problems

pytestmark = [pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")

APP = '''
import json

from theater_sdk import Actor, HostError, env, fs, process, run, store


class World(Actor):
    def init(self):
        self.state = {"out": [], "exit": []}

    def on_request(self, message):
        cmd = json.loads(message)
        op = cmd["op"]
        try:
            if op == "env":
                return json.dumps([env.get(cmd["name"]), env.exists(cmd["name"]), env.all()])
            if op == "read":
                return fs.read(cmd["path"])
            if op == "write":
                fs.write(cmd["path"], cmd["text"])
                return "written"
            if op == "list":
                return json.dumps(fs.list(cmd.get("path", "")))
            if op == "exists":
                return json.dumps(fs.exists(cmd["path"]))
            if op == "delete":
                fs.delete(cmd["path"])
                return "deleted"
            if op == "run":
                done = fs.run(cmd["command"], cmd["args"])
                return json.dumps([done.stdout, done.stderr, done.exit_code])
            if op == "put":
                return store.put_at_label(cmd["store"], cmd["label"], cmd["data"].encode() * cmd.get("times", 1))
            if op == "get":
                return store.get(cmd["store"], store.get_label(cmd["store"], cmd["label"]))
            if op == "labels":
                return json.dumps([store.labels(cmd["store"]), store.total_size(cmd["store"])])
            if op == "new":
                return store.new()
            if op == "spawn":
                return str(process.run(cmd["program"], cmd["args"], cwd=cmd.get("cwd"), env=cmd.get("env"),
                                       stdout=cmd.get("mode", "line-by-line"), timeout_s=cmd.get("timeout")))
            if op == "seen":
                return json.dumps(self.state)
        except HostError as exc:
            return "err: " + exc.message
        return "?"

    def on_process_stdout(self, pid, data):
        self.state["out"].append(data.decode())

    def on_process_exit(self, pid, code):
        self.state["exit"].append(code)


run(World)
'''

WORLD = '''package test:reach;

world world-actor {
    import theater:simple/runtime;
    import theater:simple/message-server-host;
    import theater:simple/store;
    import theater:simple/environment;
    import theater:simple/filesystem;
    import theater:simple/process;

    export theater:simple/actor;
    export theater:simple/message-server-client;
    export theater:simple/process-handlers;
}
'''


@pytest.fixture
def world(tmp_path: Path) -> BuildResult:
    root = tmp_path / "world"
    (root / "wit").mkdir(parents=True)
    (root / "app.py").write_text(APP)
    (root / "wit" / "world.wit").write_text(WORLD)
    (root / "manifest.toml").write_text('name = "world"\ncomponent = "build/world.wasm"\n')
    return build(root)


def manifest(path: Path, result: BuildResult, files: Path, *, extra: str = "") -> Path:
    path.write_text(f'''name = "world"
component = "{result.wasm}"

[[handlers]]
type = "message-server"

[[handlers]]
type = "environment"
config = {{ allowed_prefixes = ["WORLD_"], denied_vars = ["WORLD_SECRET"], allow_list_all = true }}

[[handlers]]
type = "filesystem"
config = {{ path = "{files}", allowed_commands = ["echo"] }}

[[handlers]]
type = "store"
config = {{ store_ids = ["notes"] }}

[[handlers]]
type = "process"
config = {{ allowed_programs = ["echo", "yes", "sleep"], allowed_paths = ["{files}"], max_output_buffer = 100_000 }}
{extra}''')
    return path


def ask(stage: Stage, actor: str, **cmd: object) -> bytes:
    return stage.theater.request(actor, json.dumps(cmd).encode())


def seen_after_exit(stage: Stage, actor: str) -> dict:
    """What the actor saw of its processes, once a process's exit was delivered to it (waited on in the record)."""
    stage.until(lambda: any(e.data.get("export") == "theater:simple/process-handlers.handle-exit"
                            for e in stage.events(actor, "wasm/call")), "a process's exit delivered")
    return json.loads(ask(stage, actor, op="seen"))


def test_every_handler_answers_refuses_escapes_and_replays_with_the_world_gone(
    stage: Stage, world: BuildResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "in.txt").write_text("from the host")
    (tmp_path / "secret.txt").write_text("outside")
    monkeypatch.setenv("WORLD_MODE", "on")
    monkeypatch.setenv("WORLD_SECRET", "hunter2")
    actor = stage.start(world, manifest(tmp_path / "world.toml", world, files))

    # environment
    assert json.loads(ask(stage, actor, op="env", name="WORLD_MODE")) == ["on", True, {"WORLD_MODE": "on"}]
    assert json.loads(ask(stage, actor, op="env", name="WORLD_SECRET")) == [None, False, {"WORLD_MODE": "on"}]
    # filesystem
    assert ask(stage, actor, op="read", path="in.txt") == b"from the host"
    assert ask(stage, actor, op="write", path="out.txt", text="from the actor") == b"written"
    assert (files / "out.txt").read_text() == "from the actor"
    assert json.loads(ask(stage, actor, op="list")) == ["in.txt", "out.txt"]
    assert ask(stage, actor, op="read", path="../secret.txt").startswith(b"err: path '../secret.txt' has a '..'")
    assert ask(stage, actor, op="read", path=str(tmp_path / "secret.txt")).startswith(b"err: path ")
    (files / "link").symlink_to(tmp_path / "secret.txt")
    assert b"symlink" in ask(stage, actor, op="read", path="link")
    assert json.loads(ask(stage, actor, op="run", command="echo", args=["a;", "$(id)"])) == ["a; $(id)\n", "", 0]
    assert b"not in allowed_commands" in ask(stage, actor, op="run", command="sh", args=["-c", "id"])
    # store: a large get is recorded by reference to the content's blob
    digest = ask(stage, actor, op="put", store="notes", label="big", data="0123456789", times=10_000).decode()
    assert digest == blob_digest(b"0123456789" * 10_000).hex()
    blobs_before = sorted(stage.theater.store.blobs)
    assert ask(stage, actor, op="get", store="notes", label="big") == b"0123456789" * 10_000
    assert sorted(stage.theater.store.blobs) == blobs_before  # the recorded get added no blob: it names this one
    [got] = stage.events(actor, "theater:simple/store/get")
    [(_, stored)] = stage.theater.store.log.raw_events(uuid.UUID(actor), got.seq, got.seq + 1)
    refs: list[bytes] = []
    collect_blob_refs(decode_stored(stored, where="get")[1][6], refs)
    assert refs == [bytes.fromhex(digest)] and len(stored) < 1024  # by hash, not a copy
    assert json.loads(ask(stage, actor, op="labels", store="notes")) == [["big"], 100_000]
    assert b"not granted" in ask(stage, actor, op="labels", store="someone-elses")
    # process
    pid = int(ask(stage, actor, op="spawn", program="echo", args=["hello", "|", "world"], cwd=str(files)))
    seen = seen_after_exit(stage, actor)
    assert seen == {"out": ["hello | world"], "exit": [0]}
    assert pid > 0
    assert b"not in allowed_programs" in ask(stage, actor, op="spawn", program="sh", args=["-c", "id"])

    # The world goes away: the chain still replays and verifies, answered from the record alone.
    stage.theater.stop(actor)
    for path in files.iterdir():
        path.unlink()
    files.rmdir()
    monkeypatch.delenv("WORLD_MODE")
    monkeypatch.delenv("WORLD_SECRET")
    stage.theater.store.blobs.remove_runtime_label("theater/stores/notes/label/big")
    assert chain_problems(stage.theater) == []


def test_a_child_asking_for_a_wider_path_than_its_parent_is_refused(
    stage: Stage, world: BuildResult, tmp_path: Path
) -> None:
    files = tmp_path / "files"
    (files / "inner").mkdir(parents=True)
    parent = stage.start(world, manifest(tmp_path / "parent.toml", world, files))
    wider = manifest(tmp_path / "child.toml", world, tmp_path)
    with pytest.raises(ManifestError) as caught:
        stage.theater.start(wider, parent=parent)
    assert caught.value.field == "handlers.filesystem.config"
    assert "not inside its parent's" in str(caught.value)
    narrower = manifest(tmp_path / "child.toml", world, files / "inner")
    child = stage.theater.start(narrower, parent=parent)
    assert stage.theater.status(child) == "running"


def test_a_manifest_from_an_api_client_cannot_grant_the_hosts_files(
    stage: Stage, world: BuildResult, tmp_path: Path
) -> None:
    from theater.manifest import parse_manifest

    stage.theater.store.blobs.put(world.wasm.read_bytes())
    text = manifest(tmp_path / "world.toml", world, tmp_path).read_text().replace(
        f'component = "{world.wasm}"', f'component = "{world.digest.hex()}"')
    hostile = parse_manifest(text, source="<api>")
    with pytest.raises(ManifestError) as caught:
        stage.theater.start(hostile)
    assert "only the operator's own manifests may grant it" in str(caught.value)
    assert os.listdir(tmp_path).count("world.toml") == 1


def test_a_runaway_process_is_killed_and_the_actor_goes_on(stage: Stage, world: BuildResult, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    actor = stage.start(world, manifest(tmp_path / "world.toml", world, files))
    ask(stage, actor, op="spawn", program="yes", args=[], mode="raw")  # endless output, never exits on its own
    seen = seen_after_exit(stage, actor)
    assert seen["exit"] == [-9]
    assert sum(len(chunk) for chunk in seen["out"]) == 100_000  # max_output_buffer
    ask(stage, actor, op="spawn", program="sleep", args=["600"], timeout=1)  # silent, never exits on its own
    stage.until(lambda: sum(e.data.get("export") == "theater:simple/process-handlers.handle-exit"
                            for e in stage.events(actor, "wasm/call")) == 2, "the sleeper's exit")
    assert json.loads(ask(stage, actor, op="seen"))["exit"] == [-9, -9]
    assert ask(stage, actor, op="list") == b"[]"  # the actor goes on


def test_processes_die_with_their_actor(stage: Stage, world: BuildResult, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    actor = stage.start(world, manifest(tmp_path / "world.toml", world, files))
    pid = int(ask(stage, actor, op="spawn", program="sleep", args=["600"]))
    os.kill(pid, 0)  # it runs
    stage.theater.stop(actor)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_reopened_actor_is_told_its_processes_are_gone(stage: Stage, world: BuildResult, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    actor = stage.start(world, manifest(tmp_path / "world.toml", world, files))
    pid = int(ask(stage, actor, op="spawn", program="sleep", args=["600"]))
    stage.theater.stop(actor)
    stage.theater.reopen(actor)
    assert seen_after_exit(stage, actor) == {"out": [], "exit": [-9]}
    exits = [e for e in stage.events(actor, "wasm/call")
             if e.data.get("export") == "theater:simple/process-handlers.handle-exit"]
    assert [e.data["params"] for e in exits] == [[pid, -9]]



def test_an_actor_waiting_for_a_long_command_does_not_keep_the_others_from_running(
    world: BuildResult, tmp_path: Path
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    path = manifest(tmp_path / "world.toml", world, files)
    path.write_text(path.read_text().replace('allowed_commands = ["echo"]',  # a command running past the wait below
                                             'allowed_commands = ["echo", "sleep"], command_timeout_ms = 600_000'))
    stage = Stage(tmp_path / "home", workers=1)  # one worker: a wait that holds it holds every actor
    try:
        waiting, other = stage.start(world, path), stage.start(world, path)
        theater = stage.theater
        running = theater.router.deliver_request(
            theater.router.get(waiting), json.dumps({"op": "run", "command": "sleep", "args": ["600"]}).encode())
        stage.until(lambda: stage.events(waiting, "wasm/call")[-1].data["export"].endswith("handle-request"),
                    "the long command's call under way")
        answer = theater.router.deliver_request(theater.router.get(other), json.dumps({"op": "seen"}).encode())
        assert json.loads(answer.result(WAIT)) == {"out": [], "exit": []}  # answered while the command runs
        assert not running.done()
        theater.stop(waiting)  # ends the command (the stop reaches it) and its call
        assert chain_problems(theater) == []
    finally:
        stage.theater.close()
