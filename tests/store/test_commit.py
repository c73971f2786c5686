"""Group commit: batches of many writes, one transaction each; a failing write or batch does not stop the writer."""

from __future__ import annotations

import re
import threading
import uuid

import pytest

from store import EMPTY, Head, StaleHeadError, Store, StoreWriteError, blob_digest, verify_store
from store._commit import MAX_BATCH_OPS, CommitContext, Pending

A = uuid.UUID(int=0xA)
WAIT = 30.0


class Exploding(Pending):
    """A write whose apply fails with an error the writer does not expect (a bug, not a refusal)."""

    def apply(self, txn, ctx: CommitContext) -> None:
        raise RuntimeError("boom")


def test_writer_survives_an_unexpected_error_and_fails_only_that_batch(store: Store, writer_held) -> None:
    first = store.log.append(A, "t", 0, expected=EMPTY)
    with writer_held(store):
        exploding = store.log._writer.submit(Exploding(None))
        same_batch = store.log.append_async(A, "t", 1, expected=Head(first.seq, first.hash))

    message = f"the store at {store.path} cannot take the write (RuntimeError: boom); nothing was written"
    with pytest.raises(StoreWriteError, match=re.escape(message)):
        exploding.wait(WAIT)
    with pytest.raises(StoreWriteError, match=re.escape(message)):
        same_batch.wait(WAIT)
    assert store.log.head(A) == Head(first.seq, first.hash)
    # The writer is still serving.
    later = store.log.append(A, "t", 2, expected=Head(first.seq, first.hash))
    assert later.seq == 1
    assert [e.data for e in store.log.events(A)] == [0, 2]
    assert verify_store(store).ok


def test_waiters_return_only_once_their_own_write_is_committed_across_full_batches(
    fast_store: Store, writer_held
) -> None:
    count = MAX_BATCH_OPS + 10
    seen: dict[str, bool] = {}
    with writer_held(fast_store):
        pending = [fast_store.blobs.put_async(b"%d" % i) for i in range(count)]

        def waiter() -> None:  # started while everything is queued, before any batch is taken apart
            digest = pending[-1].wait(WAIT)
            seen["visible"] = fast_store.blobs.has(digest)

        thread = threading.Thread(target=waiter)
        thread.start()
    thread.join(WAIT)

    assert seen == {"visible": True}
    assert [p.wait(WAIT) for p in pending[-3:]] == [blob_digest(b"%d" % i) for i in range(count - 3, count)]
    assert len(list(fast_store.blobs)) == count


def test_every_thread_waiting_for_its_write_wakes_once_it_is_committed(fast_store: Store) -> None:
    """The writer notifies waiters only when a thread waits (it counts them): a thread that starts waiting just as
    its write commits must still wake. A lost wake-up would leave a thread in ``wait`` until its timeout."""
    threads, each = 8, 150
    failures: list[BaseException] = []

    def appender(actor: uuid.UUID) -> None:
        head = EMPTY
        try:
            for i in range(each):
                pending = fast_store.log.append_async(actor, "t", i, expected=head)
                event = pending.wait(WAIT)  # each append waited for at once: every commit races a waiter
                head = Head(event.seq, event.hash)
        except BaseException as exc:  # reported below
            failures.append(exc)

    workers = [threading.Thread(target=appender, args=(uuid.UUID(int=0x100 + n),)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT * 2)
    assert failures == []
    assert not any(worker.is_alive() for worker in workers)
    assert fast_store.log.feed_end() == threads * each


def test_a_stale_write_in_a_batch_does_not_disturb_the_others(store: Store, writer_held) -> None:
    other = uuid.UUID(int=0xB)
    with writer_held(store):
        ok = [store.log.append_async(uuid.UUID(int=i + 100), "t", i, expected=EMPTY) for i in range(10)]
        stale = store.log.append_async(other, "t", "x", expected=Head(4, bytes(32)))
        more = [store.log.append_async(uuid.UUID(int=i + 200), "t", i, expected=EMPTY) for i in range(10)]

    assert [p.wait(WAIT).seq for p in ok + more] == [0] * 20
    with pytest.raises(StaleHeadError):
        stale.wait(WAIT)
    assert [e.actor for e in store.log.feed()] == [p.event.actor for p in ok + more]


def test_commit_listener_runs_after_each_commit_with_the_commit_visible(store: Store) -> None:
    seen: list[int] = []
    called = threading.Event()

    def listener() -> None:
        seen.append(store.log.feed_end())
        called.set()

    store.add_commit_listener(listener)
    first = store.log.append(A, "t", 0, expected=EMPTY)
    assert called.wait(WAIT)
    called.clear()
    store.log.append(A, "t", 1, expected=Head(first.seq, first.hash))
    assert called.wait(WAIT)

    assert seen == [1, 2]


def test_a_failing_commit_listener_does_not_stop_the_writer(store: Store, caplog) -> None:
    later_listener_ran = threading.Semaphore(0)

    def failing() -> None:
        raise RuntimeError("listener bug")

    store.add_commit_listener(failing)
    store.add_commit_listener(later_listener_ran.release)
    with caplog.at_level("ERROR", logger="store.commit"):
        first = store.log.append(A, "t", 0, expected=EMPTY)
        assert later_listener_ran.acquire(timeout=WAIT)  # listeners run after the waiters are released
        second = store.log.append(A, "t", 1, expected=Head(first.seq, first.hash))
        assert later_listener_ran.acquire(timeout=WAIT)

    assert second.seq == 1
    assert [r.getMessage() for r in caplog.records] == ["a commit listener failed"] * 2
    assert all(r.exc_info[1].args == ("listener bug",) for r in caplog.records)


B = uuid.UUID(int=0xB)


def test_a_write_depending_on_one_whose_batch_failed_is_refused(store: Store, writer_held) -> None:
    """The attack: a parent's record of a spawn committed while the child's start, in an earlier batch, was lost;
    the parent would name (and release) a child that was never stored."""
    with writer_held(store):
        child = store.log.prepare(A, "created", 0, expected=EMPTY)
        store.submit([child, Exploding(None)])  # the child's batch fails
    with pytest.raises(StoreWriteError):
        child.wait(WAIT)
    parent = store.log.prepare(B, "spawned", 0, expected=EMPTY)
    parent.after = (child,)
    store.submit([parent])  # a later batch, which would commit
    with pytest.raises(StoreWriteError):
        parent.wait(WAIT)
    assert store.log.head(A) == EMPTY
    assert store.log.head(B) == EMPTY
    assert store.log.append(B, "t", 1, expected=EMPTY).seq == 0  # the writer goes on


def test_a_write_depending_on_one_refused_in_the_same_batch_is_refused(store: Store, writer_held) -> None:
    first = store.log.append(A, "t", 0, expected=EMPTY)
    with writer_held(store):
        stale = store.log.prepare(A, "t", 1, expected=EMPTY)  # A's head has moved: refused in this batch
        parent = store.log.prepare(B, "spawned", 0, expected=EMPTY)
        parent.after = (stale,)
        store.submit([stale, parent])
    with pytest.raises(StaleHeadError):
        stale.wait(WAIT)
    with pytest.raises(StaleHeadError):
        parent.wait(WAIT)
    assert store.log.head(A) == Head(first.seq, first.hash)
    assert store.log.head(B) == EMPTY


def test_a_write_depending_on_a_committed_one_commits(store: Store, writer_held) -> None:
    with writer_held(store):
        child = store.log.prepare(A, "created", 0, expected=EMPTY)
        parent = store.log.prepare(B, "spawned", 0, expected=EMPTY)
        parent.after = (child,)
        store.submit([child])
        store.submit([parent])
    assert parent.wait(WAIT).seq == 0
    assert child.wait(WAIT).seq == 0


def test_a_write_depending_on_a_failed_chain_reports_the_first_failure_not_the_stale_head_after_it(
    store: Store, writer_held
) -> None:
    with writer_held(store):
        first = store.log.prepare(A, "created", 0, expected=EMPTY)
        store.submit([first, Exploding(None)])  # the child's first batch fails
    with pytest.raises(StoreWriteError):
        first.wait(WAIT)
    second = store.log.prepare(A, "t", 1, expected=Head(first.event.seq, first.event.hash))
    store.submit([second])  # chained on what was lost: a stale head
    with pytest.raises(StaleHeadError):
        second.wait(WAIT)
    parent = store.log.prepare(B, "spawned", 0, expected=EMPTY)
    parent.after = (first, second)
    store.submit([parent])
    with pytest.raises(StoreWriteError, match="boom"):
        parent.wait(WAIT)
