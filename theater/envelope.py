"""What travels with a message between actors on the host side: never handed to a guest, never recorded as data
the receiver's guest can see or set.

``cause`` is the hash of the sender's event the delivery follows; the receiver's ``wasm/call`` records it
(``docs/events.md``: the causal link). For a ``send``, ``send-on-channel`` or ``close-channel`` it is that host
call's own event, which the sender's tape fills in when it appends it (``RecordTape.stamp_next``; the delivery
waits for the event to be durable anyway). For a ``request`` or ``open-channel`` it is the sender's event just
before the host call's own, which is appended only once the answer is back (it records the answer).

``trace`` is the OpenTelemetry context of the sending host call when tracing is on (``theater.telemetry``), so
the receiver's export span joins the sender's trace; None when it is off.
"""

from __future__ import annotations

from typing import Any


class Envelope:
    """The host-side companion of one delivery (a mutable runtime object: the tape fills in ``cause`` later)."""

    __slots__ = ("cause", "trace")

    def __init__(self, cause: bytes | None = None, trace: Any = None) -> None:
        self.cause = cause
        self.trace = trace


__all__ = ["Envelope"]
