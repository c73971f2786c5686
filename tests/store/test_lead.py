"""A thread about to wait for its writes commits them itself while the writer thread is idle (``Store.lead``):
durable and in order when it returns, never two write transactions at once, and a failed commit fails the chain
after it as the writer's would."""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

import pytest

from store import EMPTY, Head, StaleHeadError, Store, StoreWriteError, verify_store
from store._commit import CommitContext, Pending

WAIT = 30.0
ATTEMPTS = 500  # rounds in which the writer thread must have been idle at least once when a caller led


class Exploding(Pending[None]):
    """A write whose apply fails with an error the writer does not expect: its whole batch fails."""

    def apply(self, txn: Any, ctx: CommitContext) -> None:
        raise RuntimeError("boom")


def committing_threads(store: Store) -> list[threading.Thread]:
    """The thread that ran each commit from now on, in commit order."""
    threads: list[threading.Thread] = []
    store.add_commit_listener(lambda: threads.append(threading.current_thread()))
    return threads


def test_a_caller_that_leads_returns_with_its_appends_durable_in_submit_order(store: Store) -> None:
    actor = uuid.uuid4()
    committers = committing_threads(store)
    head, led = EMPTY, 0
    for round in range(ATTEMPTS):
        writes = []
        for n in range(3):  # one submit of three chained appends
            write = store.log.prepare(actor, "t", [round, n], expected=head)
            head = Head(write.event.seq, write.event.hash)
            writes.append(write)
        store.submit(writes)
        if store.lead():
            led += 1
            # Committed on this thread, before any wait: done, and in what any reader sees.
            assert all(write.done() for write in writes)
            assert committers[-1] is threading.current_thread()
            assert store.log.head(actor) == head
        for write in writes:
            write.wait(WAIT)
        if led >= 20:
            break
    assert led >= 20, f"only {led} of {round + 1} rounds found the writer idle"
    events = list(store.log.events(actor))
    assert [event.data for event in events] == [[r, n] for r in range(round + 1) for n in range(3)]
    assert verify_store(store).ok


def test_a_settle_listener_runs_on_the_leading_thread_as_on_the_writer(store: Store) -> None:
    seen: list[tuple[threading.Thread, bool]] = []
    store.add_settle_listener(lambda on_writer: seen.append((threading.current_thread(), on_writer)))
    for _ in range(ATTEMPTS):
        put = store.blobs.prepare(b"x" * 10)
        store.submit([put])
        if store.lead():
            assert seen[-1] == (threading.current_thread(), True)
            return
        put.wait(WAIT)
    pytest.fail("the writer was never idle when a caller led")


def test_concurrent_leaders_never_run_two_write_transactions(fast_store: Store) -> None:
    writer = fast_store.log._writer
    inside, most, guard = [0], [0], threading.Lock()
    apply = writer._apply

    def counted(*args: Any, **kwargs: Any) -> Any:
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            return apply(*args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    writer._apply = counted  # type: ignore[method-assign]
    committers = committing_threads(fast_store)
    errors: list[BaseException] = []
    actors = [uuid.uuid4() for _ in range(8)]

    def appender(actor: uuid.UUID) -> None:
        head = EMPTY
        try:
            for n in range(150):
                write = fast_store.log.prepare(actor, "t", n, expected=head)
                head = Head(write.event.seq, write.event.hash)
                fast_store.submit([write])
                if n % 3 == 0:  # the others pipeline: a leader commits what they queued too
                    fast_store.lead()
                    write.wait(WAIT)
            write.wait(WAIT)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(actor,)) for actor in actors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not errors
    assert most[0] == 1
    led = sum(1 for t in committers if t in threads)
    assert led > 0, "no appender ever found the writer idle: nothing here was tested"
    assert set(committers) <= set(threads) | {writer._thread}
    for actor in actors:
        assert [event.data for event in fast_store.log.events(actor)] == list(range(150))
    assert verify_store(fast_store).ok


def test_a_leaders_failed_commit_fails_its_batch_and_the_later_appends_of_the_chain(store: Store) -> None:
    actor = uuid.uuid4()
    first = store.log.append(actor, "t", 0, expected=EMPTY)
    after_first = Head(first.seq, first.hash)
    for _ in range(ATTEMPTS):
        exploding = Exploding(None)
        second = store.log.prepare(actor, "t", 1, expected=after_first)
        store.submit([exploding, second])
        led = store.lead()
        message = f"the store at {store.path} cannot take the write (RuntimeError: boom); nothing was written"
        with pytest.raises(StoreWriteError, match=re.escape(message)):
            second.wait(WAIT)
        if led:
            break
    else:
        pytest.fail("the writer was never idle when a caller led")
    third = store.log.prepare(actor, "t", 2, expected=Head(second.event.seq, second.event.hash))
    store.submit([third])
    store.lead()
    with pytest.raises(StaleHeadError):
        third.wait(WAIT)
    assert store.log.head(actor) == after_first
    # The store takes writes again, from the committed head, led or not.
    again = store.log.prepare(actor, "t", 3, expected=after_first)
    store.submit([again])
    store.lead()
    assert again.wait(WAIT).seq == 1
    assert [event.data for event in store.log.events(actor)] == [0, 3]
    assert verify_store(store).ok


def test_a_closed_store_takes_no_lead_and_a_read_only_one_commits_nothing(store_path: Any) -> None:
    with Store(store_path) as store:
        store.blobs.put(b"kept")
    assert not store.lead()
    with Store(store_path, readonly=True) as readonly:
        assert not readonly.lead()


def test_a_held_submit_is_committed_by_the_callers_lead_without_waking_the_writer(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store import _commit

    # The chain's first append leaves a tail: the writer thread must not leave its idle wait to merge it meanwhile.
    monkeypatch.setattr(_commit, "IDLE_MERGE_AFTER_S", 3600.0)
    actor = uuid.uuid4()
    committers = committing_threads(store)
    head = EMPTY
    for n in range(ATTEMPTS):
        write = store.log.prepare(actor, "t", n, expected=head)
        head = Head(write.event.seq, write.event.hash)
        idle = store.log._writer._idle
        store.submit([write], hold=True)
        if store.lead():
            assert write.done() and committers[-1] is threading.current_thread()
            assert not store.log._writer._wake.is_set()  # the writer thread slept through it
        else:
            assert not idle  # the writer thread was still at work: it commits it (woken by ``lead``)
        write.wait(WAIT)
        if n >= 50 and committers.count(threading.current_thread()) >= 20:
            break
    assert committers.count(threading.current_thread()) >= 20
    assert [event.data for event in store.log.events(actor)] == list(range(n + 1))


def test_a_tail_waiting_to_be_merged_does_not_keep_callers_from_leading(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store import _commit
    from store._index import WATERMARK_KEY

    monkeypatch.setattr(_commit, "IDLE_MERGE_AFTER_S", 3600.0)  # the tail stays until the store closes
    committers = committing_threads(store)
    actors = [uuid.uuid4() for _ in range(ATTEMPTS)]
    for n, actor in enumerate(actors):  # one start after another: each batch a new chain's first appends
        store.blobs.put(n.to_bytes(8, "big"))  # committed by the writer thread, which then waits to merge the tail
        write = store.log.prepare(actor, "t", n, expected=EMPTY)
        store.submit([write], hold=True)
        store.lead()
        write.wait(WAIT)
        if n >= 50 and committers.count(threading.current_thread()) >= 20:
            break
    assert committers.count(threading.current_thread()) >= 20
    with store.env.read() as txn:
        assert txn.get(WATERMARK_KEY, db=store.env.dbs["meta"]) is not None  # led with a tail waiting all along
    assert verify_store(store).ok


def test_a_held_submit_that_cannot_lead_is_handed_to_the_writer_not_stranded(store: Store) -> None:
    writer = store.log._writer
    put = store.blobs.prepare(b"held")
    committed: list[bytes] = []
    with writer._turn:  # a commit in flight: nobody else may run one
        store.submit([put], hold=True)
        assert not store.lead()
        # The writer thread was woken for it: it takes the turn once it is free, and the put commits.
        thread = threading.Thread(target=lambda: committed.append(put.wait(WAIT)))
        thread.start()
    thread.join(WAIT)
    assert committed == [put.value]
    assert store.blobs.has(put.value)


def test_a_start_commits_on_the_starting_thread_and_is_durable_when_it_returns(tmp_path: Any) -> None:
    from tests.components import wat
    from theater.runtime import Theater

    (tmp_path / "echo.wat").write_text(wat.echo_actor())
    (tmp_path / "echo.toml").write_text('name = "echo"\ncomponent = "echo.wat"\n')
    with Theater(tmp_path / "home") as theater:
        committers = committing_threads(theater.store)
        started = []
        for _ in range(ATTEMPTS):
            before = len(committers)
            actor = theater.start(tmp_path / "echo.toml")
            started.append(actor)
            # Answered only once its events are committed: the chain holds its instance and init.
            head = theater.store.log.head(uuid.UUID(actor))
            assert head.seq >= 2
            if threading.current_thread() in committers[before:]:
                break
        else:
            pytest.fail("no start found the writer idle and led its commit")
        assert theater.request(started[-1], b"ping") == b"ping"
    with Store(tmp_path / "home" / "store") as reopened:
        assert all(reopened.log.head(uuid.UUID(actor)).seq >= 2 for actor in started)
