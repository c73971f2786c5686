"""The record tape holds a running call's writes across its host calls (``RecordTape.host_tick``) and hands them to
the store once holding them has a cost: held for a tick, too many or too large, at every epoch tick, and before any
wait (``scheduler.blocking``). A call making many fast host calls costs a few commits, not one per host call; a
call that runs long or waits still has its ``wasm/call`` in the store while it runs; and a crash in the middle of a
long call loses nothing acknowledged."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import EMPTY, Store
from tests._chains import CommitWaiter
from tests._chains import chain_problems as store_chain_problems
from tests._fixtures import ManifestWriter
from tests.components import wat
from tests.components.http_client_wat import client_actor
from tests.handlers._servers import TestServer
from theater import record
from theater.record import HOLD_BYTES, HOLD_S, HOLD_WRITES, RecordTape

MSG = ["message-server"]
WAIT_S = 30
HANDLE_SEND = "theater:simple/message-server-client.handle-send"
HANDLE_REQUEST = "theater:simple/message-server-client.handle-request"
LOG = "theater:simple/runtime/log"
HOST_CALLS = 1000
HERE = Path(__file__).parent


class Clock:
    """A ``time`` stand-in for ``theater.record`` whose ``monotonic()`` moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def tape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RecordTape, Clock]]:
    clock = Clock()
    monkeypatch.setattr(record, "time", clock)
    store = Store(tmp_path / "store", durability="buffered")
    try:
        yield RecordTape(store, uuid.uuid4(), EMPTY), clock
    finally:
        store.close()


def test_a_host_call_keeps_holding_writes_held_for_less_than_a_tick(tape):
    tape, clock = tape
    tape.append("test/one", {"n": 1})
    clock.now += HOLD_S / 2
    tape.host_tick()
    assert tape.handed_over() == () and tape._held  # still held: no commit for this host call
    clock.now += 2 * HOLD_S
    tape.host_tick()
    assert len(tape.handed_over()) == 1 and not tape._held  # held for a tick: handed over
    tape.wait_durable(WAIT_S)


def test_a_host_call_hands_over_writes_past_the_count_or_byte_bound(tape):
    tape, _ = tape
    for n in range(HOLD_WRITES - 1):
        tape.append("test/one", {"n": n})
    tape.host_tick()
    assert tape.handed_over() == ()
    tape.append("test/one", {"n": HOLD_WRITES})
    tape.host_tick()
    assert len(tape.handed_over()) == HOLD_WRITES
    tape.put_blob(b"\x01" * HOLD_BYTES)
    tape.host_tick()
    assert len(tape.handed_over()) == HOLD_WRITES + 1
    tape.wait_durable(WAIT_S)


def test_a_wait_past_the_tick_has_the_held_writes_handed_over_by_the_wait_watch(tape):
    tape, clock = tape
    tape.append("test/one", {"n": 1})
    assert tape.wait_begins()  # held for less than a tick: the watch takes it over
    committed = threading.Event()
    tape._store.add_commit_listener(committed.set)
    clock.now += 2 * HOLD_S  # the watch's next tick finds it held for a tick
    assert committed.wait(WAIT_S)
    assert tape._held == [] and tape.last is not None and tape.last.done()
    tape.wait_ends()


def test_a_wait_with_writes_due_hands_them_over_at_once(tape):
    tape, clock = tape
    tape.append("test/one", {"n": 1})
    clock.now += 2 * HOLD_S
    assert not tape.wait_begins()
    assert len(tape.handed_over()) == 1
    tape.wait_durable(WAIT_S)


def test_the_epoch_tick_and_a_wait_for_durability_hand_over_what_is_held(tape):
    tape, _ = tape
    tape.append("test/one", {"n": 1})
    tape.tick()
    assert len(tape.handed_over()) == 1
    tape.append("test/one", {"n": 2})
    tape.wait_durable(WAIT_S)
    assert tape._held == []


def test_a_call_making_many_fast_host_calls_hands_its_writes_over_far_fewer_times(theater, manifest):
    component = wat.actor_wat(request=wat.seq(*[wat.log(b"x")] * HOST_CALLS, wat.echo()))
    actor_id = theater.start(manifest("chatty", component, MSG))
    store = theater.store
    handed, commits = [], []
    store.add_commit_listener(lambda: commits.append(1))
    submit = store.submit
    store.submit = lambda writes, **options: handed.append(len(writes)) or submit(writes, **options)
    try:
        assert theater.request(actor_id, b"go", timeout=WAIT_S) == b"go"
    finally:
        del store.submit
    logs = [e for e in theater.events(actor_id) if e.type == LOG]
    assert len(logs) == HOST_CALLS
    # One hand-over per host call was the old way (1,000); now one per tick of the call's run, and one at its end.
    assert sum(handed) == HOST_CALLS + 2  # its wasm/call, the logs and its wasm/result, every one handed over
    assert len(handed) < HOST_CALLS // 4
    assert len(commits) <= len(handed) + 1  # the commit listener may see the start's last commit too


def test_a_call_making_many_short_waits_hands_its_writes_over_far_fewer_times(theater, manifest):
    waits = HOST_CALLS // 4
    component = wat.actor_wat(request=wat.seq(*[wat.sleep(0)] * waits, wat.echo()))  # each a wait (``blocking``)
    actor_id = theater.start(manifest("napper", component, [*MSG, "timing"]))
    store = theater.store
    handed = []
    submit = store.submit
    store.submit = lambda writes, **options: handed.append(len(writes)) or submit(writes, **options)
    try:
        assert theater.request(actor_id, b"go", timeout=WAIT_S) == b"go"
    finally:
        del store.submit
    assert sum(handed) >= waits + 2  # its wasm/call, a sleep event each and its wasm/result, all handed over
    assert len(handed) < waits // 4  # one per wait was the way of a hand-over before every wait


def test_a_call_waiting_in_a_host_function_has_its_call_in_the_store_while_it_waits(theater, manifest):
    component = wat.actor_wat(send=wat.seq(wat.log(b"before"), wat.sleep(24 * 3600 * 1000)))  # a day
    actor_id = theater.start(manifest("sleeper", component, [*MSG, "timing"]))
    waiter = CommitWaiter(theater.store, WAIT_S)
    sleeping = theater.router.deliver_send(theater.router.get(actor_id), b"zz")
    types = waiter.until(lambda: (t := [e.type for e in theater.events(actor_id)])[-2:] == ["wasm/call", LOG] and t,
                         "the sleeping call's wasm/call and log in the store")
    assert types.count("wasm/result") == 1 and not sleeping.done()  # init's: the send is still asleep
    theater.stop(actor_id)


def test_a_call_waiting_on_a_slow_server_has_its_call_in_the_store_while_it_waits(theater, manifest):
    server = TestServer()
    try:
        component = client_actor(1)
        actor_id = theater.start(manifest("client", component, ["http-client"],
                                          config={"http-client": {"allow_loopback": ["127.0.0.1"]}}))
        waiter = CommitWaiter(theater.store, WAIT_S)
        answer = theater.router.deliver_request(theater.router.get(actor_id), server.url("/hang").encode())
        assert server.hits.wait(WAIT_S)  # the request is out, and its answer will not come until the server closes
        waiter.until(lambda: [e.data["export"] for e in theater.events(actor_id) if e.type == "wasm/call"][-1:]
                     == [HANDLE_REQUEST], "the waiting call's wasm/call in the store")
        assert not answer.done()
    finally:
        server.close()
    assert answer.result(WAIT_S) == b"done"


def test_a_call_running_long_in_wasm_has_its_call_in_the_store_by_the_epoch_tick(theater, manifest):
    limits = {"fuel_per_call": 10**12, "deadline_ms": 600_000}
    actor_id = theater.start(manifest("faulty", wat.faulty_actor(), MSG, limits=limits, on_err="fail"))
    waiter = CommitWaiter(theater.store, WAIT_S)
    spinning = theater.router.deliver_send(theater.router.get(actor_id), b"spin")
    waiter.until(lambda: [e.type for e in theater.events(actor_id)][-1:] == ["wasm/call"],
                 "the spinning call's wasm/call in the store")
    assert not spinning.done()
    theater.stop(actor_id)


def test_a_crash_in_the_middle_of_a_long_call_loses_nothing_acknowledged(tmp_path: Path):
    writer = ManifestWriter(tmp_path)
    long_call = wat.seq(*[wat.log(b"x")] * 200, wat.sleep(24 * 3600 * 1000))
    sleeper = writer("sleeper", wat.actor_wat(send=long_call), [*MSG, "timing"])
    answerer = writer("answerer", wat.actor_wat(request=wat.seq(*[wat.log(b"y")] * 50, wat.echo())), MSG)
    home = tmp_path / "home"
    acked: list[bytes] = []
    ids: dict[str, str] = {}
    ready = threading.Event()
    with subprocess.Popen(
        [sys.executable, str(HERE / "_tape_crash_child.py"), str(home), str(sleeper), str(answerer)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as child:

        def read() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                if not line.endswith("\n"):
                    break  # cut by the kill: never complete, so never acknowledged
                word, value = line.split()
                if word == "ack":
                    acked.append(bytes.fromhex(value))
                    if len(acked) >= 20 and "sleeper" in ids:
                        ready.set()
                else:
                    ids[word] = value

        reader = threading.Thread(target=read)
        reader.start()
        try:
            assert ready.wait(WAIT_S), f"the child never got going: {child.stderr.read() if child.stderr else ''}"
            assert child.poll() is None
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(WAIT_S)
            reader.join(WAIT_S)
        assert child.returncode == -signal.SIGKILL
    store = Store(home / "store")
    try:
        answered = {e.data["output"][0][0]["some"] for e in store.log.events(uuid.UUID(ids["answerer"]))
                    if e.type == "wasm/result" and e.data["export"] == HANDLE_REQUEST}
        assert set(acked) <= answered  # every reply the child saw is in the chain
        sleeping = [e.type for e in store.log.events(uuid.UUID(ids["sleeper"]))]
        assert sleeping[-201:] == ["wasm/call"] + [LOG] * 200  # the long call's start, as the child saw it stored
        assert store_chain_problems(store) == []
    finally:
        store.close()
