"""Group commit: one writer thread applies every write of a home in batches, one LMDB transaction a batch.

Callers build their records in their own thread (encode, hash), hand a write to the writer and get a ``Pending``
back at once; ``Pending.wait()`` returns when the batch holding it is committed (durable, in sync mode). While a
batch commits, the next one fills, so many appends from many threads share one fsync.

A thread about to wait for its writes while the writer thread is idle may commit them itself (``Writer.lead``, the
leader of a write group as in RocksDB or MySQL's binlog group commit): it takes everything queued and commits it
as the writer would, and so saves the hand-off to the writer thread and back. One lock (``Writer._turn``) is the
right to run a commit: the writer thread holds it for each of its commits, a leader for its one, so there is never
more than one write transaction and the writer's state (heads, feed position, index tail) has one owner at a time.
The writer thread keeps everything else: a busy stream (lingering), the index tail's merge, and closing.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import lmdb

from store._env import Environment, is_disk_full
from store._index import NO_TAIL, TailState, advance_tail
from store.merkle import Frontier
from store.merkle import extend as extend_merkle
from store.errors import ReadOnlyError, StoreClosedError, StoreError, StoreFullError, StoreWriteError, TheaterError

log = logging.getLogger("store.commit")

MAX_BATCH_OPS = 20_000
BUSY_FROM_OPS = 64  # a batch this large means appends arrive faster than commits: linger for the next one
LINGER_UNTIL_OPS = 4_096
LINGER_S = 0.002
# A batch of fewer appends writes its hash index entries at once (when no tail is waiting); a larger one leaves
# them to the tail (``store._index``). Each entry lands on its own random index page: the commits of 32 callers
# each waiting for its request (30 appends) wrote 35-50 pages, 14-15 with the entries left to the tail.
# A batch holding the first append of a chain (an actor's start: four events, each entry on its own index page)
# leaves them to the tail too, whatever its size (``Pending.index_later``): a start's commit wrote 64 KiB in a
# home of 300 actors, 45 KiB with its index entries left to the tail.
DIRECT_INDEX_BELOW_OPS = 16
# The writer merges a tail once it has had nothing to commit for this long (or when closing). A writer that
# merged at every empty look at its queue put a merge commit (an fsync) in the way of the next batch each time
# the callers it had just answered were still sending their next requests, and the tail saved nothing.
IDLE_MERGE_AFTER_S = 0.02
MERGE_RETRY_S = 1.0


# A filesystem with less free space than this after an I/O error of a commit is taken to be full (see write_error).
FULL_BELOW_BYTES = 1 << 20

_V = TypeVar("_V")


def write_error(path: Path, exc: lmdb.Error) -> StoreWriteError:
    """The store error for an LMDB error of a write transaction: ``StoreFullError`` when the disk is full.

    A full filesystem surfaces in two ways. A write that gets no byte fails with ENOSPC (py-lmdb's ``DiskError``,
    "No space left on device"). But LMDB writes a commit's pages with ``pwrite``/``writev``, and a write that the
    filesystem only partly takes is a short write, which LMDB reports as EIO ("Input/output error"; mdb.c:
    "short write, filesystem full?"): on a tmpfs most commits that hit the limit end that way. So an I/O error
    while the store's filesystem has (almost) no space left is a full disk too. A full map never gets here: the
    writer grows it, and a map at its maximum size is ``StoreFullError`` from ``Environment.grow``.
    """
    where = str(path)
    if is_disk_full(exc):
        return StoreFullError(where, "the disk is full")
    if os.strerror(errno.EIO) in str(exc):
        free = _free_bytes(path)
        if free is not None and free < FULL_BELOW_BYTES:
            return StoreFullError(where, f"the disk is full: {free} bytes left; LMDB reported the short write as {exc}")
    return StoreWriteError(where, str(exc))


def _free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer can still use on the filesystem holding ``path``; None if it cannot be told."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


class Pending(Generic[_V]):
    """A write handed to the writer; ``wait()`` blocks until it is committed and returns its value.

    ``after`` (optional) are writes this one depends on, handed to the writer before it: when one of them failed
    (its batch did not commit, or it was refused in this batch), this one fails with the error of the first that
    did instead of being written. A parent's record of a spawn depends this way on the child's start, so the
    parent need not wait for the child's commit and still never records (or releases) a child never stored.
    """

    __slots__ = ("_done", "_error", "_writer", "value", "after")
    # True for a write whose batch leaves its hash index entries to the tail even when small (the first append of
    # a chain: see DIRECT_INDEX_BELOW_OPS).
    index_later = False

    def __init__(self, value: _V) -> None:
        self.value = value
        self._error: BaseException | None = None
        self._done = False
        self._writer: Writer | None = None
        self.after: tuple[Pending[Any], ...] = ()

    def apply(self, txn: lmdb.Transaction[bytes], ctx: CommitContext) -> None:
        """Write this record inside ``txn``; raise a ``StoreError`` to fail this write alone."""
        raise NotImplementedError

    def committed(self) -> None:
        """Called once the batch holding this write is committed: drop what is no longer needed."""

    def done(self) -> bool:
        """True once the write is committed or has failed."""
        return self._done

    def wait(self, timeout: float | None = None) -> _V:
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


_P = TypeVar("_P", bound=Pending[Any])


class CommitContext:
    """What the ops of one batch share: the databases, heads, the next feed position, and the puts to make.

    Ops add their records to ``puts`` (by database) instead of writing one by one: the writer writes each list
    with one ``putmulti`` call, which saves the Python-level calls. It does NOT avoid the GIL convoy: py-lmdb 3.0
    releases the GIL around every single put, inside ``putmulti`` too, and a writer thread that must win the GIL
    back after each one stalls behind any busy thread (measured with py-lmdb 3.0.0: 8,192 puts in one
    ``putmulti`` 7 ms alone, 920 ms next to two busy threads). The gate in ``Writer.submit`` keeps submitters
    from being those threads; other busy threads still slow a commit.
    """

    __slots__ = ("dbs", "heads", "known_heads", "feed_next", "puts", "new_blobs", "txn_id", "wrote", "index_direct",
                 "event_puts", "index_puts", "feed_puts", "deferred", "index_tail", "late", "leaves", "frontier")

    def __init__(
        self,
        dbs: dict[str, Any],
        feed_next: int,
        known_heads: dict[bytes, tuple[int, bytes | None]],
        *,
        index_direct: bool = True,
    ) -> None:
        self.dbs = dbs
        self.index_direct = index_direct  # write hash index entries now, or leave them to the tail (store._index)
        self.deferred: list[tuple[bytes, bytes]] = []  # (hash, key) of this batch's appends left to the tail
        self.index_tail: TailState = NO_TAIL  # the hash index's tail after this commit (see store._index)
        self.heads: dict[bytes, tuple[int, bytes | None]] = {}
        self.known_heads = known_heads
        self.feed_next = feed_next
        self.event_puts: list[tuple[bytes, bytes]] = []
        self.index_puts: list[tuple[bytes, bytes]] = []
        self.feed_puts: list[tuple[bytes, bytes]] = []
        self.leaves: list[bytes] = []  # the Merkle leaf hash of each feed put, in order (hashed by the appender)
        self.frontier: Frontier | None = None  # the Merkle tree's frontier after this batch, when it grew
        self.puts = {"events": self.event_puts, "event_index": self.index_puts, "feed": self.feed_puts}
        self.new_blobs: dict[bytes, bytes] = {}
        self.txn_id = -1
        self.wrote = False
        # Run after the batch's appends are in the Merkle log (a checkpoint signs the tree as this commit leaves it).
        self.late: list[Callable[[lmdb.Transaction[bytes]], None]] = []

    def head(self, txn: lmdb.Transaction[bytes], actor: bytes) -> tuple[int, bytes | None]:
        """The actor's head as of this batch so far."""
        current = self.heads.get(actor) or self.known_heads.get(actor)
        if current is None:
            raw = txn.get(actor, db=self.dbs["heads"])
            current = (-1, None) if raw is None else (int.from_bytes(raw[:8], "big"), bytes(raw[8:]))
        return current

    def has_blob(self, txn: lmdb.Transaction[bytes], digest: bytes) -> bool:
        return digest in self.new_blobs or txn.get(digest, db=self.dbs["blobs"]) is not None

    def write(self, txn: lmdb.Transaction[bytes]) -> None:
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
                items.clear()
        if self.heads:
            heads = sorted((actor, seq.to_bytes(8, "big") + digest) for actor, (seq, digest) in self.heads.items()
                           if digest is not None)
            txn.cursor(db=dbs["heads"]).putmulti(heads)


class Writer:
    """The single writer thread of a home.

    Submitting takes no lock: writes go into a deque (appends are atomic) and the writer is woken only when it
    sleeps. Eight threads submitting through one lock spent most of their time queueing for it, each hand-off
    of the lock costing a trip through the GIL. Waiters share one condition that the writer notifies once per
    commit, and only while some thread waits on it (most writes are looked at with ``done`` instead: the
    runtime's releaser settles replies after the commit); each checks its own write's flag.
    """

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._queue: deque[Pending[Any]] = deque()
        self._wake = threading.Event()
        self._gate = threading.Event()  # clear while the writer fills a transaction
        self._gate.set()
        self._committed = threading.Condition(threading.Lock())
        self._waiters = 0  # threads in ``wait_for`` (changed under ``_committed``): none, no notify
        # The right to run a commit (pop a batch from the queue and commit it): the writer thread's for each of its
        # commits, a leader's for its one (``lead``). Queue order is commit order because both pop under it.
        self._turn = threading.Lock()
        self._idle = False  # the writer thread waits for work or for a quiet moment to merge (a leader may commit)
        self._committed_at = 0.0  # ``time.monotonic()`` of the latest commit (the writer's or a leader's)
        self._leader: threading.Thread | None = None  # the thread committing in ``lead`` now
        self._closing = False
        self._stopped = False
        self._feed_next = self._read_feed_next()
        self.listeners: list[Callable[[], None]] = []  # called on the writer thread after every commit
        # Called whenever writes have finished (committed, failed, or refused by a closing store), with True on the
        # writer thread and False on another thread that finished them itself (``settled``).
        self.settle_listeners: list[Callable[[bool], None]] = []
        self.timings: list[Callable[[float, int], None]] = []  # called with (seconds, writes) after a batch commits
        self._heads: dict[bytes, tuple[int, bytes | None]] = {}  # committed heads, valid while we are the only writer
        self._frontier: Frontier | None = None  # the Merkle tree's frontier after our last commit, valid as _heads
        self._next_txn = -1
        self._index_tail = self._read_index_tail()  # the hash index's tail (see store._index)
        self._thread = threading.Thread(target=self._run, name=f"theater-writer:{env.path}", daemon=True)
        self._thread.start()

    def _read_feed_next(self) -> int:
        with self._env.read() as txn:
            return self._read_feed_next_in(txn)

    def _read_index_tail(self) -> TailState:
        with self._env.read() as txn:
            return TailState.read(txn, self._env.dbs)

    def _read_feed_next_in(self, txn: lmdb.Transaction[bytes]) -> int:
        cursor = txn.cursor(db=self._env.dbs["feed"])
        return int.from_bytes(cursor.key(), "big") + 1 if cursor.last() else 0

    def submit(self, op: _P) -> _P:
        """Queue ``op`` for the next batch and return it.

        Raises:
            StoreClosedError: the store is closing.
        """
        if self._closing:
            raise StoreClosedError()
        if not self._gate.is_set():
            # The writer is filling a transaction. py-lmdb releases the GIL around every single put; a writer that
            # must win it back from busy submitters after each put waits up to the switch interval each time
            # (measured: 8,192 puts took 46 s next to four busy threads, 10 ms alone). Submitters that would
            # only queue more work step aside until the writer is done, which costs them nothing: it held the
            # GIL's share anyway.
            self._gate.wait()
        op._writer = self
        self._queue.append(op)
        if not self._wake.is_set():
            self._wake.set()
        if self._stopped:
            self._reap()  # the writer finished between our check and our append: nobody else will take it
        return op

    def submit_many(self, ops: list[Pending[Any]], *, hold: bool = False) -> None:
        """Queue ``ops`` together, in order, for the next batch (one commit, unless they outgrow a batch).

        Unlike ``submit`` it never raises: on a closing store every op fails with ``StoreClosedError`` (its
        ``wait`` raises it), so an appender that queued them earlier learns it where it waits. With ``hold``, an
        idle writer thread is not woken: the caller must call ``lead`` next (before it waits for anything), which
        commits them on its thread or wakes the writer.
        """
        if self._closing:
            self._finish(ops, StoreClosedError())
            return
        if not self._gate.is_set():
            self._gate.wait()  # see ``submit``
        for op in ops:
            op._writer = self
        self._queue.extend(ops)  # one step for the writer thread: it sees all of them or none
        if not (hold and self._idle) and not self._wake.is_set():
            self._wake.set()
        if self._stopped:
            self._reap()

    def wait_for(self, op: Pending[Any], timeout: float | None) -> None:
        """Block until ``op`` is committed or has failed.

        Raises:
            TimeoutError: it was not within ``timeout`` seconds.
        """
        with self._committed:
            # Counted before ``op.done`` is first looked at: a thread finishing ``op`` after that look reads a count
            # above zero (``_finish`` marks its writes done before it reads the count) and notifies, which waits
            # for this thread to be inside ``wait`` (it holds the lock until then). No wake-up is lost.
            self._waiters += 1
            try:
                if not self._committed.wait_for(op.done, timeout):
                    raise TimeoutError(f"write not committed within {timeout} s")
            finally:
                self._waiters -= 1

    def lead(self) -> bool:
        """Commit what is queued on this thread if the writer thread is idle; True when this thread committed.

        For a thread about to wait for writes it has just handed over: when the writer thread sleeps with nothing
        else to do, waking it to commit and then being woken by it costs two thread hand-offs that committing here
        does not. When the writer thread is at work (a batch committing or filling, a tail merging, closing),
        this does nothing: the writer commits as usual. A tail waiting for a quiet moment to be merged does not keep
        a leader from committing (the merge waits until nothing was committed for ``IDLE_MERGE_AFTER_S``). The
        settle listeners run on this thread as on the writer thread (``settled`` tells them True), so call it
        holding no lock an effect may take, never on the writer thread or from a listener. A failed commit fails
        its writes as the writer's would. Whatever it leaves queued (it could not lead, or more came meanwhile) is
        the writer thread's: it wakes it.
        """
        led = False
        if self._idle and not self._closing and self._queue and self._turn.acquire(blocking=False):
            try:
                if self._idle and not self._closing:  # looked again with the turn held: the writer may have woken
                    queue = self._queue
                    pop = queue.popleft
                    ops = [pop() for _ in range(min(len(queue), MAX_BATCH_OPS))]
                    if ops:
                        self._leader = threading.current_thread()
                        try:
                            self._commit(ops)
                        finally:
                            self._leader = None
                        led = True
            finally:
                self._turn.release()
        if self._queue and not self._wake.is_set():
            self._wake.set()  # held by ``submit_many(hold=True)``, or come meanwhile: the writer thread's now
        return led

    def _run(self) -> None:
        queue, busy = self._queue, False
        while True:
            if not queue:
                tail = self._index_tail
                if tail.watermark is not None and tail.merge is None and not self._closing:
                    # A tail and nothing to commit: merge it only once nothing has come for IDLE_MERGE_AFTER_S.
                    # Meanwhile a thread waiting for its writes may commit them itself (``lead``): a tail that a
                    # start left must not send every start after it through this thread.
                    self._wake.clear()  # clear, then look again: a submit after the look sets it
                    if queue or self._closing:
                        continue
                    self._idle = True
                    while True:
                        woke = self._wake.wait(IDLE_MERGE_AFTER_S)
                        if woke or time.monotonic() - self._committed_at >= IDLE_MERGE_AFTER_S:
                            break
                        # A leader committed meanwhile: not a quiet moment yet. Still idle, so leaders go on leading.
                    self._idle = False
                    if woke:
                        continue
                if self._index_tail.watermark is not None:
                    # Idle (or closing): merge the hash index tail, one chunk a commit, looking at the queue
                    # between chunks. A failed merge is retried after a pause (or left to the next open).
                    with self._turn:
                        merged = self._commit([], merge=True)
                    if not merged:
                        if self._closing:
                            break
                        self._wake.clear()
                        self._wake.wait(MERGE_RETRY_S)
                    continue
                if self._closing:
                    break
                self._wake.clear()  # clear, then look again: a submit after the look sets it
                if not queue and not self._closing:
                    self._idle = True  # a thread waiting for its writes may commit them itself (``lead``)
                    self._wake.wait()
                    self._idle = False
                continue
            if busy and not self._closing and len(queue) < LINGER_UNTIL_OPS:
                # Under load, let the batch fill a little: a commit costs about the same for 200 events as
                # for 2,000 (LMDB writes every touched index page once), so fewer, larger commits win.
                time.sleep(LINGER_S)
            with self._turn:  # a leader may have taken the queue meanwhile: then there is nothing to commit
                pop = queue.popleft
                ops = [pop() for _ in range(min(len(queue), MAX_BATCH_OPS))]
                if ops:
                    busy = len(ops) >= BUSY_FROM_OPS
                    self._commit(ops)
        with self._turn:  # a leader's commit in flight finishes before the store may close
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

    def _commit(self, ops: list[Pending[Any]], *, merge: bool = False) -> bool:
        """Commit ``ops`` (and a chunk of the index merge when ``merge``); False when the commit failed."""
        started = time.perf_counter()
        while True:
            try:
                ctx = self._apply(ops, merge=merge)
            except lmdb.MapFullError:
                try:
                    self._env.grow()
                except StoreError as exc:
                    return self._failed(ops, exc)
                continue
            except lmdb.Error as exc:
                return self._failed(ops, write_error(self._env.path, exc))
            except Exception as exc:  # the writer must survive anything: fail this batch, keep serving
                return self._failed(ops, StoreWriteError(str(self._env.path), f"{type(exc).__name__}: {exc}"))
            self._committed_at = time.monotonic()
            self._feed_next = ctx.feed_next
            self._index_tail = ctx.index_tail
            self._heads.update(ctx.heads)
            if ctx.frontier is not None:
                self._frontier = ctx.frontier
            # LMDB numbers write transactions that change something consecutively; a gap means another process.
            self._next_txn = ctx.txn_id + 1 if ctx.wrote else ctx.txn_id
            for op in ops:  # a write refused in this batch has its error set already (``_apply``)
                op.committed()
            self._finish(ops, None)
            for listener in self.listeners:
                try:
                    listener()
                except Exception:  # a listener's failure must not stop the writer
                    log.exception("a commit listener failed")
            if self.timings and ops:
                elapsed = time.perf_counter() - started
                for timing in self.timings:
                    try:
                        timing(elapsed, len(ops))
                    except Exception:  # an observer's failure must not stop the writer
                        log.exception("a commit timing observer failed")
            return True

    def _failed(self, ops: list[Pending[Any]], exc: StoreError) -> bool:
        self._finish(ops, exc)
        if self._index_tail.merge is not None or self._index_tail.watermark is not None:
            log.warning("a commit failed while the hash index has a tail: %s", exc)
        self._index_tail = TailState(self._index_tail.watermark, None, None)
        self._next_txn = -1  # start again from what the database says
        self._frontier = None
        return False

    def _apply(self, ops: list[Pending[Any]], *, merge: bool) -> CommitContext:
        dbs = self._env.dbs
        txn = self._env.env.begin(write=True)
        try:
            self._gate.clear()  # submitters wait while we write (see ``submit``); reopened before the fsync
            try:
                index_tail = self._index_tail
                if txn.id() != self._next_txn:
                    # Another process wrote since our last commit (or this is the first): trust only the database.
                    self._heads.clear()
                    self._frontier = None
                    self._feed_next = self._read_feed_next_in(txn)
                    index_tail = TailState.read(txn, dbs)
                direct = (index_tail.watermark is None and len(ops) < DIRECT_INDEX_BELOW_OPS
                          and not any(op.index_later for op in ops))
                ctx = CommitContext(dbs, self._feed_next, self._heads, index_direct=direct)
                ctx.txn_id = txn.id()
                for op in ops:
                    after = getattr(op, "after", None)  # an unset slot (a subclass's own __init__) reads as None
                    if after:
                        # What it depends on failed, in an earlier batch (its error is set before the next batch
                        # is applied) or earlier in this one (set just below): this one fails with the first error.
                        failed = next((write._error for write in after if write._error is not None), None)
                        if failed is not None:
                            op._error = failed  # shared, as a failed batch's error is
                            continue
                    try:
                        op.apply(txn, ctx)
                    except TheaterError as exc:
                        op._error = exc
                if "merkle" in dbs:
                    ctx.frontier = extend_merkle(txn, dbs, self._feed_next, ctx.leaves, self._frontier)
                    ctx.wrote = ctx.wrote or ctx.frontier is not None
                ctx.write(txn)
                for late in ctx.late:
                    late(txn)  # after the write: a checkpoint reads this batch's leaves from the feed
                ctx.index_tail, wrote = advance_tail(
                    txn, dbs, index_tail, feed_start=self._feed_next, feed_next=ctx.feed_next,
                    deferred=ctx.deferred, merge=merge,
                )
                ctx.wrote = ctx.wrote or wrote
            finally:
                self._gate.set()
        except BaseException:
            # py-lmdb's abort of a write transaction waits until no other thread of the process is inside an LMDB
            # call; with readers starting new calls all the time it can wait forever (seen with two readers
            # during map growth). Keep this process's readers out while aborting.
            with self._env.exclusive():
                txn.abort()
            raise
        txn.commit()
        return ctx

    def _finish(self, ops: list[Pending[Any]], exc: BaseException | None) -> None:
        """Mark ``ops`` done (failed with ``exc`` unless it is None) and wake their waiters."""
        if exc is None:
            for op in ops:
                op._done = True
        else:
            for op in ops:
                op._error = exc
                op._done = True
        # Most writes are never waited for with ``wait``: the releaser looks at ``done`` after the commit, a tape's
        # next append follows it in the queue. Then there is nobody to notify (and no lock to take for it).
        if self._waiters:  # read after every op above is marked done (see ``wait_for``)
            with self._committed:
                self._committed.notify_all()
        self.settled()

    def settled(self) -> None:
        """Tell the settle listeners that writes have finished (``_finish``; a replicated store's relay calls it
        for the writes it fails itself): with True on the writer thread, which holds no lock of anyone else's, and
        on a thread committing in ``lead`` (which holds none either); with False on a submitting thread (a closing
        store refused its writes), which may hold its own."""
        current = threading.current_thread()
        on_writer = current is self._thread or current is self._leader
        for listener in self.settle_listeners:
            try:
                listener(on_writer)
            except Exception:  # a listener's failure must not stop the writer
                log.exception("a settle listener failed")

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._closing = True
        self._wake.set()
        self._thread.join()


class ReadOnlyWriter:
    """Stands in for the writer of a store opened read-only: every write is refused."""

    def __init__(self, env: Environment) -> None:
        self._path = str(env.path)

    def submit(self, op: _P) -> _P:
        raise ReadOnlyError(self._path)

    def submit_many(self, ops: list[Pending[Any]], *, hold: bool = False) -> None:
        raise ReadOnlyError(self._path)

    def close(self) -> None:
        """Nothing to commit."""
