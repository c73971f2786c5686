"""One asyncio event loop per runtime, on a background thread, for the network handlers (``http-client``,
``http-framework``).

Handlers run on their actor's thread and see the runtime only through ``theater.host``; they find the loop of their
runtime with ``of(actor.store)`` (one home's store belongs to one ``Theater``). The loop's thread starts on first use
and ``close(store)`` (called by ``Theater.close``) ends it after closing whatever was registered to close with it
(client sessions, servers). Coroutines are handed over with ``NetLoop.submit``, which returns a
``concurrent.futures.Future`` a host function waits on with ``actor.wait_for`` (so a stop ends the wait), and which
it may cancel (the task is cancelled on the loop). The other way, ``NetLoop.answer`` gives a coroutine on the loop
an asyncio future for a ``concurrent.futures.Future`` settled on another thread (an actor's answer), the answers
settled together waking the loop once.

A host function that would only hand a coroutine over and wait for it (a client request) runs it instead on a loop
of its own thread (``NetLoop.run_here``): no thread hand-off per call, each worker thread keeping its loop and
what it made on it (``local_shared``: its client sessions) for its later calls, all closed with the runtime's loop.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

CLOSE_TIMEOUT_S = 5.0
STOP_POLL_S = 0.05  # how often ``run_here`` looks at its stop flag


class Stopped(Exception):
    """``run_here``'s stop flag was set: the coroutine was cancelled."""


class NetLoop:
    """An asyncio event loop on its own daemon thread, started lazily, with things to close when it ends."""

    def __init__(self, name: str = "theater-net") -> None:
        self._name = name
        self._lock = threading.RLock()  # ``shared``'s make may register with ``when_ended``
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._closed = False
        self._shared: dict[Any, Any] = {}
        self._on_end: dict[Any, list[Callable[[], None]]] = {}
        self._local = threading.local()  # the calling threads' own loops and what they made on them
        # Each calling thread's own loop and what it made, closed when the thread is gone or this loop closes.
        self._here: list[tuple[threading.Thread, asyncio.AbstractEventLoop, dict[Any, Any]]] = []
        # Settled futures waiting for the loop to take their outcomes (``answer``), and whether it was woken for them.
        self._settled: deque[tuple[Future[Any], asyncio.Future[Any]]] = deque()
        self._settled_lock = threading.Lock()
        self._woken = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (started now if it was not).

        Raises:
            RuntimeError: the loop was closed (its runtime closed).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the runtime's network loop is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self._name, daemon=True)
                self._thread.start()
                started.wait()
                self._loop = loop
            return self._loop

    def on_thread(self) -> bool:
        """True on the loop's own thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop; cancelling the returned future cancels the task."""
        try:
            loop = self.loop
        except RuntimeError:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def answer(self, future: Future[T]) -> asyncio.Future[T]:
        """On the loop: an asyncio future taking ``future``'s outcome once it is done (``asyncio.wrap_future``,
        with fewer wake-ups). The thread settling ``future`` wakes the loop only when no wake-up is pending already:
        the answers a commit settles together are taken in one pass of the loop, not one wake-up (a write to the
        loop's self-pipe, a thread switch) each. Cancelling the asyncio future cancels ``future``.
        """
        loop = self.loop
        waiter: asyncio.Future[T] = loop.create_future()

        def cancelled(done: asyncio.Future[T]) -> None:
            if done.cancelled():
                future.cancel()

        waiter.add_done_callback(cancelled)
        future.add_done_callback(lambda done: self._settle(done, waiter))
        return waiter

    def _settle(self, future: Future[Any], waiter: asyncio.Future[Any]) -> None:
        """``future`` is done (on the thread that settled it): queue it for the loop, waking it if need be."""
        with self._settled_lock:
            self._settled.append((future, waiter))
            if self._woken:
                return
            self._woken = True
        loop = self._loop
        try:
            if loop is None:
                raise RuntimeError("no loop")
            loop.call_soon_threadsafe(self._take_settled)
        except RuntimeError:  # the loop is closed: nobody waits any more
            with self._settled_lock:
                self._settled.clear()
                self._woken = False

    def _take_settled(self) -> None:
        """On the loop: hand every settled future's outcome to its waiter."""
        with self._settled_lock:
            settled, self._settled = self._settled, deque()
            self._woken = False
        for future, waiter in settled:
            if waiter.done():
                continue  # given up on (a timeout)
            if future.cancelled():
                waiter.cancel()
                continue
            error = future.exception()
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(future.result())

    def can_run_here(self) -> bool:
        """Whether ``run_here`` may run on this thread (it runs no event loop)."""
        return asyncio._get_running_loop() is None

    def run_here(self, coro: Coroutine[Any, Any, T], stop: threading.Event) -> T:
        """Run ``coro`` to its end on the calling thread's own loop (made on its first use, closed with this one),
        without handing it to another thread. A set ``stop`` cancels it (looked at every ``STOP_POLL_S``, by one
        timer the thread's calls share: ``_StopWatch``).

        Raises:
            RuntimeError: the runtime's loop is closed, or this thread runs a loop already (use ``submit``);
                ``coro`` was not started.
            Stopped: ``stop`` was set.
        """
        try:
            loop = self._own_loop()
        except RuntimeError:
            coro.close()
            raise

        task = loop.create_task(coro)
        watch: _StopWatch = self._local.watch
        watch.task, watch.stop, watch.stopped = task, stop, False
        watch.arm()
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            if watch.stopped:
                raise Stopped() from None
            raise
        finally:
            watch.task = watch.stop = None

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        if not self.can_run_here():
            raise RuntimeError("this thread runs an event loop already")
        loop: asyncio.AbstractEventLoop | None = getattr(self._local, "loop", None)
        if loop is not None and not self._closed:
            return loop
        with self._lock:
            if self._closed:
                raise RuntimeError("the runtime's network loop is closed")
            gone = [entry for entry in self._here if not entry[0].is_alive()]  # threads that retired
            self._here = [entry for entry in self._here if entry[0].is_alive()]
            loop = self._local.loop = asyncio.new_event_loop()
            self._local.shared = {}
            self._local.watch = _StopWatch(loop)
            self._here.append((threading.current_thread(), loop, self._local.shared))
        for _, own, made in gone:
            _close_own(own, made)
        return loop

    def local_shared(self, key: Any, make: Callable[[], Any]) -> Any:
        """``shared`` for the calling thread's own loop (in a coroutine ``run_here`` runs): its object kept under
        ``key``, made by ``make()`` on first use; an object with an async ``close`` is closed with the runtime."""
        shared: dict[Any, Any] = self._local.shared
        value = shared.get(key)
        if value is None:
            value = shared[key] = make()
        return value

    def shared(self, key: Any, make: Callable[[], Any]) -> Any:
        """The object kept under ``key``, made by ``make()`` on first use (under a lock: any thread may ask; a
        ``make`` that builds objects belonging to the loop, such as a client session, must run on it)."""
        with self._lock:
            value = self._shared.get(key)
            if value is None:
                value = self._shared[key] = make()
            return value

    def forget(self, key: Any) -> None:
        """Drop the object kept under ``key``."""
        with self._lock:
            self._shared.pop(key, None)

    def when_ended(self, actor_id: Any, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on the ending actor's thread) once when the actor stops, exits or fails."""
        with self._lock:
            self._on_end.setdefault(actor_id, []).append(callback)

    def actor_ended(self, actor_id: Any) -> None:
        """The actor ended: run what was registered with ``when_ended`` for it."""
        with self._lock:
            callbacks = self._on_end.pop(actor_id, [])
        for callback in callbacks:
            callback()

    def close_with(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Await ``closer()`` on the loop when it closes (call on the loop's thread)."""
        self._closers.append(closer)

    def close(self) -> None:
        """Close what was registered (servers, sessions), then stop the loop and join its thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
            here, self._here = self._here, []
        for _, own, made in here:
            _close_own(own, made)
        if loop is None or thread is None:
            return

        async def close_all() -> None:
            for closer in reversed(self._closers):
                try:
                    await closer()
                except Exception:  # closing: one failing closer must not keep the others open
                    pass
            self._closers.clear()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(CLOSE_TIMEOUT_S)
        except (TimeoutError, RuntimeError):
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()


class _StopWatch:
    """Looks at the stop flag of the call ``run_here`` runs on one thread's own loop every ``STOP_POLL_S``.

    One timer per loop, not one per call: it stays armed between calls (the loop does not run then, so it fires,
    late, in the next call's first pass, which looks at that call's flag at once) and is re-armed only while a call
    runs. A call's cost is two attribute writes, not a timer made, pushed on the loop's heap and cancelled.
    """

    __slots__ = ("loop", "task", "stop", "stopped", "armed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.task: asyncio.Task[Any] | None = None
        self.stop: threading.Event | None = None
        self.stopped = False
        self.armed = False

    def arm(self) -> None:
        if not self.armed:
            self.armed = True
            self.loop.call_later(STOP_POLL_S, self._look)

    def _look(self) -> None:
        self.armed = False
        task, stop = self.task, self.stop
        if task is None or stop is None:
            return  # no call runs: the next one arms it again
        if stop.is_set():
            self.stopped = True
            task.cancel()
            return
        self.arm()


def _close_own(loop: asyncio.AbstractEventLoop, made: dict[Any, Any]) -> None:
    """Close a thread's own loop and what it made (its thread is done with it: the runtime is closing)."""
    if loop.is_running():
        return  # its thread is still in a call: the loop goes with the thread
    values = list(made.values())
    made.clear()

    async def close_all() -> None:
        closers = [closing for value in values if asyncio.iscoroutine(closing := value.close())]
        await asyncio.gather(*closers, return_exceptions=True)

    try:
        loop.run_until_complete(close_all())
    except RuntimeError:
        pass  # its thread took it up meanwhile: it goes with the thread
    else:
        loop.close()


_LOOPS: weakref.WeakKeyDictionary[Any, NetLoop] = weakref.WeakKeyDictionary()
_LOOPS_LOCK = threading.Lock()


def of(owner: Any) -> NetLoop:
    """The network loop of the runtime ``owner`` belongs to (handlers pass ``actor.store``); made on first use."""
    with _LOOPS_LOCK:
        loop = _LOOPS.get(owner)
        if loop is None:
            loop = _LOOPS[owner] = NetLoop()
        return loop


def actor_ended(owner: Any, actor_id: Any) -> None:
    """An actor of ``owner``'s runtime ended (``Theater``, on the actor's thread): stop what it served."""
    with _LOOPS_LOCK:
        loop = _LOOPS.get(owner)
    if loop is not None:
        loop.actor_ended(actor_id)


def close(owner: Any) -> None:
    """Close the network loop of ``owner``'s runtime, if it has one (``Theater.close``)."""
    with _LOOPS_LOCK:
        loop = _LOOPS.pop(owner, None)
    if loop is not None:
        loop.close()


__all__ = ["NetLoop", "Stopped", "actor_ended", "close", "of"]
