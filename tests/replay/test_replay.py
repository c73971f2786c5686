"""Replay of recorded chains: proof by re-execution, and what it catches that integrity verification cannot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from replay.errors import Divergence
from replay.replayer import MID_CHAIN_HINT, Replayer, ReplayReport
from store import verify_chain, verify_store
from store.chain import event_key
from store.codec import encode_event
from tests.components import wat
from tests.replay._support import CLOCK_GRANTS, NOW, digest, le64, sends
from theater.actor import HANDLE_REQUEST, HANDLE_SEND



def requests(count: int, message: bytes = b"now?"):
    def workload(theater, actor):
        for _ in range(count):
            theater.request(actor, message)

    return workload


def summary(report: ReplayReport) -> tuple:
    """Everything a report says, with the divergence as plain values (exceptions compare by identity)."""
    d = report.divergence
    divergence = None if d is None else (str(d), d.seq, d.hash, d.what, d.expected, d.actual, d.hint)
    return (report.actor, report.from_seq, report.to_seq, report.calls, report.host_calls, report.state, divergence)


# replay of honest chains


def test_replay_from_genesis_reexecutes_every_call(record, open_store):
    recording = record(wat.counter_actor(), sends(3))
    store = open_store(recording)
    report = Replayer(store).replay(recording.actor)
    assert report.ok, report.divergence
    assert report.calls == 4  # init and three sends
    assert report.host_calls == 0
    assert report.from_seq == 0
    assert report.to_seq == store.log.head(recording.actor).seq
    assert report.state == le64(3)


def test_replay_serves_every_host_call_from_the_record(record, open_store):
    recording = record(wat.clock_actor(), requests(3), CLOCK_GRANTS)
    store = open_store(recording)
    report = Replayer(store).replay(recording.actor)
    assert report.ok, report.divergence
    assert (report.calls, report.host_calls) == (4, 3)
    last_now = [e for e in store.log.events(recording.actor) if e.type == NOW][-1]
    assert report.state == le64(last_now.data["result"])


def test_replay_up_to_a_seq_stops_there_with_the_state_at_that_point(record, open_store):
    recording = record(wat.counter_actor(), sends(4))
    store = open_store(recording)
    results = [e for e in store.log.events(recording.actor) if e.type == "wasm/result"]
    report = Replayer(store).replay(recording.actor, to_seq=results[2].seq)
    assert report.ok, report.divergence
    assert report.to_seq == results[2].seq
    assert (report.calls, report.state) == (3, le64(2))


def test_replay_of_a_stopped_actor_is_ok(record, open_store):
    def workload(theater, actor):
        theater.send(actor, b"tick")
        theater.stop(actor)

    recording = record(wat.counter_actor(), workload)
    store = open_store(recording)
    assert [e.type for e in store.log.events(recording.actor)][-1] == "actor/stop"
    assert Replayer(store).replay(recording.actor).ok


def test_same_replay_twice_gives_identical_reports(record, open_store):
    recording = record(wat.clock_actor(), requests(3), CLOCK_GRANTS)
    store = open_store(recording)
    assert summary(Replayer(store).replay(recording.actor)) == summary(Replayer(store).replay(recording.actor))
    replayer = Replayer(store)
    assert summary(replayer.replay(recording.actor)) == summary(replayer.replay(recording.actor))


def test_same_divergent_replay_twice_gives_identical_reports(record, open_store):
    recording = record(wat.hidden_state_actor(), sends(3))
    store = open_store(recording)
    calls = [e for e in store.log.events(recording.actor) if e.type == "wasm/call"]
    first = Replayer(store).replay(recording.actor, from_seq=calls[-1].seq)
    second = Replayer(store).replay(recording.actor, from_seq=calls[-1].seq)
    assert not first.ok
    assert summary(first) == summary(second)


# hidden state: a guest keeping state outside its recorded state


def test_hidden_state_actor_replays_from_genesis(record, open_store):
    recording = record(wat.hidden_state_actor(), sends(3))
    store = open_store(recording)
    report = Replayer(store).replay(recording.actor)
    assert report.ok, report.divergence
    assert report.state == le64(3)


def test_hidden_state_actor_diverges_from_mid_chain_with_the_hint(record, open_store):
    recording = record(wat.hidden_state_actor(), sends(3))
    store = open_store(recording)
    events = list(store.log.events(recording.actor))
    third_call = [e for e in events if e.type == "wasm/call"][-1]
    third_result = events[third_call.seq + 1]
    report = Replayer(store).replay(recording.actor, from_seq=third_call.seq)
    divergence = report.divergence
    assert isinstance(divergence, Divergence)
    assert (divergence.seq, divergence.hash) == (third_result.seq, third_result.hash)
    assert divergence.what == f"result of {HANDLE_SEND}"
    assert divergence.expected["state"] == digest(le64(3))
    assert divergence.actual["state"] == digest(le64(1))  # a fresh instance counts from zero
    assert divergence.hint == MID_CHAIN_HINT
    assert str(divergence).endswith(f"; hint: {MID_CHAIN_HINT}")
    assert report.from_seq == third_call.seq


def test_state_only_actor_replays_from_mid_chain(record, open_store):
    recording = record(wat.counter_actor(), sends(3))
    store = open_store(recording)
    third_call = [e for e in store.log.events(recording.actor) if e.type == "wasm/call"][-1]
    report = Replayer(store).replay(recording.actor, from_seq=third_call.seq)
    assert report.ok, report.divergence
    assert (report.calls, report.state) == (1, le64(3))


# tampering: a rewritten, re-hashed chain passes integrity but not replay


def first_event(store, actor, type_):
    return next(e for e in store.log.events(actor) if e.type == type_)


def test_naive_change_of_a_host_result_breaks_integrity(record, open_store):
    recording = record(wat.clock_actor(), requests(2), CLOCK_GRANTS)
    store = open_store(recording)
    now = first_event(store, recording.actor, NOW)
    changed = encode_event(
        actor=recording.actor, seq=now.seq, parent=now.parent, timestamp_ms=now.timestamp_ms, type=now.type,
        data={**now.data, "result": now.data["result"] + 1},
    )
    with store.env.env.begin(write=True) as txn:
        txn.put(event_key(recording.actor, now.seq), now.hash + changed.body, db=store.env.dbs["events"])
    report = verify_chain(store, recording.actor)
    assert (report.problem.kind, report.problem.seq) == ("hash mismatch", now.seq)


def test_rewritten_chain_passes_integrity(record, open_store, rewrite):
    recording = record(wat.clock_actor(), requests(3), CLOCK_GRANTS)
    store = open_store(recording)
    now = first_event(store, recording.actor, NOW)
    rewritten = rewrite(store, recording.actor, now.seq, lambda data: {**data, "result": data["result"] + 1})
    assert verify_store(store).ok
    assert store.log.head(recording.actor).hash == rewritten[-1].hash
    assert store.log.at(recording.actor, now.seq).data["result"] == now.data["result"] + 1
    assert store.log.get(rewritten[0].hash).seq == now.seq


def test_replay_detects_changed_host_result(record, open_store, rewrite):
    recording = record(wat.clock_actor(), requests(3), CLOCK_GRANTS)
    store = open_store(recording)
    now = first_event(store, recording.actor, NOW)
    recorded_time = now.data["result"]
    rewritten = rewrite(store, recording.actor, now.seq, lambda data: {**data, "result": recorded_time + 1})
    assert verify_store(store).ok
    report = Replayer(store).replay(recording.actor)
    divergence = report.divergence
    assert isinstance(divergence, Divergence)
    # The host call itself follows (same import, same params); the first outcome that no longer follows is the
    # result of the call that made it: the guest now stores the changed time.
    result = rewritten[1]
    assert result.type == "wasm/result"
    assert (divergence.seq, divergence.hash) == (result.seq, result.hash)
    assert divergence.what == f"result of {HANDLE_REQUEST}"
    assert divergence.expected["state"] == digest(le64(recorded_time))
    assert divergence.actual["state"] == digest(le64(recorded_time + 1))
    assert divergence.actual["output"] == [[{"some": le64(recorded_time + 1)}]]
    assert divergence.hint is None
    assert (report.calls, report.host_calls, report.to_seq) == (2, 1, result.seq)


def test_replay_detects_changed_host_params(record, open_store, rewrite):
    recording = record(wat.clock_actor(), requests(2), CLOCK_GRANTS)
    store = open_store(recording)
    now = first_event(store, recording.actor, NOW)
    [changed, *_] = rewrite(store, recording.actor, now.seq, lambda data: {**data, "params": [0]})
    assert verify_store(store).ok
    divergence = Replayer(store).replay(recording.actor).divergence
    assert isinstance(divergence, Divergence)
    assert (divergence.seq, divergence.hash, divergence.what) == (now.seq, changed.hash, f"parameters of {NOW}")
    assert (divergence.expected, divergence.actual) == ([0], [])


def test_replay_detects_changed_fuel(record, open_store, rewrite):
    recording = record(wat.counter_actor(), sends(2))
    store = open_store(recording)
    result = [e for e in store.log.events(recording.actor) if e.type == "wasm/result"][-1]
    fuel = result.data["fuel"]
    [changed] = rewrite(store, recording.actor, result.seq, lambda data: {**data, "fuel": fuel + 1})
    assert verify_store(store).ok
    divergence = Replayer(store).replay(recording.actor).divergence
    assert isinstance(divergence, Divergence)
    assert (divergence.seq, divergence.hash, divergence.what) == (result.seq, changed.hash, "fuel consumed")
    assert (divergence.expected["fuel"], divergence.actual["fuel"]) == (fuel + 1, fuel)


def test_replay_detects_changed_message(record, open_store, rewrite):
    recording = record(wat.echo_actor(), sends(2, b"original"))
    store = open_store(recording)
    call = [e for e in store.log.events(recording.actor) if e.type == "wasm/call"][1]
    rewrite(store, recording.actor, call.seq, lambda data: {**data, "params": [b"forged"]})
    assert verify_store(store).ok
    divergence = Replayer(store).replay(recording.actor).divergence
    assert isinstance(divergence, Divergence)
    # The forged message is stored as the state: the result no longer follows.
    assert divergence.seq == call.seq + 1
    assert divergence.what == f"result of {HANDLE_SEND}"
    assert divergence.actual["state"] == digest(b"forged")


@pytest.mark.parametrize("field", ["state", "output"])
def test_replay_detects_a_changed_recorded_outcome(record, open_store, rewrite, field):
    recording = record(wat.counter_actor(), requests(2, b"count"))
    store = open_store(recording)
    result = [e for e in store.log.events(recording.actor) if e.type == "wasm/result"][1]
    forged = {"state": digest(le64(99)), "output": [[{"some": le64(99)}]]}[field]
    store.blobs.put(le64(99))  # a thorough attacker stores the forged state too: integrity checks blobs exist
    rewrite(store, recording.actor, result.seq, lambda data: {**data, field: forged})
    assert verify_store(store).ok
    divergence = Replayer(store).replay(recording.actor).divergence
    assert isinstance(divergence, Divergence)
    assert (divergence.seq, divergence.what) == (result.seq, f"result of {HANDLE_REQUEST}")
    assert divergence.expected[field] == forged


REPLAY_SCRIPT = """
import sys, uuid
from replay.replayer import Replayer
from store import Store
with Store(sys.argv[1], readonly=True) as store:
    report = Replayer(store).replay(uuid.UUID(sys.argv[2]))
print(report.divergence)
"""
REPO = Path(__file__).resolve().parents[2]


def test_replay_of_a_call_to_an_export_the_component_lacks_ends_in_a_divergence(record, open_store, rewrite):
    recording = record(wat.counter_actor(), sends(2))
    store = open_store(recording)
    call = [e for e in store.log.events(recording.actor) if e.type == "wasm/call"][-1]
    missing = "theater:simple/message-server-client.handle-nothing"
    rewrite(store, recording.actor, call.seq, lambda data: {**data, "export": missing})
    assert verify_store(store).ok
    store.close()
    # In a child process with a time limit: a replay that never ends must fail this test, not hang the suite.
    try:
        done = subprocess.run(
            [sys.executable, "-c", REPLAY_SCRIPT, str(recording.store_path), str(recording.actor)],
            capture_output=True, text=True, timeout=10, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    except subprocess.TimeoutExpired:
        pytest.fail("replay of a call to a missing export did not end within 10 s", pytrace=False)
    assert done.returncode == 0, done.stderr
    # The first event that does not follow is the forged call, or the recorded outcome of it (which names the
    # export the call had before: the record contradicts itself there).
    assert re.match(rf"(divergence|the record contradicts itself) at event ({call.seq}|{call.seq + 1}) ",
                    done.stdout), done.stdout
    assert missing in done.stdout
