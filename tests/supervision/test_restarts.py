"""Restart types, restart intensity, backoff and where a restart starts from.

OTP: a permanent child "is always restarted"; a transient child "is restarted only if it terminates abnormally";
a temporary child "is never restarted". "If more than MaxR number of restarts occur in the last MaxT seconds,
the supervisor terminates all the child processes and then itself."
"""

from __future__ import annotations

import pytest

from replay.errors import GuestFault
from replay.replayer import Replayer
from tests.supervision.workers import MSG, le64, start_parent, start_workers, worker
from theater.errors import ActorNotRunning, SupervisionError
from theater.manifest import SupervisionSpec
from theater.supervision import backoff_ms


def end(rig, child: str, how: bytes) -> None:
    if how == b"exit":
        rig.theater.send(child, how)
    else:
        with pytest.raises(GuestFault):
            rig.theater.send(child, how)


@pytest.mark.parametrize(
    ("restart", "how", "expected"),
    [
        ("permanent", b"trap", True),
        ("permanent", b"fail", True),
        ("permanent", b"exit", True),
        ("transient", b"trap", True),
        ("transient", b"spin", True),
        ("transient", b"exit", False),
        ("temporary", b"trap", False),
        ("temporary", b"exit", False),
    ],
)
def test_restart_type_decides_whether_an_ended_child_comes_back(rig, restart, how, expected):
    parent = start_parent(rig, restart=restart)
    path = rig.manifest("worker", worker(), MSG, limits={"fuel_per_call": 1_000_000}, on_err="fail")
    child = rig.theater.start(path, parent=parent)
    end(rig, child, how)
    if expected:
        rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    assert bool(rig.events(parent, "supervisor/restart")) is expected
    assert rig.theater.status(child) == ("running" if expected else ("stopped" if how == b"exit" else "failed"))
    assert rig.theater.actors()[0]["children"] == [child]  # an ended child stays listed until it is stopped


def test_exceeding_the_intensity_stops_all_children_in_reverse_order_and_fails_the_supervisor(rig):
    parent = start_parent(rig, intensity=2, period_s=60)
    first, second, third = start_workers(rig, parent, 3)
    for n in range(1, 3):
        end(rig, second, b"trap")
        rig.watch.events(second, "wasm/instantiate", count=n, reason="restart")
        rig.settle()
    end(rig, second, b"trap")
    rig.watch.events(parent, "actor/failed")
    rig.settle()
    [give_up] = rig.events(parent, "supervisor/give-up")
    assert give_up.data["child"] == second
    assert give_up.data["intensity"] == 2
    stops = rig.events(parent, "supervisor/stop")
    assert [e.data["child"] for e in stops] == [third, second, first]
    assert [e.data["outcome"] for e in stops] == ["stopped", "already failed", "stopped"]
    assert rig.theater.status(parent) == "failed"
    assert "gave up: more than 2 restarts within 60 s" in rig.theater.actor(parent).failure.detail
    assert [rig.theater.status(c) for c in (first, third)] == ["stopped", "stopped"]
    assert rig.types(parent)[-1] == "actor/failed"


def test_intensity_zero_gives_up_at_the_first_restart(rig):
    parent = start_parent(rig, intensity=0)
    [child] = start_workers(rig, parent, 1)
    end(rig, child, b"fail")
    rig.watch.events(parent, "supervisor/give-up")
    rig.settle()
    assert rig.events(parent, "supervisor/restart") == []
    assert rig.theater.status(parent) == "failed"


def test_restarts_older_than_the_period_do_not_count(rig):
    parent = start_parent(rig, intensity=1, period_s=10)
    [child] = start_workers(rig, parent, 1)
    for n in range(1, 4):
        end(rig, child, b"trap")
        rig.watch.events(child, "wasm/instantiate", count=n, reason="restart")
        rig.settle()
        rig.clock.advance(10.5)
    assert rig.events(parent, "supervisor/give-up") == []
    assert rig.theater.status(parent) == "running"


def test_a_transient_child_exiting_normally_does_not_count_against_the_intensity(rig):
    parent = start_parent(rig, intensity=0, restart="transient")
    [child] = start_workers(rig, parent, 1)
    end(rig, child, b"exit")
    rig.settle()
    assert rig.theater.status(parent) == "running"
    assert rig.theater.status(child) == "stopped"


def test_restart_from_init_starts_over_from_the_start_state_and_calls_init(rig):
    parent = start_parent(rig, restart_from="init")
    [child] = start_workers(rig, parent, 1)
    for _ in range(3):
        rig.theater.send(child, b"tick")
    assert rig.theater.state(child) == le64(4)
    end(rig, child, b"trap")
    rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    assert rig.theater.state(child) == le64(1)
    after = rig.types(child)[rig.types(child).index("wasm/error"):]
    assert after[:3] == ["wasm/error", "wasm/instantiate", "wasm/call"]
    assert rig.theater.events(child)[-2].data["export"] == "theater:simple/actor.init"


def test_restart_from_last_state_keeps_the_last_committed_state_without_init(rig):
    parent = start_parent(rig, restart_from="last_state")
    [child] = start_workers(rig, parent, 1)
    for _ in range(3):
        rig.theater.send(child, b"tick")
    end(rig, child, b"fail")  # an err leaves the state of the last successful call
    rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    assert rig.theater.state(child) == le64(4)
    assert rig.types(child)[-1] == "wasm/instantiate"
    rig.theater.send(child, b"tick")
    assert rig.theater.state(child) == le64(5)
    report = Replayer(rig.theater.store).replay(rig.theater.actor(child).id)
    assert report.ok and report.state == le64(5)


def test_a_per_child_restart_from_overrides_the_parent_default(rig):
    parent = start_parent(rig, restart_from="init")
    [child] = start_workers(rig, parent, 1, restart_from="last_state")
    rig.theater.send(child, b"tick")
    end(rig, child, b"trap")
    rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    assert rig.theater.state(child) == le64(2)


def test_backoff_delays_restarts_exponentially_with_recorded_seeded_jitter(rig):
    settings = dict(backoff_initial_ms=20, backoff_max_ms=60, intensity=10)
    parent = start_parent(rig, **settings)
    [child] = start_workers(rig, parent, 1)
    for n in range(1, 4):
        end(rig, child, b"trap")
        rig.watch.events(child, "wasm/instantiate", count=n, reason="restart")
        rig.settle()
    delays = [e.data["delay_ms"] for e in rig.events(parent, "supervisor/restart")]
    spec = SupervisionSpec(**settings)
    parent_id = rig.theater.actor(parent).id
    assert delays == [backoff_ms(spec, n, f"/{parent_id}/{child}/{n}") for n in (1, 2, 3)]
    assert 10 <= delays[0] <= 20 and 20 <= delays[1] <= 40 and 30 <= delays[2] <= 60


def test_backoff_jitter_is_the_same_for_the_same_seed():
    spec = SupervisionSpec(backoff_initial_ms=100, backoff_max_ms=10_000)
    first = [backoff_ms(spec, n, f"seed/{n}") for n in range(1, 10)]
    assert first == [backoff_ms(spec, n, f"seed/{n}") for n in range(1, 10)]
    assert first[-1] <= 10_000
    assert backoff_ms(SupervisionSpec(), 5, "any") == 0


def test_a_child_waiting_for_its_backoff_is_restarting_and_refuses_messages(rig):
    parent = start_parent(rig, backoff_initial_ms=60_000, backoff_max_ms=60_000)
    [child] = start_workers(rig, parent, 1)
    end(rig, child, b"trap")
    rig.watch.events(parent, "supervisor/restart")
    rig.settle()
    assert rig.theater.status(child) == "restarting"
    with pytest.raises(ActorNotRunning, match="is restarting"):
        rig.theater.send(child, b"tick")


def test_stopping_a_child_cancels_its_pending_restart(rig):
    parent = start_parent(rig, backoff_initial_ms=60_000, backoff_max_ms=60_000)
    [child] = start_workers(rig, parent, 1)
    end(rig, child, b"trap")
    rig.watch.events(parent, "supervisor/restart")
    rig.theater.stop(child)
    assert rig.theater.status(child) == "stopped"
    assert rig.theater.actors()[0]["children"] == []
    [stop] = rig.events(parent, "supervisor/stop")
    assert stop.data["outcome"] == "stopped"


def test_unknown_per_child_options_are_refused(rig):
    parent = start_parent(rig)
    with pytest.raises(SupervisionError, match="restart must be one of permanent, transient, temporary"):
        rig.theater.start(rig.manifest("worker", worker(), MSG), parent=parent, restart="sometimes")
