"""Guest failures (trap, err, fuel, deadline, memory), start-up failures (links, manifests, wasm) and what they leave.

Each guest failure marks only its actor failed, with the reason, records a ``wasm/error`` event, refuses further
messages with ``ActorNotRunning``, and its chain replays (re-execution reproduces the failure). The faulty actor's
manifest says ``on_err = "fail"``, so its ``err`` is one of these failures; by default an err is the call's answer
and the actor goes on (``test_err_answers.py``).
"""

from __future__ import annotations

import re
import uuid

import pytest

from replay.errors import GuestFault
from replay.replayer import Replayer
from tests.components import wat
from theater.actor import ACTOR_INIT, HANDLE_REQUEST, HANDLE_SEND
from theater.errors import ActorNotRunning, ComponentError, ExportMissing, LinkError, ManifestError
from theater.handlers import IMPLEMENTED
from theater.handlers.timing import TimingHandler
from theater.manifest import HANDLER_TYPES

MSG = ["message-server"]

FAILURES = {
    "trap": dict(
        command=b"trap", limits=None, kind="trap", detail=r"wasm trap: wasm `unreachable` instruction executed"
    ),
    "err": dict(command=b"fail", limits=None, kind="err", detail=r"failure requested"),
    "fuel": dict(command=b"spin", limits={"fuel_per_call": 200_000}, kind="fuel", detail=r"ran out of fuel"),
    "deadline": dict(
        command=b"spin",
        # Fuel that outlasts the deadline many times over, within what a verifier accepts (ReplayLimits).
        limits={"fuel_per_call": 10**12, "deadline_ms": 50},
        kind="deadline",
        detail=r"passed its wall-clock deadline",
    ),
    # A refused memory.grow returns -1 to the guest; the kit's guest then executes `unreachable` (as a real
    # allocator aborts). The runtime cannot tell that trap from any other: it reports `trap`, never `memory`.
    "memory": dict(
        command=b"grow",
        limits={"memory_bytes": 1 << 20},
        kind="trap",
        detail=r"wasm trap: wasm `unreachable` instruction executed",
    ),
}


@pytest.fixture(params=sorted(FAILURES))
def failure(request):
    """One way for a guest to fail: the command that makes the faulty actor fail, its limits, what is reported."""
    return FAILURES[request.param]


def start_faulty(theater, manifest, limits):
    return theater.start(manifest("faulty", wat.faulty_actor(), MSG, limits=limits, on_err="fail"))


def test_guest_failure_raises_guest_fault_with_its_kind(theater, manifest, failure):
    actor = start_faulty(theater, manifest, failure["limits"])
    expected = rf"^{HANDLE_SEND} failed \({failure['kind']}\): {failure['detail']}$"
    with pytest.raises(GuestFault, match=expected) as raised:
        theater.send(actor, failure["command"])
    assert raised.value.kind == failure["kind"]
    assert raised.value.export == HANDLE_SEND


def test_guest_failure_marks_the_actor_failed_with_the_reason(theater, manifest, failure):
    actor = start_faulty(theater, manifest, failure["limits"])
    with pytest.raises(GuestFault):
        theater.send(actor, failure["command"])
    assert theater.status(actor) == "failed"
    assert theater.actor(actor).failure.kind == failure["kind"]
    [listed] = theater.actors()
    assert listed["status"] == "failed"
    assert listed["failure"]["kind"] == failure["kind"]
    assert listed["failure"]["detail"] == theater.actor(actor).failure.detail


def test_guest_failure_is_recorded_as_a_wasm_error_event(theater, manifest, failure):
    actor = start_faulty(theater, manifest, failure["limits"])
    with pytest.raises(GuestFault) as raised:
        theater.send(actor, failure["command"])
    last = theater.events(actor)[-1]
    assert last.type == "wasm/error"
    assert last.data == {
        "export": HANDLE_SEND,
        "kind": failure["kind"],
        "detail": raised.value.detail,
        "fuel": raised.value.fuel,
    }
    assert isinstance(last.data["fuel"], int) and last.data["fuel"] > 0


def test_failed_actor_refuses_further_messages(theater, manifest, failure):
    actor = start_faulty(theater, manifest, failure["limits"])
    with pytest.raises(GuestFault):
        theater.send(actor, failure["command"])
    with pytest.raises(ActorNotRunning, match=rf"actor {actor} is failed: {failure['detail']}"):
        theater.send(actor, b"hello?")


def test_request_to_a_failed_actor_raises_actor_not_running(theater, manifest):
    actor = start_faulty(theater, manifest, None)
    with pytest.raises(GuestFault):
        theater.send(actor, b"fail")
    with pytest.raises(ActorNotRunning, match=rf"actor {actor} is failed: failure requested"):
        theater.request(actor, b"hello?")


def test_guest_failure_leaves_other_actors_running(theater, manifest, failure):
    bystander = theater.start(manifest("bystander", wat.counter_actor(), MSG))
    theater.send(bystander, b"")
    actor = start_faulty(theater, manifest, failure["limits"])
    with pytest.raises(GuestFault):
        theater.send(actor, failure["command"])
    assert theater.status(bystander) == "running"
    assert theater.request(bystander, b"") == (2).to_bytes(8, "little")


def test_failed_actor_chain_replays_and_reproduces_the_failure(theater, manifest, failure):
    actor = start_faulty(theater, manifest, failure["limits"])
    theater.send(actor, b"before")
    with pytest.raises(GuestFault):
        theater.send(actor, failure["command"])
    report = Replayer(theater.store).replay(uuid.UUID(actor))
    assert report.ok, report.divergence
    assert report.calls == 3  # init, the good message, the failing one
    assert report.to_seq == theater.events(actor)[-1].seq
    assert report.state == b"before"  # the state of the last successful call


def test_failure_in_a_request_reaches_the_requester(theater, manifest):
    actor = start_faulty(theater, manifest, None)
    with pytest.raises(GuestFault, match=rf"^{HANDLE_REQUEST} failed \(trap\)"):
        theater.request(actor, b"trap")
    assert theater.status(actor) == "failed"


def test_failure_in_init_fails_the_start(theater, manifest):
    path = manifest("stillborn", wat.actor_wat(init=wat.trap()), MSG)
    with pytest.raises(GuestFault, match=rf"^{ACTOR_INIT} failed \(trap\): wasm trap"):
        theater.start(path)
    [listed] = theater.actors()
    assert listed["status"] == "failed"
    assert theater.events(listed["id"])[-1].type == "wasm/error"


def test_err_in_init_names_the_guest_reason(theater, manifest):
    path = manifest("refuser", wat.actor_wat(init=wat.fail("not today")), MSG)
    with pytest.raises(GuestFault, match=rf"^{ACTOR_INIT} failed \(err\): not today$"):
        theater.start(path)


# Start-up failures: nothing runs.


def test_ungranted_import_is_a_link_error_naming_import_and_handler(theater, manifest):
    path = manifest("sneaky", wat.importing_actor("theater:simple/random"), MSG)
    with pytest.raises(
        LinkError,
        match=r"^sneaky imports 'theater:simple/random', which its manifest does not grant: "
        r"grant it with a \[\[handlers\]\] entry of type 'random'$",
    ) as raised:
        theater.start(path)
    assert (raised.value.import_name, raised.value.handler) == ("theater:simple/random", "random")
    assert theater.actors() == []


def test_link_error_is_checked_for_every_import(theater, manifest):
    path = manifest("sneaky", wat.importing_actor("theater:simple/timing"), [*MSG, "random"])
    with pytest.raises(LinkError, match=r"imports 'theater:simple/timing'.* of type 'timing'$"):
        theater.start(path)


def test_granted_import_links(theater, manifest):
    path = manifest("honest", wat.importing_actor("theater:simple/random"), [*MSG, "random"])
    actor = theater.start(path)
    assert theater.request(actor, b"hi") == b"hi"


def test_every_handler_type_of_the_manifest_format_is_in_this_build():
    assert set(IMPLEMENTED) == set(HANDLER_TYPES)


def test_unknown_handler_type_is_refused(theater, manifest):
    path = manifest("weird", wat.echo_actor(), ["teleport"])
    with pytest.raises(ManifestError, match=r"weird\.toml: handlers\[0\]\.type: expected one of .*got 'teleport'$"):
        theater.start(path)


@pytest.mark.parametrize(
    "text, match",
    [
        ('name = "x"\n', r"^<inline>: component: required key is missing; expected a non-empty string$"),
        ('name = \ncomponent = "x.wat"\n', r"^<inline>: invalid TOML: "),
        ('name = "x y"\ncomponent = "x.wat"\n', r"^<inline>: name: expected only letters, digits"),
        ('name = "x"\ncomponent = "x.wat"\n[limits]\nfuel_per_call = 0\n',
         r"^<inline>: limits\.fuel_per_call: expected a positive integer, got 0$"),
        ('name = "x"\ncomponent = "x.wat"\ncolour = "red"\n', r"^<inline>: colour: unknown key 'colour'"),
    ],
    ids=["no-component", "bad-toml", "bad-name", "zero-fuel", "unknown-key"],
)
def test_malformed_manifest_is_refused(theater, text, match):
    with pytest.raises(ManifestError, match=match):
        theater.start(text)
    assert theater.actors() == []


def test_missing_manifest_file_is_refused(theater, tmp_path):
    expected = r"nowhere\.toml: cannot read the manifest file .*nowhere\.toml': No such file or directory"
    with pytest.raises(ManifestError, match=expected):
        theater.start(tmp_path / "nowhere.toml")


def test_missing_component_file_is_refused(theater, tmp_path):
    path = tmp_path / "lost.toml"
    path.write_text('name = "lost"\ncomponent = "lost.wasm"\n')
    expected = r"lost\.toml: component: cannot read the component file .*lost\.wasm': No such file"
    with pytest.raises(ManifestError, match=expected):
        theater.start(path)


@pytest.mark.parametrize(
    "component, match",
    [
        (b"\x00asm\x0d\x00\x01\x00garbage", r"is not a usable component: "),
        (b"\xff\xfe not wasm at all",
         r"is not a usable component: neither a WebAssembly binary .*nor WebAssembly text"),
        ('(module (func (export "f")))', r"is not a usable component: .*attempted to parse a wasm module with a "
                                         r"component parser"),
        ("(component (oops", r"is not a usable component: expected valid component field"),
    ],
    ids=["garbage-binary", "garbage-bytes", "core-module", "bad-text"],
)
def test_malformed_wasm_is_a_component_error(theater, manifest, component, match):
    path = manifest("broken", component, MSG)
    with pytest.raises(ComponentError, match=match):
        theater.start(path)
    assert theater.actors() == []


@pytest.mark.parametrize(
    "limits, config, error",
    [
        ({"memory_bytes": 1000}, None, r"memory minimum size of 1 pages exceeds memory limits"),
        (None, {"random": {"seed": "x"}}, r"handlers\.random\.config\.seed: expected an integer, got 'x'"),
    ],
    ids=["memory-below-initial", "bad-handler-config"],
)
def test_start_that_cannot_instantiate_leaves_a_failed_actor_with_the_reason(theater, manifest, limits, config, error):
    path = manifest("unborn", wat.echo_actor(), [*MSG, "random"], limits=limits, config=config)
    with pytest.raises((ComponentError, ManifestError), match=error):
        theater.start(path)
    [listed] = theater.actors()
    assert listed["status"] == "failed"
    last = theater.events(listed["id"])[-1]
    assert last.type == "actor/failed"
    assert re.search(error, last.data["reason"])
    with pytest.raises(ActorNotRunning, match=f"actor {listed['id']} is failed"):
        theater.send(listed["id"], b"hello?")


# Failures inside a conversation between actors.


def test_request_to_an_actor_that_fails_returns_err_to_the_requester(theater, manifest):
    faulty = start_faulty(theater, manifest, None)
    forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))
    answer = theater.request(forwarder, faulty.encode() + b"\0trap")
    assert answer.startswith(wat.ERR_MARKER + f"{HANDLE_REQUEST} failed (trap)".encode())
    assert theater.status(faulty) == "failed"
    assert theater.status(forwarder) == "running"


def test_request_to_a_failed_actor_returns_err(theater, manifest):
    faulty = start_faulty(theater, manifest, None)
    with pytest.raises(GuestFault):
        theater.send(faulty, b"fail")
    forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))
    answer = theater.request(forwarder, faulty.encode() + b"\0hello")
    assert answer == wat.ERR_MARKER + f"actor {faulty} is failed: failure requested".encode()


def test_send_to_a_failed_actor_returns_err(theater, manifest):
    faulty = start_faulty(theater, manifest, None)
    with pytest.raises(GuestFault):
        theater.send(faulty, b"trap")
    forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))
    theater.send(forwarder, faulty.encode() + b"\0hello")
    assert theater.state(forwarder).startswith(wat.ERR_MARKER + f"actor {faulty} is failed".encode())


def test_message_an_actor_cannot_handle_is_refused_and_it_keeps_running(theater, manifest):
    component = wat.actor_wat(init=wat.set_state(b"ready"), message_server=False)
    actor = theater.start(manifest("mute", component, MSG))
    before = theater.events(actor)
    with pytest.raises(ExportMissing, match=rf"^actor {actor} \(mute\) .*does not export {HANDLE_SEND}$"):
        theater.send(actor, b"hello")
    assert theater.status(actor) == "running"
    assert theater.events(actor) == before  # refused before anything crossed the boundary
    assert theater.state(actor) == b"ready"


def test_deadline_passed_in_a_host_call_fails_the_call_when_the_guest_resumes(theater, manifest):
    component = wat.actor_wat(send=wat.seq(wat.sleep(100), wat.count()))
    actor = theater.start(manifest("sleepy", component, [*MSG, "timing"], limits={"deadline_ms": 30}))
    with pytest.raises(GuestFault, match=r"failed \(deadline\): passed its wall-clock deadline$"):
        theater.send(actor, b"")
    types = [e.type for e in theater.events(actor)][-3:]
    assert types == ["wasm/call", "theater:simple/timing/sleep", "wasm/error"]
    assert Replayer(theater.store).replay(uuid.UUID(actor)).ok


def test_host_function_failure_is_a_recorded_host_fault_that_replays(theater, manifest, monkeypatch):
    def broken_clock(self):
        raise RuntimeError("the clock broke")

    monkeypatch.setattr(TimingHandler, "now", broken_clock)
    actor = theater.start(manifest("clock", wat.clock_actor(), [*MSG, "timing"]))
    with pytest.raises(GuestFault, match=rf"^{HANDLE_SEND} failed \(host\): RuntimeError: the clock broke$"):
        theater.send(actor, b"")
    assert theater.status(actor) == "failed"
    last = theater.events(actor)[-1]
    assert (last.type, last.data["kind"]) == ("wasm/error", "host")
    assert last.data["detail"] == "RuntimeError: the clock broke"
    report = Replayer(theater.store).replay(uuid.UUID(actor))
    assert report.ok, report.divergence
