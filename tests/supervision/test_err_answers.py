"""Supervision and an ``err`` the actor answers (``on_err = "answer"``, the default): a child's answered err is no
ending its supervisor hears of, and a parent whose ``handle-child-error`` answers err goes on and applies its
declared policy."""

from __future__ import annotations

import pytest

from replay.errors import GuestFault
from replay.replayer import Replayer
from tests.components import supervisor_wat as sw
from tests.components import wat
from tests.supervision.workers import MSG, le64, start_parent, worker
from theater.errors import ErrAnswered

SUPERVISOR = ["message-server", "supervisor"]


def test_a_childs_answered_err_is_no_ending_its_parent_hears_of(rig):
    parent = rig.theater.start(rig.manifest("sup", sw.supervisor_actor(), SUPERVISOR))
    child = rig.theater.start(rig.manifest("worker", worker(), MSG), parent=parent)
    rig.theater.send(child, b"tick")
    with pytest.raises(ErrAnswered, match=rf"^actor {child} \(worker\) answered .*handle-send with err: "
                                          "failure requested$"):
        rig.theater.send(child, b"fail")
    rig.settle()
    assert rig.theater.status(child) == "running"
    assert rig.theater.state(child) == le64(2)  # init and one tick
    assert rig.events(parent, "supervisor/restart") == []
    assert not [e for e in rig.events(parent, "wasm/call") if e.data["export"].startswith(sw.SUPERVISOR_HANDLERS)]


def test_a_parent_whose_handle_child_error_answers_err_goes_on_and_restarts_the_child(rig):
    refusing = sw.supervisor_actor(child_error=wat.fail("cannot decide"))
    parent = rig.theater.start(rig.manifest("sup", refusing, SUPERVISOR))
    grand = rig.theater.start(rig.manifest("worker", worker(), MSG), parent=parent)
    with pytest.raises(GuestFault):
        rig.theater.send(grand, b"trap")
    rig.watch.events(grand, "wasm/instantiate", reason="restart")
    rig.settle()
    assert rig.theater.status(parent) == "running"
    [answer] = rig.events(parent, "wasm/err-answer")
    assert answer.data["export"] == sw.SUPERVISOR_HANDLERS + ".handle-child-error"
    assert answer.data["detail"] == "cannot decide"
    [restart] = rig.events(parent, "supervisor/restart")
    assert restart.data["cause"]["kind"] == "trap"
    assert rig.theater.status(grand) == "running"
    report = Replayer(rig.theater.store).replay(rig.theater.actor(parent).id)
    assert report.ok, report.divergence


def test_a_parent_with_on_err_fail_fails_when_its_handle_child_error_returns_err(rig):
    root = start_parent(rig, "root", SUPERVISOR, restart="temporary")
    refusing = sw.supervisor_actor(child_error=wat.fail("cannot decide"))
    parent = rig.theater.start(rig.manifest("sup", refusing, SUPERVISOR, on_err="fail"), parent=root)
    child = rig.theater.start(rig.manifest("worker", worker(), MSG), parent=parent)
    with pytest.raises(GuestFault):
        rig.theater.send(child, b"trap")
    rig.watch.events(parent, "wasm/error")
    rig.settle()
    assert rig.theater.status(parent) == "failed"
    assert rig.events(parent, "supervisor/restart") == []
