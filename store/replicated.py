"""A replicated home: an operation's writes reach the local LMDB log only after a replicator has stored them.

``ReplicatedStore`` is a ``Store`` whose ``submit`` (the path of every actor's appends: ``theater.record``) hands
an operation's writes to a ``Replicator`` first. The replicator stores the events and the blobs of the batch
elsewhere (a JetStream stream, in ``theater.cluster``), fenced by the chain's expected head there; once it says
they are stored, the writes go to the local writer as usual and ``wait()`` returns when they are committed here
too. When the replicator refuses them (another writer extended the chain: this home lost the actor) or cannot
store them, every write of the batch fails with ``ReplicationError`` and nothing is written here: the local log
never holds an event the replicated record does not.

So an append is durable (its effects released, its caller answered) only once it is replicated and committed
locally. Writes made straight to ``store.log`` or ``store.blobs`` (importing a chain pulled from the replicated
record, a component put before a start) are local only.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from store._commit import Pending, Writer
from store.blobs import PutBlob
from store.chain import PendingAppend
from store.errors import StoreError
from store.home import Store

# Called once with None when the batch is stored, or with the error that kept it from being stored.
Done = Callable[[BaseException | None], None]


class ReplicationError(StoreError):
    """The replicated record did not take an append of ``actor``: ``reason`` says why (``fenced``: another writer
    extended the chain, so this home no longer owns it)."""

    def __init__(self, actor: str, reason: str, *, fenced: bool = False) -> None:
        self.actor = actor
        self.reason = reason
        self.fenced = fenced
        super().__init__(f"actor {actor}: the replicated record refused the append: {reason}")


class Batch:
    """One ``submit``: the events (in chain order, one actor's) and the blobs of one operation."""

    __slots__ = ("appends", "blobs", "writes")

    def __init__(self, writes: list[Pending[Any]]) -> None:
        self.writes = writes
        self.appends = [w for w in writes if isinstance(w, PendingAppend)]
        self.blobs = [w for w in writes if isinstance(w, PutBlob)]

    @property
    def actor(self) -> uuid.UUID | None:
        return self.appends[0].actor if self.appends else None


class Replicator(Protocol):
    """Stores batches elsewhere before they are committed locally."""

    def replicate(self, batch: Batch, done: Done) -> None:
        """Store ``batch`` and call ``done(None)`` once it is stored, ``done(error)`` if it is not.

        Batches of one actor are handed over in chain order and must be stored in that order; ``done`` may be
        called from any thread, and must be called exactly once.
        """
        ...


class _Relay:
    """Stands in for the writer of the writes a replicator holds: ``wait()`` on one of them waits here until it
    is passed on to the real writer (then there) or failed."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._changed = threading.Condition(threading.Lock())

    def hold(self, ops: list[Pending[Any]]) -> None:
        for op in ops:
            op._writer = self  # type: ignore[assignment]

    def pass_on(self, ops: list[Pending[Any]]) -> None:
        with self._changed:
            self._writer.submit_many(ops)
            self._changed.notify_all()

    def fail(self, ops: list[Pending[Any]], error: BaseException) -> None:
        with self._changed:
            for op in ops:
                op._error = error
                op._done = True
            self._changed.notify_all()
        self._writer.settled()  # they finished without the writer: its settle listeners hear it here

    def wait_for(self, op: Pending[Any], timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            if not self._changed.wait_for(lambda: op._done or op._writer is not self, timeout):  # type: ignore[comparison-overlap]
                raise TimeoutError("the append was not replicated in time")
        if not op._done:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            writer = op._writer
            assert writer is not None
            writer.wait_for(op, left)


class ReplicatedStore(Store):
    """A ``Store`` whose submitted writes are replicated before they are committed locally (module docstring).

    Args:
        path: the local store directory, as for ``Store``.
        replicator: what stores each batch elsewhere first.
        **options: the other options of ``Store``.
    """

    def __init__(self, path: Path | str, *, replicator: Replicator, **options: Any) -> None:
        super().__init__(path, **options)
        self.replicator = replicator
        writer = self._writer
        if not isinstance(writer, Writer):
            self.close()
            raise StoreError("a replicated store cannot be opened read-only")
        self._relay = _Relay(writer)

    def submit(self, writes: list[Pending[Any]], *, hold: bool = False) -> None:
        """Replicate ``writes``, then commit them locally (see the module docstring); never blocks on the network.
        ``hold`` changes nothing: the relay hands them to the writer once they are replicated."""
        if not writes:
            return
        relay = self._relay
        relay.hold(writes)
        batch = Batch(writes)

        def done(error: BaseException | None) -> None:
            if error is None:
                relay.pass_on(writes)
            else:
                relay.fail(writes, error)

        try:
            self.replicator.replicate(batch, done)
        except StoreError as exc:
            relay.fail(writes, exc)


__all__ = ["Batch", "Done", "ReplicatedStore", "ReplicationError", "Replicator"]
