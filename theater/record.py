"""The record side of the boundary: a tape that appends every crossing to the actor's chain.

Appends are pipelined (group commit); ``wait_durable`` blocks until everything appended so far is durable, which
the actor does before it releases any effect of a call (a message delivered, a response released).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from replay.boundary import CallResult
from replay.errors import GuestFault
from store import Event, Head, PendingAppend, Store


class RecordTape:
    """Appends crossings to one actor's chain, chaining each append on the previous one."""

    replaying = False

    def __init__(self, store: Store, actor: uuid.UUID, head: Head) -> None:
        self._log = store.log
        self._blobs = store.blobs
        self.actor = actor
        self.head = head
        self._last: PendingAppend | None = None
        self._state: tuple[bytes, bytes] | None = None  # the last state blob put: (bytes, hash)

    def append(self, type: str, data: Any) -> Event:
        """Queue one event after the current head; it is durable after ``wait_durable``."""
        pending = self._log.append_async(self.actor, type, data, expected=self.head)
        event = pending.event
        self.head = Head(event.seq, event.hash)
        self._last = pending
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
        digest = self._blobs.put_async(state).value
        self._state = (state, digest)
        return digest

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
