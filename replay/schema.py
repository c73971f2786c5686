"""The record's schema in code: a constant per event type, a payload class per event kind, and every field checked
on the way in. The runtime writes its events through these classes and replay reads them back through them.

Each payload class is a frozen dataclass with ``encode()`` (the ``data`` map to append) and ``decode(event)`` (the
checked fields of a recorded event); ``encode`` writes its keys in canonical order (shorter keys first, then
bytewise) where the map was written so before, so the store keeps its fast canonical path (``store.codec._plain``)
and the bytes recorded do not change.

A chain (or a bundle) may come from anyone, so nothing read from it is trusted: each field replay uses is checked
for presence, type and range, and a bad one raises ``MalformedRecord`` naming the event and the field, instead of
whatever Python would raise further down. The layout is documented in ``docs/events.md``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

from replay.derived import RESULT_REF, check_ref
from replay.errors import MalformedRecord, RecordIncomplete
from store import Event

# Every event type the runtime writes, but host calls (``<interface>/<function>``). docs/events.md has one row each.
ACTOR_CREATED = "actor/created"
ACTOR_STOP = "actor/stop"
ACTOR_EXIT = "actor/exit"
ACTOR_FAILED = "actor/failed"
ACTOR_PASSIVATED = "actor/passivated"
ACTOR_REVERT = "actor/revert"
ACTOR_UPGRADED = "actor/upgraded"
ACTOR_HTTP_TIMEOUT = "actor/http-timeout"
WASM_INSTANTIATE = "wasm/instantiate"
WASM_CALL = "wasm/call"
WASM_RESULT = "wasm/result"
WASM_ERROR = "wasm/error"
WASM_ERR_ANSWER = "wasm/err-answer"
SUPERVISOR_SPAWN = "supervisor/spawn"
SUPERVISOR_RESTART = "supervisor/restart"
SUPERVISOR_GIVE_UP = "supervisor/give-up"
SUPERVISOR_STOP = "supervisor/stop"
EVENT_TYPES = (ACTOR_CREATED, ACTOR_STOP, ACTOR_EXIT, ACTOR_FAILED, ACTOR_PASSIVATED, ACTOR_REVERT, WASM_INSTANTIATE,
               WASM_CALL, WASM_RESULT, WASM_ERROR, WASM_ERR_ANSWER, SUPERVISOR_SPAWN, SUPERVISOR_RESTART,
               SUPERVISOR_GIVE_UP, SUPERVISOR_STOP, ACTOR_UPGRADED, ACTOR_HTTP_TIMEOUT)
# How an export call ends: ok, an err the actor answered (it goes on, its state unchanged), or a failure.
OUTCOMES = (WASM_RESULT, WASM_ERR_ANSWER, WASM_ERROR)
# The runtime's own decisions, not boundary crossings: replay passes over them.
LIFECYCLE_PREFIXES = ("actor/", "supervisor/")
# After one of these the actor's instance takes no more calls until a new ``wasm/instantiate``.
INSTANCE_ENDS = (ACTOR_STOP, ACTOR_EXIT, ACTOR_FAILED)
# Events that say which state the actor holds after them, and the field (a blob hash) that names it.
STATE_FIELDS = {WASM_RESULT: "state", WASM_CALL: "state", WASM_INSTANTIATE: "state", ACTOR_CREATED: "init_state",
                ACTOR_REVERT: "state"}
# Events after which an actor does not run until it is restarted (a failed call fails the actor; an answered err,
# ``wasm/err-answer``, does not).
CHAIN_ENDS = frozenset({*INSTANCE_ENDS, WASM_ERROR})
# The export every actor may have that starts it: its err is never answered (the actor could not start).
INIT_EXPORT = "theater:simple/actor.init"


class OnErr(enum.StrEnum):
    """What an export call that returns the WIT ``err`` does to its actor (the manifest's ``on_err``, recorded in
    ``actor/created``)."""

    ANSWER = "answer"  # the err is the call's answer: its state change is discarded, the actor goes on
    FAIL = "fail"  # the actor fails, as a trap does (the only behaviour before ``on_err`` existed)


ON_ERR_CHOICES = tuple(OnErr)


def answers_err(on_err: OnErr, export: str) -> bool:
    """Whether an ``err`` returned by ``export`` is answered (the actor goes on) under ``on_err``: always under
    ``answer``, except from ``init`` (an actor whose ``init`` returns err could not start: it fails)."""
    return on_err == OnErr.ANSWER and export != INIT_EXPORT


class InstantiateReason(enum.StrEnum):
    """Why a ``wasm/instantiate`` made a fresh instance (its ``reason``)."""

    START = "start"
    RESTART = "restart"  # by a supervisor
    RESUME = "resume"  # after a runtime restart
    RECOVER = "recover"  # after a failed commit
    ACTIVATE = "activate"  # the first operation after an ``actor/passivated``
    REVERT = "revert"  # right after an ``actor/revert``: a fresh instance from the state reverted to


INSTANTIATE_REASONS = tuple(InstantiateReason)
# An instance from the last committed state, after a crash or a failed commit.
RESUMING = (InstantiateReason.RESUME, InstantiateReason.RECOVER)
OPT_LEVELS = ("none", "speed", "speed_and_size")
ENGINE_FLAGS = ("nan_canonicalization", "relaxed_simd_deterministic", "wasm_threads", "consume_fuel")
LIMIT_FIELDS = ("fuel_per_call", "memory_bytes", "deadline_ms")
DIGEST_SIZE = 32
_MISSING = object()


def is_boundary(event: Event) -> bool:
    """True for events the replay tape consumes (export calls and results, host calls, instantiation)."""
    return not event.type.startswith(LIFECYCLE_PREFIXES)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Per-call resource limits of an instance, as ``actor/created`` records them (the one definition: the
    manifest's ``[limits]`` extend it, the boundary applies it, replay reads it back checked)."""

    fuel_per_call: int = 1_000_000_000
    memory_bytes: int = 256 * 1024 * 1024
    deadline_ms: int = 30_000

    def per_call(self) -> Limits:
        """Just the per-call limits (a subclass's own fields dropped)."""
        return Limits(fuel_per_call=self.fuel_per_call, memory_bytes=self.memory_bytes, deadline_ms=self.deadline_ms)

    def encode(self) -> dict[str, int]:
        return {"fuel_per_call": self.fuel_per_call, "memory_bytes": self.memory_bytes,
                "deadline_ms": self.deadline_ms}


RecordedLimits = Limits  # the name replay used for the checked recorded limits


@dataclass(frozen=True, slots=True, kw_only=True)
class Genesis:
    """What the creation event records, checked: what replay needs to re-create the actor."""

    event: Event
    component: bytes
    manifest: bytes
    engine: dict[str, Any]
    limits: Limits
    init_state: bytes | None
    on_err: OnErr = OnErr.FAIL  # chains recorded before ``on_err`` existed: an err failed the actor


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


class Payload:
    """An event kind's ``data``: ``encode()`` gives the map to append (keys in field order, enums as their text,
    ``MISSING`` fields left out), ``decode(event)`` reads a recorded event of ``TYPE`` back, checked."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def encode(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if value is _MISSING:
                continue
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, Limits):
                value = value.encode()
            data[item.name] = value
        return data

    @classmethod
    def _fields(cls, event: Event) -> _Fields:
        if event.type != cls.TYPE:
            raise MalformedRecord(seq=event.seq, type=event.type, field="type", problem=f"is not {cls.TYPE!r}")
        return _Fields(event)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorCreated(Payload):
    """``actor/created``, seq 0: what the actor is made of. ``id``, ``name`` and ``parent`` are informational and
    read as recorded; the rest is checked (replay re-creates the actor from it)."""

    TYPE: ClassVar[str] = ACTOR_CREATED
    id: str
    name: str
    component: bytes
    manifest: bytes
    engine: dict[str, Any]
    parent: str | None
    init_state: bytes | None
    limits: Limits
    # The files a tree started on a server may name (``theater.files.FileAccess.recorded_map``): ``{"base": text,
    # "names": {name: blob hash}}``; absent for every other actor (and in chains written before it was recorded).
    files: dict[str, Any] | object = _MISSING
    # What the manifest's ``on_err`` says an err does (``OnErr``); absent in chains recorded before it existed,
    # whose errs failed the actor (read as ``fail``).
    on_err: OnErr | object = _MISSING
    # The effective grants: ``[{"type": ..., "config": {...}}]``, one per handler, ``runtime`` included, each config
    # as its handler validated it; absent in chains recorded before (the manifest blob holds them then).
    grants: list[dict[str, Any]] | object = _MISSING
    # A fork's origin (``replay.lineage.ForkOrigin``): ``{"actor": bytes(16), "seq": n, "event": hash}`` and, for a
    # fork of a what-if run, ``overrides``; absent for every actor not forked. Checked by ``replay.lineage``.
    fork: dict[str, Any] | object = _MISSING

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        engine = fields_.nested("engine")
        engine.text("wasmtime")
        for flag in ENGINE_FLAGS:
            if flag in engine.data:
                engine.flag(flag)
        if "cranelift_opt_level" in engine.data:
            engine.text("cranelift_opt_level", OPT_LEVELS)
        limits = fields_.nested("limits")
        recorded = {name: limits.uint(name, positive=True) for name in LIMIT_FIELDS}
        return cls(
            id=fields_.data.get("id"),
            name=fields_.data.get("name"),
            component=fields_.digest("component"),  # type: ignore[arg-type]
            manifest=fields_.digest("manifest"),  # type: ignore[arg-type]
            engine=dict(engine.data),
            parent=fields_.data.get("parent"),
            init_state=fields_.digest("init_state", nullable=True),  # type: ignore[arg-type]
            limits=Limits(**recorded),  # type: ignore[arg-type]
            files=_files(fields_) if "files" in fields_.data else _MISSING,
            on_err=OnErr(fields_.text("on_err", ON_ERR_CHOICES)) if "on_err" in fields_.data else _MISSING,
            grants=_grants(fields_) if "grants" in fields_.data else _MISSING,
            fork=fields_.nested("fork").data if "fork" in fields_.data else _MISSING,
        )

    @property
    def err_policy(self) -> OnErr:
        """``on_err`` as recorded, ``fail`` in chains recorded before it existed."""
        return self.on_err if isinstance(self.on_err, OnErr) else OnErr.FAIL


def _grants(fields_: _Fields) -> list[dict[str, Any]]:
    """``grants`` of ``actor/created``: an array of maps, each with a ``type`` (text) and a ``config`` (a map)."""
    grants = fields_.array("grants")
    for index, entry in enumerate(grants):
        item = _Fields(fields_.event, entry, prefix=f"grants[{index}].")
        item.text("type")
        item.nested("config")
    return grants


def _files(fields_: _Fields) -> dict[str, Any]:
    """``files`` of ``actor/created``: a base (text) and a map of names (text) to blob hashes."""
    files = fields_.nested("files")
    base = files.text("base")
    names = files.nested("names")
    for name in names.data:
        if not isinstance(name, str):
            raise names.bad("files.names", f"must map names (strings) to blob hashes, got a key of {_kind(name)}")
        names.digest(name)
    return {"base": base, "names": dict(names.data)}


@dataclass(frozen=True, slots=True, kw_only=True)
class WasmInstantiate(Payload):
    """``wasm/instantiate``: a fresh instance. ``state`` is ``MISSING`` in chains written before it was recorded.
    ``component`` (the blob hash of the component the instance runs) is there only once the actor was upgraded
    (``actor/upgraded``): without it, the instance runs the component ``actor/created`` names."""

    TYPE: ClassVar[str] = WASM_INSTANTIATE
    fuel: int | None
    state: bytes | None | object = _MISSING
    reason: InstantiateReason
    component: bytes | object = _MISSING

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(fuel=fields_.uint("fuel", optional=True),
                   state=fields_.digest("state", nullable=True, optional=True),
                   reason=InstantiateReason(fields_.text("reason", INSTANTIATE_REASONS)),
                   component=fields_.digest("component", optional=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class WasmCall(Payload):
    """``wasm/call``: an export is about to be called with this state and these (recorded-form) params.

    ``cause`` (a delivery from another actor: the hash of the sender's event it follows) is left out of the map
    when there is none; replay does not read it (verification checks it against the sender's chain).
    """

    TYPE: ClassVar[str] = WASM_CALL
    cause: Any = _MISSING  # first: canonical key order (shorter keys first, then bytewise)
    state: bytes | None
    export: str
    params: list[Any]

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(state=fields_.digest("state", nullable=True),  # type: ignore[arg-type]
                   export=fields_.text("export"), params=fields_.array("params"))


@dataclass(frozen=True, slots=True, kw_only=True)
class WasmResult(Payload):
    """``wasm/result``: the call returned ok, leaving ``state``, with the rest of the ok tuple as ``output``."""

    TYPE: ClassVar[str] = WASM_RESULT
    fuel: int
    state: bytes | None
    export: str
    output: list[Any]

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(fuel=fields_.uint("fuel"), state=fields_.digest("state", nullable=True),  # type: ignore[arg-type]
                   export=fields_.text("export"), output=fields_.array("output"))


@dataclass(frozen=True, slots=True, kw_only=True)
class WasmFailure(Payload):
    """``wasm/error``: the call failed; ``kind`` is a ``FaultKind`` (read back as recorded text)."""

    TYPE: ClassVar[str] = WASM_ERROR
    fuel: int | None
    kind: str
    detail: str
    export: str

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(fuel=fields_.uint("fuel", optional=True), kind=fields_.text("kind"),
                   detail=fields_.text("detail"), export=fields_.text("export"))


@dataclass(frozen=True, slots=True, kw_only=True)
class WasmErrAnswer(Payload):
    """``wasm/err-answer``: the call returned the WIT ``err`` (``detail``) and the actor answered it: the call's
    state change is discarded (the actor keeps the state the call started from) and it goes on, on the same
    instance. Written only for an actor whose ``on_err`` is ``answer`` (``answers_err``)."""

    TYPE: ClassVar[str] = WASM_ERR_ANSWER
    fuel: int
    detail: str
    export: str

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(fuel=fields_.uint("fuel"), detail=fields_.text("detail"),  # type: ignore[arg-type]
                   export=fields_.text("export"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorStop(Payload):
    """``actor/stop``: the actor was stopped (``data`` is always null)."""

    TYPE: ClassVar[str] = ACTOR_STOP
    data: bytes | None = None

    @classmethod
    def decode(cls, event: Event) -> Self:
        return cls(data=cls._fields(event).get("data"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorExit(Payload):
    """``actor/exit``: the actor shut itself down, with this data."""

    TYPE: ClassVar[str] = ACTOR_EXIT
    data: bytes | None

    @classmethod
    def decode(cls, event: Event) -> Self:
        return cls(data=cls._fields(event).get("data"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorPassivated(Payload):
    """``actor/passivated``: the actor was idle and dropped its instance, holding ``state`` (the state of its
    last result); it is not an end: its next operation makes a fresh instance (reason ``activate``) from it."""

    TYPE: ClassVar[str] = ACTOR_PASSIVATED
    state: bytes | None
    idle_ms: int

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(state=fields_.digest("state", nullable=True),  # type: ignore[arg-type]
                   idle_ms=fields_.uint("idle_ms"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorRevert(Payload):
    """``actor/revert``: the actor was brought back to its state after event ``to_seq`` of its own chain (whose
    hash is ``event``), holding ``state`` (the state there); a ``wasm/instantiate`` with reason ``revert`` from
    that state follows. Nothing before it is changed: a revert appends."""

    TYPE: ClassVar[str] = ACTOR_REVERT
    event: bytes
    state: bytes | None
    to_seq: int

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(event=fields_.digest("event"), state=fields_.digest("state", nullable=True),  # type: ignore[arg-type]
                   to_seq=fields_.uint("to_seq"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorUpgraded(Payload):
    """``actor/upgraded``: the actor's component was replaced (``theater restart --component``); the instances
    after it run ``new`` (each ``wasm/instantiate`` names it). ``verdict`` is the upgrade check's over the chain
    before it (``replay.upgrade``), ``forced`` says the restart went ahead whatever the verdict."""

    TYPE: ClassVar[str] = ACTOR_UPGRADED
    new: bytes
    old: bytes
    forced: bool
    verdict: str

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(new=fields_.digest("new"), old=fields_.digest("old"),  # type: ignore[arg-type]
                   forced=fields_.flag("forced"), verdict=fields_.text("verdict"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorFailed(Payload):
    """``actor/failed``: the actor could not be brought up, or its supervisor gave up."""

    TYPE: ClassVar[str] = ACTOR_FAILED
    reason: str

    @classmethod
    def decode(cls, event: Event) -> Self:
        return cls(reason=cls._fields(event).text("reason"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorHttpTimeout(Payload):
    """``actor/http-timeout``: a request to one of the actor's HTTP servers got 504, the actor not having answered
    within the server's ``timeout_ms``; ``dropped``: its call had not started and never will (else it ran on, and
    its answer went nowhere). Informational: replay passes over it."""

    TYPE: ClassVar[str] = ACTOR_HTTP_TIMEOUT
    server: int
    method: str
    uri: str
    timeout_ms: int
    dropped: bool

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(server=fields_.uint("server"), method=fields_.text("method"),  # type: ignore[arg-type]
                   uri=fields_.text("uri"), timeout_ms=fields_.uint("timeout_ms"),  # type: ignore[arg-type]
                   dropped=fields_.flag("dropped"))


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorSpawn(Payload):
    """``supervisor/spawn``, in the parent's chain: a child was started (``child`` null and ``error`` set when the
    spawn was refused)."""

    TYPE: ClassVar[str] = SUPERVISOR_SPAWN
    child: str | None
    name: str
    restart: str
    restart_from: str
    init: bool
    error: str | None

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(child=fields_.get("child"), name=fields_.text("name"), restart=fields_.text("restart"),
                   restart_from=fields_.text("restart_from"), init=fields_.flag("init"), error=fields_.get("error"))


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorRestart(Payload):
    """``supervisor/restart``: the parent restarts a child. ``cause`` (the ending that led to it) is left out of a
    requested restart."""

    TYPE: ClassVar[str] = SUPERVISOR_RESTART
    child: str
    reason: str
    strategy: str
    restart_from: str
    incarnation: int
    delay_ms: int
    cause: dict[str, Any] | object = _MISSING

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(child=fields_.text("child"), reason=fields_.text("reason"), strategy=fields_.text("strategy"),
                   restart_from=fields_.text("restart_from"), incarnation=fields_.uint("incarnation"),  # type: ignore[arg-type]
                   delay_ms=fields_.uint("delay_ms"),  # type: ignore[arg-type]
                   cause=fields_.get("cause", optional=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorGiveUp(Payload):
    """``supervisor/give-up``: too many restarts; the supervisor stops its children and fails."""

    TYPE: ClassVar[str] = SUPERVISOR_GIVE_UP
    child: str
    reason: str
    cause: dict[str, Any]
    intensity: int
    period_s: float

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(child=fields_.text("child"), reason=fields_.text("reason"), cause=fields_.get("cause"),
                   intensity=fields_.uint("intensity"), period_s=fields_.get("period_s"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorStop(Payload):
    """``supervisor/stop``: the parent stopped a child, with this outcome (``stopped``, ``timeout``, ``already
    <status>``)."""

    TYPE: ClassVar[str] = SUPERVISOR_STOP
    child: str
    reason: str
    outcome: str

    @classmethod
    def decode(cls, event: Event) -> Self:
        fields_ = cls._fields(event)
        return cls(child=fields_.text("child"), reason=fields_.text("reason"), outcome=fields_.text("outcome"))


PAYLOADS: dict[str, type[Payload]] = {cls.TYPE: cls for cls in (
    ActorCreated, ActorStop, ActorExit, ActorFailed, ActorPassivated, ActorRevert, WasmInstantiate, WasmCall,
    WasmResult, WasmFailure, WasmErrAnswer, SupervisorSpawn, SupervisorRestart, SupervisorGiveUp, SupervisorStop,
    ActorUpgraded, ActorHttpTimeout)}


def read_genesis(event: Event) -> Genesis:
    """The creation event's fields, checked.

    Raises:
        RecordIncomplete: the event is not ``actor/created`` at seq 0.
        MalformedRecord: a field is missing or of the wrong type (component, manifest, engine, limits, init_state).
    """
    if event.seq != 0 or event.type != ACTOR_CREATED:
        raise RecordIncomplete(f"event {event.seq} is {event.type!r}, not the creation event ('actor/created')")
    created = ActorCreated.decode(event)
    return Genesis(event=event, component=created.component, manifest=created.manifest, engine=created.engine,
                   limits=created.limits, init_state=created.init_state, on_err=created.err_policy)


def check_event(event: Event) -> None:
    """Check the fields replay and the continuity check read from one event after the creation event.

    Lifecycle events (``actor/*``, ``supervisor/*``) are the runtime's own decisions and only their type is read.

    Raises:
        MalformedRecord: naming the event and the field.
    """
    kind = event.type
    if kind.startswith(LIFECYCLE_PREFIXES):
        return
    payload = PAYLOADS.get(kind)
    if payload is not None:  # the wasm/* kinds: decoding checks every field
        payload.decode(event)  # type: ignore[attr-defined]
    else:  # a host call: its parameters and its result
        fields = _Fields(event)
        fields.array("params")
        if RESULT_REF in fields.data:
            check_ref(event, fields.data[RESULT_REF])
        else:
            fields.get("result")


def recorded_state(event: Event) -> bytes | None | object:
    """The state a ``wasm/instantiate`` event says the instance starts from; ``MISSING`` in chains recorded before
    the runtime wrote it (the state is then implied by the reason)."""
    state: bytes | None | object = event.data.get("state", MISSING)
    return state


MISSING = _MISSING

__all__ = [
    "ACTOR_CREATED",
    "ACTOR_EXIT",
    "ACTOR_FAILED",
    "ACTOR_HTTP_TIMEOUT",
    "ACTOR_PASSIVATED",
    "ACTOR_REVERT",
    "ACTOR_STOP",
    "ACTOR_UPGRADED",
    "CHAIN_ENDS",
    "EVENT_TYPES",
    "INIT_EXPORT",
    "INSTANCE_ENDS",
    "INSTANTIATE_REASONS",
    "LIFECYCLE_PREFIXES",
    "MISSING",
    "ON_ERR_CHOICES",
    "OUTCOMES",
    "PAYLOADS",
    "RESUMING",
    "STATE_FIELDS",
    "SUPERVISOR_GIVE_UP",
    "SUPERVISOR_RESTART",
    "SUPERVISOR_SPAWN",
    "SUPERVISOR_STOP",
    "WASM_CALL",
    "WASM_ERROR",
    "WASM_ERR_ANSWER",
    "WASM_INSTANTIATE",
    "WASM_RESULT",
    "ActorCreated",
    "ActorExit",
    "ActorFailed",
    "ActorHttpTimeout",
    "ActorPassivated",
    "ActorRevert",
    "ActorStop",
    "ActorUpgraded",
    "Genesis",
    "InstantiateReason",
    "Limits",
    "OnErr",
    "Payload",
    "RecordedLimits",
    "SupervisorGiveUp",
    "SupervisorRestart",
    "SupervisorSpawn",
    "SupervisorStop",
    "WasmCall",
    "WasmErrAnswer",
    "WasmFailure",
    "WasmInstantiate",
    "WasmResult",
    "answers_err",
    "check_event",
    "is_boundary",
    "read_genesis",
    "recorded_state",
]
