"""The record side of the boundary: a tape that appends every crossing to the actor's chain.

Appends are pipelined (group commit). The tape holds an operation's writes (events and state blobs, each built
and hashed at once) and hands them to the store together when the actor asks for its latest append (``last``, at
the end of every operation and before anything waits on durability): one commit per operation instead of a
commit racing each write, and a start's creation, instance and ``init`` share one. ``wait_durable`` blocks until
everything appended so far is durable, which the actor does before it releases any effect of a call (a message
delivered, a response released).

A commit can fail (the disk is full). Every append chains on the one before it, so once one of a tape's appends
fails, every later one fails too (``StaleHeadError``: its parent was never written). The tape keeps the writes it
has not seen committed, so it can name the failure that started it (``failure``) and, on ``reset``, go back to
what the store holds: the committed head, with no cached state blob that may never have been written.

While a call runs, the held writes are handed over at every epoch tick (``tick``), and at a host call only once
holding them has a cost (``host_tick``): the oldest has been held for a tick (``HOLD_S``), or they grow past
``HOLD_WRITES`` writes or ``HOLD_BYTES`` bytes. A wait on the actor's thread (``scheduler.blocking``, which every
host function that waits goes through) tells the tape (``wait_begins``, ``wait_ends``): a thread of its own, the
wait watch, hands the writes over should the wait last past their tick. A call making many fast host calls or short
waits (an HTTP client's requests) then costs a commit per tick instead of one per host call, and a call that runs
long or waits still has its ``wasm/call`` in the store's hands within a tick or two. Handing over is not
durability: nothing is released before its operation's last append is durable (``wait_durable``, ``last``),
whenever the writes were handed over.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from replay.boundary import CallResult
from replay.derived import RESULT_REF, Derived
from replay.errors import GuestFault
from replay.schema import (
    STATE_FIELDS,
    WASM_CALL,
    WASM_RESULT,
    Payload,
    WasmCall,
    WasmErrAnswer,
    WasmFailure,
    WasmResult,
)
from store import Event, Head, PendingAppend, Store
from store.errors import NotFoundError, StaleHeadError, StoreError

# How long a host call lets the tape hold writes before it hands them over (one epoch tick,
# ``replay.engine.EPOCH_TICK_S``), and how many writes or bytes it holds at most: past any of them, the next host
# call hands them over.
HOLD_S = 0.01
HOLD_WRITES = 256
HOLD_BYTES = 1 << 20
WATCH_IDLE_TICKS = 100  # ticks the wait watch goes on ticking with no tape waiting before it sleeps until one does


class _WaitWatch:
    """Hands over the held writes of tapes whose appending thread waits (``RecordTape.wait_begins``) once they have
    been held for a tick: one daemon thread for the process, ticking every ``HOLD_S`` while a tape waits (and for
    ``WATCH_IDLE_TICKS`` after, so a stream of short waits never has to wake it), asleep otherwise.

    A short wait (an HTTP request answered in a millisecond) so costs no hand-over of its own, and a long one (a
    sleep, a slow server) has what its call recorded so far in the store's hands within a tick or two.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._tapes: dict[int, RecordTape] = {}
        self._thread: threading.Thread | None = None
        self._asleep = False

    def enter(self, tape: RecordTape) -> None:
        with self._cond:
            self._tapes[id(tape)] = tape
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="theater-tape-watch", daemon=True)
                self._thread.start()
            elif self._asleep:
                self._asleep = False
                self._cond.notify()

    def leave(self, tape: RecordTape) -> None:
        with self._cond:
            self._tapes.pop(id(tape), None)

    def _run(self) -> None:
        idle = 0
        while True:
            with self._cond:
                if not self._tapes and idle >= WATCH_IDLE_TICKS:
                    self._asleep = True
                    while self._asleep:
                        self._cond.wait()
                    idle = 0
                self._cond.wait(HOLD_S)  # ``enter`` notifies only a sleeping watch: this wait is a tick
                tapes = list(self._tapes.values())
            idle = 0 if tapes else idle + 1
            due = time.monotonic() - HOLD_S
            for tape in tapes:
                if tape._held and tape._held_since <= due:
                    try:
                        tape.submit()  # any thread may: the writes keep their order
                    except StoreError:
                        pass  # a read-only store: the tape's own thread learns it at its next hand-over


_WAITS = _WaitWatch()


class Write(Protocol):
    """A write handed to the store's writer (an append or a blob put)."""

    def done(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> Any: ...


def write_error(pending: Write) -> StoreError | None:
    """The error of a write that has finished without being committed; None while it runs or once committed."""
    if not pending.done():
        return None
    try:
        pending.wait(0)
    except StoreError as exc:
        return exc
    return None


def committed_state(store: Store, actor: uuid.UUID) -> bytes | None:
    """The state the actor holds at its committed head: the state the latest event that names one left.

    A ``wasm/result`` names the state after its call; a ``wasm/call`` with no committed result (or an error) the
    state before it; an instance the state it started from; the creation event the initial state. Reads only the
    store, so any thread may call it.

    Raises:
        NotFoundError: the chain is empty, or names a state blob the store does not hold.
    """
    head = store.log.head(actor)
    if head.hash is None:
        raise NotFoundError("actor", str(actor))
    for seq in range(head.seq, -1, -1):
        event = store.log.at(actor, seq)
        field = STATE_FIELDS.get(event.type)
        if field is None or not isinstance(event.data, dict) or field not in event.data:
            continue
        digest = event.data[field]
        return None if digest is None else store.blobs.get(digest)
    return None


def _first_failure(writes: Iterable[tuple[Write, bytes | None]]) -> StoreError | None:
    """The error of the first failed write, unless a write before it is still in flight."""
    for write, _ in writes:
        if not write.done():
            return None
        error = write_error(write)
        if error is not None:
            return error
    return None


def _repair_blobs(blobs: Any, writes: Iterable[tuple[Write, bytes | None]]) -> None:
    """Put again every blob whose put failed while a later event of the same tape was committed (and may name it).

    Event appends chain, so once one fails every later one does: a committed event after a failed blob put means
    the put and the event went into different batches, and only the put's batch failed.
    """
    committed_after = False
    for write, blob in reversed(tuple(writes)):
        if blob is None:
            committed_after = committed_after or (write.done() and write_error(write) is None)
        elif committed_after and write_error(write) is not None:
            blobs.put(blob)


class RecordTape:
    """Appends crossings to one actor's chain, chaining each append on the previous one.

    One thread appends (the actor's). The releaser tells the tape when an append is durable (``committed``) or
    asks it what to report for one that failed (``explain``); ``broken`` may be read from any thread.
    """

    replaying = False
    cause: bytes | None = None  # the next ``wasm/call`` records this causal link (``theater.envelope``); then None
    _stamp: Any = None  # an envelope whose ``cause`` the next append fills in (``stamp_next``)
    before_tick: Callable[[], None] | None = None  # what ``tick`` runs first (the actor's owed release)
    # Set while the thread that appends is the one that waits for the commit (a start run on the thread asking
    # for it): ``last`` then commits on this thread when the store's writer thread is idle (``Store.lead``).
    leads = False

    def __init__(self, store: Store, actor: uuid.UUID, head: Head) -> None:
        self._store = store
        self._log = store.log
        self._blobs = store.blobs
        self.actor = actor
        self.head = head
        self._last: PendingAppend | None = None
        self._state: tuple[bytes, bytes] | None = None  # the last state blob put: (bytes, hash)
        # Writes held until ``submit`` and writes not yet seen committed, in order: (write, the blob's bytes for a
        # blob put, else None). The appending thread adds, the releaser drops the committed ones at the front of
        # ``_unconfirmed`` (``committed``); both only under ``_guard``.
        self._held: list[tuple[Write, bytes | None]] = []
        self._unconfirmed: deque[tuple[Write, bytes | None]] = deque()
        self._guard = threading.Lock()
        self._after: tuple[Write, ...] = ()  # what the next append depends on (``depend_on``)
        # When the oldest write in ``_held`` was added (``time.monotonic()``) and the bytes held (``host_tick``).
        self._held_since = 0.0
        self._held_bytes = 0
        self._waiting = False  # the wait watch watches it (``wait_begins``)

    def append(self, type: str, data: Any, *, plain: bool = False) -> Event:
        """Build one event after the current head and hold it; the store gets it at the next ``submit``, and it
        is durable after ``wait_durable``. ``plain``: ``data`` is known to encode canonically as it stands (the
        store skips its check; ``EventLog.prepare``)."""
        pending = self._log.prepare(self.actor, type, data, expected=self.head, plain=plain)
        if self._after:
            pending.after, self._after = self._after, ()  # type: ignore[assignment]
        event = pending.event
        self.head = Head(event.seq, event.hash)
        if self._stamp is not None:
            self._stamp.cause, self._stamp = event.hash, None
        encoded = pending.encoded
        size = len(encoded.body)
        if encoded.spilled:
            size += sum(len(payload) for _, payload in encoded.spilled)
        with self._guard:
            if not self._held:
                self._held_since = time.monotonic()
            self._held.append((pending, None))
            self._held_bytes += size
            self._last = pending
        return event

    def stamp_next(self, envelope: Any) -> None:
        """Set ``envelope.cause`` to the hash of the next event appended (a host function's own event: the boundary
        appends it right after the function returns)."""
        self._stamp = envelope

    def submit(self, *, lead: bool = False) -> PendingAppend | None:
        """Hand the held writes to the store, together and in order (one commit), and return the latest append.

        Any thread may call it; the writes keep their order whoever submits them. With ``lead`` (a thread about
        to wait for them, holding no lock), they are committed on this thread if the writer thread is idle
        (``Store.lead``), after the tape's own lock is let go.
        """
        with self._guard:
            held = self._held
            if held:
                self._held = []
                self._held_bytes = 0
                self._unconfirmed.extend(held)
                self._store.submit([write for write, _ in held], hold=lead)  # type: ignore[misc]
            last = self._last
        if lead and held:
            self._store.lead()  # commits them here, or wakes the writer thread
        return last

    def tick(self) -> None:
        """Called by the boundary at every epoch tick of a running call: run ``before_tick`` (the actor hands over
        what its earlier operations of the turn owe), then ``submit``."""
        if self.before_tick is not None:
            self.before_tick()
        self.submit()

    def wait_begins(self) -> bool:
        """The appending thread is about to wait (``Actor.before_wait``): hand the held writes over if they are
        due (``host_tick``'s bounds), else have them handed over by the wait watch should the wait last past their
        tick (``_WaitWatch``). True when the watch now watches this tape: call ``wait_ends`` after the wait."""
        held = self._held
        if not held or self._waiting:
            return False
        if len(held) >= HOLD_WRITES or self._held_bytes >= HOLD_BYTES or time.monotonic() - self._held_since >= HOLD_S:
            self.submit()
            return False
        self._waiting = True
        _WAITS.enter(self)
        return True

    def wait_ends(self) -> None:
        """The wait ``wait_begins`` announced is over: the wait watch forgets this tape."""
        self._waiting = False
        _WAITS.leave(self)

    def host_tick(self) -> None:
        """Called by the boundary before every host call: run ``before_tick``, then ``submit`` only if the held
        writes have been held for a tick (``HOLD_S``) or have grown past ``HOLD_WRITES`` or ``HOLD_BYTES``.

        A host call that waits hands them over anyway before it waits (``scheduler.blocking``), the epoch tick and
        the end of the operation do, and so does anything waiting for durability (``last``, ``wait_durable``).
        """
        if self.before_tick is not None:
            self.before_tick()
        held = self._held  # read without the lock: only this thread adds, another's submit only empties it
        if held and (
            len(held) >= HOLD_WRITES
            or self._held_bytes >= HOLD_BYTES
            or time.monotonic() - self._held_since >= HOLD_S
        ):
            self.submit()

    @property
    def last(self) -> PendingAppend | None:
        """The latest append, handed to the store now with every write held before it (``submit``; it leads the
        commit while ``leads`` is set)."""
        return self.submit(lead=self.leads)

    def depend_on(self, writes: tuple[Write, ...]) -> None:
        """Make the next append depend on ``writes`` (another tape's ``handed_over``), all already handed to the
        store: if one fails to commit, that append fails too, with the error of the first that failed (and so does
        every later append of this tape, which chains on it), so what this chain records next is never durable
        without them (see ``store._commit.Pending``)."""
        self._after = writes

    def handed_over(self) -> tuple[Write, ...]:
        """The writes handed to the store and not yet seen committed, in order (after a ``submit``)."""
        with self._guard:
            return tuple(write for write, _ in self._unconfirmed)

    def wait_durable(self, timeout: float | None = None) -> None:
        """Block until every event appended so far is durable (raises the store's error if one failed)."""
        last = self.submit()
        if last is not None:
            last.wait(timeout)

    def put_blob(self, data: bytes) -> bytes:
        """Hold a blob put with the events (``submit`` hands it over) and return its hash; a failed put is
        repaired as a state blob's is (``reset``)."""
        put = self._blobs.prepare(data)
        with self._guard:
            if not self._held:
                self._held_since = time.monotonic()
            self._held.append((put, put.data))
            self._held_bytes += len(put.data)
        return put.value

    def record(self, payload: Payload) -> Event:
        """Queue one event of the payload's kind (``append`` of its type and encoded data)."""
        return self.append(payload.TYPE, payload.encode())

    def state_ref(self, state: bytes | None) -> bytes | None:
        """Put ``state`` in the blob store (queued with the events) and return its hash."""
        if state is None:
            return None
        if self._state is not None and (self._state[0] is state or self._state[0] == state):
            return self._state[1]  # the same bytes as the last state: hashed and put already
        digest = self.put_blob(state)
        self._state = (state, digest)
        return digest

    # Commit failures.

    def committed(self) -> None:
        """Forget the writes at the front that are committed (the releaser calls this once an append of this
        tape is durable); a failed one stays at the front: it is the cause of what follows."""
        with self._guard:
            unconfirmed = self._unconfirmed
            while unconfirmed and unconfirmed[0][0].done() and write_error(unconfirmed[0][0]) is None:
                unconfirmed.popleft()

    def _writes(self) -> tuple[tuple[Write, bytes | None], ...]:
        with self._guard:
            return tuple(self._unconfirmed)

    def failure(self) -> StoreError | None:
        """The error of the first write of this tape that failed since its last ``reset``; None when none is known
        to have failed (writes still in flight may fail later)."""
        with self._guard:  # no copy: the scan stops at the first write still in flight (called before every op)
            return _first_failure(self._unconfirmed)

    def broken(self) -> bool:
        """True when the latest append is known to have failed; safe to call from any thread."""
        last = self._last
        return last is not None and write_error(last) is not None

    def explain(self, error: StoreError) -> StoreError:
        """The error to report for a failed append: a stale head caused by an earlier failure of this tape is
        reported as that failure (the disk was full, not the chain contended)."""
        if isinstance(error, StaleHeadError):
            cause = self.failure()
            if cause is not None:
                return cause
        return error

    def reset(self) -> Head:
        """Go back to what the store holds after a failed commit, and return the committed head.

        Waits until every write of this tape has finished, puts again any state blob whose put failed while an
        event that names it was committed (so the chain never names a missing blob), then re-reads the head and
        forgets the cached state blob. Call on the appending thread, between appends.

        Raises:
            StoreError: a blob that the chain needs could not be put again (the disk is still full).
        """
        self._after = ()
        with self._guard:
            self._held.clear()  # never handed over: they chain on what failed, so they would fail too
            self._held_bytes = 0
        writes = self._writes()
        for write, _ in writes:
            try:
                write.wait()
            except StoreError:
                pass  # expected: that is why we reset
        _repair_blobs(self._blobs, writes)
        with self._guard:
            self._unconfirmed.clear()
        self._last = None
        self._state = None
        self.head = self._log.head(self.actor)
        return self.head

    # The boundary's side.

    def host_call(self, name: str, params: list[Any], call: Callable[[], Any]) -> Any:
        result = call()
        if isinstance(result, Derived):  # the chain already holds it: record the reference (replay.derived)
            self.append(name, {"params": params, RESULT_REF: result.ref})
            return result.value
        self.append(name, {"params": params, "result": result})
        return result

    def begin_call(self, export: str, state: bytes | None, params: Any) -> None:
        # The payload classes write their maps in canonical key order (shorter keys first): the store then skips
        # cbor2's slower canonical mode for them (store.codec._plain). The two events of every call write the map
        # ``WasmCall(...).encode()`` and ``WasmResult(...).encode()`` make (their fields in order, none an enum)
        # directly: building the frozen dataclass and walking its fields cost more than encoding the event
        # (tests/theater/test_record.py checks both give the same map). A delivery from another actor carries its
        # cause (the sender's event) and goes through the payload class.
        cause = self.cause
        if cause is None:
            self.append(WASM_CALL, {"state": self.state_ref(state), "export": export, "params": params})
        else:
            self.cause = None
            self.record(WasmCall(cause=cause, state=self.state_ref(state), export=export, params=params))

    def end_call(self, export: str, result: CallResult | GuestFault) -> None:
        if type(result) is CallResult:
            # ``plain``: the output is the lifter's value of a type with no float and no non-ASCII field name
            # (``replay.values.canonical``), and the other fields are an int, a digest or null and a string, in
            # canonical key order: cbor2's default encoding of the map is its canonical one, so the store's walk
            # over it to check that (``store.codec._plain``, ~2 us a call) is skipped. A fuel or export of
            # another type (a caller's bug) goes the checked way.
            state = self.state_ref(result.state)
            plain = result.plain and type(result.fuel) is int and type(export) is str
            self.append(WASM_RESULT, {"fuel": result.fuel, "state": state, "export": export, "output": result.output},
                        plain=plain)
        elif isinstance(result, CallResult):
            state = self.state_ref(result.state)
            self.record(WasmResult(fuel=result.fuel, state=state, export=export, output=result.output))
        elif result.answered:
            self.record(WasmErrAnswer(fuel=result.fuel or 0, detail=result.detail, export=export))
        else:
            self.record(WasmFailure(fuel=result.fuel, kind=str(result.kind), detail=result.detail, export=export))


__all__ = [
    "HOLD_BYTES", "HOLD_S", "HOLD_WRITES", "STATE_FIELDS", "RecordTape", "Write", "committed_state", "write_error",
]
