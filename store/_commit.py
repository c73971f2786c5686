"""Group commit: one writer thread applies every write of a home in batches, one LMDB transaction a batch.

Callers build their records in their own thread (encode, hash), hand a write to the writer and get a ``Pending``
back at once; ``Pending.wait()`` returns when the batch holding it is committed (durable, in sync mode). While a
batch commits, the next one fills, so many appends from many threads share one fsync.
"""

from __future__ import annotations

import logging
import threading
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


class Batch:
    """The writes committed together, and the event that tells their waiters the outcome."""

    __slots__ = ("ops", "done")

    def __init__(self) -> None:
        self.ops: list[Pending] = []
        self.done = threading.Event()


class Pending:
    """A write handed to the writer; ``wait()`` blocks until it is committed and returns its value."""

    __slots__ = ("_batch", "_error", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self._error: BaseException | None = None
        self._batch: Batch | None = None

    def apply(self, txn: lmdb.Transaction, ctx: CommitContext) -> None:
        """Write this record inside ``txn``; raise a ``StoreError`` to fail this write alone."""
        raise NotImplementedError

    def committed(self) -> None:
        """Called once the batch holding this write is committed: drop what is no longer needed."""

    def done(self) -> bool:
        """True once the write is committed or has failed."""
        return self._batch is not None and self._batch.done.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until committed and return the value.

        Raises:
            TimeoutError: not committed within ``timeout`` seconds (it may still commit later).
            StoreError: the write was refused (a stale head) or could not be committed (disk full).
        """
        batch = self._batch
        assert batch is not None, "Pending.wait() before it was submitted"
        if not batch.done.wait(timeout):
            raise TimeoutError(f"write not committed within {timeout} s")
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
    """The single writer thread of a home."""

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._lock = threading.Condition(threading.Lock())
        self._batches: deque[Batch] = deque()  # filled at the back, committed from the front
        self._closing = False
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
        with self._lock:
            if self._closing:
                raise StoreClosedError()
            if not self._batches or len(self._batches[-1].ops) >= MAX_BATCH_OPS:
                self._batches.append(Batch())
            batch = self._batches[-1]
            op._batch = batch
            batch.ops.append(op)
            if (len(self._batches) == 1 and len(batch.ops) in (1, LINGER_UNTIL_OPS)):
                self._lock.notify()
        return op

    def _run(self) -> None:
        busy = False
        while True:
            with self._lock:
                while not self._batches and not self._closing:
                    self._lock.wait()
                if not self._batches:
                    return
                if busy and not self._closing and len(self._batches[0].ops) < LINGER_UNTIL_OPS:
                    # Under load, let the batch fill a little: a commit costs about the same for 200 events as
                    # for 2,000 (LMDB writes every touched index page once), so fewer, larger commits win.
                    self._lock.wait(LINGER_S)
                batch = self._batches.popleft()
            busy = len(batch.ops) >= BUSY_FROM_OPS
            self._commit(batch)

    def _commit(self, batch: Batch) -> None:
        while True:
            errors: dict[int, BaseException] = {}
            try:
                ctx = self._apply(batch, errors)
            except lmdb.MapFullError:
                try:
                    self._env.grow()
                except StoreError as exc:
                    self._fail(batch, exc)
                    return
                continue
            except lmdb.Error as exc:
                reason = "the disk is full" if is_disk_full(exc) else str(exc)
                cls = StoreFullError if is_disk_full(exc) else StoreWriteError
                self._fail(batch, cls(str(self._env.path), reason))
                return
            except Exception as exc:  # the writer must survive anything: fail this batch, keep serving
                self._fail(batch, StoreWriteError(str(self._env.path), f"{type(exc).__name__}: {exc}"))
                return
            self._feed_next = ctx.feed_next
            self._heads.update(ctx.heads)
            # LMDB numbers write transactions that change something consecutively; a gap means another process.
            self._next_txn = ctx.txn_id + 1 if ctx.wrote else ctx.txn_id
            for index, exc in errors.items():
                batch.ops[index]._error = exc
            for op in batch.ops:
                op.committed()
            batch.done.set()
            for listener in self.listeners:
                try:
                    listener()
                except Exception:  # a listener's failure must not stop the writer
                    log.exception("a commit listener failed")
            return

    def _apply(self, batch: Batch, errors: dict[int, BaseException]) -> CommitContext:
        with self._env.env.begin(write=True) as txn:
            if txn.id() != self._next_txn:
                # Another process wrote since our last commit (or this is the first): trust only the database.
                self._heads.clear()
                self._feed_next = self._read_feed_next_in(txn)
            ctx = CommitContext(self._env.dbs, self._feed_next, self._heads)
            ctx.txn_id = txn.id()
            for index, op in enumerate(batch.ops):
                try:
                    op.apply(txn, ctx)
                except TheaterError as exc:
                    errors[index] = exc
            ctx.write(txn)
        return ctx

    def _fail(self, batch: Batch, exc: BaseException) -> None:
        for op in batch.ops:
            op._error = exc
        batch.done.set()

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join()



class ReadOnlyWriter:
    """Stands in for the writer of a store opened read-only: every write is refused."""

    def __init__(self, env: Environment) -> None:
        self._path = str(env.path)

    def submit(self, op: Pending) -> Pending:
        raise ReadOnlyError(self._path)

    def close(self) -> None:
        """Nothing to commit."""
