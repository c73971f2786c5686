"""One asyncio event loop per runtime, on a background thread, for the network handlers (``http-client``,
``http-framework``).

Handlers run on their actor's thread and see the runtime only through ``theater.host``; they find the loop of their
runtime with ``of(actor.store)`` (one home's store belongs to one ``Theater``). The loop's thread starts on first use
and ``close(store)`` (called by ``Theater.close``) ends it after closing whatever was registered to close with it
(client sessions, servers). Coroutines are handed over with ``NetLoop.submit``, which returns a
``concurrent.futures.Future`` a host function waits on with ``actor.wait_for`` (so a stop ends the wait), and which
it may cancel (the task is cancelled on the loop).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

CLOSE_TIMEOUT_S = 5.0


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


__all__ = ["NetLoop", "actor_ended", "close", "of"]
