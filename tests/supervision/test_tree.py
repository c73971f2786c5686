"""Trees: escalation from a supervisor to its parent, stopping subtrees, and a leaf that keeps crashing."""

from __future__ import annotations

import uuid

import pytest

from replay.errors import GuestFault
from replay.replayer import Replayer
from tests.components import supervisor_wat as sw
from tests.components import wat
from tests.supervision.workers import MSG, start_parent, start_workers, worker
from theater.errors import ActorNotRunning

SUPERVISOR = ["message-server", "supervisor"]


def children(rig, actor: str) -> list[str]:
    return next(a["children"] for a in rig.theater.actors() if a["id"] == actor)


def crash(rig, actor: str) -> None:
    with pytest.raises(GuestFault):
        rig.theater.send(actor, b"trap")


def test_a_supervisor_that_gives_up_is_restarted_by_its_own_parent(rig):
    root = start_parent(rig, "root", intensity=5)
    middle = rig.theater.start(rig.manifest("middle", wat.echo_actor(), MSG, supervision={"intensity": 0}),
                               parent=root)
    [leaf] = start_workers(rig, middle, 1)
    crash(rig, leaf)
    rig.watch.events(middle, "wasm/instantiate", reason="restart")
    rig.settle()
    assert [e.data["child"] for e in rig.events(middle, "supervisor/give-up")] == [leaf]
    [restart] = rig.events(root, "supervisor/restart")
    assert restart.data["child"] == middle
    assert restart.data["cause"]["kind"] == "host" and "gave up" in restart.data["cause"]["detail"]
    assert rig.theater.status(middle) == "running"
    assert rig.theater.status(leaf) == "failed"
    assert children(rig, middle) == []  # the restarted supervisor starts over without the old children


def leaf_crashing_tree(rig, root_intensity: int):
    """root (API) -> middle (a guest whose init spawns the leaf; intensity 1) -> leaf (a worker)."""
    leaf_manifest = rig.manifest("leaf", worker(), MSG).name
    middle_component = sw.supervisor_wat(init=sw.spawn(leaf_manifest))
    root = start_parent(rig, "root", SUPERVISOR, intensity=root_intensity, period_s=60)
    middle = rig.theater.start(
        rig.manifest("middle", middle_component, SUPERVISOR, supervision={"intensity": 1, "period_s": 60}),
        parent=root,
    )
    return root, middle


def crash_leaf_until_middle_gives_up(rig, middle: str, spawns_before: int) -> str:
    [leaf] = children(rig, middle)
    crash(rig, leaf)
    rig.watch.events(leaf, "wasm/instantiate", reason="restart")
    rig.settle()
    crash(rig, leaf)
    rig.watch.events(middle, "supervisor/give-up", count=spawns_before)
    rig.settle()
    return leaf


def test_a_leaf_that_crashes_repeatedly_escalates_up_a_three_level_tree(rig):
    root, middle = leaf_crashing_tree(rig, root_intensity=3)
    first_leaf = crash_leaf_until_middle_gives_up(rig, middle, 1)
    rig.watch.events(middle, "supervisor/spawn", count=2)
    rig.settle()
    # The middle gave up: it stopped its leaf, failed, and the root restarted it from init, which spawned a new leaf.
    assert rig.types(middle, "supervisor/") == [
        "supervisor/spawn", "supervisor/restart", "supervisor/give-up", "supervisor/stop", "supervisor/spawn",
    ]
    assert [e.data["child"] for e in rig.events(root, "supervisor/restart")] == [middle]
    [second_leaf] = children(rig, middle)
    assert second_leaf != first_leaf
    assert rig.theater.events(second_leaf)[0].data["parent"] == middle
    assert rig.theater.status(first_leaf) == "failed"
    assert [rig.theater.status(a) for a in (root, middle, second_leaf)] == ["running"] * 3
    for actor in (root, middle, first_leaf, second_leaf):
        report = Replayer(rig.theater.store).replay(uuid.UUID(actor))
        assert report.ok, (actor, report.divergence)


def test_when_the_root_gives_up_too_the_whole_tree_is_down(rig):
    root, middle = leaf_crashing_tree(rig, root_intensity=1)
    crash_leaf_until_middle_gives_up(rig, middle, 1)
    rig.watch.events(middle, "supervisor/spawn", count=2)
    rig.settle()
    last_leaf = crash_leaf_until_middle_gives_up(rig, middle, 2)
    rig.watch.events(root, "actor/failed")
    rig.settle()
    assert [e.data["child"] for e in rig.events(root, "supervisor/give-up")] == [middle]
    assert rig.theater.status(root) == "failed"
    assert rig.theater.status(middle) == "failed"
    assert rig.theater.status(last_leaf) == "failed"
    assert all(a["status"] in ("failed", "stopped") for a in rig.theater.actors())


def test_stopping_an_actor_stops_its_subtree_children_first_in_reverse_start_order(rig):
    root = start_parent(rig, "root")
    a, b = start_workers(rig, root, 2)
    a1, a2 = start_workers(rig, a, 2)
    rig.theater.stop(root)
    rig.settle()
    log = rig.theater.store.log
    stops = [str(e.actor) for e in (log.get(f.hash) for f in log.feed()) if e.type == "actor/stop"]
    assert stops == [b, a2, a1, a, root]
    assert [e.data["child"] for e in rig.events(root, "supervisor/stop")] == [b, a]
    assert [e.data["child"] for e in rig.events(a, "supervisor/stop")] == [a2, a1]
    assert all(x["status"] == "stopped" for x in rig.theater.actors())


def test_stopping_a_child_through_the_runtime_goes_through_its_parent(rig):
    parent = start_parent(rig)
    first, second = start_workers(rig, parent, 2)
    rig.theater.stop(first)
    assert rig.theater.status(first) == "stopped"
    [stop] = rig.events(parent, "supervisor/stop")
    assert stop.data == {"child": first, "reason": "stopped through the runtime", "outcome": "stopped"}
    assert children(rig, parent) == [second]
    assert rig.events(parent, "supervisor/restart") == []


def test_a_failed_supervisor_stops_its_children(rig):
    parent = rig.theater.start(rig.manifest("parent", wat.faulty_actor(), MSG))
    first, second = start_workers(rig, parent, 2)
    with pytest.raises(GuestFault):
        rig.theater.send(parent, b"trap")
    rig.settle()
    assert [rig.theater.status(c) for c in (first, second)] == ["stopped", "stopped"]
    assert [e.data["reason"] for e in rig.events(parent, "supervisor/stop")] == ["parent failed"] * 2


def test_children_need_a_running_parent(rig):
    parent = start_parent(rig)
    rig.theater.stop(parent)
    with pytest.raises(ActorNotRunning):
        rig.theater.start(rig.manifest("worker", worker(), MSG), parent=parent)


def test_the_actor_list_shows_the_tree(rig):
    root = start_parent(rig, "root")
    [child] = start_workers(rig, root, 1)
    listed = {a["id"]: a for a in rig.theater.actors()}
    assert listed[root]["children"] == [child] and listed[root]["parent"] is None
    assert listed[child]["parent"] == root and listed[child]["children"] == []


def test_closing_the_runtime_cancels_pending_restarts(tmp_path):
    from tests.supervision.conftest import Rig

    rig = Rig(tmp_path)
    parent = start_parent(rig, backoff_initial_ms=60_000, backoff_max_ms=60_000)
    [child] = start_workers(rig, parent, 1)
    crash(rig, child)
    rig.watch.events(parent, "supervisor/restart")
    assert rig.theater.status(child) == "restarting"
    rig.theater.close()
    assert rig.theater.supervision._timers == set()
