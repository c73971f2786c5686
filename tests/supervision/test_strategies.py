"""Restart strategies, as OTP's supervisor documents them.

- one_for_one: "If a child process terminates, only that process is restarted."
- one_for_all: "If a child process terminates, all other child processes are terminated, and then all child
  processes, including the terminated one, are restarted."
- rest_for_one: "If a child process terminates, the rest of the child processes (that is, the child processes
  after the terminated process in start order) are terminated. Then the terminated child process and the rest of
  the child processes are restarted."
- Children are terminated in reverse start order and (re)started in start order.
"""

from __future__ import annotations

import uuid

import pytest

from replay.errors import GuestFault
from tests.components import wat
from tests.supervision.workers import MSG, le64, start_parent, start_workers, worker
from theater import porcelain


def crash(rig, child: str, how: bytes = b"trap") -> None:
    with pytest.raises(GuestFault):
        rig.theater.send(child, how)


def restarted(rig, child: str) -> int:
    return len(rig.events(child, "wasm/instantiate", reason="restart"))


def decisions(rig, parent: str, type_: str) -> list[str]:
    return [e.data["child"] for e in rig.events(parent, type_)]


def test_one_for_one_restarts_only_the_child_that_failed(rig):
    parent = start_parent(rig, strategy="one_for_one")
    first, second, third = start_workers(rig, parent, 3)
    crash(rig, second)
    rig.watch.events(second, "wasm/instantiate", reason="restart")
    rig.settle()
    assert [restarted(rig, c) for c in (first, second, third)] == [0, 1, 0]
    assert decisions(rig, parent, "supervisor/restart") == [second]
    assert decisions(rig, parent, "supervisor/stop") == []
    assert rig.theater.status(second) == "running"


def test_a_restarted_child_keeps_its_id_and_works_again(rig):
    parent = start_parent(rig)
    [child] = start_workers(rig, parent, 1)
    crash(rig, child)
    rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    rig.theater.send(child, b"tick")
    assert rig.theater.request(child, b"") == le64(2)  # init counted 1 on the restart, the tick 2
    assert rig.theater.actor(child).incarnation == 1


def test_one_for_all_stops_the_others_in_reverse_order_and_restarts_all_in_start_order(rig):
    parent = start_parent(rig, strategy="one_for_all")
    first, second, third = start_workers(rig, parent, 3)
    crash(rig, second)
    for child in (first, second, third):
        rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    assert decisions(rig, parent, "supervisor/stop") == [third, first]
    assert decisions(rig, parent, "supervisor/restart") == [first, second, third]
    reasons = [e.data["reason"] for e in rig.events(parent, "supervisor/restart")]
    assert reasons == ["sibling", "failure", "sibling"]
    assert [rig.theater.status(c) for c in (first, second, third)] == ["running"] * 3
    # The siblings were stopped (recorded in their own chains) before their new instance.
    assert rig.types(first, "actor/")[-1] == "actor/stop"


def test_one_for_all_restarts_happen_in_start_order_across_the_record(rig):
    parent = start_parent(rig, strategy="one_for_all")
    children = start_workers(rig, parent, 3)
    crash(rig, children[0])
    for child in children:
        rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    feed = rig.theater.store.log.feed()
    position = {}
    for index, entry in enumerate(feed):
        event = rig.theater.store.log.get(entry.hash)
        if event.type == "wasm/instantiate" and event.data["reason"] == "restart":
            position[str(event.actor)] = index
    assert sorted(children, key=position.__getitem__) == children


def test_rest_for_one_restarts_the_child_and_those_started_after_it(rig):
    parent = start_parent(rig, strategy="rest_for_one")
    first, second, third, fourth = start_workers(rig, parent, 4)
    crash(rig, second)
    for child in (second, third, fourth):
        rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    assert decisions(rig, parent, "supervisor/stop") == [fourth, third]
    assert decisions(rig, parent, "supervisor/restart") == [second, third, fourth]
    assert restarted(rig, first) == 0


def test_one_for_all_drops_a_temporary_sibling_instead_of_restarting_it(rig):
    parent = start_parent(rig, strategy="one_for_all")
    [permanent] = start_workers(rig, parent, 1)
    [temporary] = start_workers(rig, parent, 1, restart="temporary")
    [failing] = start_workers(rig, parent, 1)
    crash(rig, failing)
    rig.watch.events(permanent, "wasm/instantiate", reason="restart")
    rig.settle()
    assert rig.theater.status(temporary) == "stopped"
    assert decisions(rig, parent, "supervisor/restart") == [permanent, failing]
    assert [a["children"] for a in rig.theater.actors() if a["id"] == parent] == [[permanent, failing]]


def test_every_restart_is_recorded_with_the_cause(rig):
    parent = start_parent(rig)
    [child] = start_workers(rig, parent, 1)
    crash(rig, child, b"fail")
    [restart] = rig.watch.events(parent, "supervisor/restart")
    assert restart.data["child"] == child
    assert restart.data["reason"] == "failure"
    assert restart.data["cause"]["kind"] == "err"
    assert restart.data["cause"]["detail"] == "failure requested"
    assert restart.data["delay_ms"] == 0
    assert restart.data["incarnation"] == 1


def test_a_sibling_busy_in_a_long_call_is_interrupted_and_restarted(rig):
    # A child's limits lie within its parent's: the parent allows the fuel and deadline of the long call.
    long_call = {"fuel_per_call": 10**12, "deadline_ms": 600_000}
    parent = rig.theater.start(rig.manifest("parent", wat.echo_actor(), MSG, limits=long_call,
                                            supervision={"strategy": "one_for_all"}))
    path = rig.manifest("slow", worker(), MSG, limits=long_call)
    busy = rig.theater.start(path, parent=parent)
    [failing] = start_workers(rig, parent, 1)
    spinning = rig.theater.router.deliver_send(rig.theater.actor(busy), b"spin")
    crash(rig, failing)
    rig.watch.events(busy, "wasm/instantiate", reason="restart")
    rig.settle()
    with pytest.raises(GuestFault, match=r"\(stopped\): stopped while running"):
        spinning.result(timeout=10)
    [stop] = rig.events(parent, "supervisor/stop")
    assert (stop.data["child"], stop.data["outcome"]) == (busy, "stopped")
    assert [rig.theater.status(c) for c in (busy, failing)] == ["running", "running"]


@pytest.mark.parametrize("why", ["failure", "requested"])
def test_a_restart_is_durable_in_the_supervisors_chain_before_the_restarted_child_is(rig, why):
    # A crash between the two commits must not leave a restarted child whose supervisor's chain does not say so.
    parent = start_parent(rig)
    [child] = start_workers(rig, parent, 1)
    if why == "failure":
        crash(rig, child)
    else:
        porcelain.restart(rig.theater, uuid.UUID(child))
    [instance] = rig.watch.events(child, "wasm/instantiate", reason="restart")
    [decision] = rig.events(parent, "supervisor/restart")  # already committed when the new instance is
    assert decision.data["reason"] == why
    feed = {entry.hash: entry.position for entry in rig.theater.store.log.feed()}
    assert feed[decision.hash] < feed[instance.hash]
