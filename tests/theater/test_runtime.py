"""The embedded ``Theater`` API: start, stop, state, events, actors, close; and determinism of what it records."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blake3
import pytest

from replay.replayer import Replayer
from store import verify_store
from store.errors import NotFoundError
from tests.components import wat
from theater.actor import ACTOR_INIT, HANDLE_REQUEST, HANDLE_SEND
from theater.errors import ActorNotFound, ActorNotRunning
from theater.manifest import load_manifest
from theater.runtime import Theater

MSG = ["message-server"]
WAIT = 10.0  # seconds any single wait may take before the test gives up
NOBODY = "00000000-0000-4000-8000-000000000000"


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


# start


def test_start_returns_a_running_actor(theater, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    assert str(uuid.UUID(actor)) == actor
    assert theater.status(actor) == "running"
    [listed] = theater.actors()
    assert {key: listed[key] for key in ("id", "name", "status", "parent", "failure")} == {
        "id": actor, "name": "counter", "status": "running", "parent": None, "failure": None
    }


def test_start_records_genesis_instantiation_and_init(theater, manifest):
    path = manifest("counter", wat.counter_actor(), MSG, limits={"fuel_per_call": 10**8, "deadline_ms": 1000})
    actor = theater.start(path)
    events = theater.events(actor)
    assert [e.type for e in events] == ["actor/created", "wasm/instantiate", "wasm/call", "wasm/result"]
    created = events[0].data
    assert created["id"] == actor
    assert created["name"] == "counter"
    assert created["component"] == blake3.blake3((path.parent / "counter.wat").read_bytes()).digest()
    assert created["limits"] == {"fuel_per_call": 10**8, "memory_bytes": 256 * 1024 * 1024, "deadline_ms": 1000}
    assert created["parent"] is None
    assert theater.store.blobs.get(created["manifest"]) == path.read_bytes()
    assert events[1].data["reason"] == "start"
    assert events[2].data == {"export": ACTOR_INIT, "state": None, "params": [actor]}
    assert events[3].data["export"] == ACTOR_INIT


def test_chain_is_linked_from_genesis(theater, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    theater.send(actor, b"")
    events = theater.events(actor)
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[0].parent is None
    assert all(later.parent == earlier.hash for earlier, later in zip(events, events[1:]))


def test_start_accepts_manifest_text_and_parsed_manifests(theater, manifest):
    path = manifest("echo", wat.echo_actor(), MSG)
    text = f'name = "inline"\ncomponent = "{path.parent / "echo.wat"}"\n[[handlers]]\ntype = "message-server"\n'
    from_text = theater.start(text)
    from_parsed = theater.start(load_manifest(path))
    assert theater.request(from_text, b"a") == b"a"
    assert theater.request(from_parsed, b"b") == b"b"
    assert [a["name"] for a in theater.actors()] == ["inline", "echo"]


def test_each_start_is_a_new_actor(theater, manifest):
    path = manifest("counter", wat.counter_actor(), MSG)
    first, second = theater.start(path), theater.start(path)
    assert first != second
    theater.send(first, b"")
    assert theater.state(first) == le64(1)
    assert theater.state(second) is None


def test_init_state_comes_from_the_manifest(theater, manifest):
    actor = theater.start(manifest("echo", wat.echo_actor(), MSG, init_state="from manifest"))
    assert theater.state(actor) == b"from manifest"
    created = theater.events(actor)[0].data
    assert theater.store.blobs.get(created["init_state"]) == b"from manifest"


def test_init_state_given_to_start_wins_over_the_manifest(theater, manifest):
    path = manifest("echo", wat.echo_actor(), MSG, init_state="from manifest")
    actor = theater.start(path, init_state=b"from start")
    assert theater.state(actor) == b"from start"
    assert theater.events(actor)[2].data["state"] == blake3.blake3(b"from start").digest()


def test_init_can_set_the_state(theater, manifest):
    actor = theater.start(manifest("booted", wat.actor_wat(init=wat.set_state(b"booted")), MSG))
    assert theater.state(actor) == b"booted"


def test_parent_is_recorded(theater, manifest):
    parent = theater.start(manifest("parent", wat.echo_actor(), MSG))
    child = theater.start(manifest("child", wat.echo_actor(), MSG), parent=parent)
    assert theater.events(child)[0].data["parent"] == parent
    assert theater.actor(child).parent == uuid.UUID(parent)
    assert [a["parent"] for a in theater.actors()] == [None, parent]


# messages and reading


def test_state_follows_each_successful_call(theater, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    for n in range(1, 4):
        theater.send(actor, b"")
        assert theater.state(actor) == le64(n)
    assert theater.request(actor, b"") == le64(4)


def test_events_are_durable_when_send_returns(theater, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    theater.send(actor, b"tick")
    last = theater.events(actor)[-1]
    assert (last.type, last.data["export"]) == ("wasm/result", HANDLE_SEND)
    assert theater.store.log.head(uuid.UUID(actor)).hash == last.hash


def test_request_records_the_response_in_the_result(theater, manifest):
    actor = theater.start(manifest("echo", wat.echo_actor(), MSG))
    assert theater.request(actor, b"marco") == b"marco"
    call, result = theater.events(actor)[-2:]
    assert call.data["export"] == HANDLE_REQUEST
    assert call.data["params"][1] == b"marco"
    assert result.data["output"] == [[{"some": b"marco"}]]


@pytest.mark.parametrize("method", ["status", "state", "actor", "stop"])
def test_unknown_actor_is_not_found(theater, method):
    with pytest.raises(ActorNotFound, match=f"^no actor {NOBODY}$"):
        getattr(theater, method)(NOBODY)


def test_unknown_actor_cannot_be_sent_to(theater):
    with pytest.raises(ActorNotFound, match=f"^no actor {NOBODY}$"):
        theater.send(NOBODY, b"")
    with pytest.raises(ActorNotFound, match=f"^no actor {NOBODY}$"):
        theater.request(NOBODY, b"")


# stop and close


def test_stop_records_the_stop_and_refuses_messages(theater, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    theater.send(actor, b"")
    theater.stop(actor)
    assert theater.status(actor) == "stopped"
    last = theater.events(actor)[-1]
    assert (last.type, last.data) == ("actor/stop", {"data": None})
    with pytest.raises(ActorNotRunning, match=f"^actor {actor} is stopped"):
        theater.send(actor, b"")
    assert theater.state(actor) == le64(1)


def test_request_to_a_stopped_actor_raises_actor_not_running(theater, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    theater.stop(actor)
    with pytest.raises(ActorNotRunning, match=f"^actor {actor} is stopped"):
        theater.request(actor, b"")


def test_stop_twice_records_one_stop(theater, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    theater.stop(actor)
    theater.stop(actor)
    assert [e.type for e in theater.events(actor)].count("actor/stop") == 1


def test_stop_jumps_ahead_of_waiting_messages_which_are_refused(theater, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    live = theater.actor(actor)
    gate = threading.Event()
    busy = live.submit(lambda: gate.wait(WAIT))  # the actor is busy while the messages and the stop arrive
    pending = [theater.router.deliver_send(live, b"") for _ in range(5)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        stopping = pool.submit(theater.stop, actor)
        assert live.stop_requested.wait(WAIT)  # the stop is queued (ahead of the messages)
        gate.set()
        stopping.result(WAIT)
    busy.result(WAIT)
    for message in pending:
        with pytest.raises(ActorNotRunning, match=f"^actor {actor} is stopped"):
            message.result(WAIT)
    assert theater.state(actor) is None
    assert [e.type for e in theater.events(actor)][-1] == "actor/stop"


def test_stop_leaves_other_actors_running(theater, manifest):
    path = manifest("counter", wat.counter_actor(), MSG)
    stopped, running = theater.start(path), theater.start(path)
    theater.stop(stopped)
    assert theater.request(running, b"") == le64(1)
    assert [a["status"] for a in theater.actors()] == ["stopped", "running"]


def test_chains_survive_close_and_verify_in_a_reopened_home(tmp_path, manifest):
    path = manifest("counter", wat.counter_actor(), MSG)
    with Theater(tmp_path / "home", request_timeout=2.0) as first:
        actor = first.start(path)
        for _ in range(3):
            first.send(actor, b"")
        recorded = [e.hash for e in first.events(actor)]
    first.close()  # closing twice is harmless
    with Theater(tmp_path / "home", request_timeout=2.0) as again:
        assert [e.hash for e in again.events(actor)] == recorded
        assert again.actors() == []  # the runtime does not resume actors by itself
        assert verify_store(again.store).ok
        report = Replayer(again.store).replay(uuid.UUID(actor))
        assert report.ok, report.divergence
        assert report.state == le64(3)


def test_close_ends_a_running_actor_without_recording_a_stop(tmp_path, manifest):
    with Theater(tmp_path / "home", durability="buffered", request_timeout=2.0) as theater:
        actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    with Theater(tmp_path / "home", request_timeout=2.0) as again:
        assert again.events(actor)[-1].type == "wasm/result"


# reopening after a restart of the runtime


def run_and_close(home: Path, path: Path, messages: int) -> str:
    with Theater(home, durability="buffered", request_timeout=2.0) as first:
        actor = first.start(path)
        for _ in range(messages):
            first.send(actor, b"")
    return actor


def test_reopen_continues_from_the_last_committed_state(tmp_path, theaters, manifest):
    actor = run_and_close(tmp_path / "home", manifest("counter", wat.counter_actor(), MSG), 3)
    theater = theaters(home=tmp_path / "home")
    assert theater.reopen(actor) == actor
    assert theater.status(actor) == "running"
    assert theater.state(actor) == le64(3)
    assert theater.request(actor, b"") == le64(4)
    resumed = [e for e in theater.events(actor) if e.type == "wasm/instantiate"]
    assert [e.data["reason"] for e in resumed] == ["start", "resume"]
    assert not any(e.data.get("export") == ACTOR_INIT for e in theater.events(actor)[resumed[1].seq :])


def test_reopen_of_a_running_actor_changes_nothing(theater, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    before = theater.events(actor)
    assert theater.reopen(actor) == actor
    assert theater.events(actor) == before


def test_reopen_of_an_actor_not_in_the_store_raises_not_found(theater):
    with pytest.raises(NotFoundError, match=f"^no actor {NOBODY}$"):
        theater.reopen(NOBODY)


def test_reopened_hidden_state_actor_starts_its_hidden_count_again(tmp_path, theaters, manifest):
    # What a guest keeps outside its state is lost across a restart; the chain, and its replay, say so honestly.
    actor = run_and_close(tmp_path / "home", manifest("hidden", wat.hidden_state_actor(), MSG), 2)
    theater = theaters(home=tmp_path / "home")
    theater.reopen(actor)
    assert theater.state(actor) == le64(2)
    assert theater.request(actor, b"") == le64(1)


def test_start_without_init_keeps_the_given_state(theater, manifest):
    path = manifest("booted", wat.actor_wat(init=wat.set_state(b"from init"), request=wat.respond_state()), MSG)
    actor = theater.start(path, init_state=b"given", call_init=False)
    assert theater.request(actor, b"") == b"given"
    assert [e.type for e in theater.events(actor)][:3] == ["actor/created", "wasm/instantiate", "wasm/call"]
    assert theater.events(actor)[2].data["export"] == HANDLE_REQUEST


# determinism


def workload(home: Path, paths: dict[str, Path]) -> tuple[list[list[tuple]], list[bytes]]:
    """Run the same actors and messages; return each actor's chain fingerprint and what the API answered."""
    answers: list[bytes] = []
    with Theater(home, durability="buffered", request_timeout=2.0) as theater:
        counter = theater.start(paths["counter"])
        clock = theater.start(paths["clock"])
        dice = theater.start(paths["dice"])
        logger = theater.start(paths["logger"])
        for n in range(3):
            theater.send(counter, b"tick")
            answers.append(theater.request(clock, b"now?")[:0])  # the time itself differs between runs
            theater.send(dice, b"bytes")
            answers.append(theater.state(dice))
            theater.send(logger, f"message {n}".encode())
        answers.append(theater.request(counter, b"count?"))
        answers.append(theater.request(dice, b"uuid"))
        for actor in (counter, clock, dice, logger):
            theater.stop(actor)
        assert verify_store(theater.store).ok
        replayer = Replayer(theater.store)
        assert all(replayer.replay(uuid.UUID(a)).ok for a in (counter, clock, dice, logger))
        chains = [
            [fingerprint(e, clocked=actor == clock) for e in theater.events(actor)]
            for actor in (counter, clock, dice, logger)
        ]
    return chains, answers


def fingerprint(event, *, clocked: bool) -> tuple:
    """What must not change between runs: the event type, the fuel, and the data of events carrying no id or time.

    Left out: data holding an id (genesis, init with the actor id, requests with their request id, a seeded uuid:
    the API answers compare that one), timing calls, and for the clock actor every state (it is the time).
    """
    row: tuple = (event.type, event.data.get("fuel"))
    volatile = (
        carries_id(event.data)
        or event.type.startswith("theater:simple/timing/")
        or (clocked and event.type in ("wasm/call", "wasm/result"))
    )
    return row if volatile else (*row, event.data)


def carries_id(value) -> bool:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value)) == value
        except ValueError:
            return False
    if isinstance(value, dict):
        return any(carries_id(v) for v in value.values())
    if isinstance(value, list):
        return any(carries_id(v) for v in value)
    return False


def test_same_workload_records_the_same_chains(tmp_path, manifest):
    paths = {
        "counter": manifest("counter", wat.counter_actor(), MSG),
        "clock": manifest("clock", wat.clock_actor(), [*MSG, "timing"]),
        "dice": manifest(
            "dice",
            wat.actor_wat(send=wat.random_bytes(8), request=wat.generate_uuid()),
            [*MSG, "random"],
            config={"random": {"seed": 7}},
        ),
        "logger": manifest("logger", wat.logger_actor(), MSG),
    }
    runs = [workload(tmp_path / f"home-{n}", paths) for n in range(3)]
    chains, answers = runs[0]
    assert sum(len(chain) for chain in chains) > 50
    assert any(e[0] == "theater:simple/random/random-bytes" and len(e) == 3 for e in chains[2])
    for other_chains, other_answers in runs[1:]:
        assert other_answers == answers
        for mine, theirs in zip(chains, other_chains):
            assert len(mine) == len(theirs)
            for seq, (a, b) in enumerate(zip(mine, theirs)):
                assert a == b, f"event {seq} differs between runs"
