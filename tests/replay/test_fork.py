"""Forks: a new actor whose history begins at an event of another, verified into the source chain's prefix."""

from __future__ import annotations

import uuid
from pathlib import Path

import blake3
import pytest

from replay import ContinuityBreak
from replay.bundle import export_bundle, opened_bundle
from replay.lineage import ForkOrigin
from replay.schema import ACTOR_CREATED, WASM_INSTANTIATE
from tests.components import wat
from tests.replay._lineage import le64, project, rewrite, verifies
from theater.porcelain import verify_actor
from theater.runtime import Theater


def _counter(tmp_path: Path, theater: Theater, sends: int) -> str:
    actor = theater.start(project(tmp_path / "counter", wat.counter_actor()))
    for _ in range(sends):
        theater.send(actor, b"+")
    return actor


def _result_events(theater: Theater, actor: str) -> list:
    """The actor's ``wasm/result`` events: init's first, then the one of count ``n`` at index ``n``."""
    return [e for e in theater.events(actor) if e.type == "wasm/result"]


def test_fork_from_the_middle_of_a_counter_continues_from_the_state_there(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 5)
        third = _result_events(theater, source)[3]  # the counter is 3 after it
        fork = theater.fork(third.hash.hex())
        assert theater.state(fork) == le64(3)
        assert theater.request(fork, b"+") == le64(4)
        assert theater.request(source, b"+") == le64(6)  # the source goes on, untouched
        genesis = theater.events(fork)[0]
        assert genesis.data["fork"] == {"actor": uuid.UUID(source).bytes, "seq": third.seq, "event": third.hash}
        assert genesis.data["init_state"] == blake3.blake3(le64(3)).digest()
        assert [e.type for e in theater.events(fork)[:2]] == [ACTOR_CREATED, WASM_INSTANTIATE]
        store = theater.store
        assert verifies(store, source).ok
        assert verifies(store, fork).ok
        from theater.porcelain import describe

        assert describe(store, uuid.UUID(fork), theater)["fork"] == {
            "actor": source, "seq": third.seq, "event": third.hash.hex(), "overrides": 0}
        assert describe(store, uuid.UUID(source), theater)["fork"] is None


def test_fork_verification_covers_the_source_prefix(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 4)
        at = _result_events(theater, source)[1]
        fork = theater.fork(at.hash, name="forked")
        theater.send(fork, b"+")
        source_id, fork_id = uuid.UUID(source), uuid.UUID(fork)
        store = theater.store
        # A copy of the source with one recorded result changed (re-hashed, so only replay can tell), put in the
        # fork's genesis instead of the source: the fork's verification follows into it and fails.
        def change_first_result(drafts: list) -> None:
            first = next(d for d in drafts if d.type == "wasm/result")
            first.data["output"] = [{"some": b"forged"}]

        forged_source = rewrite(store, source_id, change_first_result)
        forged_event = store.log.at(forged_source, at.seq)

        def point_at_forged(drafts: list) -> None:
            drafts[0].data["fork"] = {"actor": forged_source.bytes, "seq": at.seq, "event": forged_event.hash}

        forged_fork = rewrite(store, fork_id, point_at_forged)
        report = verifies(store, forged_fork)
        assert isinstance(report.divergence, ContinuityBreak)
        assert report.divergence.seq == 0
        assert "does not verify" in report.divergence.what
        assert verifies(store, fork_id).ok


def test_fork_rewritten_unchanged_still_verifies(tmp_path: Path) -> None:
    # The forging helper itself gives nothing away: the attacks below fail for what they change.
    with Theater(tmp_path / "home", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 2)
        fork = theater.fork(_result_events(theater, source)[1].hash)
        theater.send(fork, b"+")
        assert verifies(theater.store, rewrite(theater.store, uuid.UUID(fork), lambda drafts: None)).ok


def test_fork_naming_a_source_event_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 2)
        fork = theater.fork(_result_events(theater, source)[0].hash)
        store = theater.store

        def nowhere(drafts: list) -> None:
            drafts[0].data["fork"]["event"] = bytes(32)

        forged = rewrite(store, uuid.UUID(fork), nowhere)
        report = verifies(store, forged)
        assert isinstance(report.divergence, ContinuityBreak)
        assert "no event" in report.divergence.what


def test_fork_naming_an_event_of_another_actor_is_refused(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 3)
        other = theater.start(project(tmp_path / "other", wat.counter_actor()))
        for _ in range(3):
            theater.send(other, b"+")
        at = _result_events(theater, source)[1]
        fork = theater.fork(at.hash)
        elsewhere = theater.events(other)[at.seq]  # same seq, same state, another actor's chain
        assert elsewhere.type == "wasm/result"

        def claim_other(drafts: list) -> None:
            drafts[0].data["fork"]["event"] = elsewhere.hash

        forged = rewrite(theater.store, uuid.UUID(fork), claim_other)
        report = verifies(theater.store, forged)
        assert isinstance(report.divergence, ContinuityBreak)
        assert f"of actor {other}" in report.divergence.what


def test_fork_starting_from_another_state_than_the_source_event_is_refused(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 3)
        fork = theater.fork(_result_events(theater, source)[0].hash)
        theater.send(fork, b"+")
        store = theater.store
        store.blobs.put(le64(41))
        digest = blake3.blake3(le64(41)).digest()

        def other_state(drafts: list) -> None:
            drafts[0].data["init_state"] = digest
            drafts[1].data["state"] = digest  # the start instance and the first call follow the forged state
            next(d for d in drafts if d.type == "wasm/call").data["state"] = digest

        forged = rewrite(store, uuid.UUID(fork), other_state)
        report = verifies(store, forged)
        assert isinstance(report.divergence, ContinuityBreak)
        assert "initial state is not the state at" in report.divergence.what


def test_fork_with_a_new_component_runs_it_from_the_source_state(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 2)
        echo = tmp_path / "echo.wat"
        echo.write_text(wat.actor_wat(send=wat.store_msg(), request=wat.respond_state()))
        fork = theater.fork(_result_events(theater, source)[2].hash, component=echo)
        assert theater.request(fork, b"?") == le64(2)  # the echo actor answers with the state it was given
        theater.send(fork, b"new")
        assert theater.state(fork) == b"new"
        assert verifies(theater.store, fork).ok


def test_fork_exported_as_a_bundle_carries_and_verifies_its_source_prefix(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 3)
        fork = theater.fork(_result_events(theater, source)[1].hash)
        theater.send(fork, b"+")
        data = export_bundle(theater.store, uuid.UUID(fork))
    path = tmp_path / "fork.bundle"
    path.write_bytes(data)
    with opened_bundle(path) as (store, actor, bundle):
        assert uuid.UUID(bytes=next(iter(bundle["chains"]))) == uuid.UUID(source)
        assert verify_actor(store, actor).ok


def test_fork_from_an_imported_bundle_runs_and_verifies(tmp_path: Path) -> None:
    with Theater(tmp_path / "first", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 3)
        at = _result_events(theater, source)[3]
        data = export_bundle(theater.store, uuid.UUID(source))
    from replay.bundle import import_bundle

    with Theater(tmp_path / "second", durability="buffered") as theater:
        import_bundle(theater.store, data)
        fork = theater.fork(at.hash.hex()[:16])
        assert theater.request(fork, b"+") == le64(4)
        assert verifies(theater.store, fork).ok


def test_fork_origin_with_a_malformed_field_is_refused_by_name(tmp_path: Path) -> None:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 1)
        fork = theater.fork(_result_events(theater, source)[0].hash)

        def bad_seq(drafts: list) -> None:
            drafts[0].data["fork"]["seq"] = "two"

        forged = rewrite(theater.store, uuid.UUID(fork), bad_seq)
        from replay import MalformedRecord

        with pytest.raises(MalformedRecord, match=r"fork\.seq"):
            verifies(theater.store, forged)


def test_fork_origin_round_trips() -> None:
    origin = ForkOrigin(actor=uuid.uuid4(), seq=3, event=bytes(range(32)), overrides=((2, {"ok": 5}),))
    assert origin.encode()["overrides"] == [[2, {"ok": 5}]]


def test_fork_line_deeper_than_the_bound_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from replay import lineage

    monkeypatch.setattr(lineage, "MAX_FORK_DEPTH", 2)
    with Theater(tmp_path / "home", durability="buffered") as theater:
        line = [_counter(tmp_path, theater, 1)]
        for _ in range(3):  # a fork of a fork of a fork
            theater.send(line[-1], b"+")
            line.append(theater.fork(theater.store.log.head(uuid.UUID(line[-1])).hash))
        assert verifies(theater.store, line[2]).ok
        report = verifies(theater.store, line[3])
        assert isinstance(report.divergence, ContinuityBreak)
        assert "deeper than 2" in str(report.divergence.what) or "deeper than 2" in str(report.divergence)


def test_chains_a_bundle_carries_are_never_resumed_after_import(tmp_path: Path) -> None:
    """A fork's bundle carries its source's prefix, a chain that ends mid-run: imported into another home (by the
    CLI or by POST /v1/chains/import), neither chain may be brought back as a running actor by a server's resume,
    or anyone's bundle would run its code there."""
    from store import Store
    from theater.lineage import import_verified_bundle
    from theater.porcelain.resume import import_chain, interrupted_actors

    with Theater(tmp_path / "home", durability="buffered") as theater:
        source = _counter(tmp_path, theater, 3)
        fork = theater.fork(_result_events(theater, source)[1].hash)
        theater.send(fork, b"+")
        data = export_bundle(theater.store, uuid.UUID(fork))
    for name, bring in (("cli", lambda store: import_chain(store, data, source="fork.bundle")),
                        ("api", lambda store: import_verified_bundle(store, data, source="fork.bundle"))):
        with Store(tmp_path / name / "store", durability="buffered") as store:
            assert bring(store) == uuid.UUID(fork)
            assert store.log.head(uuid.UUID(source)).hash is not None  # the source's prefix came along
            assert interrupted_actors(store) == []
