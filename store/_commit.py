"""Group commit: one writer thread applies every write of a home in batches, one LMDB transaction a batch.

Callers build their records in their own thread (encode, hash), hand a write to the writer and get a ``Pending``
back at once; ``Pending.wait()`` returns when the batch holding it is committed (durable, in sync mode). While a
batch commits, the next one fills, so many appends from many threads share one fsync.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import lmdb

from store._env import Environment, is_disk_full
from store.errors import ReadOnlyError, StoreClosedError, StoreError, StoreFullError, StoreWriteError, TheaterError

log = logging.getLogger("store.commit")

MAX_BATCH_OPS = 20_000
BUSY_FROM_OPS = 64  # a batch this large means appends arrive faster than commits: linger for the next one
LINGER_UNTIL_OPS = 4_096
LINGER_S = 0.002


class Pending:
    """A write handed to the writer; ``wait()`` blocks until it is committed and returns its value."""

    __slots__ = ("_done", "_error", "_writer", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self._error: BaseException | None = None
        self._done = False
        self._writer: Writer | None = None

    def apply(self, txn: lmdb.Transaction, ctx: CommitContext) -> None:
        """Write this record inside ``txn``; raise a ``StoreError`` to fail this write alone."""
        raise NotImplementedError

    def committed(self) -> None:
        """Called once the batch holding this write is committed: drop what is no longer needed."""

    def done(self) -> bool:
        """True once the write is committed or has failed."""
        return self._done

    def wait(self, timeout: float | None = None) -> Any:
        """Block until committed and return the value.

        Raises:
            TimeoutError: not committed within ``timeout`` seconds (it may still commit later).
            StoreError: the write was refused (a stale head) or could not be committed (disk full).
        """
        if not self._done:
            writer = self._writer
            assert writer is not None, "Pending.wait() before it was submitted"
            writer.wait_for(self, timeout)
        if self._error is not None:
            raise self._error
        return self.value


class CommitContext:
    """What the ops of one batch share: the databases, heads, the next feed position, and the puts to make.

    Ops add their records to ``puts`` (by database) instead of writing one by one: the writer writes each list
    with one ``putmulti`` call. py-lmdb releases the GIL around every single put, and a writer thread that must
    win the GIL back after each one stalls behind any busy thread (measured: 1.4 us per put alone, 1.5 ms per put
    next to a thread encoding events); one call per database avoids that convoy.
    """

    __slots__ = ("dbs", "heads", "known_heads", "feed_next", "puts", "new_blobs", "txn_id", "wrote")

    def __init__(self, dbs: dict[str, Any], feed_next: int, known_heads: dict[bytes, tuple[int, bytes | None]]) -> None:
        self.dbs = dbs
        self.heads: dict[bytes, tuple[int, bytes | None]] = {}
        self.known_heads = known_heads
        self.feed_next = feed_next
        self.puts: dict[str, list[tuple[bytes, bytes]]] = {"events": [], "event_index": [], "feed": []}
        self.new_blobs: dict[bytes, bytes] = {}
        self.txn_id = -1
        self.wrote = False

    def head(self, txn: lmdb.Transaction, actor: bytes) -> tuple[int, bytes | None]:
        """The actor's head as of this batch so far."""
        current = self.heads.get(actor) or self.known_heads.get(actor)
        if current is None:
            raw = txn.get(actor, db=self.dbs["heads"])
            current = (-1, None) if raw is None else (int.from_bytes(raw[:8], "big"), bytes(raw[8:]))
        return current

    def has_blob(self, txn: lmdb.Transaction, digest: bytes) -> bool:
        return digest in self.new_blobs or txn.get(digest, db=self.dbs["blobs"]) is not None

    def write(self, txn: lmdb.Transaction) -> None:
        """Write every queued record."""
        dbs = self.dbs
        self.wrote = self.wrote or bool(self.new_blobs or self.heads or any(self.puts.values()))
        if self.new_blobs:
            fresh = [(k, v) for k, v in sorted(self.new_blobs.items()) if txn.get(k, db=dbs["blobs"]) is None]
            txn.cursor(db=dbs["blobs"]).putmulti(fresh)
            self.new_blobs = {}
        for name, items in self.puts.items():
            if items:
                txn.cursor(db=dbs[name]).putmulti(items, append=name == "feed")
                self.puts[name] = []
        if self.heads:
            heads = sorted((actor, seq.to_bytes(8, "big") + digest) for actor, (seq, digest) in self.heads.items()
                           if digest is not None)
            txn.cursor(db=dbs["heads"]).putmulti(heads)


class Writer:
    """The single writer thread of a home.

    Submitting takes no lock: writes go into a deque (appends are atomic) and the writer is woken only when it
    sleeps. Eight threads submitting through one lock spent most of their time queueing for it, each hand-off
    of the lock costing a trip through the GIL. Waiters share one condition that the writer notifies once per
    commit; each checks its own write's flag.
    """

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._queue: deque[Pending] = deque()
        self._wake = threading.Event()
        self._committed = threading.Condition(threading.Lock())
        self._closing = False
        self._stopped = False
        self._feed_next = self._read_feed_next()
        self.listeners: list[Callable[[], None]] = []  # called on the writer thread after every commit
        self._heads: dict[bytes, tuple[int, bytes | None]] = {}  # committed heads, valid while we are the only writer
        self._next_txn = -1
        self._thread = threading.Thread(target=self._run, name=f"theater-writer:{env.path}", daemon=True)
        self._thread.start()

    def _read_feed_next(self) -> int:
        with self._env.read() as txn:
            return self._read_feed_next_in(txn)

    def _read_feed_next_in(self, txn: lmdb.Transaction) -> int:
        cursor = txn.cursor(db=self._env.dbs["feed"])
        return int.from_bytes(cursor.key(), "big") + 1 if cursor.last() else 0

    def submit(self, op: Pending) -> Pending:
        """Queue ``op`` for the next batch and return it.

        Raises:
            StoreClosedError: the store is closing.
        """
        if self._closing:
            raise StoreClosedError()
        op._writer = self
        self._queue.append(op)
        if not self._wake.is_set():
            self._wake.set()
        if self._stopped:
            self._reap()  # the writer finished between our check and our append: nobody else will take it
        return op

    def wait_for(self, op: Pending, timeout: float | None) -> None:
        """Block until ``op`` is committed or has failed.

        Raises:
            TimeoutError: it was not within ``timeout`` seconds.
        """
        with self._committed:
            if not self._committed.wait_for(op.done, timeout):
                raise TimeoutError(f"write not committed within {timeout} s")

    def _run(self) -> None:
        queue, busy = self._queue, False
        while True:
            if not queue:
                if self._closing:
                    break
                self._wake.clear()  # clear, then look again: a submit after the look sets it
                if not queue and not self._closing:
                    self._wake.wait()
                continue
            if busy and not self._closing and len(queue) < LINGER_UNTIL_OPS:
                # Under load, let the batch fill a little: a commit costs about the same for 200 events as
                # for 2,000 (LMDB writes every touched index page once), so fewer, larger commits win.
                time.sleep(LINGER_S)
            pop = queue.popleft
            ops = [pop() for _ in range(min(len(queue), MAX_BATCH_OPS))]
            busy = len(ops) >= BUSY_FROM_OPS
            self._commit(ops)
        self._stopped = True
        self._reap()

    def _reap(self) -> None:
        """Fail every write still queued once the writer has stopped."""
        failed = []
        while True:
            try:
                failed.append(self._queue.popleft())
            except IndexError:
                break
        if failed:
            self._finish(failed, StoreClosedError())

    def _commit(self, ops: list[Pending]) -> None:
        while True:
            errors: dict[int, BaseException] = {}
            try:
                ctx = self._apply(ops, errors)
            except lmdb.MapFullError:
                try:
                    self._env.grow()
                except StoreError as exc:
                    self._finish(ops, exc)
                    return
                continue
            except lmdb.Error as exc:
                reason = "the disk is full" if is_disk_full(exc) else str(exc)
                cls = StoreFullError if is_disk_full(exc) else StoreWriteError
                self._finish(ops, cls(str(self._env.path), reason))
                return
            except Exception as exc:  # the writer must survive anything: fail this batch, keep serving
                self._finish(ops, StoreWriteError(str(self._env.path), f"{type(exc).__name__}: {exc}"))
                return
            self._feed_next = ctx.feed_next
            self._heads.update(ctx.heads)
            # LMDB numbers write transactions that change something consecutively; a gap means another process.
            self._next_txn = ctx.txn_id + 1 if ctx.wrote else ctx.txn_id
            for index, exc in errors.items():
                ops[index]._error = exc
            for op in ops:
                op.committed()
            self._finish(ops, None)
            for listener in self.listeners:
                try:
                    listener()
                except Exception:  # a listener's failure must not stop the writer
                    log.exception("a commit listener failed")
            return

    def _apply(self, ops: list[Pending], errors: dict[int, BaseException]) -> CommitContext:
        with self._env.env.begin(write=True) as txn:
            if txn.id() != self._next_txn:
                # Another process wrote since our last commit (or this is the first): trust only the database.
                self._heads.clear()
                self._feed_next = self._read_feed_next_in(txn)
            ctx = CommitContext(self._env.dbs, self._feed_next, self._heads)
            ctx.txn_id = txn.id()
            for index, op in enumerate(ops):
                try:
                    op.apply(txn, ctx)
                except TheaterError as exc:
                    errors[index] = exc
            ctx.write(txn)
        return ctx

    def _finish(self, ops: list[Pending], exc: BaseException | None) -> None:
        """Mark ``ops`` done (failed with ``exc`` unless it is None) and wake their waiters."""
        for op in ops:
            if exc is not None:
                op._error = exc
            op._done = True
        with self._committed:
            self._committed.notify_all()

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._closing = True
        self._wake.set()
        self._thread.join()


class ReadOnlyWriter:
    """Stands in for the writer of a store opened read-only: every write is refused."""

    def __init__(self, env: Environment) -> None:
        self._path = str(env.path)

    def submit(self, op: Pending) -> Pending:
        raise ReadOnlyError(self._path)

    def close(self) -> None:
        """Nothing to commit."""
