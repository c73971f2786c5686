"""Release of effects after commit: nothing an actor did is seen outside before its events are durable.

Each actor hands the releaser the last append of an operation together with the effects that operation produced
(messages to deliver, responses to give). The effects run once that append is durable, in the order they were
handed over. The actor does not wait: it goes on with its next operation while the group commit makes the
previous one durable, so many operations share one fsync.

Who runs them: most effects only settle a future (the answer to a caller, ``Settle``). Those run on the thread
that finishes the write they wait for, the store's writer, right after its commit (``Store.add_settle_listener``),
or on the handing-over thread when the write is durable already: a reply costs no hand-off to another thread
before its caller wakes. Every other effect (a message to deliver into a mailbox, a supervisor to tell), and every
effect of a write that failed, runs on the releaser's own thread, which the writer only wakes. One runner at a time
takes effects from the front of one queue, so the hand-over order holds whoever runs them; a future's done
callbacks therefore run on the writer thread too and must stay short and never wait on the store.

When the append does not commit (the disk is full), every effect is called with the store's error instead, and
none is released: an effect decides what to do with it (``settle`` hands it to whoever waits; a message to deliver
is dropped). The error is the one that started the failure (``Watch.explain``), not the stale head that follows
it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from store import PendingAppend, Store
from store.errors import ReadOnlyError, StoreError

log = logging.getLogger("theater.release")

# An effect is called with None once its events are durable, or with the error that kept them from being durable.
Effect = Callable[[BaseException | None], None]


class Watch(Protocol):
    """What the releaser tells the appender of an append (``theater.record.RecordTape``) about its outcome."""

    def committed(self) -> None:
        """The append is durable (and so is everything appended before it)."""

    def explain(self, error: StoreError) -> StoreError:
        """The append failed with ``error``: the error its effects are to be given (the one that started it)."""


class Settle:
    """The effect that completes ``future`` with ``value`` (or ``error``) once durable (``settle``); it never
    waits, so whichever thread finishes the commit may run it."""

    __slots__ = ("future", "value", "error")

    def __init__(self, future: Future[Any], value: Any = None, error: BaseException | None = None) -> None:
        self.future = future
        self.value = value
        self.error = error

    def __call__(self, failed: BaseException | None) -> None:
        settle(self.future, self.value, self.error, failed)


class _Item:
    __slots__ = ("pending", "effects", "done", "watch", "quick")

    def __init__(self, pending: PendingAppend | None, effects: list[Effect], done: threading.Event | None,
                 watch: Watch | None) -> None:
        self.pending = pending
        self.effects = effects
        self.done = done
        self.watch = watch
        self.quick = all(type(effect) is Settle for effect in effects)  # the committing thread may run them

    def ready(self) -> bool:
        return self.pending is None or self.pending.done()


class Releaser:
    """Runs effects in hand-over order, each after the append it depends on is durable.

    Args:
        store: the store whose commits release the effects; the releaser listens to it (``add_settle_listener``)
            so the writer settles futures right after its commit. Without one, every effect waits for the
            releaser's thread.
    """

    def __init__(self, store: Store | None = None) -> None:
        self._items: deque[_Item] = deque()
        self._running = threading.Lock()  # held by whoever runs effects: one runner at a time, in queue order
        self._wake = threading.Event()
        self._closing = False
        self._quick = False  # the writer settles futures: set once it listens
        self._thread = threading.Thread(target=self._run, name="theater-release", daemon=True)
        self._thread.start()
        if store is not None:
            try:
                store.add_settle_listener(self.settled)
            except ReadOnlyError:
                return  # it commits nothing: every effect waits for the releaser's thread
            self._quick = True

    def hand_over(
        self, pending: PendingAppend | None, effects: list[Effect], *, wait: bool = False, watch: Watch | None = None
    ) -> None:
        """Queue ``effects`` to run once ``pending`` is durable; with ``wait``, block until they have run.

        ``watch`` is told the outcome before the effects run (see ``Watch``).
        """
        item = _Item(pending, effects, threading.Event() if wait else None, watch)
        self._items.append(item)
        if item.ready():  # its commit may have finished before it was queued: nobody else looks at it now
            self.settled(True)  # no lock is held here (``RecordTape.last`` let its own go)
        if item.done is not None:
            item.done.wait()

    def settled(self, inline: bool = True) -> None:
        """Writes have finished: run the settling effects now ready at the front of the queue on this thread (when
        ``inline``: it holds no lock an effect or a ``Watch`` may take) and wake the releaser's thread for the
        others. Never waits (the writer calls it after every batch)."""
        if not self._quick or not inline:
            self._wake.set()
            return
        if not self._running.acquire(blocking=False):
            self._wake.set()  # a runner is at work; it looks again when it is done
            return
        try:
            items = self._items
            while items:
                item = items[0]
                if not item.ready():
                    return
                if not item.quick or _failed(item.pending):
                    self._wake.set()
                    return
                items.popleft()
                self._release(item)
        finally:
            self._running.release()

    def _run(self) -> None:
        items = self._items
        while True:
            self._wake.wait()
            self._wake.clear()  # cleared before looking: a wake-up while we run is not lost
            with self._running:
                while items and (items[0].ready() or self._closing):
                    item = items.popleft()
                    if not item.ready() and item.pending is not None:
                        try:  # closing: wait for what is still being committed
                            item.pending.wait()
                        except StoreError:
                            pass  # _release reports it
                    self._release(item)
            if self._closing and not items:
                return

    def _release(self, item: _Item) -> None:
        error: BaseException | None = None
        pending, watch = item.pending, item.watch
        if pending is not None:
            try:
                pending.wait(0)
            except StoreError as exc:
                error = exc if watch is None else watch.explain(exc)
            else:
                if watch is not None:
                    watch.committed()
        for effect in item.effects:
            try:
                effect(error)
            except Exception:  # an effect's own failure must not stop the others
                log.exception("an effect failed after commit")
        if item.done is not None:
            item.done.set()

    def close(self) -> None:
        """Run what is queued (waiting for its commits), then stop."""
        self._closing = True
        self._wake.set()
        self._thread.join()


def _failed(pending: PendingAppend | None) -> bool:
    """True when ``pending`` (finished) was not committed."""
    if pending is None:
        return False
    try:
        pending.wait(0)
    except StoreError:
        return True
    return False


def settle(future: Future[Any], value: Any, error: BaseException | None, failed: BaseException | None) -> None:
    """Complete ``future`` unless it is done already: the store's failure wins, then the error, then the value."""
    if future.done():
        return
    if failed is not None or error is not None:
        future.set_exception(failed or error)
    else:
        future.set_result(value)
