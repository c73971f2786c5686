"""``NetLoop.answer``: how an actor's answer, settled on another thread, reaches a request waiting on the runtime's
network loop. Answers settled together wake the loop once; each waiter gets its own outcome (a value, an error);
giving up on an answer (a timeout, a client gone) cancels it, so a request still queued never runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from theater.netloop import NetLoop

WAIT = 10.0


@pytest.fixture
def net() -> Iterator[NetLoop]:
    loop = NetLoop("test-net")
    yield loop
    loop.close()


def _wakeups(net: NetLoop) -> list[Any]:
    """Count the loop's thread-safe wake-ups from now on."""
    loop = net.loop
    seen: list[Any] = []
    original = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(callback)
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    return seen


def test_answers_settled_together_wake_the_loop_once_and_each_gets_its_outcome(net: NetLoop) -> None:
    answers: list[Future[Any]] = [Future() for _ in range(3)]

    async def wait_all() -> list[Any]:
        waiters = [net.answer(answer) for answer in answers]
        return await asyncio.gather(*waiters, return_exceptions=True)

    gathered = net.submit(wait_all())
    hold, held = threading.Event(), threading.Event()

    def block() -> None:  # keeps the loop busy while the three answers are settled
        held.set()
        hold.wait(WAIT)

    wakeups = _wakeups(net)
    net.loop.call_soon_threadsafe(block)
    assert held.wait(WAIT)
    answers[0].set_result("first")
    answers[1].set_exception(ValueError("the actor failed"))
    answers[2].set_result(b"third")
    hold.set()
    first, error, third = gathered.result(WAIT)
    assert (first, third) == ("first", b"third")
    assert isinstance(error, ValueError) and str(error) == "the actor failed"
    assert len(wakeups) == 2  # the blocker, then one wake-up for the three answers


def test_giving_up_on_an_answer_cancels_it_so_a_queued_request_never_runs(net: NetLoop) -> None:
    answer: Future[Any] = Future()

    async def give_up() -> None:
        async with asyncio.timeout(0):
            await net.answer(answer)

    with pytest.raises(TimeoutError):
        net.submit(give_up()).result(WAIT)
    assert answer.cancelled()
    assert not answer.set_running_or_notify_cancel()  # the actor's operation would not run


def test_an_answer_settled_before_it_is_awaited_still_arrives(net: NetLoop) -> None:
    answer: Future[Any] = Future()
    answer.set_result(42)

    async def wait() -> Any:
        return await net.answer(answer)

    assert net.submit(wait()).result(WAIT) == 42
