"""Errors of wasm execution and of replay.

The subtrees under the root ``TheaterError`` (see ``store.errors``)::

    TheaterError
    ├── WasmError                     executing a component failed
    │   ├── ComponentError            the bytes are not a usable component (invalid, wrong engine, bad cache)
    │   └── GuestFault                an export call failed; ``kind`` says how
    │                                 (trap, err, fuel, deadline, stopped, memory, host)
    └── ReplayError                   re-execution could not reproduce the record
        ├── UnsupportedWasmtime       the installed wasmtime-py is not the version Theater's patches are for
        ├── SettingsMismatch          the recorded engine settings cannot be honoured here
        ├── RecordIncomplete          the chain lacks what replay needs (no creation event, missing blob)
        ├── MalformedRecord           a field of an event is missing or of the wrong type (names seq and field)
        ├── LimitRefused              a recorded limit is above what this verifier accepts
        ├── ReplayTimeout             re-execution passed the verifier's wall-clock bound
        └── Divergence                the guest did something other than what was recorded
            └── ContinuityBreak       the record contradicts itself (a call does not start from the state the
                                      previous result or instance left, a call with no end and no resume, ...)

wasmtime's exceptions become these at one place: ``replay.engine.map_wasm_error``.
"""

from __future__ import annotations

import enum
from typing import Any

from store.errors import TheaterError


class FaultKind(enum.StrEnum):
    """How an export call failed: the ``kind`` of a ``GuestFault`` and of a ``wasm/error`` event."""

    TRAP = "trap"  # the guest trapped
    ERR = "err"  # it returned the WIT err
    FUEL = "fuel"  # it ran out of fuel
    DEADLINE = "deadline"  # it passed its wall-clock deadline
    STOPPED = "stopped"  # the actor was stopped while the call ran
    MEMORY = "memory"  # it exceeded its memory ceiling
    HOST = "host"  # a host function failed and aborted the call



class WasmError(TheaterError):
    """Executing WebAssembly failed."""


class ComponentError(WasmError):
    """``what`` is not a usable component: ``reason``."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what} is not a usable component: {reason}")


class GuestFault(WasmError):
    """An export call failed.

    Attributes:
        kind: a ``FaultKind``: ``trap`` (the guest trapped), ``err`` (it returned the WIT err),
            ``fuel`` (it ran out of fuel), ``deadline`` (it passed its wall-clock deadline), ``stopped`` (the
            actor was stopped while the call ran), ``memory`` (it exceeded its memory ceiling), ``host`` (a host
            function failed and aborted the call).
        export: the export that was called, e.g. ``theater:simple/actor.init``.
        detail: the trap message or the err string.
        poisoned: true when the instance can no longer be called (everything but ``err``).
        fuel: the fuel the call consumed before it failed, when known.
        answered: an ``err`` the actor answered (its ``on_err`` is ``answer``, see ``replay.schema.answers_err``):
            recorded as ``wasm/err-answer``, the call's state change discarded, the actor going on.
    """

    def __init__(self, kind: str, export: str, detail: str, *, fuel: int | None = None) -> None:
        self.kind = kind
        self.export = export
        self.detail = detail
        self.fuel = fuel
        self.poisoned = kind != FaultKind.ERR
        self.answered = False
        super().__init__(f"{export} failed ({kind}): {detail}")


class ReplayError(TheaterError):
    """Re-execution could not reproduce the record."""


class UnsupportedWasmtime(ReplayError):
    """The installed wasmtime-py is not a version whose internals ``replay._wasmtime`` was written for.

    Raised when an engine is made (nothing can be executed or replayed deterministically then).

    Attributes:
        installed: the installed wasmtime-py version.
        supported: the versions Theater supports, e.g. ``50.x``.
        reason: what is missing, when the version matched but an internal did not.
    """

    def __init__(self, installed: str, supported: str, reason: str = "") -> None:
        self.installed = installed
        self.supported = supported
        self.reason = reason
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"wasmtime-py {installed} is not supported{detail}: Theater needs wasmtime-py {supported}, whose "
            f"internals it patches"
        )


class SettingsMismatch(ReplayError):
    """The recorded engine settings or wasmtime version cannot be honoured by this build."""

    def __init__(self, field: str, recorded: Any, here: Any) -> None:
        self.field = field
        self.recorded = recorded
        self.here = here
        super().__init__(
            f"cannot replay: the chain was recorded with {field} = {recorded!r}, this build has {here!r}"
        )


class RecordIncomplete(ReplayError):
    """The chain or the blob store lacks something replay needs."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"cannot replay: {what}")


class MalformedRecord(ReplayError):
    """An event lacks a field replay reads, or holds it with the wrong type or value.

    Attributes:
        seq: the event's sequence number.
        type: the event's type.
        field: the field, dotted for nested ones (``limits.fuel_per_call``).
        problem: what is wrong with it, e.g. ``is missing`` or ``must be a 32-byte blob hash, got str``.
    """

    def __init__(self, *, seq: int, type: str, field: str, problem: str) -> None:
        self.seq = seq
        self.type = type
        self.field = field
        self.problem = problem
        super().__init__(f"cannot replay: event {seq} ({type}): {field} {problem}")


class LimitRefused(ReplayError):
    """A limit recorded in the chain is above the maximum this verifier accepts (it would let the record make
    replay burn that much fuel, memory or time).

    Attributes:
        field: the recorded limit, e.g. ``fuel_per_call``.
        recorded: its recorded value.
        maximum: the verifier's maximum.
    """

    def __init__(self, *, field: str, recorded: int, maximum: int) -> None:
        self.field = field
        self.recorded = recorded
        self.maximum = maximum
        super().__init__(
            f"cannot replay: the chain records {field} = {recorded:,}, above this verifier's maximum of "
            f"{maximum:,} (raise the maximum to replay it anyway)"
        )


class ReplayTimeout(ReplayError):
    """Re-execution passed the verifier's wall-clock bound (per call, or for the whole replay).

    Attributes:
        seq: the export call that was running (or about to run) when the bound passed.
        export: its export.
        seconds: the bound that passed.
        what: ``call`` (the per-call bound) or ``replay`` (the overall bound).
    """

    def __init__(self, *, seq: int, export: str, seconds: float, what: str) -> None:
        self.seq = seq
        self.export = export
        self.seconds = seconds
        self.what = what
        bound = "the per-call" if what == "call" else "the overall"
        super().__init__(
            f"replay stopped at event {seq} ({export}): it passed {bound} wall-clock bound of {seconds:g} s; "
            "the record cannot be confirmed within it"
        )


class Divergence(ReplayError):
    """The guest did something other than what the record says.

    Attributes:
        seq, hash: the first event that does not follow (hash may be None when the guest went past the record).
        expected, actual: the recorded value and what re-execution produced, decoded.
        what: a short name of the difference, e.g. ``host call``, ``export result``, ``fuel``.
        hint: the typical cause, when one is recognisable.
    """

    def __init__(
        self,
        *,
        seq: int,
        hash: bytes | None,
        what: str,
        expected: Any,
        actual: Any,
        hint: str | None = None,
    ) -> None:
        self.seq = seq
        self.hash = hash
        self.what = what
        self.expected = expected
        self.actual = actual
        self.hint = hint
        at = f"event {seq}" + (f" ({hash.hex()[:16]})" if hash else "")
        text = f"divergence at {at}: {what}: expected {_short(expected)}, got {_short(actual)}"
        if hint:
            text += f"; hint: {hint}"
        super().__init__(text)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ContinuityBreak(Divergence):
    """The record contradicts itself, whatever the component computes.

    Each call must start from the state the previous result (or the creation event, or the instance before it)
    left; a call without a recorded end must be followed by a resume from the state before it; an outcome must
    end the call before it; a call needs a live instance. ``expected`` is what the record says at ``seq``,
    ``actual`` what the events before it imply.
    """

    def __init__(
        self, *, seq: int, hash: bytes | None, what: str, expected: Any, actual: Any, hint: str | None = None
    ) -> None:
        super().__init__(seq=seq, hash=hash, what=what, expected=expected, actual=actual, hint=hint)
        at = f"event {seq}" + (f" ({hash.hex()[:16]})" if hash else "")
        text = (f"the record contradicts itself at {at}: {what}: it records {_named(expected)}, the events before "
                f"it imply {_named(actual)}")
        if hint:
            text += f"; {hint}"
        self.args = (text,)


def _named(value: Any) -> str:
    """A recorded value for a message, blob hashes as short hex and null as no state."""
    if value is None:
        return "no state"
    if isinstance(value, bytes) and len(value) == 32:
        return f"state {value.hex()[:16]}"
    if isinstance(value, list):
        return " or ".join(_named(v) for v in value)
    return _short(value)
