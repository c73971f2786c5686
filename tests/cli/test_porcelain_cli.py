"""The commands that read the home without a server, through the porcelain: ``list`` with no server, actor-id
prefixes, output in a pipe, replay's human output, ``--json`` everywhere, and the hash ``build`` prints."""

from __future__ import annotations

import json
import uuid

import pytest

from replay.errors import GuestFault
from store import Store
from store.errors import AmbiguousPrefixError, InvalidInputError
from tests.cli.conftest import run_cli
from tests.components import wat
from theater.build import BuildResult, Project
from theater.cli.build import _describe
from theater.errors import ActorNotFound
from theater.manifest import parse_manifest
from theater.porcelain import resolve_actor
from theater.porcelain.forms import bytes_json
from theater.runtime import Theater

NOBODY_LISTENS = "127.0.0.1:1"  # a port nothing listens on


def test_list_with_no_server_shows_the_homes_actors_with_their_chain_status(tmp_path):
    (tmp_path / "c.wat").write_text(wat.counter_actor())
    (tmp_path / "c.toml").write_text('name = "counter"\ncomponent = "c.wat"\n')
    (tmp_path / "f.wat").write_text(wat.actor_wat(send=wat.trap()))
    (tmp_path / "f.toml").write_text('name = "failing"\ncomponent = "f.wat"\n')
    home = tmp_path / "home"
    with Theater(home) as theater:
        stopped = theater.start(tmp_path / "c.toml")
        theater.stop(stopped)
        failed = theater.start(tmp_path / "f.toml")
        with pytest.raises(GuestFault, match="trap"):
            theater.send(failed, b"boom")
        interrupted = theater.start(tmp_path / "c.toml")  # still running when the runtime goes away
    done = run_cli("--address", NOBODY_LISTENS, "list", "--json", home=home)
    assert "server not running at 127.0.0.1:1" in done.stderr
    statuses = {row["id"]: (row["status"], row["live"]) for row in json.loads(done.stdout)}
    assert statuses == {stopped: ("stopped", False), failed: ("failed", False),
                        interrupted: ("interrupted", False)}
    table = run_cli("--address", NOBODY_LISTENS, "list", home=home).stdout
    assert next(line for line in table.splitlines() if line.startswith(failed)).split()[1:3] == ["failing", "failed"]


def test_list_with_no_server_and_no_home_lists_nothing(tmp_path):
    done = run_cli("--address", NOBODY_LISTENS, "list", "--json", home=tmp_path / "none")
    assert json.loads(done.stdout) == [] and "server not running" in done.stderr


def test_a_unique_actor_id_prefix_names_the_actor(recorded):
    home, actor = recorded
    for prefix in (actor[:4], actor[:13].upper()):
        assert json.loads(run_cli("state", prefix, "--json", home=home).stdout)["actor"] == actor
    assert json.loads(run_cli("verify", actor[:6], "--json", home=home).stdout)["ok"] is True
    unknown = run_cli("events", "0000ffff", home=home, check=False)
    assert unknown.returncode == 1 and unknown.stderr.startswith("ActorNotFound: no actor 0000ffff")
    short = run_cli("events", actor[:3], home=home, check=False)
    assert short.returncode == 1 and short.stderr.startswith("InvalidInputError: invalid actor id")


def test_an_ambiguous_actor_prefix_is_refused_naming_the_candidates(tmp_path):
    first, second = uuid.UUID("abcd0000-0000-4000-8000-000000000001"), uuid.UUID("abcd0000-0000-4000-8000-000000000002")
    with Store(tmp_path / "store") as store:
        for actor in (first, second):
            store.log.append(actor, "test/created", {}, expected=store.log.head(actor))
        with pytest.raises(AmbiguousPrefixError, match=r"^actor id prefix 'abcd' is ambiguous: it matches abcd0000"):
            resolve_actor(store, "abcd")
        assert resolve_actor(store, str(second)) == second
        assert resolve_actor(store, "ABCD0000-0000-4000-8000-000000000001") == first
        with pytest.raises(AmbiguousPrefixError):
            resolve_actor(store, "abcd0000-0000-4000-8000-00000000000")
        with pytest.raises(ActorNotFound, match=r"^no actor abce$"):
            resolve_actor(store, "abce")
        with pytest.raises(InvalidInputError):
            resolve_actor(store, "xyz!")


def test_events_in_a_pipe_print_one_line_per_event(recorded):
    home, actor = recorded
    count = len(json.loads(run_cli("events", actor, "--json", home=home).stdout))
    lines = run_cli("events", actor, home=home).stdout.splitlines()
    assert len(lines) == 1 + count, lines  # the header, then one line each: the data column is not wrapped
    assert lines[1].split()[:3] == ["0", lines[1].split()[1], "actor/created"]
    assert all(line.split()[0].isdigit() for line in lines[1:])


def test_replay_shows_text_parameters_as_text_and_json_keeps_them_lossless(recorded):
    home, actor = recorded
    events = json.loads(run_cli("events", actor, "--json", "--type", "wasm/call", home=home).stdout)
    send = next(e for e in events if e["data"]["export"].endswith("handle-send"))
    shown = run_cli("replay", send["hash"][:12], home=home).stdout
    assert '"tick"' in shown and "hex:7469636b" not in shown
    report = json.loads(run_cli("replay", send["hash"][:12], "--json", home=home).stdout)
    assert "hex:7469636b" in report["call"]["call"]["data"]["params"]


def test_run_store_put_and_chain_import_print_json(tmp_path):
    (tmp_path / "c.wat").write_text(wat.counter_actor())
    (tmp_path / "c.toml").write_text('name = "counter"\ncomponent = "c.wat"\n')
    home = tmp_path / "home"
    ran = json.loads(run_cli("run", str(tmp_path / "c.toml"), "--request", "+", "--json", home=home).stdout)
    assert ran["stopped"] is True and ran["responses"] == [bytes_json((1).to_bytes(8, "little"))]
    (tmp_path / "blob").write_bytes(b"hello")
    put = json.loads(run_cli("store", "put", str(tmp_path / "blob"), "--label", "greeting", "--json", home=home).stdout)
    assert put == {"hash": put["hash"], "size": 5, "label": "greeting"} and len(put["hash"]) == 64
    bundle = tmp_path / "a.bundle"
    run_cli("chain", "export", ran["actor"][:8], "-o", str(bundle), home=home)
    imported = json.loads(run_cli("chain", "import", str(bundle), "--json", home=tmp_path / "other").stdout)
    events = len(json.loads(run_cli("events", ran["actor"], "--json", home=home).stdout))
    assert imported == {"actor": ran["actor"], "events": events}


def test_demo_prints_json(tmp_path):
    report = json.loads(run_cli("demo", "--json", home=tmp_path / "home").stdout)
    assert report["verify"]["ok"] is True and report["events"] == report["verify"]["integrity"]["events"]
    assert report["state"]["actor"] == report["actor"]


def test_build_prints_the_whole_hash_a_manifest_can_pin(tmp_path):
    digest = bytes(range(32))
    project = Project(root=tmp_path, name="counter", output=tmp_path / "build" / "counter.wasm")
    result = BuildResult(project=project, wasm=project.output, digest=digest, key="k", how="built", seconds=1.0,
                         size=1_000_000, tool_version="0.25", manifest_changed=False)
    shown = _describe(result)
    assert digest.hex() in shown
    printed = next(word for word in shown.split() if len(word) == 64)
    manifest = parse_manifest(f'name = "counter"\ncomponent = "{printed}"\n', source="pinned.toml")
    assert (manifest.component.kind, manifest.component.value) == ("hash", digest)


def test_store_resolve_names_a_blob_by_label_prefix_or_store_label(tmp_path):
    home = tmp_path / "home"
    (tmp_path / "blob").write_bytes(b"bytes")
    digest = run_cli("store", "put", str(tmp_path / "blob"), "--label", "mine", home=home).stdout.strip()
    for ref in ("mine", "store:mine", digest[:6], digest):
        assert run_cli("store", "resolve", ref, home=home).stdout == f"{digest}\t5\n"
    missing = run_cli("store", "resolve", "store:nothing", home=home, check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("NotFoundError: no label nothing")
