"""Reverts: a running actor brought back to an earlier state by appending, and what verify makes of forged ones."""

from __future__ import annotations

import uuid
from pathlib import Path

import blake3
import pytest

from replay import ContinuityBreak, state_at
from replay.schema import ACTOR_REVERT, WASM_INSTANTIATE
from store.errors import InvalidInputError
from tests.components import wat
from tests.replay._lineage import le64, project, rewrite, verifies
from theater.errors import RevertRefused
from theater.runtime import Theater


def _counter(tmp_path: Path, theater: Theater, sends: int, name: str = "counter") -> str:
    actor = theater.start(project(tmp_path / name, wat.counter_actor()))
    for _ in range(sends):
        theater.send(actor, b"+")
    return actor


def _count_event(theater: Theater, actor: str, n: int):
    """The ``wasm/result`` after which the counter is ``n`` (init's result comes first)."""
    return [e for e in theater.events(actor) if e.type == "wasm/result"][n]


def test_revert_goes_back_by_appending_and_state_at_reads_before_at_and_after(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = _counter(tmp_path, theater, 5)
        before = [e.hash for e in theater.events(actor)]
        target = _count_event(theater, actor, 2)
        seq = theater.revert(actor, target.hash.hex()[:12])
        assert theater.state(actor) == le64(2)
        events = theater.events(actor)
        assert [e.hash for e in events[:len(before)]] == before  # nothing before the revert changed
        assert events[seq].type == ACTOR_REVERT
        assert events[seq].data == {"event": target.hash, "state": blake3.blake3(le64(2)).digest(),
                                    "to_seq": target.seq}
        assert events[seq + 1].type == WASM_INSTANTIATE and events[seq + 1].data["reason"] == "revert"
        assert theater.request(actor, b"+") == le64(3)
        theater.send(actor, b"+")
        store = theater.store
        key = uuid.UUID(actor)
        assert state_at(store, key, seq - 1) == le64(5)  # before the revert
        assert state_at(store, key, seq) == le64(2)  # at it
        assert state_at(store, key, seq + 1) == le64(2)
        assert state_at(store, key) == le64(4)  # after it, two more messages
        assert verifies(store, key).ok


def test_revert_to_genesis_and_twice_verifies(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = _counter(tmp_path, theater, 3)
        theater.revert(actor, theater.events(actor)[0].hash)
        assert theater.state(actor) is None
        theater.send(actor, b"+")
        theater.revert(actor, _count_event(theater, actor, 3).hash)  # an event from before the first revert
        assert theater.request(actor, b"+") == le64(4)
        assert verifies(theater.store, actor).ok


def test_revert_to_an_event_of_another_actor_is_refused(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = _counter(tmp_path, theater, 2)
        other = _counter(tmp_path, theater, 2, name="other")
        with pytest.raises(InvalidInputError, match=f"an event of actor {actor} \\(it belongs to {other}\\)"):
            theater.revert(actor, _count_event(theater, other, 1).hash)
        assert theater.state(actor) == le64(2)


def test_revert_rewritten_unchanged_still_verifies(tmp_path: Path) -> None:
    # The forging helper itself gives nothing away: the attacks below fail for what they change.
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = _counter(tmp_path, theater, 3)
        theater.revert(actor, _count_event(theater, actor, 1).hash)
        theater.send(actor, b"+")
        copy = rewrite(theater.store, uuid.UUID(actor), lambda drafts: None)
        assert verifies(theater.store, copy).ok


def test_revert_naming_another_chains_event_is_caught_by_verify(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = _counter(tmp_path, theater, 3)
        other = _counter(tmp_path, theater, 3, name="other")
        theater.revert(actor, _count_event(theater, actor, 1).hash)
        elsewhere = _count_event(theater, other, 1)  # the same seq and state, in another chain

        def point_elsewhere(drafts: list) -> None:
            next(d for d in drafts if d.type == ACTOR_REVERT).data["event"] = elsewhere.hash

        forged = rewrite(theater.store, uuid.UUID(actor), point_elsewhere)
        report = verifies(theater.store, forged)
        assert isinstance(report.divergence, ContinuityBreak)
        assert "the event the revert goes back to" in report.divergence.what


def test_revert_event_forged_in_the_home_is_caught_by_verify(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = _counter(tmp_path, theater, 3)
        target = _count_event(theater, actor, 1)
        theater.store.blobs.put(le64(99))
        forged_state = blake3.blake3(le64(99)).digest()

    with Theater(tmp_path / "home", durability="buffered") as theater:
        store = theater.store
        key = uuid.UUID(actor)
        head = store.log.head(key)
        # An attacker with the home appends a revert to a state the chain never held there, and its instance.
        revert = store.log.append(key, ACTOR_REVERT, {"event": target.hash, "state": forged_state,
                                                      "to_seq": target.seq}, expected=head)
        from store import Head

        store.log.append(key, WASM_INSTANTIATE, {"fuel": 0, "state": forged_state, "reason": "revert"},
                         expected=Head(revert.seq, revert.hash))
        report = verifies(store, key)
        assert isinstance(report.divergence, ContinuityBreak)
        assert report.divergence.seq == revert.seq
        assert "the state the revert to event" in report.divergence.what


def test_revert_instance_without_a_revert_is_caught_by_verify(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = _counter(tmp_path, theater, 2)
        theater.revert(actor, _count_event(theater, actor, 1).hash)

        def drop_revert(drafts: list) -> list:
            return [d for d in drafts if d.type != ACTOR_REVERT]

        def edit(drafts: list) -> None:
            drafts[:] = drop_revert(drafts)

        forged = rewrite(theater.store, uuid.UUID(actor), edit)
        report = verifies(theater.store, forged)
        assert isinstance(report.divergence, ContinuityBreak)
        assert "a revert instance with no revert" in report.divergence.what


def test_revert_of_an_actor_holding_a_deferred_request_is_refused(tmp_path: Path) -> None:
    import threading

    from theater.errors import ReplyTimeout

    with Theater(tmp_path / "home", durability="buffered", request_timeout=30) as theater:
        actor = theater.start(project(tmp_path / "deferred", wat.deferred_actor()))
        answered = threading.Event()
        replies: list = []

        def ask() -> None:
            try:
                replies.append(theater.request(actor, b"question"))
            except ReplyTimeout as exc:
                replies.append(exc)
            answered.set()

        asker = threading.Thread(target=ask)
        asker.start()
        live = theater.actor(actor)
        for _ in range(1000):  # the request reaches the actor, which defers its answer
            if live.outstanding:
                break
            answered.wait(0.01)
        assert live.outstanding
        with pytest.raises(RevertRefused, match="outstanding request"):
            theater.revert(actor, theater.events(actor)[0].hash)
        theater.send(actor, b"answer")  # the actor answers the request it kept: nothing was lost
        assert answered.wait(10)
        asker.join()
        assert replies == [b"answer"]
        assert verifies(theater.store, actor).ok


def test_revert_of_a_passivated_actor_brings_it_back_at_that_state(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = _counter(tmp_path, theater, 3)
        assert theater.passivate(actor)
        theater.revert(actor, _count_event(theater, actor, 1).hash)
        assert theater.request(actor, b"+") == le64(2)
        assert verifies(theater.store, actor).ok


def test_revert_naming_a_state_blob_the_store_lacks_breaks_integrity(tmp_path: Path) -> None:
    from store import Head, verify_chain

    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = _counter(tmp_path, theater, 2)
        target = _count_event(theater, actor, 1)
    with Theater(tmp_path / "home", durability="buffered") as theater:
        store = theater.store
        key = uuid.UUID(actor)
        head = store.log.head(key)
        revert = store.log.append(key, ACTOR_REVERT, {"event": target.hash, "state": bytes(32),
                                                      "to_seq": target.seq}, expected=head)
        report = verify_chain(store, key)
        assert not report.ok and report.problem is not None
        assert "state blob" in report.problem.describe() and revert.seq == head.seq + 1
        assert Head(revert.seq, revert.hash) == store.log.head(key)


@pytest.mark.parametrize("where", ["forward", "during a call"])
def test_revert_forged_out_of_place_is_caught_by_verify(tmp_path: Path, where: str) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = _counter(tmp_path, theater, 3)
        theater.revert(actor, _count_event(theater, actor, 1).hash)
        theater.send(actor, b"+")

        def edit(drafts: list) -> None:
            at = next(i for i, d in enumerate(drafts) if d.type == ACTOR_REVERT)
            if where == "forward":  # a revert to an event after it: no state of the past to go back to
                drafts[at].data["to_seq"] = at + 1
            else:  # moved between a call and its result
                revert = drafts.pop(at)
                call = next(i for i, d in enumerate(drafts) if d.type == "wasm/call")
                drafts.insert(call + 1, revert)

        forged = rewrite(theater.store, uuid.UUID(actor), edit)
        report = verifies(theater.store, forged)
        assert isinstance(report.divergence, ContinuityBreak)
        expected = "the event the revert goes back to" if where == "forward" else "revert during the call"
        assert expected in report.divergence.what
