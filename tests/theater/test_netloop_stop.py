"""``NetLoop.run_here`` watches its stop flag with one timer per thread's loop, shared by the thread's calls: a stop
still ends a waiting coroutine after many calls on the same thread, and between calls a stop of another call
never reaches the next one."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from theater.netloop import NetLoop, Stopped

WAIT_S = 10


@pytest.fixture
def net() -> Any:
    loop = NetLoop("test-run-here")
    yield loop
    loop.close()


def on_thread(fn: Any) -> Any:
    """Run ``fn()`` on a thread of its own (a worker's stand-in) and return what it returned or raised."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("ok", fn()))
        except BaseException as exc:  # handed to the test thread to check
            outcome.append(("raised", exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    return outcome[0]


async def quick(n: int) -> int:
    await asyncio.sleep(0)
    return n


def test_a_stop_ends_a_waiting_call_after_many_calls_on_the_same_thread(net):
    stop = threading.Event()
    started = threading.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()  # nothing sets it: only the stop ends this

    def calls() -> list[int]:
        done = [net.run_here(quick(n), stop) for n in range(200)]
        threading.Thread(target=lambda: started.wait(WAIT_S) and stop.set()).start()
        try:
            net.run_here(hang(), stop)
        except Stopped:
            return done
        raise AssertionError("the hanging call returned")

    kind, value = on_thread(calls)
    assert kind == "ok" and value == list(range(200))


def test_a_stop_of_one_call_does_not_end_the_next_call_on_the_thread(net):
    first, second = threading.Event(), threading.Event()

    async def stopped_at_once() -> None:
        first.set()
        await asyncio.Event().wait()

    def calls() -> int:
        try:
            net.run_here(stopped_at_once(), first)
        except Stopped:
            pass
        return net.run_here(quick(7), second)  # its own flag is clear: it runs to its end

    assert on_thread(calls) == ("ok", 7)
