"""Replay, verify and ``state --at`` follow what an ``err`` did: answered (``on_err = "answer"``, the default: the
next call continues from the state before the err call) or a failure (``on_err = "fail"``).

The forged chains are re-hashed whole (``tests._forge``), so their integrity holds; the continuity of the record
against the ``on_err`` its creation event records is what catches them.
"""

from __future__ import annotations


import pytest

from replay import Replayer, state_at
from replay.errors import GuestFault
from tests._forge import Draft
from tests.components import wat
from tests.replay._support import only_break, verified, digest, le64
from theater.actor import HANDLE_SEND
from theater.errors import ErrAnswered
from theater.runtime import Theater

# A counter whose ``fail`` message counts, then returns err: the count it reached is what an answered err discards.
COUNT_THEN_FAIL = wat.actor_wat(send=wat.match_msg({b"fail": wat.seq(wat.count(), wat.fail("bad input"))},
                                                   wat.count()))



def tick_fail_tick(theater, actor):
    theater.send(actor, b"tick")  # 1
    with pytest.raises(ErrAnswered):
        theater.send(actor, b"fail")  # counts to 2, answers err: the actor stays at 1
    theater.send(actor, b"tick")  # 2


@pytest.fixture
def answered(record, open_store):
    """A counter that answered one err between two ticks (states 1, [2 discarded], 2), and its store."""
    recording = record(COUNT_THEN_FAIL, tick_fail_tick)
    return open_store(recording), recording.actor



def index_of(drafts: list[Draft], type_: str) -> int:
    return next(i for i, d in enumerate(drafts) if d.type == type_)


def test_chain_with_an_answered_err_replays_and_verifies(answered):
    store, actor = answered
    types = [e.type for e in store.log.events(actor)]
    assert "wasm/err-answer" in types and "wasm/error" not in types
    report = Replayer(store).replay(actor)
    assert report.ok, report.divergence
    assert report.calls == 4  # init, tick, fail, tick
    assert report.state == le64(2)


def test_state_at_an_answered_err_is_the_state_before_the_call(answered):
    store, actor = answered
    events = list(store.log.events(actor))
    err = next(e for e in events if e.type == "wasm/err-answer")
    call = events[err.seq - 1]
    assert call.type == "wasm/call" and call.data["state"] == digest(le64(1))
    assert state_at(store, actor, err.seq) == le64(1)
    assert state_at(store, actor) == le64(2)


def test_replay_from_mid_chain_after_an_answered_err_verifies(answered):
    store, actor = answered
    err = next(e for e in store.log.events(actor) if e.type == "wasm/err-answer")
    report = Replayer(store).replay(actor, from_seq=err.seq + 1)
    assert report.ok, report.divergence
    assert report.state == le64(2)


def test_creation_event_records_on_err(answered, record, open_store):
    store, actor = answered
    assert store.log.at(actor, 0).data["on_err"] == "answer"
    failing = open_store(record(wat.counter_actor(), lambda theater, actor: None, on_err="fail"))
    [other] = [a for a, _ in failing.log.actors()]
    assert failing.log.at(other, 0).data["on_err"] == "fail"


def test_continuation_from_the_err_calls_state_is_refused(answered, forged_from):
    """The attack: after an answered err, make the next call continue from the state the err call computed (its
    count of 2), as if the err call's change had been kept."""
    store, actor = answered

    def keep_the_err_state(drafts):
        err = index_of(drafts, "wasm/err-answer")
        drafts[err + 1].data["state"] = digest(le64(2))  # the next call starts from the discarded count
        drafts[err + 2].data["state"] = digest(le64(3))  # and leaves what the counter computes from it

    problem = only_break(verified(forged_from(store, actor, keep_the_err_state, blobs=[le64(3)])))
    assert problem.what == f"state passed to {HANDLE_SEND}"
    assert (problem.expected, problem.actual) == (digest(le64(2)), digest(le64(1)))


def test_failure_where_the_actor_should_have_gone_on_is_refused(answered, forged_from):
    """The attack: rewrite an answered err as a failure (``wasm/error`` kind err) and end the chain there, as if
    the actor had died on it, though its creation says ``on_err = "answer"``."""
    store, actor = answered

    def fail_instead(drafts):
        err = index_of(drafts, "wasm/err-answer")
        answer = drafts[err]
        drafts[err] = Draft(type="wasm/error", data={"fuel": answer.data["fuel"], "kind": "err",
                                                     "detail": answer.data["detail"],
                                                     "export": answer.data["export"]}, ts=answer.ts)
        return drafts[:err + 1]

    forged = forged_from(store, actor, fail_instead)
    problem = only_break(verified(forged))
    assert problem.what == f"a failure on the err of {HANDLE_SEND}"
    assert "on_err is answer" in str(problem)


def test_answered_err_under_on_err_fail_is_refused(record, open_store, forged_from):
    """The attack: an actor whose manifest says ``on_err = "fail"`` died on an err; rewrite its failure as an
    answered err and let it go on taking calls."""

    def workload(theater, actor):
        theater.send(actor, b"tick")
        with pytest.raises(GuestFault, match="bad input"):
            theater.send(actor, b"fail")

    recording = record(COUNT_THEN_FAIL, workload, on_err="fail")
    store = open_store(recording)
    assert [e.type for e in store.log.events(recording.actor)][-1] == "wasm/error"

    def go_on(drafts):
        failure = drafts[-1]
        drafts[-1] = Draft(type="wasm/err-answer", data={"fuel": failure.data["fuel"],
                                                          "detail": failure.data["detail"],
                                                          "export": failure.data["export"]}, ts=failure.ts)
        tick = index_of(drafts, "wasm/call") + 2  # the first tick's call (after init's call and result)
        drafts.extend(Draft(type=d.type, data=dict(d.data), ts=d.ts) for d in drafts[tick:tick + 2])

    problem = only_break(verified(forged_from(store, recording.actor, go_on)))
    assert problem.what == f"an answered err of {HANDLE_SEND}"
    assert "on_err is fail" in str(problem)


def test_on_err_flipped_in_the_creation_event_is_refused(answered, forged_from):
    """The attack: re-hash the chain with ``on_err = "fail"`` in its creation event, so the answered err and the
    calls after it would be read as a failure the actor survived."""
    store, actor = answered

    def flip(drafts):
        drafts[0].data["on_err"] = "fail"

    problem = only_break(verified(forged_from(store, actor, flip)))
    assert problem.what == f"an answered err of {HANDLE_SEND}"


def test_chain_recorded_before_on_err_still_verifies_with_its_err_a_failure(record, open_store, forged_from):
    """A chain from before ``on_err`` has no ``on_err`` in its creation event: its err failed the actor, and it
    verifies as it always did."""

    def workload(theater, actor):
        with pytest.raises(GuestFault):
            theater.send(actor, b"fail")

    recording = record(COUNT_THEN_FAIL, workload, on_err="fail")
    store = open_store(recording)

    def as_before(drafts):
        del drafts[0].data["on_err"]
        del drafts[0].data["grants"]

    report = verified(forged_from(store, recording.actor, as_before))
    assert report.ok, report.divergence


def test_an_actor_reopened_from_a_chain_recorded_before_on_err_still_fails_on_err(record, open_store, rewrite):
    """A chain from before ``on_err`` (its creation event has none) goes on as it began: its manifest's default
    (``answer``) does not apply, its err fails it, and the chain still verifies."""
    recording = record(COUNT_THEN_FAIL, lambda theater, actor: theater.send(actor, b"tick"))
    store = open_store(recording)

    def as_before(data):
        return {key: value for key, value in data.items() if key not in ("on_err", "grants")}

    rewrite(store, recording.actor, 0, as_before)
    store.close()
    with Theater(recording.home, durability="buffered") as theater:
        actor = str(recording.actor)
        theater.reopen(actor)
        with pytest.raises(GuestFault, match=r"failed \(err\): bad input") as raised:
            theater.send(actor, b"fail")
        assert not isinstance(raised.value, ErrAnswered)
        assert theater.status(actor) == "failed"
        assert theater.events(actor)[-1].type == "wasm/error"
        report = Replayer(theater.store).replay(recording.actor)
    assert report.ok, report.divergence
