"""Release of effects after commit: nothing an actor did is seen outside before its events are durable.

Each actor hands the releaser (one thread per runtime) the last append of an operation together with the effects
that operation produced (messages to deliver, responses to give). The releaser waits until that append is durable
and then runs the effects, in the order they were handed over. The actor does not wait: it goes on with its next
operation while the group commit makes the previous one durable, so many operations share one fsync.

When the append does not commit (the disk is full), every effect is called with the store's error instead, and
none is released: an effect decides what to do with it (``settle`` hands it to whoever waits; a message to deliver
is dropped). The error is the one that started the failure (``Watch.explain``), not the stale head that follows
it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from store import PendingAppend
from store.errors import StoreError

log = logging.getLogger("theater.release")

# An effect is called with None once its events are durable, or with the error that kept them from being durable.
Effect = Callable[[BaseException | None], None]


class Watch(Protocol):
    """What the releaser tells the appender of an append (``theater.record.RecordTape``) about its outcome."""

    def committed(self) -> None:
        """The append is durable (and so is everything appended before it)."""

    def explain(self, error: StoreError) -> StoreError:
        """The append failed with ``error``: the error its effects are to be given (the one that started it)."""


_Item = tuple[PendingAppend | None, list[Effect], threading.Event | None, Watch | None]


class Releaser:
    """Runs effects in hand-over order, each after the append it depends on is durable."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="theater-release", daemon=True)
        self._thread.start()

    def hand_over(
        self, pending: PendingAppend | None, effects: list[Effect], *, wait: bool = False, watch: Watch | None = None
    ) -> None:
        """Queue ``effects`` to run once ``pending`` is durable; with ``wait``, block until they have run.

        ``watch`` is told the outcome before the effects run (see ``Watch``).
        """
        done = threading.Event() if wait else None
        self._queue.put((pending, effects, done, watch))
        if done is not None:
            done.wait()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            pending, effects, done, watch = item
            error: BaseException | None = None
            if pending is not None:
                try:
                    pending.wait()
                except StoreError as exc:
                    error = exc if watch is None else watch.explain(exc)
                else:
                    if watch is not None:
                        watch.committed()
            for effect in effects:
                try:
                    effect(error)
                except Exception:  # an effect's own failure must not stop the others
                    log.exception("an effect failed after commit")
            if done is not None:
                done.set()

    def close(self) -> None:
        """Run what is queued, then stop."""
        self._queue.put(None)
        self._thread.join()


def settle(future: Future[Any], value: Any, error: BaseException | None, failed: BaseException | None) -> None:
    """Complete ``future`` unless it is done already: the store's failure wins, then the error, then the value."""
    if future.done():
        return
    if failed is not None or error is not None:
        future.set_exception(failed or error)
    else:
        future.set_result(value)
