"""Group commit: one writer thread applies every write of a home in batches, one LMDB transaction a batch.

Callers build their records in their own thread (encode, hash), hand a write to the writer and get a ``Pending``
back at once; ``Pending.wait()`` returns when the batch holding it is committed (durable, in sync mode). While a
batch commits, the next one fills, so many appends from many threads share one fsync.
"""

from __future__ import annotations

import threading
from typing import Any

import lmdb

from store._env import Environment, is_disk_full
from store.errors import ReadOnlyError, StoreClosedError, StoreError, StoreFullError, StoreWriteError, TheaterError

MAX_BATCH_OPS = 20_000


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
    """What the ops of one batch share: the databases, heads changed so far, the next feed position."""

    __slots__ = ("dbs", "heads", "feed_next")

    def __init__(self, dbs: dict[str, Any], feed_next: int) -> None:
        self.dbs = dbs
        self.heads: dict[bytes, tuple[int, bytes | None]] = {}
        self.feed_next = feed_next


class Writer:
    """The single writer thread of a home."""

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._lock = threading.Condition(threading.Lock())
        self._current = Batch()
        self._closing = False
        self._feed_next = self._read_feed_next()
        self._thread = threading.Thread(target=self._run, name=f"theater-writer:{env.path}", daemon=True)
        self._thread.start()

    def _read_feed_next(self) -> int:
        with self._env.read() as txn:
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
            batch = self._current
            op._batch = batch
            batch.ops.append(op)
            if len(batch.ops) == 1:
                self._lock.notify()
        return op

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._current.ops and not self._closing:
                    self._lock.wait()
                batch = self._current
                if not batch.ops:
                    return
                if len(batch.ops) > MAX_BATCH_OPS:
                    rest = Batch()
                    rest.ops = batch.ops[MAX_BATCH_OPS:]
                    for op in rest.ops:
                        op._batch = rest
                    batch.ops = batch.ops[:MAX_BATCH_OPS]
                    self._current = rest
                else:
                    self._current = Batch()
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
            self._feed_next = ctx.feed_next
            for index, exc in errors.items():
                batch.ops[index]._error = exc
            batch.done.set()
            return

    def _apply(self, batch: Batch, errors: dict[int, BaseException]) -> CommitContext:
        dbs = self._env.dbs
        ctx = CommitContext(dbs, self._feed_next)
        with self._env.env.begin(write=True) as txn:
            for index, op in enumerate(batch.ops):
                try:
                    op.apply(txn, ctx)
                except TheaterError as exc:
                    errors[index] = exc
            heads = dbs["heads"]
            for actor, (seq, digest) in ctx.heads.items():
                assert digest is not None
                txn.put(actor, seq.to_bytes(8, "big") + digest, db=heads)
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
