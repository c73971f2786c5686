"""The CLI against a real server: start, list, message, inspect, stop, restart, channel, subscribe, completion."""

from __future__ import annotations

import json
import subprocess

from tests.components import wat
from tests.server._harness import CLI, ROOT, WAIT, channel_component, cli_env


def test_the_life_of_an_actor_through_the_cli(server, actor_files):
    manifest = actor_files("counter", wat.counter_actor())
    actor = server.cli("start", str(manifest), "--id-only").stdout.strip()
    listed = json.loads(server.cli("list", "--json").stdout)
    assert {"id": actor, "status": "running", "parent": None, "name": "counter"}.items() <= \
        next(a for a in listed if a["id"] == actor).items()
    server.cli("message", actor, "+")
    answer = json.loads(server.cli("message", actor, "+", "--request", "--json").stdout)
    assert answer["response"]["size"] == 8
    assert server.cli("message", actor, "+", "--request", "--raw").stdout == "\x03" + "\x00" * 7
    info = json.loads(server.cli("inspect", actor, "--json").stdout)
    assert info["status"] == "running" and info["state"]["size"] == 8
    assert server.cli("stop", actor).stdout.strip() == f"{actor} stopped"
    assert server.cli("restart", actor).stdout.strip() == f"{actor} running"
    again = server.cli("message", actor, "+", "--request").stdout.strip()
    assert again == "<8 bytes> 0400000000000000"


def test_human_output_is_a_table_with_the_whole_id(server, actor_files):
    actor = server.cli("start", str(actor_files("echo", wat.echo_actor())), "--id-only").stdout.strip()
    table = server.cli("list").stdout
    assert table.splitlines()[0].split() == ["id", "name", "status", "parent", "events", "last", "event"]
    row = next(line for line in table.splitlines() if line.startswith(actor))
    assert row.split()[1:3] == ["echo", "running"]
    assert "\x1b[" not in table  # no colour in a pipe
    shown = server.cli("inspect", actor).stdout
    assert f"id         {actor}" in shown and "status     running" in shown
    started = server.cli("start", str(actor_files("echo", wat.echo_actor()))).stdout
    assert started.startswith("started echo ") and started.strip().endswith("(running)")


def test_start_id_only_piped_into_subscribe(server, actor_files):
    manifest = actor_files("counter", wat.counter_actor())
    env = cli_env()
    base = [*CLI, "--home", str(server.home), "--address", server.address]
    start = subprocess.Popen([*base, "start", str(manifest), "--id-only"], stdout=subprocess.PIPE, cwd=ROOT, env=env)
    follow = subprocess.Popen([*base, "subscribe", "-", "--history", "--limit", "4", "--json"], stdin=start.stdout,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    start.stdout.close()  # type: ignore[union-attr]
    out, err = follow.communicate(timeout=WAIT)
    assert start.wait(WAIT) == 0 and follow.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in events] == [0, 1, 2, 3]
    assert [e["type"] for e in events] == ["actor/created", "wasm/instantiate", "wasm/call", "wasm/result"]


def test_subscribe_prints_one_line_per_event(server, actor_files):
    actor = server.cli("start", str(actor_files("echo", wat.echo_actor())), "--id-only").stdout.strip()
    lines = server.cli("subscribe", actor, "--history", "--type", "wasm/*", "--limit", "2").stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2"]
    assert lines[1].split()[2] == "wasm/call"


def test_start_with_initial_state_as_json_and_as_a_file(server, actor_files, tmp_path):
    manifest = actor_files("echo", wat.echo_actor())
    actor = server.cli("start", str(manifest), "--id-only", "--initial-state", '{"b": 1, "a": [true]}').stdout
    state = json.loads(server.cli("inspect", actor.strip(), "--json").stdout)["state"]
    assert state["size"] == len(b'{"a":[true],"b":1}')
    (tmp_path / "seed.bin").write_bytes(b"\x00\x01\x02")
    actor = server.cli("start", str(manifest), "--id-only", "--initial-state", f"@{tmp_path / 'seed.bin'}").stdout
    assert json.loads(server.cli("inspect", actor.strip(), "--json").stdout)["state"]["size"] == 3


def test_start_with_a_state_file_named_in_the_manifest(server, actor_files, tmp_path):
    manifest = actor_files("echo", wat.echo_actor(), extra='init_state = { file = "seed.txt" }')
    (manifest.parent / "seed.txt").write_text("from a file")
    actor = server.cli("start", str(manifest), "--id-only").stdout.strip()
    state = server.http().ok("GET", f"/v1/actors/{actor}/state")["state"]
    assert state["text"] == "from a file"


def test_start_with_a_parent(server, actor_files):
    parent = server.cli("start", str(actor_files("boss", wat.echo_actor())), "--id-only").stdout.strip()
    child = server.cli("start", str(actor_files("worker", wat.echo_actor())), "--id-only", "--parent", parent)
    assert json.loads(server.cli("inspect", parent, "--json").stdout)["children"] == [child.stdout.strip()]


def test_an_interactive_channel(server, actor_files):
    manifest = actor_files("chat", channel_component(welcome=b"welcome"), handlers=("message-server",))
    actor = server.cli("start", str(manifest), "--id-only").stdout.strip()
    done = server.cli("channel", "open", actor, "--message", "hi", input="one\ntwo\nbye\n")
    assert done.stdout.splitlines() == ["welcome", "one", "two"]
    assert "(channel closed)" in done.stderr


def test_errors_are_one_line_on_stderr(server, actor_files):
    missing = server.cli("inspect", "00000000-0000-0000-0000-000000000000", check=False)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "ActorNotFound: no actor 00000000-0000-0000-0000-000000000000\n"
    bad = server.cli("message", "not-an-id", "x", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("InvalidInputError: invalid actor id 'not-an-id'")
    faulty = server.cli("start", str(actor_files("faulty", wat.faulty_actor())), "--id-only").stdout.strip()
    trapped = server.cli("message", faulty, "trap", check=False)
    assert trapped.returncode == 1 and trapped.stderr.startswith("GuestFault: ")


def test_a_server_that_is_not_running_is_named_with_the_fix(tmp_path):
    # ``list`` reads the home instead (tests/cli/test_porcelain_cli.py); a command that needs the server fails.
    done = subprocess.run([*CLI, "--address", "127.0.0.1:1", "inspect", "00000000-0000-0000-0000-000000000000"],
                          capture_output=True, text=True, timeout=WAIT, cwd=ROOT, env=cli_env())
    assert done.returncode == 1
    assert done.stderr == "ServerNotRunning: server not running at 127.0.0.1:1, start it with `theater server`\n"


def test_completion_scripts_and_actor_ids_from_the_server(server, actor_files):
    assert "_THEATER_COMPLETE" in server.cli("completion", "bash").stdout
    assert "compdef" in server.cli("completion", "zsh").stdout
    assert "complete" in server.cli("completion", "fish").stdout
    actor = server.cli("start", str(actor_files("echo", wat.echo_actor())), "--id-only").stdout.strip()
    env = cli_env({"_THEATER_COMPLETE": "bash_complete", "COMP_WORDS": f"theater --address {server.address} "
                   f"inspect {actor[:6]}", "COMP_CWORD": "4"})
    done = subprocess.run(CLI, capture_output=True, text=True, timeout=WAIT, cwd=ROOT, env=env)
    assert f"plain,{actor}" in done.stdout.splitlines()
