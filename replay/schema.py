"""The runtime's events as replay reads them: one constant per type, and every field checked on the way in.

A chain (or a bundle) may come from anyone, so nothing read from it is trusted: each field replay uses is checked
for presence, type and range, and a bad one raises ``MalformedRecord`` naming the event and the field, instead of
whatever Python would raise further down. The layout is documented in ``docs/events.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from replay.derived import RESULT_REF, check_ref
from replay.errors import MalformedRecord, RecordIncomplete
from store import Event

ACTOR_CREATED = "actor/created"
WASM_INSTANTIATE = "wasm/instantiate"
WASM_CALL = "wasm/call"
WASM_RESULT = "wasm/result"
WASM_ERROR = "wasm/error"
OUTCOMES = (WASM_RESULT, WASM_ERROR)
# The runtime's own decisions, not boundary crossings: replay passes over them.
LIFECYCLE_PREFIXES = ("actor/", "supervisor/")
# After one of these the actor's instance takes no more calls until a new ``wasm/instantiate``.
INSTANCE_ENDS = ("actor/stop", "actor/exit", "actor/failed")
INSTANTIATE_REASONS = ("start", "restart", "resume", "recover")
RESUMING = ("resume", "recover")  # an instance from the last committed state, after a crash or a failed commit
OPT_LEVELS = ("none", "speed", "speed_and_size")
ENGINE_FLAGS = ("nan_canonicalization", "relaxed_simd_deterministic", "wasm_threads", "consume_fuel")
LIMIT_FIELDS = ("fuel_per_call", "memory_bytes", "deadline_ms")
DIGEST_SIZE = 32
_MISSING = object()


def is_boundary(event: Event) -> bool:
    """True for events the replay tape consumes (export calls and results, host calls, instantiation)."""
    return not event.type.startswith(LIFECYCLE_PREFIXES)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedLimits:
    """The per-call limits recorded at creation (checked to be positive integers, not yet capped)."""

    fuel_per_call: int
    memory_bytes: int
    deadline_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Genesis:
    """What the creation event records, checked: what replay needs to re-create the actor."""

    event: Event
    component: bytes
    manifest: bytes
    engine: dict[str, Any]
    limits: RecordedLimits
    init_state: bytes | None


class _Fields:
    """Reads the fields of one event's data, raising ``MalformedRecord`` that names the event and the field."""

    def __init__(self, event: Event, data: Any = _MISSING, prefix: str = "") -> None:
        self.event = event
        self.prefix = prefix
        self.data = event.data if data is _MISSING else data
        if not isinstance(self.data, dict):
            where = prefix.rstrip(".") or "data"
            raise self.bad(where, f"must be a map, got {_kind(self.data)}")

    def bad(self, field: str, problem: str) -> MalformedRecord:
        return MalformedRecord(seq=self.event.seq, type=self.event.type, field=field, problem=problem)

    def get(self, name: str, *, optional: bool = False) -> Any:
        if name not in self.data:
            if optional:
                return _MISSING
            raise self.bad(self.prefix + name, "is missing")
        return self.data[name]

    def text(self, name: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.get(name)
        if not isinstance(value, str):
            raise self.bad(self.prefix + name, f"must be a string, got {_kind(value)}")
        if choices is not None and value not in choices:
            raise self.bad(self.prefix + name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def flag(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            raise self.bad(self.prefix + name, f"must be true or false, got {_kind(value)}")
        return value

    def uint(self, name: str, *, optional: bool = False, positive: bool = False) -> int | None:
        value = self.get(name, optional=optional)
        if value is _MISSING or (optional and value is None):
            return None
        if type(value) is not int or value < (1 if positive else 0):
            floor = "a positive" if positive else "a non-negative"
            raise self.bad(self.prefix + name, f"must be {floor} integer, got {_show(value)}")
        return value

    def digest(self, name: str, *, nullable: bool = False, optional: bool = False) -> bytes | None | object:
        """A 32-byte blob hash (None allowed when ``nullable``; ``_MISSING`` returned when ``optional``)."""
        value = self.get(name, optional=optional)
        if value is _MISSING or (nullable and value is None):
            return value
        if not (isinstance(value, bytes) and len(value) == DIGEST_SIZE):
            raise self.bad(self.prefix + name, f"must be a 32-byte blob hash{' or null' if nullable else ''}, "
                                               f"got {_kind(value)}")
        return value

    def array(self, name: str) -> list[Any]:
        value = self.get(name)
        if not isinstance(value, list):
            raise self.bad(self.prefix + name, f"must be an array, got {_kind(value)}")
        return value

    def nested(self, name: str) -> _Fields:
        return _Fields(self.event, self.get(name), prefix=f"{self.prefix}{name}.")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    return {bool: "a boolean", int: "an integer", str: "a string", list: "an array", dict: "a map",
            float: "a float"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    return repr(value) if type(value) is int else _kind(value)


def read_genesis(event: Event) -> Genesis:
    """The creation event's fields, checked.

    Raises:
        RecordIncomplete: the event is not ``actor/created`` at seq 0.
        MalformedRecord: a field is missing or of the wrong type (component, manifest, engine, limits, init_state).
    """
    if event.seq != 0 or event.type != ACTOR_CREATED:
        raise RecordIncomplete(f"event {event.seq} is {event.type!r}, not the creation event ('actor/created')")
    fields = _Fields(event)
    engine = fields.nested("engine")
    engine.text("wasmtime")
    for flag in ENGINE_FLAGS:
        if flag in engine.data:
            engine.flag(flag)
    if "cranelift_opt_level" in engine.data:
        engine.text("cranelift_opt_level", OPT_LEVELS)
    limits = fields.nested("limits")
    recorded = {name: limits.uint(name, positive=True) for name in LIMIT_FIELDS}
    return Genesis(
        event=event,
        component=fields.digest("component"),  # type: ignore[arg-type]
        manifest=fields.digest("manifest"),  # type: ignore[arg-type]
        engine=dict(engine.data),
        limits=RecordedLimits(**recorded),  # type: ignore[arg-type]
        init_state=fields.digest("init_state", nullable=True),  # type: ignore[arg-type]
    )


def check_event(event: Event) -> None:
    """Check the fields replay and the continuity check read from one event after the creation event.

    Lifecycle events (``actor/*``, ``supervisor/*``) are the runtime's own decisions and only their type is read.

    Raises:
        MalformedRecord: naming the event and the field.
    """
    kind = event.type
    if kind.startswith(LIFECYCLE_PREFIXES):
        return
    fields = _Fields(event)
    if kind == WASM_CALL:
        fields.text("export")
        fields.digest("state", nullable=True)
        fields.array("params")
    elif kind == WASM_RESULT:
        fields.text("export")
        fields.digest("state", nullable=True)
        fields.array("output")
        fields.uint("fuel")
    elif kind == WASM_ERROR:
        fields.text("export")
        fields.text("kind")
        fields.text("detail")
        fields.uint("fuel", optional=True)
    elif kind == WASM_INSTANTIATE:
        fields.text("reason", INSTANTIATE_REASONS)
        fields.uint("fuel", optional=True)
        fields.digest("state", nullable=True, optional=True)
    else:  # a host call: its parameters and its result, whole or by reference (``replay.derived``)
        fields.array("params")
        if RESULT_REF in fields.data:
            check_ref(event, fields.data[RESULT_REF])
        else:
            fields.get("result")


def recorded_state(event: Event) -> bytes | None | object:
    """The state a ``wasm/instantiate`` event says the instance starts from; ``MISSING`` in chains recorded before
    the runtime wrote it (the state is then implied by the reason)."""
    return event.data.get("state", MISSING)


MISSING = _MISSING

__all__ = [
    "ACTOR_CREATED",
    "INSTANCE_ENDS",
    "INSTANTIATE_REASONS",
    "LIFECYCLE_PREFIXES",
    "MISSING",
    "OUTCOMES",
    "WASM_CALL",
    "WASM_ERROR",
    "WASM_INSTANTIATE",
    "WASM_RESULT",
    "Genesis",
    "RecordedLimits",
    "check_event",
    "is_boundary",
    "read_genesis",
    "recorded_state",
]
