"""A guest that supervises: the ``supervisor`` handler's functions and the ``supervisor-handlers`` callbacks."""

from __future__ import annotations

import json
import uuid

import pytest

from replay.errors import GuestFault
from replay.replayer import Replayer
from tests.components import supervisor_wat as sw
from tests.components import wat
from tests.components.wat import ERR_MARKER, PARAM
from tests.components.wat import MSG as MSG_
from tests.supervision.workers import MSG, le64, worker
from theater.errors import ManifestError

SUPERVISOR = ["message-server", "supervisor"]
SPAWN = "theater:simple/supervisor/spawn"


def start_supervisor(rig, component: str | None = None, **supervision) -> str:
    path = rig.manifest("sup", component or sw.supervisor_actor(), SUPERVISOR, supervision=supervision)
    return rig.theater.start(path)


def command(rig, actor: str, name: bytes, argument: bytes | str = b"") -> bytes:
    argument = argument.encode() if isinstance(argument, str) else argument
    return rig.theater.request(actor, name + b"\0" + argument)


def spawn(rig, parent: str, manifest: str) -> str:
    answer = command(rig, parent, b"spawn", manifest)
    assert not answer.startswith(ERR_MARKER), answer
    return answer.decode()


def calls(rig, actor: str, export: str) -> list:
    return [e.data["params"] for e in rig.events(actor, "wasm/call", export=f"{sw.SUPERVISOR_HANDLERS}.{export}")]


def test_spawn_starts_a_child_that_records_its_parent(rig):
    parent = start_supervisor(rig)
    child = spawn(rig, parent, rig.manifest("worker", worker(), MSG).name)
    assert rig.theater.events(child)[0].data["parent"] == parent
    assert rig.theater.request(child, b"") == le64(1)
    [spawned] = rig.events(parent, "supervisor/spawn")
    assert spawned.data["child"] == child and spawned.data["error"] is None
    [host_call] = rig.events(parent, SPAWN)
    assert host_call.data["result"] == {"ok": child}
    assert [a["children"] for a in rig.theater.actors() if a["id"] == parent] == [[child]]


def test_spawn_passes_init_bytes_as_the_state_init_starts_from(rig):
    component = sw.supervisor_wat(request=sw.spawn(MSG_, le64(41)))
    parent = start_supervisor(rig, component)
    child = rig.theater.request(parent, rig.manifest("worker", worker(), MSG).name.encode()).decode()
    assert rig.theater.state(child) == le64(42)


def test_resume_starts_from_the_given_state_without_init(rig):
    component = sw.supervisor_wat(request=sw.resume(MSG_, le64(7)))
    parent = start_supervisor(rig, component)
    child = rig.theater.request(parent, rig.manifest("worker", worker(), MSG).name.encode()).decode()
    assert rig.theater.state(child) == le64(7)
    assert rig.events(child, "wasm/call") == []
    rig.theater.send(child, b"tick")
    assert rig.theater.state(child) == le64(8)


def test_a_resumed_child_restarted_from_init_starts_again_from_the_given_state(rig):
    component = sw.supervisor_wat(request=sw.resume(MSG_, le64(7)))
    parent = start_supervisor(rig, component, restart_from="init")
    child = rig.theater.request(parent, rig.manifest("worker", worker(), MSG).name.encode()).decode()
    rig.theater.send(child, b"tick")
    with pytest.raises(GuestFault):
        rig.theater.send(child, b"trap")
    rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    assert rig.theater.state(child) == le64(7)


@pytest.mark.parametrize("form", ["inline", "label", "hash"])
def test_spawn_takes_inline_toml_or_a_store_reference(rig, form):
    text = rig.manifest.text("worker", worker(), MSG)
    digest = rig.theater.store.blobs.put(text.encode())
    rig.theater.store.blobs.set_label("worker-manifest", digest)
    reference = {"inline": text, "label": "store:worker-manifest", "hash": digest.hex()}[form]
    parent = start_supervisor(rig)
    child = spawn(rig, parent, reference)
    assert rig.theater.actor(child).name == "worker"


def test_spawn_of_an_unknown_store_reference_answers_err(rig):
    parent = start_supervisor(rig)
    answer = command(rig, parent, b"spawn", "store:nothing-here")
    assert answer.startswith(ERR_MARKER) and b"no such manifest in the store" in answer


def test_a_child_cannot_get_more_permissions_than_its_parent(rig):
    parent = start_supervisor(rig)
    greedy = rig.manifest("greedy", worker(), [*MSG, "timing"])
    answer = command(rig, parent, b"spawn", greedy.name)
    assert answer.startswith(ERR_MARKER)
    assert b"asks for handler types its parent 'sup' was not granted: timing" in answer
    assert command(rig, parent, b"list") == b""
    [refused] = rig.events(parent, "supervisor/spawn")
    assert refused.data["child"] is None and "timing" in refused.data["error"]


def test_a_child_started_through_the_api_cannot_exceed_its_parent_either(rig):
    parent = rig.theater.start(rig.manifest("plain", wat.echo_actor(), MSG))
    with pytest.raises(ManifestError, match=r"its parent 'plain' was not granted: random, timing"):
        rig.theater.start(rig.manifest("greedy", worker(), [*MSG, "timing", "random"]), parent=parent)


def test_a_grandchild_is_limited_by_its_own_parent(rig):
    """A supervisor with fewer grants than its parent cannot pass the difference on."""
    root = rig.theater.start(rig.manifest("root", wat.echo_actor(), [*SUPERVISOR, "timing"]))
    middle = rig.theater.start(rig.manifest("middle", sw.supervisor_actor(), SUPERVISOR), parent=root)
    answer = command(rig, middle, b"spawn", rig.manifest("leaf", worker(), [*MSG, "timing"]).name)
    assert answer.startswith(ERR_MARKER) and b"not granted: timing" in answer


def test_list_state_events_stop_and_restart_children(rig):
    parent = start_supervisor(rig)
    path = rig.manifest("worker", worker(), MSG).name
    first, second = spawn(rig, parent, path), spawn(rig, parent, path)
    assert command(rig, parent, b"list") == f"{first}\n{second}".encode()
    rig.theater.send(first, b"tick")
    assert command(rig, parent, b"state", first) == le64(2)
    count = int.from_bytes(command(rig, parent, b"events", first), "little")
    assert count == len(rig.theater.events(first))
    assert command(rig, parent, b"restart", first) == b""
    assert rig.theater.state(first) == le64(1)
    assert rig.events(parent, "supervisor/restart", child=first)[0].data["reason"] == "requested"
    assert command(rig, parent, b"stop", second) == b""
    assert rig.theater.status(second) == "stopped"
    assert command(rig, parent, b"list") == first.encode()
    [stop] = rig.events(parent, "supervisor/stop")
    assert stop.data == {"child": second, "reason": "requested by the parent", "outcome": "stopped"}


def test_functions_refuse_ids_that_are_not_the_callers_children(rig):
    parent = start_supervisor(rig)
    stranger = rig.theater.start(rig.manifest("stranger", worker(), MSG))
    for name in (b"events", b"stop", b"restart"):
        answer = command(rig, parent, name, stranger)
        assert answer == ERR_MARKER + f"actor {stranger} is not a child of actor {parent}".encode()
    assert command(rig, parent, b"stop", "not-an-id") == ERR_MARKER + b"'not-an-id' is not an actor id"
    assert rig.theater.status(stranger) == "running"


def test_get_child_state_of_a_stranger_is_an_err_for_the_guest(rig):
    """result<option<list<u8>>, string> is lowered tagged (replay._wasmtime fixes wasmtime-py 50's rule)."""
    parent = start_supervisor(rig)
    stranger = rig.theater.start(rig.manifest("stranger", worker(), MSG))
    answer = command(rig, parent, b"state", stranger)
    assert answer == ERR_MARKER + f"actor {stranger} is not a child of actor {parent}".encode()
    assert rig.theater.status(parent) == "running"
    assert rig.theater.status(stranger) == "running"


@pytest.mark.parametrize(
    ("command_", "limits", "error_type", "kind"),
    [
        (b"trap", None, "internal", "trap"),
        (b"fail", None, "internal", "err"),
        (b"spin", {"fuel_per_call": 1_000_000}, "operation-timeout", "fuel"),
    ],
)
def test_the_parent_is_told_of_a_childs_failure(rig, command_, limits, error_type, kind):
    parent = start_supervisor(rig)
    child = spawn(rig, parent, rig.manifest("worker", worker(), MSG, limits=limits, on_err="fail").name)
    with pytest.raises(GuestFault):
        rig.theater.send(child, command_)
    rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    [(child_id, error)] = calls(rig, parent, "handle-child-error")
    assert child_id == child
    assert error["error-type"] == error_type
    detail = json.loads(error["data"]["some"])
    assert detail["kind"] == kind and detail["export"] == "theater:simple/message-server-client.handle-send"
    assert f"error:{child}:{error_type};".encode() in rig.theater.state(parent)


def test_the_parent_is_told_of_a_childs_exit_with_its_data(rig):
    parent = start_supervisor(rig, restart="transient")
    child = spawn(rig, parent, rig.manifest("worker", worker(), MSG).name)
    rig.theater.send(child, b"exit")
    rig.watch.events(parent, "wasm/call", export=sw.SUPERVISOR_HANDLERS + ".handle-child-exit")
    rig.settle()
    assert calls(rig, parent, "handle-child-exit") == [[child, {"some": b"bye"}]]
    assert rig.theater.status(child) == "stopped"


def test_the_parent_hears_of_every_end_in_order(rig):
    parent = start_supervisor(rig)
    child = spawn(rig, parent, rig.manifest("worker", worker(), MSG, on_err="fail").name)
    for n, how in enumerate((b"trap", b"exit", b"fail"), start=1):
        try:
            rig.theater.send(child, how)
        except GuestFault:
            pass
        rig.watch.events(child, "wasm/instantiate", count=n, reason="restart")
        rig.settle()
    handlers = [e.data["export"].rsplit(".", 1)[1] for e in rig.events(parent, "wasm/call")
                if e.data["export"].startswith(sw.SUPERVISOR_HANDLERS)]
    assert handlers == ["handle-child-error", "handle-child-exit", "handle-child-error"]
    assert [e.data["reason"] for e in rig.events(parent, "supervisor/restart")] == ["failure", "exit", "failure"]


def test_a_parent_can_decide_itself_by_restarting_the_child_from_its_handler(rig):
    decide = sw.supervisor_actor(child_error=wat.seq(sw.append(b"saw:", PARAM, b";"), sw.restart_child(PARAM)))
    parent = start_supervisor(rig, decide, restart="temporary")
    child = spawn(rig, parent, rig.manifest("worker", worker(), MSG).name)
    with pytest.raises(GuestFault):
        rig.theater.send(child, b"trap")
    rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    assert rig.theater.status(child) == "running"
    [restart] = rig.events(parent, "supervisor/restart")
    assert restart.data["reason"] == "requested"
    [host_call] = rig.events(parent, "theater:simple/supervisor/restart-child")
    assert host_call.data == {"params": [child], "result": {"ok": None}}
    assert len(rig.events(child, "wasm/instantiate", reason="restart")) == 1


def test_a_parent_whose_handler_fails_fails_and_takes_its_children_down(rig):
    root = rig.theater.start(rig.manifest("root", wat.echo_actor(), SUPERVISOR, supervision={"restart": "temporary"}))
    broken = sw.supervisor_actor(child_error=wat.trap())
    parent = rig.theater.start(rig.manifest("sup", broken, SUPERVISOR), parent=root)
    first = spawn(rig, parent, rig.manifest("worker", worker(), MSG).name)
    second = spawn(rig, parent, rig.manifest("worker", worker(), MSG).name)
    with pytest.raises(GuestFault):
        rig.theater.send(first, b"trap")
    rig.watch.events(parent, "wasm/error")
    rig.settle()
    assert rig.theater.status(parent) == "failed"
    assert rig.theater.status(second) == "stopped"
    assert [e.data["child"] for e in rig.events(parent, "supervisor/stop")] == [second, first]


def test_a_supervisors_chain_replays(rig):
    parent = start_supervisor(rig)
    child = spawn(rig, parent, rig.manifest("worker", worker(), MSG).name)
    with pytest.raises(GuestFault):
        rig.theater.send(child, b"trap")
    rig.watch.events(child, "wasm/instantiate", reason="restart")
    command(rig, parent, b"state", child)
    command(rig, parent, b"list")
    rig.settle()
    report = Replayer(rig.theater.store).replay(uuid.UUID(parent))
    assert report.ok, report.divergence
    assert report.host_calls == 3  # spawn, get-child-state, list-children
    assert report.calls == 5  # init, 3 requests, handle-child-error
    child_report = Replayer(rig.theater.store).replay(uuid.UUID(child))
    assert child_report.ok and child_report.state == le64(1)
