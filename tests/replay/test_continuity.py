"""The record must fit together: attacks that re-hash a whole chain with edited calls, caught by continuity.

Each forged chain is built with the store's own encoding in a fresh store (``tests._forge``), so its integrity is
intact; only the continuity of the record, or re-execution, can tell.
"""

from __future__ import annotations

import uuid

import pytest

from replay import ContinuityBreak, Divergence, Replayer, state_at
from replay.errors import GuestFault
from store import Store
from tests._forge import Draft
from tests.components import wat
from tests.replay._support import only_break, verified, CLOCK_GRANTS, NOW, digest, le64, sends
from theater.actor import HANDLE_SEND
from theater.runtime import Theater

SEND = "theater:simple/message-server-host/send"



@pytest.fixture
def counted(record, open_store):
    """A counter actor after init and three sends (state 1, 2, 3), and its store."""
    recording = record(wat.counter_actor(), sends(3))
    return open_store(recording), recording.actor



def calls(drafts: list[Draft]) -> list[int]:
    return [i for i, d in enumerate(drafts) if d.type == "wasm/call"]


# Honest records.


def test_honest_chain_forged_unchanged_verifies(counted, forged_from):
    store, actor = counted
    report = verified(forged_from(store, actor, lambda drafts: None))
    assert report.ok, report.divergence
    assert report.interrupted == ()


def test_instantiate_records_the_state_the_instance_starts_from(tmp_path):
    (tmp_path / "a.wat").write_text(wat.counter_actor())
    (tmp_path / "a.toml").write_text('name = "a"\ncomponent = "a.wat"\n')
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = theater.start(tmp_path / "a.toml")
        theater.send(actor, b"tick")
        theater.stop(actor)
        theater.reopen(actor)
        events = theater.events(actor)
        start, resume = [e for e in events if e.type == "wasm/instantiate"]
        assert start.data["state"] is None  # the counter starts with no state
        assert resume.data["reason"] == "resume" and resume.data["state"] == digest(le64(1))
        assert Replayer(theater.store).replay(uuid.UUID(actor)).ok


def test_chain_recorded_before_instantiate_held_its_state_still_verifies(counted, forged_from):
    store, actor = counted

    def old_format(drafts):
        for d in drafts:
            if d.type == "wasm/instantiate":
                d.data.pop("state")

    report = verified(forged_from(store, actor, old_format))
    assert report.ok, report.divergence


# State jumps.


def test_verify_detects_state_jump_between_calls(counted, forged_from):
    store, actor = counted
    forged_state, next_state = le64(424242), le64(424243)

    def jump(drafts):
        last = calls(drafts)[-1]
        drafts[last].data["state"] = digest(forged_state)
        drafts[last + 1].data["state"] = digest(next_state)  # what the counter computes from it: replay agrees

    forged = forged_from(store, actor, jump, blobs=[forged_state, next_state])
    report = verified(forged)
    problem = only_break(report)
    with Store(forged.store_path, readonly=True) as st:
        call = [e for e in st.log.events(actor) if e.type == "wasm/call"][-1]
    assert (problem.seq, problem.hash) == (call.seq, call.hash)
    assert problem.what == f"state passed to {HANDLE_SEND}"
    assert (problem.expected, problem.actual) == (digest(forged_state), digest(le64(2)))
    assert f"state {digest(le64(2)).hex()[:16]}" in str(problem)


def test_verify_detects_dropped_call_pair_rehashed(counted, forged_from):
    store, actor = counted

    def drop(drafts):
        second = calls(drafts)[2]  # the second send: count 1 -> 2
        del drafts[second:second + 2]

    report = verified(forged_from(store, actor, drop))
    problem = only_break(report)
    # The third send now follows the first: it starts from count 2, which no event left.
    assert problem.what == f"state passed to {HANDLE_SEND}"
    assert (problem.expected, problem.actual) == (digest(le64(2)), digest(le64(1)))


def test_verify_detects_outcome_without_a_call(counted, forged_from):
    store, actor = counted
    report = verified(forged_from(store, actor, lambda drafts: drafts.pop(calls(drafts)[-1])))
    assert only_break(report).what == "wasm/result with no export call"


def test_verify_detects_outcome_of_another_export(counted, forged_from):
    store, actor = counted

    def rename(drafts):
        drafts[calls(drafts)[-1] + 1].data["export"] = "theater:simple/message-server-client.handle-request"

    assert only_break(verified(forged_from(store, actor, rename))).what.startswith("export of the outcome")


def test_verify_detects_call_after_a_failure_without_a_new_instance(record, open_store, forged_from):
    def workload(theater, actor):
        theater.send(actor, b"before")
        with pytest.raises(GuestFault, match="err"):
            theater.send(actor, b"fail")

    recording = record(wat.faulty_actor(), workload, on_err="fail")  # its err fails it
    store = open_store(recording)

    def call_again(drafts):
        good = calls(drafts)[1]
        drafts.extend([Draft(type=d.type, data=dict(d.data), ts=d.ts) for d in drafts[good:good + 2]])

    problem = only_break(verified(forged_from(store, recording.actor, call_again)))
    assert problem.what == f"call of {HANDLE_SEND} with no live instance"
    assert "wasm/error" in str(problem.actual)


def test_verify_detects_second_start(counted, forged_from):
    store, actor = counted

    def restart_as_start(drafts):
        drafts.append(Draft(type="wasm/instantiate", data={**drafts[1].data}, ts=drafts[-1].ts))

    assert only_break(verified(forged_from(store, actor, restart_as_start))).what == "a second start"


def test_verify_detects_restart_from_a_state_no_event_left(counted, forged_from):
    store, actor = counted

    def restart_elsewhere(drafts):
        drafts.append(Draft(type="wasm/instantiate", data={"fuel": drafts[1].data["fuel"], "state": digest(le64(7)),
                                                           "reason": "restart"}, ts=drafts[-1].ts))

    problem = only_break(verified(forged_from(store, actor, restart_elsewhere, blobs=[le64(7)])))
    assert problem.what == "state the restart starts from"
    assert problem.expected == digest(le64(7))
    assert sorted(problem.actual, key=lambda s: s or b"") == [None, digest(le64(3))]  # init or last state


# Interrupted calls.


def invent_interrupted_call(drafts: list[Draft], *, resume: dict | None = None, then: str = "resume") -> int:
    """Insert, after the second send, a handle-send with no end, followed by an instance of reason ``then``."""
    after = calls(drafts)[2] + 2
    state = drafts[after - 1].data["state"]
    call = Draft(type="wasm/call", data={"state": state, "export": HANDLE_SEND,
                                         "params": [b"transfer 1000000 to mallory"]}, ts=drafts[after].ts)
    instance = Draft(type="wasm/instantiate", data=resume or {"fuel": drafts[1].data["fuel"], "state": state,
                                                                  "reason": then}, ts=drafts[after].ts)
    drafts[after:after] = [call, instance]
    return after


def test_verify_detects_invented_interrupted_call(counted, forged_from):
    store, actor = counted
    forged = forged_from(store, actor, invent_interrupted_call)
    report = verified(forged)
    # Nothing refutes a call that had no end and released nothing; the report names it, by seq.
    assert report.ok, report.divergence
    with Store(forged.store_path, readonly=True) as st:
        invented = next(e for e in st.log.events(actor) if e.type == "wasm/call"
                        and e.data["params"] == [b"transfer 1000000 to mallory"])
    [interrupted] = report.interrupted
    assert (interrupted.seq, interrupted.hash, interrupted.export) == (invented.seq, invented.hash, HANDLE_SEND)
    assert interrupted.resumed_at == invented.seq + 1
    assert report.calls == 4  # init and the three sends; the interrupted call is not counted


def test_verify_detects_interrupted_call_followed_by_another_call(counted, forged_from):
    store, actor = counted

    def no_resume(drafts):
        at = invent_interrupted_call(drafts)
        del drafts[at + 1]

    problem = only_break(verified(forged_from(store, actor, no_resume)))
    assert "has no end" in problem.what
    assert problem.hint == "a call with no recorded end is followed by a resume from the state before it"


def test_verify_detects_interrupted_call_followed_by_a_restart(counted, forged_from):
    store, actor = counted
    problem = only_break(verified(forged_from(store, actor, lambda d: invent_interrupted_call(d, then="restart"))))
    assert problem.what.startswith("restart after the call at event")


def test_verify_detects_resume_from_another_state_than_before_the_interrupted_call(counted, forged_from):
    store, actor = counted

    def resume_elsewhere(drafts):
        invent_interrupted_call(drafts, resume={"fuel": drafts[1].data["fuel"], "state": digest(le64(9)),
                                                "reason": "resume"})

    problem = only_break(verified(forged_from(store, actor, resume_elsewhere, blobs=[le64(9)])))
    assert problem.what == "state the resume starts from"
    assert (problem.expected, problem.actual) == (digest(le64(9)), digest(le64(2)))


def test_verify_detects_host_call_invented_inside_an_interrupted_call(counted, forged_from):
    store, actor = counted

    def with_send(drafts):
        at = invent_interrupted_call(drafts)
        drafts.insert(at + 1, Draft(type=SEND, data={"params": ["mallory", b"1000000"], "result": {"ok": None}},
                                    ts=drafts[at].ts))

    report = verified(forged_from(store, actor, with_send))
    # The counter makes no host call: re-executing the interrupted call refutes the recorded one.
    assert isinstance(report.divergence, Divergence) and not isinstance(report.divergence, ContinuityBreak)
    assert report.divergence.what == "host call"
    assert report.divergence.expected["event"] == SEND


def test_interrupted_call_with_host_calls_is_reexecuted_up_to_its_record(record, open_store, forged_from):
    recording = record(wat.clock_actor(), sends(2), CLOCK_GRANTS)
    store = open_store(recording)

    def interrupt(drafts):
        last = calls(drafts)[-1]
        assert drafts[last + 1].type == NOW and drafts[last + 2].type == "wasm/result"
        drafts[last + 2] = Draft(type="wasm/instantiate", data={"fuel": drafts[1].data["fuel"],
                                                                  "state": drafts[last].data["state"],
                                                                  "reason": "resume"}, ts=drafts[last + 2].ts)

    report = verified(forged_from(store, recording.actor, interrupt))
    assert report.ok, report.divergence
    assert (report.calls, report.host_calls) == (2, 2)  # init and one send whole; the interrupted one's host call
    assert len(report.interrupted) == 1


def test_interrupted_call_whose_host_call_params_were_changed_diverges(record, open_store, forged_from):
    recording = record(wat.clock_actor(), sends(2), CLOCK_GRANTS)
    store = open_store(recording)

    def interrupt(drafts):
        last = calls(drafts)[-1]
        drafts[last + 1].data["params"] = [1]
        del drafts[last + 2:]  # the record ends during the call

    report = verified(forged_from(store, recording.actor, interrupt))
    assert report.divergence is not None and report.divergence.what == f"parameters of {NOW}"
    assert report.interrupted[0].resumed_at is None


# Time travel follows the recorded instance state.


def test_state_after_a_restart_from_init_is_the_initial_state(counted, forged_from):
    store, actor = counted

    def restart_from_init(drafts):
        drafts.append(Draft(type="wasm/instantiate", data={"fuel": drafts[1].data["fuel"], "state": None,
                                                           "reason": "restart"}, ts=drafts[-1].ts))

    forged = forged_from(store, actor, restart_from_init)
    assert verified(forged).ok
    with Store(forged.store_path, readonly=True) as st:
        assert state_at(st, actor) is None  # not the state of the last result, 3
        assert state_at(st, actor, st.log.head(actor).seq - 1) == le64(3)


# Supervisor restarts: the instance records the state it starts from.


@pytest.fixture
def rig(tmp_path):
    from tests.supervision.conftest import Rig

    made = Rig(tmp_path)
    try:
        yield made
    finally:
        made.theater.close()


@pytest.mark.parametrize("restart_from", ["init", "last_state"])
def test_supervisor_restart_records_the_state_it_starts_from_and_verifies(rig, restart_from):
    from tests.supervision.workers import start_parent, start_workers

    parent = start_parent(rig, restart_from=restart_from)
    [child] = start_workers(rig, parent, 1)
    for _ in range(3):
        rig.theater.send(child, b"tick")
    with pytest.raises(GuestFault, match="trap"):
        rig.theater.send(child, b"trap")
    rig.watch.events(child, "wasm/instantiate", reason="restart")
    rig.settle()
    events = rig.theater.events(child)
    restart = next(e for e in events if e.type == "wasm/instantiate" and e.data["reason"] == "restart")
    last_result = [e for e in events[:restart.seq] if e.type == "wasm/result"][-1]
    expected = events[0].data["init_state"] if restart_from == "init" else last_result.data["state"]
    assert restart.data["state"] == expected
    assert events[0].data["init_state"] != last_result.data["state"]  # the two sources differ: the check means it
    report = Replayer(rig.theater.store).replay(uuid.UUID(child))
    assert report.ok, report.divergence
