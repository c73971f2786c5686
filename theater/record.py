"""The record side of the boundary: a tape that appends every crossing to the actor's chain.

Appends are pipelined (group commit); ``wait_durable`` blocks until everything appended so far is durable, which
the actor does before it releases any effect of a call (a message delivered, a response released).

A commit can fail (the disk is full). Every append chains on the one before it, so once one of a tape's appends
fails, every later one fails too (``StaleHeadError``: its parent was never written). The tape keeps the writes it
has not seen committed, so it can name the failure that started it (``failure``) and, on ``reset``, go back to
what the store holds: the committed head, with no cached state blob that may never have been written.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from replay.boundary import CallResult
from replay.errors import GuestFault
from store import Event, Head, PendingAppend, Store
from store.errors import NotFoundError, StaleHeadError, StoreError

# Unconfirmed writes kept before the confirmed ones at the front are dropped; bounds the queue of a busy actor.
TRIM_AT = 64

# Events that say which state the actor holds after them (``committed_state``), and the field that names it.
STATE_FIELDS = {"wasm/result": "state", "wasm/call": "state", "wasm/instantiate": "state",
                "actor/created": "init_state"}


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


class RecordTape:
    """Appends crossings to one actor's chain, chaining each append on the previous one.

    One thread appends (the actor's); ``broken`` may be read from any thread.
    """

    replaying = False

    def __init__(self, store: Store, actor: uuid.UUID, head: Head) -> None:
        self._store = store
        self._log = store.log
        self._blobs = store.blobs
        self.actor = actor
        self.head = head
        self._last: PendingAppend | None = None
        self._state: tuple[bytes, bytes] | None = None  # the last state blob put: (bytes, hash)
        # Writes not yet seen committed, in submission order: (write, the blob's bytes for a blob put, else None).
        self._unconfirmed: deque[tuple[Write, bytes | None]] = deque()

    def append(self, type: str, data: Any) -> Event:
        """Queue one event after the current head; it is durable after ``wait_durable``."""
        pending = self._log.append_async(self.actor, type, data, expected=self.head)
        event = pending.event
        self.head = Head(event.seq, event.hash)
        self._last = pending
        self._track(pending, None)
        return event

    @property
    def last(self) -> PendingAppend | None:
        """The latest append handed to the store."""
        return self._last

    def wait_durable(self, timeout: float | None = None) -> None:
        """Block until every event appended so far is durable (raises the store's error if one failed)."""
        if self._last is not None:
            self._last.wait(timeout)

    def state_ref(self, state: bytes | None) -> bytes | None:
        """Put ``state`` in the blob store (queued with the events) and return its hash."""
        if state is None:
            return None
        if self._state is not None and self._state[0] is state:
            return self._state[1]
        put = self._blobs.put_async(state)
        self._state = (state, put.value)
        self._track(put, state)
        return put.value

    # Commit failures.

    def _track(self, write: Write, blob: bytes | None) -> None:
        unconfirmed = self._unconfirmed
        unconfirmed.append((write, blob))
        if len(unconfirmed) > TRIM_AT:
            self._trim()

    def _trim(self) -> None:
        """Drop the committed writes at the front; a failed one stays there (it is the cause of what follows)."""
        unconfirmed = self._unconfirmed
        while unconfirmed and unconfirmed[0][0].done() and write_error(unconfirmed[0][0]) is None:
            unconfirmed.popleft()

    def failure(self) -> StoreError | None:
        """The error of the first write of this tape that failed since its last ``reset``; None when none is known
        to have failed (writes still in flight may fail later). On the appending thread only."""
        self._trim()
        return _first_failure(self._unconfirmed)

    def broken(self) -> bool:
        """True when the latest append is known to have failed; safe to call from any thread."""
        last = self._last
        return last is not None and write_error(last) is not None

    def explain(self, error: StoreError) -> StoreError:
        """The error to report for a failed append: a stale head caused by an earlier failure of this tape is
        reported as that failure (the disk was full, not the chain contended). Safe to call from any thread."""
        if isinstance(error, StaleHeadError):
            # A copy taken at once (under the GIL): the appending thread may add to the queue meanwhile.
            cause = _first_failure(tuple(self._unconfirmed))
            if cause is not None:
                return cause
        return error

    def reset(self) -> Head:
        """Go back to what the store holds after a failed commit, and return the committed head.

        Waits until every write of this tape has finished, puts again any state blob whose put failed while an
        event that names it was committed (so the chain never names a missing blob), then re-reads the head and
        forgets the cached state blob. Call only on the appending thread, between appends.

        Raises:
            StoreError: a blob that the chain needs could not be put again (the disk is still full).
        """
        for write, _ in self._unconfirmed:
            try:
                write.wait()
            except StoreError:
                pass  # expected: that is why we reset
        self._repair_blobs()
        self._unconfirmed.clear()
        self._last = None
        self._state = None
        self.head = self._log.head(self.actor)
        return self.head

    def _repair_blobs(self) -> None:
        committed_after = False  # a later event of this tape was committed
        for write, blob in reversed(self._unconfirmed):
            if blob is None:
                committed_after = committed_after or (write.done() and write_error(write) is None)
            elif committed_after and write_error(write) is not None:
                self._blobs.put(blob)

    # The boundary's side.

    def host_call(self, name: str, params: list[Any], call: Callable[[], Any]) -> Any:
        result = call()
        self.append(name, {"params": params, "result": result})
        return result

    def begin_call(self, export: str, state: bytes | None, params: Any) -> None:
        # Maps are written in canonical key order (shorter keys first): the store then skips cbor2's slower
        # canonical mode for them (store.codec._plain).
        self.append("wasm/call", {"state": self.state_ref(state), "export": export, "params": params})

    def end_call(self, export: str, result: CallResult | GuestFault) -> None:
        if isinstance(result, CallResult):
            state = self.state_ref(result.state)
            self.append("wasm/result", {"fuel": result.fuel, "state": state, "export": export, "output": result.output})
        else:
            self.append(
                "wasm/error", {"fuel": result.fuel, "kind": result.kind, "detail": result.detail, "export": export}
            )


__all__ = ["STATE_FIELDS", "RecordTape", "Write", "committed_state", "write_error"]
