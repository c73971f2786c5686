"""Errors of wasm execution and of replay.

The subtrees under the root ``TheaterError`` (see ``store.errors``)::

    TheaterError
    ├── WasmError                     executing a component failed
    │   ├── ComponentError            the bytes are not a usable component (invalid, wrong engine, bad cache)
    │   └── GuestFault                an export call failed; ``kind`` says how
    │                                 (trap, err, fuel, deadline, stopped, memory, host)
    └── ReplayError                   re-execution could not reproduce the record
        ├── SettingsMismatch          the recorded engine settings cannot be honoured here
        ├── RecordIncomplete          the chain lacks what replay needs (no creation event, missing blob)
        └── Divergence                the guest did something other than what was recorded

wasmtime's exceptions become these at one place: ``replay.engine.map_wasm_error``.
"""

from __future__ import annotations

from typing import Any

from store.errors import TheaterError

FAULT_KINDS = ("trap", "err", "fuel", "deadline", "stopped", "memory", "host")


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
        kind: one of ``FAULT_KINDS``: ``trap`` (the guest trapped), ``err`` (it returned the WIT err),
            ``fuel`` (it ran out of fuel), ``deadline`` (it passed its wall-clock deadline), ``stopped`` (the
            actor was stopped while the call ran), ``memory`` (it exceeded its memory ceiling), ``host`` (a host
            function failed and aborted the call).
        export: the export that was called, e.g. ``theater:simple/actor.init``.
        detail: the trap message or the err string.
        poisoned: true when the instance can no longer be called (everything but ``err``).
        fuel: the fuel the call consumed before it failed, when known.
    """

    def __init__(self, kind: str, export: str, detail: str, *, fuel: int | None = None) -> None:
        self.kind = kind
        self.export = export
        self.detail = detail
        self.fuel = fuel
        self.poisoned = kind != "err"
        super().__init__(f"{export} failed ({kind}): {detail}")


class ReplayError(TheaterError):
    """Re-execution could not reproduce the record."""


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
