"""Restart with a new component: gated by the upgrade check, recorded in the chain, understood by replay and
verify, kept across a runtime restart."""

from __future__ import annotations

import json
import uuid

import pytest

from replay import Replayer
from replay.history import component_at
from replay.schema import ACTOR_UPGRADED, WASM_INSTANTIATE
from replay.upgrade import Verdict
from store import blob_digest, verify_chain
from tests.components import wat
from theater.errors import LinkError, UpgradeRefused
from theater.porcelain import describe, verify_actor
from theater.porcelain.upgrade import upgrade_actor
from theater.runtime import Theater

GRANTS = '[[handlers]]\ntype = "message-server"\n[[handlers]]\ntype = "random"\n'
V1 = wat.actor_wat(send=wat.append_msg(b","), request=wat.seq(wat.random_bytes(8), wat.respond_state()))
# The same answers on every recorded call; a request after the upgrade answers with the state and a marker.
COMPATIBLE = wat.actor_wat(send=wat.append_msg(b","), request=wat.seq(wat.random_bytes(8), wat.respond_state()),
                           channel_close=wat.set_state(b"closed"))
NEW_ANSWER = wat.actor_wat(send=wat.append_msg(b","), request=wat.seq(wat.random_bytes(8), wat.respond(b"changed")))
STATE_ONLY = wat.actor_wat(send=wat.append_msg(b";"), request=wat.seq(wat.random_bytes(8), wat.respond_state()))
NEEDS_TIMING = wat.actor_wat(send=wat.append_msg(b","), request=wat.store_now())


@pytest.fixture
def running(tmp_path):
    """A runtime with one actor of V1 that has received a send and a request."""
    (tmp_path / "v1.wat").write_text(V1)
    (tmp_path / "actor.toml").write_text(f'name = "drawer"\ncomponent = "v1.wat"\n{GRANTS}')
    theater = Theater(tmp_path / "home", durability="buffered")
    actor = theater.start(tmp_path / "actor.toml")
    theater.send(actor, b"a")
    theater.request(actor, b"draw")
    yield theater, uuid.UUID(actor)
    theater.close()


def events_of(theater, actor):
    return list(theater.store.log.events(actor))


def test_a_compatible_component_replaces_the_running_one_and_the_chain_records_it(running):
    theater, actor = running
    old = component_at(theater.store, actor)
    check = upgrade_actor(theater, actor, COMPATIBLE.encode())
    assert check.verdict == Verdict.IDENTICAL
    events = events_of(theater, actor)
    upgraded = next(e for e in events if e.type == ACTOR_UPGRADED)
    assert upgraded.data == {"new": blob_digest(COMPATIBLE.encode()), "old": old, "forced": False,
                             "verdict": "identical"}
    instance = events[upgraded.seq + 1]
    assert instance.type == WASM_INSTANTIATE and instance.data["component"] == upgraded.data["new"]
    assert component_at(theater.store, actor) == upgraded.data["new"]
    assert describe(theater.store, actor, theater)["component"] == upgraded.data["new"].hex()  # what inspect shows
    theater.send(actor, b"b")
    assert theater.state(str(actor)).endswith(b",b")


def test_replay_and_verify_run_the_new_component_after_the_upgrade(running):
    theater, actor = running
    upgrade_actor(theater, actor, NEW_ANSWER.encode(), accept=[Verdict.DIFFERENT])
    assert theater.request(str(actor), b"draw") == b"changed"  # the new component answers
    report = verify_actor(theater.store, actor)
    assert report.integrity.ok and report.replay.ok, report.replay.divergence
    assert report.replay.calls == 4  # init, send, request, then the request the new component answered


def test_a_chain_that_says_the_old_component_ran_after_the_upgrade_fails_replay(running, rewrite):
    theater, actor = running
    upgrade_actor(theater, actor, NEW_ANSWER.encode(), accept=[Verdict.DIFFERENT])
    theater.request(str(actor), b"draw")
    instance = next(e for e in events_of(theater, actor) if e.type == WASM_INSTANTIATE and "component" in e.data)
    old = theater.store.log.at(actor, 0).data["component"]
    rewrite(theater.store, actor, instance.seq, lambda data: {**data, "component": old})
    report = Replayer(theater.store).replay(actor)
    assert not report.ok and report.divergence.seq >= instance.seq  # the old component does not run like the new


def test_restart_with_a_failing_check_is_refused_and_nothing_is_recorded(running):
    theater, actor = running
    before = [e.hash for e in events_of(theater, actor)]
    with pytest.raises(UpgradeRefused, match="'different'.*result of theater:simple/message-server-client"):
        upgrade_actor(theater, actor, NEW_ANSWER.encode())
    with pytest.raises(UpgradeRefused, match="'state-only'"):
        upgrade_actor(theater, actor, STATE_ONLY.encode())
    assert [e.hash for e in events_of(theater, actor)] == before
    assert not theater.store.blobs.has(blob_digest(NEW_ANSWER.encode()))
    assert len(theater.request(str(actor), b"draw")) == 8  # the old component (8 random bytes), still running


def test_force_records_the_verdict_it_overrode(running):
    theater, actor = running
    check = upgrade_actor(theater, actor, NEW_ANSWER.encode(), force=True)
    assert check.verdict == Verdict.DIFFERENT
    upgraded = next(e for e in events_of(theater, actor) if e.type == ACTOR_UPGRADED)
    assert upgraded.data["forced"] is True and upgraded.data["verdict"] == "different"
    assert verify_chain(theater.store, actor).ok


def test_a_new_component_importing_what_the_manifest_does_not_grant_is_refused(running):
    theater, actor = running
    before = [e.hash for e in events_of(theater, actor)]
    with pytest.raises(LinkError):
        upgrade_actor(theater, actor, NEEDS_TIMING.encode(), force=True)
    assert [e.hash for e in events_of(theater, actor)] == before


def test_the_new_component_is_kept_across_a_runtime_restart(running, tmp_path):
    theater, actor = running
    upgrade_actor(theater, actor, NEW_ANSWER.encode(), accept=[Verdict.DIFFERENT])
    theater.close()
    with Theater(tmp_path / "home", durability="buffered") as again:
        again.reopen(actor)
        assert again.request(str(actor), b"draw") == b"changed"
        instances = [e for e in again.store.log.events(actor) if e.type == WASM_INSTANTIATE]
        assert instances[-1].data["reason"] == "resume"
        assert instances[-1].data["component"] == blob_digest(NEW_ANSWER.encode())
        report = verify_actor(again.store, actor)
        assert report.replay.ok, report.replay.divergence


@pytest.fixture
def server(tmp_path):
    from tests.server._harness import ServerProcess

    process = ServerProcess(tmp_path / "server-home").start()
    yield process
    assert process.stop() == 0, process.stderr()


def test_cli_restart_with_component_is_refused_then_forced_over_the_api(server, tmp_path):
    from tests.server._harness import write_actor

    manifest = write_actor(tmp_path / "actors", "drawer", V1, handlers=("message-server", "random"))
    actor = server.cli("start", str(manifest), "--id-only").stdout.strip()
    server.cli("message", actor, "a")
    server.cli("message", actor, "draw", "--request")
    (tmp_path / "new.wat").write_text(NEW_ANSWER)
    (tmp_path / "compatible.wat").write_text(COMPATIBLE)
    before = server.cli("events", actor, "--json").stdout
    refused = server.cli("restart", actor, "--component", str(tmp_path / "new.wat"), check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("UpgradeRefused: ")
    assert "'different'" in refused.stderr and "nothing was changed" in refused.stderr
    assert server.cli("events", actor, "--json").stdout == before
    api = server.http()
    inline = {"component": {"text": NEW_ANSWER}}
    assert api.post(f"/v1/actors/{actor}/restart", {**inline, "accept": ["anything"]}).status == 400
    answer = api.post(f"/v1/actors/{actor}/restart", inline)
    assert answer.status == 409 and answer.json["error"] == "UpgradeRefused"
    assert server.cli("events", actor, "--json").stdout == before
    done = server.cli("restart", actor, "--component", str(tmp_path / "compatible.wat"))
    assert done.stdout.strip().endswith("upgrade check: identical)")
    forced = json.loads(server.cli("restart", actor, "--component", str(tmp_path / "new.wat"), "--force",
                                   "--json").stdout)
    assert forced["status"] == "running" and forced["upgrade"]["verdict"] == "different"
    assert not forced["upgrade"]["accepted"]
    assert server.cli("message", actor, "draw", "--request", "--raw").stdout == "changed"
    types = [e["type"] for e in json.loads(server.cli("events", actor, "--json").stdout)]
    assert types.count("actor/upgraded") == 2
    assert server.cli("verify", actor, check=False).returncode == 0


def test_a_crash_between_the_label_and_the_record_still_leaves_a_chain_that_says_which_component_ran(running):
    from theater.runtime import COMPONENT_LABEL

    theater, actor = running
    digest = theater.store.blobs.put(NEW_ANSWER.encode())
    theater.store.blobs.set_runtime_label(COMPONENT_LABEL + str(actor), digest)  # the upgrade was not recorded
    theater.stop(str(actor))
    theater.reopen(actor)
    assert theater.request(str(actor), b"draw") == b"changed"
    instance = [e for e in events_of(theater, actor) if e.type == WASM_INSTANTIATE][-1]
    assert instance.data["component"] == digest  # the instance names what it runs
    report = verify_actor(theater.store, actor)
    assert report.replay.ok, report.replay.divergence
