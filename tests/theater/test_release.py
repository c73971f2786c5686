"""The releaser: effects run once their append is durable, in hand-over order, whichever thread runs them."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from typing import Any

import pytest

from store import EMPTY, Head, Store
from store.errors import StoreFullError
from theater.release import Releaser, Settle

WAIT_S = 30


class HeldWrite:
    """A write whose commit the test finishes by hand (``finish``), as the writer would."""

    def __init__(self) -> None:
        self._done = False
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def wait(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return None

    def finish(self, releaser: Releaser, error: BaseException | None = None) -> None:
        self._error, self._done = error, True
        releaser.settled(True)


class Explains:
    def __init__(self) -> None:
        self.committed_calls = 0

    def committed(self) -> None:
        self.committed_calls += 1

    def explain(self, error: Any) -> Any:
        return error


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store") as store:
        yield store


@pytest.fixture
def releaser(store):
    releaser = Releaser(store)
    yield releaser
    releaser.close()


def test_a_reply_is_never_settled_before_its_append_is_durable(store, releaser):
    actor = uuid.uuid4()
    seen: list[bool] = []
    head = EMPTY
    replies = []
    for i in range(50):
        pending = store.log.prepare(actor, "test/event", {"i": i}, expected=head)
        head = Head(pending.event.seq, pending.event.hash)
        store.submit([pending])
        reply: Future[int] = Future()
        reply.add_done_callback(lambda _, pending=pending: seen.append(pending.done()))
        releaser.hand_over(pending, [Settle(reply, i)])
        replies.append(reply)
    assert [reply.result(WAIT_S) for reply in replies] == list(range(50))
    assert seen == [True] * 50


def test_the_thread_that_finishes_the_write_settles_the_reply(releaser):
    write, reply = HeldWrite(), Future()
    releaser.hand_over(write, [Settle(reply, b"pong")])  # type: ignore[arg-type]
    assert not reply.done()
    settled_on: list[threading.Thread] = []
    reply.add_done_callback(lambda _: settled_on.append(threading.current_thread()))
    write.finish(releaser)
    assert reply.result(0) == b"pong"
    assert settled_on == [threading.current_thread()]


def test_effects_keep_hand_over_order_when_one_needs_the_releaser_thread(releaser):
    order: list[str] = []
    first, second, third = HeldWrite(), HeldWrite(), HeldWrite()
    before, after = Future(), Future()
    before.add_done_callback(lambda _: order.append("reply 1"))
    after.add_done_callback(lambda _: order.append("reply 3"))
    delivered = threading.Event()

    def deliver(failed: BaseException | None) -> None:  # a message into a mailbox: not run by the writer
        order.append("message 2")
        delivered.set()

    releaser.hand_over(first, [Settle(before, 1)])  # type: ignore[arg-type]
    releaser.hand_over(second, [deliver])  # type: ignore[arg-type]
    releaser.hand_over(third, [Settle(after, 3)])  # type: ignore[arg-type]
    third.finish(releaser)
    second.finish(releaser)
    assert not before.done() and not after.done()  # the first write holds back everything after it
    first.finish(releaser)
    assert after.result(WAIT_S) == 3 and delivered.wait(WAIT_S)
    assert order == ["reply 1", "message 2", "reply 3"]


def test_a_reply_whose_append_failed_gets_the_stores_error_not_its_value(releaser):
    write, reply, watch = HeldWrite(), Future(), Explains()
    releaser.hand_over(write, [Settle(reply, b"never seen")], watch=watch)  # type: ignore[arg-type]
    write.finish(releaser, StoreFullError("/store", "the disk is full"))
    with pytest.raises(StoreFullError, match="the disk is full"):
        reply.result(WAIT_S)
    assert watch.committed_calls == 0


def test_a_flush_waits_until_its_effects_have_run(store, releaser):
    actor = uuid.uuid4()
    pending = store.log.prepare(actor, "test/event", {"i": 0}, expected=EMPTY)
    store.submit([pending])
    ran: list[bool] = []
    releaser.hand_over(pending, [lambda failed: ran.append(failed is None)], wait=True)
    assert ran == [True]
