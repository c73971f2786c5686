"""The scheduler: every actor's operations run on one bounded pool of worker threads per ``Theater``.

An actor is a mailbox (``theater.mailbox``), not a thread. When work arrives in an idle actor's mailbox the actor
joins the ready queue, at most once (the mailbox keeps that flag). A worker takes the actor at the head, runs up
to ``quantum`` of its operations in mailbox order (control lane first) and, if more is waiting, puts it back at
the tail: a busy actor cannot starve the others. No two workers ever hold one actor, so an actor still runs one
operation at a time, and ``current()`` tells a worker which actor it is running.

Blocking hand-off: wasm runs on the worker's native stack, so an actor waiting inside a host call (a request to
another actor, a sleep, a child's start) holds its worker until the wait ends. Every such wait is wrapped in
``blocking()``. While it lasts the worker does not count against the pool: when work is waiting and fewer than
``workers`` threads are runnable, the scheduler starts a spare one (Java's ``ForkJoinPool.managedBlock``, Go's
hand-off of a processor on a blocking system call). Spare threads retire after ``idle_s`` without work while more
than ``workers`` are runnable. So thousands of actors can each wait on another actor at the same moment without
deadlocking the pool, at the price of one thread per actor waiting. A worker that waits hands its turn on: an
actor it queues from inside ``blocking`` (the target of its request, the child it starts) goes to the head of the
ready queue, not the tail (Go's ``runnext``), so a wait lasts as long as the answer takes, not as long as the queue
is. Each waiting worker jumps one actor ahead at a time, so the others' turns are delayed, never lost.

A start runs in place (``in_place``): the thread that starts an actor (the embedder's, or a parent's worker in a
spawn) runs its first operation itself while it holds the new actor's mailbox, so a start costs no hand-off.

Threads are capped at ``max_threads`` (and by the system). A wait that would leave no thread runnable, when no
thread can be started, is refused with ``ResourceExhausted`` (the host call answers ``err``): the pool always keeps
one runnable thread, so the actors that are not waiting keep running and the waits already in place end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from theater.errors import ResourceExhausted

# Runnable threads: wasm calls release the GIL, so a small multiple of the cores keeps them busy.
DEFAULT_WORKERS = 2 * (os.cpu_count() or 1)
# Every thread, runnable or waiting; one per actor waiting in a host call beyond ``workers``. Each thread costs about
# four memory mappings (its stack and wasmtime's signal stack, each with a guard page) and Linux allows 65,530 per
# process by default: past that, wasmtime cannot set up a thread's signal stack and aborts the process.
DEFAULT_MAX_THREADS = 12_000
QUANTUM = 4  # operations of one actor per turn before the others get theirs
IDLE_S = 2.0  # seconds a thread waits for work before it retires (while more than ``workers`` are runnable)
CLOSE_WAIT_S = 5.0

log = logging.getLogger("theater.scheduler")


class Runnable(Protocol):
    """What the ready queue holds: an actor with queued work (``theater.actor.Actor``)."""

    @property
    def id(self) -> Any: ...

    def run_slice(self, quantum: int) -> bool:
        """Run up to ``quantum`` operations in mailbox order; True when more is waiting (queue it again)."""
        ...


class _Worker:
    """What a worker thread knows about itself (kept in a thread-local); ``scheduler`` is None on a thread of
    the embedder running an operation in place (``in_place``)."""

    __slots__ = ("scheduler", "running", "blocked", "depth")

    def __init__(self, scheduler: Scheduler | None) -> None:
        self.scheduler = scheduler
        self.running: Runnable | None = None
        self.blocked = False
        self.depth = 0  # operations run in place, one inside the other, on this thread now


_local = threading.local()


def _worker() -> _Worker | None:
    worker: _Worker | None = getattr(_local, "worker", None)
    return worker


def current() -> Runnable | None:
    """The actor whose operation the calling thread is running now; None off the scheduler's workers."""
    worker = _worker()
    return None if worker is None else worker.running


@contextmanager
def blocking() -> Iterator[None]:
    """Wrap a wait on something another actor's operation (or the clock) must produce.

    In one of an actor's operations (on a worker, or in place), the actor first hands over what it owes and has
    the writes its tape holds handed over should the wait last (its ``before_wait`` and ``after_wait``). On a
    worker, the scheduler keeps ``workers`` threads runnable while this one waits (see the module's docstring);
    off the workers, and nested, it does nothing more.

    Raises:
        ResourceExhausted: this wait would leave no thread to run the other actors and no thread can be
            started (``max_threads`` reached, or the system refused one); nothing has been waited for.
    """
    worker = _worker()
    running = None if worker is None else worker.running
    if worker is None or worker.blocked or running is None:
        yield
        return
    before_wait = getattr(running, "before_wait", None)
    # What its earlier operations of this turn owe, and its held writes, are not held back by the wait.
    after = before_wait is not None and before_wait()
    try:
        scheduler = worker.scheduler
        if scheduler is None:  # in place on a thread of the embedder
            yield
            return
        scheduler._enter(worker)
        try:
            yield
        finally:
            scheduler._leave(worker)
    finally:
        if after:
            running.after_wait()  # type: ignore[attr-defined]


def in_place_depth() -> int:
    """How many operations run in place (``in_place``), one inside the other, on the calling thread now."""
    worker = _worker()
    return 0 if worker is None else worker.depth


@contextmanager
def in_place(item: Runnable) -> Iterator[None]:
    """Run an operation of ``item`` on the calling thread, as the worker holding it would: ``current()`` is
    ``item`` inside, and the actor it was running before (if any) again after.

    Only for an actor whose mailbox the caller holds (a fresh actor made held, whose first operation is its start):
    nothing else can run it meanwhile. Whatever its operation waits on goes through ``blocking`` as on a worker
    (on a thread of the embedder ``blocking`` does nothing: it is not one of the pool's). Each operation run in
    place inside another deepens the thread's native stack by a guest's, so callers bound the nesting
    (``in_place_depth``).
    """
    worker = _worker()
    if worker is None:
        worker = _local.worker = _Worker(None)
    before = worker.running
    worker.running = item
    worker.depth += 1
    try:
        yield
    finally:
        worker.depth -= 1
        worker.running = before


class Scheduler:
    """The worker pool and ready queue of one runtime.

    Args:
        workers: threads kept runnable (default ``DEFAULT_WORKERS``, twice the cores, at most ``max_threads``).
        max_threads: the most threads at once, waiting ones included (at least ``workers``).
        quantum: operations of one actor per turn.
        idle_s: seconds a thread beyond ``workers`` waits for work before it retires.

    Raises:
        ValueError: a setting is out of range.
        ResourceExhausted: not even the first worker thread could be started.
    """

    def __init__(
        self, *, workers: int | None = None, max_threads: int | None = None, quantum: int = QUANTUM,
        idle_s: float = IDLE_S,
    ) -> None:
        if workers is None:
            workers = DEFAULT_WORKERS if max_threads is None else max(1, min(DEFAULT_WORKERS, max_threads))
        self.workers = workers
        self.max_threads = max(DEFAULT_MAX_THREADS, workers) if max_threads is None else max_threads
        if self.workers < 1 or quantum < 1:
            raise ValueError(f"workers and quantum must be at least 1, got {self.workers} and {quantum}")
        if self.max_threads < self.workers:
            raise ValueError(f"max_threads ({self.max_threads}) must be at least workers ({self.workers})")
        self.quantum = quantum
        self.idle_s = idle_s
        self.peak_threads = 0  # the most threads that ever existed at once
        self._cond = threading.Condition(threading.Lock())
        self._ready: deque[Runnable] = deque()
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # threads waiting for work
        self._wakeups = 0  # idle threads notified that have not taken work yet
        self._blocked = 0  # threads inside ``blocking``
        self._refused: str | None = None  # why the system last refused a thread
        self._closed = False
        with self._cond:
            if not self._start_locked():
                raise ResourceExhausted("threads", "-", f"no worker thread could be started ({self._refused})")

    @property
    def threads(self) -> int:
        """Worker threads alive now, waiting ones included."""
        with self._cond:
            return len(self._threads)

    def ready(self, item: Runnable) -> None:
        """Queue an actor that has work (its mailbox calls this once per idle-to-busy change): at the tail, or at
        the head when a worker inside ``blocking`` queues it (the actor it is about to wait on)."""
        worker = _worker()
        waiting = worker is not None and worker.blocked and worker.scheduler is self
        with self._cond:
            if waiting:
                self._ready.appendleft(item)
            else:
                self._ready.append(item)
            self._wake_or_start_locked()

    def close(self) -> None:
        """Run what is queued, then let every worker end; waits a few seconds for those not in a host call."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + CLOSE_WAIT_S
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    # Workers.

    def _work(self, worker: _Worker) -> None:
        _local.worker = worker
        try:
            item = self._next()
            while item is not None:
                worker.running = item
                try:
                    more = item.run_slice(self.quantum)
                except Exception:  # never lose the worker (nor the actor: it stays queued) to a bug
                    log.exception("an actor's turn failed in the scheduler")
                    more = True
                finally:
                    worker.running = None
                item = self._turn_over(item) if more else self._next()
        finally:
            with self._cond:
                self._threads.discard(threading.current_thread())

    def _turn_over(self, item: Runnable) -> Runnable:
        """After a turn of an actor with more waiting: it goes to the tail and the head is next; with nobody else
        waiting it simply goes on (no other worker is woken for it)."""
        with self._cond:
            if not self._ready:
                return item
            self._ready.append(item)
            return self._ready.popleft()

    def _next(self) -> Runnable | None:
        """The next actor to run, waiting for one; None when this thread is to end."""
        with self._cond:
            while not self._ready:
                if self._closed:
                    self._threads.discard(threading.current_thread())
                    return None
                self._idle += 1
                notified = self._cond.wait(self.idle_s)
                self._idle -= 1
                if notified and self._wakeups:
                    self._wakeups -= 1
                runnable = len(self._threads) - self._blocked
                if not notified and not self._ready and runnable > self.workers:
                    self._threads.discard(threading.current_thread())  # more than the pool needs: retire
                    return None
            return self._ready.popleft()

    def _wake_or_start_locked(self) -> None:
        if self._idle > self._wakeups:
            self._wakeups += 1
            self._cond.notify()
        elif len(self._threads) - self._blocked < self.workers:
            self._start_locked()

    def _start_locked(self) -> bool:
        """Start one worker thread; False when the cap is reached or the system refused it."""
        if len(self._threads) >= self.max_threads:
            self._refused = f"max_threads={self.max_threads} reached"
            return False
        worker = _Worker(self)
        thread = threading.Thread(target=self._work, args=(worker,), name="theater-worker", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread": the system's limit
            self._refused = f"the system refused a thread: {exc}"
            log.warning("cannot start a worker thread (%d alive): %s", len(self._threads), exc)
            return False
        self._threads.add(thread)
        self.peak_threads = max(self.peak_threads, len(self._threads))
        return True

    # Blocking hand-off.

    def _enter(self, worker: _Worker) -> None:
        with self._cond:
            if len(self._threads) - self._blocked <= 1 and not self._start_locked():
                actor = worker.running.id if worker.running is not None else "-"
                raise ResourceExhausted(
                    "threads", str(actor),
                    f"it would wait in a host call on the last runnable worker thread, and no other can be started "
                    f"({self._refused}; {len(self._threads)} threads, {self._blocked} of them waiting)",
                )
            self._blocked += 1
            worker.blocked = True
            if self._ready:
                self._wake_or_start_locked()

    def _leave(self, worker: _Worker) -> None:
        with self._cond:
            self._blocked -= 1
            worker.blocked = False


__all__ = ["DEFAULT_MAX_THREADS", "DEFAULT_WORKERS", "Runnable", "Scheduler", "blocking", "current", "in_place",
           "in_place_depth"]
