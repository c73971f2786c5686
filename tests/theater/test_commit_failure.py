"""A commit that fails on a really full disk (a small tmpfs) must not wedge its actor.

The attack: fill the disk of the home, make an actor's commit fail, free the space. Before, the actor's tape had
moved its head past events that were never written, so every later send and ``stop`` failed with
``StaleHeadError`` for good while the actor was reported ``running``. Now the caller gets ``StoreFullError``,
nothing of the failed operation is released, the actor reports ``recovering`` and goes back to its chain (its last
committed state, a fresh instance) before its next call, and works again once space returns. Every chain still
verifies and replays from genesis (the ``theaters`` fixture checks it after each test).
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pytest

from store import EMPTY, Store, new_actor_id
from replay.schema import SupervisorSpawn
from store.errors import StoreFullError
from tests._chains import chain_problems
from tests.components import supervisor_wat as sw
from tests.components import wat
from theater.actor import HANDLE_SEND
from theater.errors import MessageError
from theater.record import RecordTape

MSG = ["message-server"]
BIG = 300_000  # bytes: a message this large makes a commit grow the store's file (it cannot fit in free pages)
WAIT = 10.0  # seconds any single wait may take before the test gives up


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def big(tag: bytes) -> bytes:
    """A large message that starts with ``tag``, so its call can be told apart in a chain."""
    return tag + b"." * (BIG - len(tag))


@pytest.fixture
def theater(full_disk, theaters):
    """A ``Theater`` whose home is on the tmpfs (its chains are checked after the test)."""
    return theaters(home=full_disk.path / "home", request_timeout=WAIT)  # a large message takes a while to copy


def sends(theater, actor_id: str) -> list[bytes]:
    """The messages of the actor's handle-send calls whose result is committed, in order. (A call whose result was
    lost to a failed commit may have its ``wasm/call`` committed: an interrupted call, passed over by replay.)"""
    done, call = [], None
    for event in theater.events(actor_id):
        if event.type == "wasm/call":
            call = event if event.data["export"] == HANDLE_SEND else None
        elif event.type == "wasm/instantiate":
            call = None
        elif event.type == "wasm/result" and call is not None:
            done.append(call.data["params"][0])
            call = None
    return done


def test_full_disk_commit_failure_does_not_wedge_actor(theater, full_disk, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    for _ in range(3):
        theater.send(actor, b"+1")
    full_disk.fill()

    with pytest.raises(StoreFullError, match="the disk is full"):
        theater.send(actor, big(b"lost"))
    assert theater.status(actor) == "recovering"
    assert [a["status"] for a in theater.actors()] == ["recovering"]
    assert theater.state(actor) == le64(3)  # what its chain holds, not what the failed call left

    full_disk.free()
    theater.send(actor, b"+1")
    theater.send(actor, b"+1")
    assert theater.status(actor) == "running"
    assert theater.state(actor) == le64(5)
    assert sends(theater, actor) == [b"+1"] * 5
    recovered = [e for e in theater.events(actor) if e.type == "wasm/instantiate" and e.data["reason"] == "recover"]
    assert len(recovered) == 1
    assert theater.store.blobs.get(recovered[0].data["state"]) == le64(3)
    assert chain_problems(theater.store) == []


def test_failed_commit_releases_no_effects(theater, full_disk, manifest, settle):
    echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
    forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))
    theater.send(forwarder, echo.encode() + b"\0before")
    settle(theater, echo)
    full_disk.fill()

    with pytest.raises(StoreFullError):
        theater.send(forwarder, echo.encode() + b"\0" + big(b"lost"))
    settle(theater, echo)  # anything released to the echo actor has been handled by now
    assert sends(theater, echo) == [b"before"]
    assert theater.state(echo) == b"before"

    full_disk.free()
    theater.send(forwarder, echo.encode() + b"\0after")
    settle(theater, echo)
    assert sends(theater, echo) == [b"before", b"after"]
    assert all(b"\0lost" not in m for m in sends(theater, forwarder))


def test_failed_commit_gives_no_response(theater, full_disk, manifest):
    deferred = theater.start(manifest("deferred", wat.deferred_actor(), MSG))
    reply = theater.router.deliver_request(theater.actor(deferred), b"question")
    committed = theater.actor(deferred).submit(lambda: None)  # the request has been taken (and answered none)
    committed.result(WAIT)
    full_disk.fill()

    # handle-send answers the outstanding request with the message; that commit fails.
    with pytest.raises(StoreFullError):
        theater.send(deferred, big(b"answer"))
    with pytest.raises(StoreFullError):
        reply.result(WAIT)  # the requester learns the failure, never the answer

    full_disk.free()
    theater.send(deferred, b"late")  # the request is no longer outstanding: the actor is told so, and goes on
    assert theater.status(deferred) == "running"
    assert theater.state(deferred).startswith(wat.ERR_MARKER)


def test_stop_works_after_failed_commit(theater, full_disk, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    theater.send(actor, b"+1")
    full_disk.fill()
    with pytest.raises(StoreFullError):
        theater.send(actor, big(b"lost"))
    full_disk.free()

    theater.stop(actor)
    assert theater.status(actor) == "stopped"
    events = theater.events(actor)
    assert events[-1].type == "actor/stop"
    assert sends(theater, actor) == [b"+1"]


def test_failed_call_leaves_nothing_in_the_guest_instance(theater, full_disk, manifest):
    # The guest counts in a wasm global, not in its state: a failed call's increment lives on in the old instance.
    # Reusing it would make the next result depend on a call the chain does not hold (replay would diverge).
    actor = theater.start(manifest("hidden", wat.hidden_state_actor(), MSG))
    theater.send(actor, b"one")
    theater.send(actor, b"two")
    assert theater.state(actor) == le64(2)
    full_disk.fill()
    with pytest.raises(StoreFullError):
        theater.send(actor, big(b"lost"))
    full_disk.free()

    theater.send(actor, b"three")
    assert theater.state(actor) == le64(1)  # a fresh instance: its global starts again from 0
    assert chain_problems(theater.store) == []


def test_pipelined_sends_on_a_full_disk_report_the_full_disk_and_keep_every_acknowledged_one(
    theater, full_disk, manifest
):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    theater.send(actor, b"+1")
    full_disk.fill()
    handle = theater.actor(actor)
    # Sends queued at once behind a large one: a send that runs before the large one's commit is known to have
    # failed has its appends refused as stale, and its caller must still hear the cause, a full disk. A small
    # commit may fit in pages LMDB reuses, so some may be acknowledged: those must be in the chain, in order.
    messages = [big(b"msg0")] + [b"msg%d" % i for i in range(1, 8)]
    futures: list[Future[None]] = [theater.router.deliver_send(handle, message) for message in messages]
    wait(futures, WAIT)
    errors = [f.exception() for f in futures]
    assert isinstance(errors[0], StoreFullError)
    assert all(e is None or isinstance(e, StoreFullError) for e in errors), errors

    full_disk.free()
    for i in range(3):
        theater.send(actor, b"after%d" % i)
    acknowledged = [b"+1"] + [m for m, e in zip(messages, errors, strict=True) if e is None]
    acknowledged += [b"after%d" % i for i in range(3)]
    assert sends(theater, actor) == acknowledged
    assert theater.state(actor) == le64(len(acknowledged))


class WriterHold:
    """Holds the store's writer thread after its next commit, until the ``with`` block ends: what is appended
    meanwhile goes into one batch, committed (or refused) together."""

    def __init__(self, store) -> None:
        self._armed = False
        self._holding = threading.Event()
        self._go = threading.Event()
        store.add_commit_listener(self._after_commit)
        self._store = store

    def _after_commit(self) -> None:
        if self._armed:
            self._armed = False
            self._holding.set()
            self._go.wait(WAIT)

    def __enter__(self) -> WriterHold:
        self._armed = True
        self._store.blobs.put_async(b"a commit to hold the writer after")
        assert self._holding.wait(WAIT), "the writer did not commit"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._go.set()


def test_stop_whose_record_a_full_disk_lost_is_recorded_by_the_next_stop(theater, full_disk, manifest):
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    handle = theater.actor(actor)
    with ThreadPoolExecutor(1) as pool, WriterHold(theater.store):
        full_disk.fill()  # while the writer is held (holding it takes a commit, which needs room)
        # The stop runs while the send's commit is still to come, so its record goes into the same failing batch.
        # (A stop jumps the queue; this one is queued behind the send in the message lane to run after it.)
        lost = theater.router.deliver_send(handle, big(b"lost"))
        stopping = pool.submit(lambda: handle.submit(lambda: theater.supervision.shutdown(handle)).result())
        # The stop has run (it ends the actor's mailbox) and its record is queued.
        assert handle.wait_ended(WAIT)
    with pytest.raises(StoreFullError):
        lost.result(WAIT)
    with pytest.raises(StoreFullError):
        stopping.result(WAIT)
    assert theater.status(actor) == "stopped"
    assert theater.events(actor)[-1].type != "actor/stop"

    full_disk.free()
    theater.stop(actor)
    assert theater.events(actor)[-1].type == "actor/stop"
    theater.stop(actor)  # recorded once
    assert [e.type for e in theater.events(actor)].count("actor/stop") == 1


def test_state_blob_lost_to_a_failed_commit_is_written_again_once_an_event_naming_it_commits(full_disk):
    # A state blob and the event that names it may go into different batches: the blob's batch fails on the full
    # disk, the event's commits once there is room. The chain then names a blob the store lacks, unless the tape
    # writes it again when it goes back to the store.
    with Store(full_disk.path / "store", durability="buffered") as store:
        tape = RecordTape(store, new_actor_id(), EMPTY)
        tape.append("actor/created", {"init_state": None})
        tape.wait_durable(WAIT)
        full_disk.fill()
        state = b"state." + bytes(BIG)
        digest = tape.state_ref(state)
        tape.submit()  # the put alone, ahead of the event (the tape holds both until an operation ends otherwise)
        with pytest.raises(StoreFullError):
            store.blobs.put(b"after the state blob, in order" + bytes(BIG))  # the state blob's write has failed
        full_disk.free()
        tape.append("wasm/result", {"state": digest})
        tape.wait_durable(WAIT)
        assert not store.blobs.has(digest)
        assert isinstance(tape.failure(), StoreFullError)

        tape.reset()
        assert store.blobs.get(digest) == state
        assert tape.failure() is None
        assert tape.state_ref(state) == digest


def test_start_refused_by_a_full_disk_leaves_no_running_actor(theater, full_disk, manifest):
    counter = manifest("counter", wat.counter_actor(), MSG)
    first = theater.start(counter)  # its component is in the store now, compiled
    full_disk.fill()
    with pytest.raises(StoreFullError):
        theater.start(counter, init_state=big(b"state"))
    [refused] = [a["id"] for a in theater.actors() if a["id"] != first]
    assert theater.actor(refused).wait_ended(WAIT)  # it is failed in its own operation, which ends its mailbox
    assert theater.status(refused) == "failed"
    assert "could not be committed" in theater.actor(refused).failure.detail

    full_disk.free()
    theater.stop(refused)  # records its failure if any of its chain was committed
    events = theater.events(refused)
    assert events == [] or events[-1].type == "actor/failed"
    theater.send(first, b"+1")
    assert theater.state(first) == le64(1)


def test_request_whose_answer_a_full_disk_lost_is_an_err_for_the_asking_actor(theater, full_disk, manifest):
    # The asked actor's commit fails; the asking actor must hear it as its request's err, not fail itself.
    growing = theater.start(manifest("growing", wat.actor_wat(send=wat.store_msg(), request=wat.append_msg()), MSG))
    asker = theater.start(manifest("asker", wat.forwarder_actor(), MSG))
    theater.send(growing, big(b"base"))
    full_disk.fill()
    try:
        answer = theater.request(asker, growing.encode() + b"\0more", timeout=WAIT)
    except StoreFullError:
        answer = None  # the asker's own commit of the err did not fit either
    assert answer is None or (answer.startswith(wat.ERR_MARKER) and b"the disk is full" in answer)
    assert theater.status(asker) in ("running", "recovering")

    full_disk.free()
    assert theater.request(asker, growing.encode() + b"\0more", timeout=WAIT) == big(b"base") + b"more"
    assert theater.status(asker) == "running"


def test_request_after_events_a_full_disk_lost_is_not_sent(theater, full_disk, manifest):
    # A request (or an open-channel) from inside a call first waits for what the caller recorded so far; if that
    # could not be committed, the request is an effect of a lost operation and must not go out (the
    # message-server handler turns the refusal into the guest's err).
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    handle = theater.actor(actor)
    full_disk.fill()

    refusals: list[MessageError] = []

    def lose_then_ask() -> None:
        handle.tape.append("test/lost", {"payload": big(b"lost")})
        try:
            handle.flush_committed()
        except MessageError as refused:
            refusals.append(refused)

    with pytest.raises(StoreFullError):
        handle.submit(lose_then_ask).result(WAIT)
    [refused] = refusals
    assert "cannot go on: what it recorded before could not be committed (StoreFullError" in str(refused)
    full_disk.free()
    theater.send(actor, b"+1")
    assert "test/lost" not in [e.type for e in theater.events(actor)]


def test_spawn_whose_child_start_a_full_disk_lost_is_never_acknowledged(theater, full_disk, manifest):
    # A spawning parent does not wait for its child's commit: its record of the spawn depends on it instead. The
    # attack: the child's start is lost to a full disk while the parent's (small) record of the spawn fits; the
    # parent would then answer with, and record, a child that was never stored.
    child = manifest("child", wat.echo_actor(), MSG)
    parent = theater.start(manifest("parent", sw.supervisor_wat(request=sw.spawn()), ["supervisor", *MSG]))
    stored = theater.request(parent, b"\0" + child.name.encode()).decode()  # the child's component is stored now
    # A large manifest never stored before: the start needs new pages for its blob (an identical manifest's blob
    # would be stored already, and a start without it can fit in the pages LMDB has free).
    child.write_text(child.read_text() + "\n# " + "x" * BIG + "\n")
    full_disk.fill()

    with pytest.raises(StoreFullError):
        theater.request(parent, b"\0" + child.name.encode(), timeout=WAIT)

    full_disk.free()
    assert theater.request(parent, b"\0" + child.name.encode(), timeout=WAIT)  # the parent goes on
    spawned = [event.data["child"] for event in theater.events(parent) if event.type == SupervisorSpawn.TYPE]
    assert len(spawned) == 2 and spawned[0] == stored
    for child_id in spawned:  # every child the parent's chain names was stored
        assert theater.events(child_id)[0].type == "actor/created"
    # Its supervisor knows the children its chain names, not the one whose start was lost (which has failed).
    assert [str(c) for c in theater.supervision.children(uuid.UUID(parent))] == spawned
    [lost] = [a for a in theater.actors() if a["id"] not in (parent, *spawned)]
    assert theater.actor(lost["id"]).wait_ended(WAIT)
    assert theater.status(lost["id"]) == "failed"


def test_a_stop_asked_while_an_actor_s_own_end_is_being_committed_records_no_second_end(theater, manifest):
    """The actor ended itself (runtime.shutdown) and its exit is handed to the writer, not yet committed, when
    ``Theater.stop`` asks for it: the stop waits for that commit instead of finding no end in the chain and
    recording another one (a chain with an event after its end, which verify refuses)."""
    actor = theater.start(manifest("quitter", wat.shutdown_actor(), MSG))
    handle = theater.actor(actor)
    with ThreadPoolExecutor(2) as pool:
        with WriterHold(theater.store):
            sent = theater.router.deliver_send(handle, b"bye")  # shuts the actor down; its records wait
            assert handle.wait_ended(WAIT)
            stopping = pool.submit(theater.stop, actor)
            wait([stopping], timeout=0.2)  # give a wrong stop its chance to read the chain before the commit
        sent.result(WAIT)
        stopping.result(WAIT)
    ends = [event.type for event in theater.events(actor) if event.type in ("actor/exit", "actor/stop", "actor/failed")]
    assert ends == ["actor/exit"]
    assert theater.events(actor)[-1].type == "actor/exit"
