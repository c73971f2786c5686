"""An ``err`` is an answer, not a crash (``on_err = "answer"``, the default): the call's state change is discarded,
the err is recorded (``wasm/err-answer``) and returned to whoever asked, and the actor keeps running. A trap, fuel,
the deadline and ``init``'s err still fail it; ``on_err = "fail"`` keeps the old behaviour for every err.

Every chain these tests leave is verified (integrity and re-execution) by the ``theaters`` fixture.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from replay.errors import GuestFault
from replay.history import state_at
from replay.replayer import Replayer
from tests.components import wat
from tests.components.wat import ERR_MARKER
from theater.actor import ACTOR_INIT, HANDLE_REQUEST, HANDLE_SEND
from theater.errors import ErrAnswered, ManifestError
from theater.manifest import parse_manifest
from theater.porcelain import describe, last_status
from theater.porcelain.actors import _grants
from theater.runtime import Theater

MSG = ["message-server"]
# A counter that counts ``fail`` too and then returns err: the count it reached is what an answered err discards.
BAD = {b"fail": wat.seq(wat.count(), wat.fail("bad input")), b"trap": wat.trap(), b"spin": wat.spin()}
FAILING_COUNTER = wat.actor_wat(send=wat.match_msg(BAD, wat.count()), request=wat.match_msg(BAD, wat.count()),
                                channel_open=wat.match_msg({b"fail": wat.fail("no channel for you")}, wat.accept()),
                                channel_message=wat.match_msg(BAD, wat.count()))


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


@pytest.fixture
def counter(theater, manifest):
    """A running failing counter at count 2 (two sends)."""
    actor = theater.start(manifest("counter", FAILING_COUNTER, MSG))
    theater.send(actor, b"+")
    theater.send(actor, b"+")
    return actor


def test_a_request_answered_with_err_raises_an_error_naming_the_actor_and_the_guests_text(theater, counter):
    with pytest.raises(ErrAnswered, match=rf"^actor {counter} \(counter\) answered "
                                          rf"message-server-client.handle-request with err: bad input$") as raised:
        theater.request(counter, b"fail")
    assert raised.value.kind == "err" and raised.value.detail == "bad input"
    assert raised.value.export == HANDLE_REQUEST and raised.value.actor_id == counter
    assert not raised.value.poisoned


def test_an_err_leaves_the_actor_running_with_the_state_it_had_before_the_call(theater, counter):
    with pytest.raises(ErrAnswered):
        theater.request(counter, b"fail")
    assert theater.status(counter) == "running"
    assert theater.actor(counter).failure is None
    assert theater.state(counter) == le64(2)
    assert theater.request(counter, b"+") == le64(3)


def test_an_answered_err_is_recorded_as_wasm_err_answer(theater, counter):
    with pytest.raises(ErrAnswered) as raised:
        theater.send(counter, b"fail")
    answer = theater.events(counter)[-1]
    assert answer.type == "wasm/err-answer"
    assert answer.data == {"fuel": raised.value.fuel, "detail": "bad input", "export": HANDLE_SEND}
    assert answer.data["fuel"] > 0
    assert not [e for e in theater.events(counter) if e.type == "wasm/error"]


def test_a_sends_err_is_logged_and_the_actor_goes_on(theater, counter, caplog):
    with caplog.at_level(logging.WARNING, logger="theater.actor"):
        with pytest.raises(ErrAnswered):
            theater.send(counter, b"fail")
    assert f"actor {counter} (counter) answered {HANDLE_SEND} with err: bad input" in caplog.text
    theater.send(counter, b"+")
    assert theater.state(counter) == le64(3)


def test_a_request_from_another_actor_gets_the_err_naming_the_actor(theater, manifest, counter):
    forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))
    answer = theater.request(forwarder, counter.encode() + b"\0fail")
    expected = f"actor {counter} (counter) answered message-server-client.handle-request with err: bad input"
    assert answer == ERR_MARKER + expected.encode()
    [host_call] = [e for e in theater.events(forwarder) if e.type == "theater:simple/message-server-host/request"]
    assert host_call.data["result"] == {"err": expected}
    assert theater.status(forwarder) == "running" and theater.status(counter) == "running"
    assert theater.state(counter) == le64(2)


def test_a_send_from_another_actor_answered_with_err_leaves_both_running(theater, manifest, counter, settle):
    forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))
    theater.send(forwarder, counter.encode() + b"\0fail")
    settle(theater)
    assert [e.type for e in theater.events(counter)][-1] == "wasm/err-answer"
    assert theater.status(counter) == "running" and theater.state(counter) == le64(2)


def test_a_channel_open_answered_with_err_is_refused_and_the_actor_goes_on(theater, counter):
    with pytest.raises(ErrAnswered, match="no channel for you"):
        theater.open_channel(counter, b"fail")
    channel = theater.open_channel(counter, b"hello")
    with pytest.raises(ErrAnswered, match="bad input"):
        channel.send(b"fail")
    channel.send(b"+")
    assert theater.state(counter) == le64(3)
    channel.close()


@pytest.mark.parametrize(("command", "limits", "kind"), [
    (b"trap", None, "trap"),
    (b"spin", {"fuel_per_call": 200_000}, "fuel"),
    (b"spin", {"fuel_per_call": 10**12, "deadline_ms": 50}, "deadline"),
])
def test_a_trap_fuel_or_the_deadline_still_fail_an_actor_that_answers_errs(theater, manifest, command, limits,
                                                                            kind):
    actor = theater.start(manifest("counter", FAILING_COUNTER, MSG, limits=limits))
    with pytest.raises(GuestFault) as raised:
        theater.send(actor, command)
    assert not isinstance(raised.value, ErrAnswered) and raised.value.kind == kind
    assert theater.status(actor) == "failed"
    assert theater.events(actor)[-1].type == "wasm/error"


def test_an_err_from_init_still_fails_the_actor(theater, manifest):
    path = manifest("refuser", wat.actor_wat(init=wat.fail("cannot start")), MSG)
    with pytest.raises(GuestFault, match="cannot start") as raised:
        theater.start(path)
    assert not isinstance(raised.value, ErrAnswered)
    [actor] = theater.actors()
    assert actor["status"] == "failed"
    last = theater.events(actor["id"])[-1]
    assert (last.type, last.data["export"], last.data["kind"]) == ("wasm/error", ACTOR_INIT, "err")


def test_on_err_fail_keeps_an_err_a_failure(theater, manifest):
    actor = theater.start(manifest("counter", FAILING_COUNTER, MSG, on_err="fail"))
    with pytest.raises(GuestFault, match=r"handle-request failed \(err\): bad input") as raised:
        theater.request(actor, b"fail")
    assert not isinstance(raised.value, ErrAnswered)
    assert theater.status(actor) == "failed"
    assert theater.events(actor)[-1].type == "wasm/error"
    assert theater.events(actor)[0].data["on_err"] == "fail"


def test_state_at_an_answered_err_and_after_it_is_the_state_before_the_call(theater, counter):
    with pytest.raises(ErrAnswered):
        theater.send(counter, b"fail")
    theater.send(counter, b"+")
    key = uuid.UUID(counter)
    err = next(e for e in theater.events(counter) if e.type == "wasm/err-answer")
    assert state_at(theater.store, key, err.seq) == le64(2)
    assert state_at(theater.store, key, err.seq - 1) == le64(2)  # the call itself
    assert state_at(theater.store, key) == le64(3)
    report = Replayer(theater.store).replay(key)
    assert report.ok, report.divergence
    assert report.state == le64(3)


def test_a_reopened_actor_keeps_answering_errs_and_its_chain_verifies(theaters, manifest, tmp_path):
    path = manifest("counter", FAILING_COUNTER, MSG)
    with Theater(tmp_path / "home", durability="buffered") as first:
        actor = first.start(path)
        with pytest.raises(ErrAnswered):
            first.send(actor, b"fail")
    second = theaters(home=tmp_path / "home")
    second.reopen(actor)
    with pytest.raises(ErrAnswered):
        second.send(actor, b"fail")
    second.send(actor, b"+")
    assert second.state(actor) == le64(1)


def test_manifest_refuses_an_unknown_on_err_naming_the_field():
    text = 'name = "a"\ncomponent = "a.wasm"\non_err = "ignore"\n'
    with pytest.raises(ManifestError, match=r'^<inline>: on_err: expected "answer" .* or "fail" .*, '
                                            r"got 'ignore'$"):
        parse_manifest(text)
    with pytest.raises(ManifestError, match=r"^<inline>: on_err: expected a non-empty string, got "):
        parse_manifest('name = "a"\ncomponent = "a.wasm"\non_err = true\n')


def test_actor_created_records_the_effective_grants_and_inspect_shows_them(theater, manifest):
    path = manifest("timed", wat.clock_actor(), ["message-server", "timing"],
                    config={"timing": {"max_sleep_ms": 500}})
    actor = theater.start(path)
    genesis = theater.events(actor)[0]
    expected = [{"type": "runtime", "config": {}}, {"type": "message-server", "config": {}},
                {"type": "timing", "config": {"max_sleep_ms": 500}}]
    assert genesis.data["grants"] == expected
    assert genesis.data["on_err"] == "answer"
    assert describe(theater.store, uuid.UUID(actor), theater)["grants"] == expected


def test_inspect_shows_the_recorded_grants_not_the_manifests(theater, manifest):
    """The record is what the actor was granted: a manifest blob that says otherwise (an old chain's manifest, or
    one edited) does not change what ``inspect`` shows once the creation event records grants."""
    actor = theater.start(manifest("echo", wat.echo_actor(), MSG))
    data = dict(theater.events(actor)[0].data)
    data["manifest"] = theater.store.blobs.put(b'name = "echo"\ncomponent = "x"\n[[handlers]]\ntype = "timing"\n')
    shown = _grants(theater.store, data)
    assert shown == [{"type": "runtime", "config": {}}, {"type": "message-server", "config": {}}]
    del data["grants"]  # a chain recorded before grants were: they come from its manifest
    assert _grants(theater.store, data) == [{"type": "runtime", "config": {}},
                                                                    {"type": "timing", "config": {}}]


def test_a_chain_that_ends_in_an_answered_err_is_not_an_ended_actor(theater, counter):
    """An answered err is no end: a home whose runtime stopped after one resumes the actor (``interrupted``), where
    a chain that ends in ``wasm/error`` is a failed actor."""
    with pytest.raises(ErrAnswered):
        theater.send(counter, b"fail")
    assert theater.events(counter)[-1].type == "wasm/err-answer"
    assert last_status("wasm/err-answer") == "interrupted"
    assert last_status("wasm/error") == "failed"
