"""Re-execution of a recorded chain: the replay side of the boundary, and the driver that walks the chain.

Needs only the chain and the blob store: the component is loaded by the hash in the creation event, every import
is answered from the record (after checking the guest asks for the same import with the same parameters), every
export is called with the recorded parameters and its result and fuel are compared with the record. No handler,
no network, no runtime.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import blake3
import cbor2

from replay.boundary import INTERRUPTS, Boundary, CallResult, Limits, RecordedHostFault
from replay.engine import Engine, check_recorded
from replay.errors import Divergence, GuestFault, RecordIncomplete
from store import Event, Store
from store.errors import NotFoundError

LIFECYCLE_PREFIXES = ("actor/", "supervisor/")
MID_CHAIN_HINT = (
    "replay started mid-chain from a recorded state; a guest that keeps hidden state between calls (globals, "
    "caches) behaves differently from a fresh instance: replay from genesis to check"
)


def is_boundary(event: Event) -> bool:
    """True for events the replay tape consumes (export calls and results, host calls, instantiation)."""
    return not event.type.startswith(LIFECYCLE_PREFIXES)


def _same(a: Any, b: Any) -> bool:
    return a == b or cbor2.dumps(a, canonical=True) == cbor2.dumps(b, canonical=True)


def _digest(state: bytes | None) -> bytes | None:
    return None if state is None else blake3.blake3(state).digest()


class Cursor:
    """The chain's boundary events from a position on, with look-ahead."""

    def __init__(self, events: Iterator[Event]) -> None:
        self._events = (e for e in events if is_boundary(e))
        self._buffer: deque[Event] = deque()
        self.last_seq = -1

    def peek(self, n: int = 0) -> Event | None:
        while len(self._buffer) <= n:
            event = next(self._events, None)
            if event is None:
                return None
            self._buffer.append(event)
        return self._buffer[n]

    def take(self) -> Event | None:
        event = self.peek()
        if event is not None:
            self._buffer.popleft()
            self.last_seq = event.seq
        return event

    def next_call_interrupted(self) -> bool:
        """True when the call at the head of the cursor has no recorded end: the runtime stopped (or was killed)
        during it, and the next thing recorded is a new instance or the end of the record."""
        i = 1
        while (event := self.peek(i)) is not None:
            if event.type in ("wasm/result", "wasm/error"):
                return False
            if event.type in ("wasm/call", "wasm/instantiate"):
                return True
            i += 1
        return True

    def skip_call(self) -> None:
        """Take the call at the head and the host calls it made, up to the next call or instance."""
        self.take()
        while (event := self.peek()) is not None and event.type not in ("wasm/call", "wasm/instantiate"):
            self.take()

    def outcome_of_next_call(self) -> Event | None:
        """The result or error event that ends the call at the head of the cursor."""
        i = 1
        while (event := self.peek(i)) is not None:
            if event.type in ("wasm/result", "wasm/error", "wasm/call"):
                return event if event.type != "wasm/call" else None
            i += 1
        return None


class ReplayTape:
    """Serves every import from the record and checks every crossing against it."""

    replaying = True

    def __init__(self, cursor: Cursor, *, hint: str | None = None) -> None:
        self.cursor = cursor
        self.hint = hint
        self.calls = 0
        self.host_calls = 0

    def _next(self, what: str, actual: Any) -> Event:
        event = self.cursor.take()
        if event is None:
            raise Divergence(
                seq=self.cursor.last_seq + 1, hash=None, what=f"{what} beyond the end of the record",
                expected="the end of the record", actual=actual, hint=self.hint,
            )
        return event

    def _diverge(self, event: Event, what: str, expected: Any, actual: Any, hint: str | None = None) -> Divergence:
        return Divergence(seq=event.seq, hash=event.hash, what=what, expected=expected, actual=actual,
                          hint=hint or self.hint)

    def host_call(self, name: str, params: list[Any], call: Callable[[], Any]) -> Any:
        upcoming = self.cursor.peek()
        if upcoming is not None and upcoming.type == "wasm/error" and upcoming.data.get("kind") == "host":
            # The host function failed here when recorded: fail the same way; end_call checks the error event.
            raise RecordedHostFault(upcoming.data.get("detail", ""))
        event = self._next("host call", {"import": name, "params": params})
        if event.type != name:
            raise self._diverge(event, "host call", {"event": event.type, "data": event.data},
                                {"import": name, "params": params})
        if not _same(event.data.get("params"), params):
            raise self._diverge(event, f"parameters of {name}", event.data.get("params"), params)
        self.host_calls += 1
        return event.data.get("result")

    def begin_call(self, export: str, state: bytes | None, params: Any) -> None:
        event = self._next("export call", {"export": export, "params": params})
        data = event.data
        if event.type != "wasm/call" or data.get("export") != export:
            raise self._diverge(event, "export call", {"event": event.type, "data": data}, {"export": export})
        if not _same(data.get("params"), params) or data.get("state") != _digest(state):
            raise self._diverge(event, f"input of {export}", data, {"params": params, "state": _digest(state)})
        self.calls += 1

    def end_call(self, export: str, result: CallResult | GuestFault) -> None:
        actual = {"event": _event_of(result), **_outcome(result)}
        event = self._next("export result", actual)
        expected = {"event": event.type, **{k: event.data.get(k) for k in actual if k != "event"}}
        if expected.get("kind") in INTERRUPTS and actual.get("kind") == "fuel":
            actual["kind"] = expected["kind"]  # replayed with the recorded fuel as the limit: it stops at that point
        if not _same(expected, actual):
            what = "fuel consumed" if _only_fuel_differs(expected, actual) else f"result of {export}"
            raise self._diverge(event, what, expected, actual)


def _event_of(result: CallResult | GuestFault) -> str:
    return "wasm/result" if isinstance(result, CallResult) else "wasm/error"


def _outcome(result: CallResult | GuestFault) -> dict[str, Any]:
    if isinstance(result, CallResult):
        return {"state": _digest(result.state), "output": result.output, "fuel": result.fuel}
    outcome: dict[str, Any] = {"kind": result.kind, "fuel": result.fuel}
    if result.kind == "err":
        outcome["detail"] = result.detail
    return outcome


def _only_fuel_differs(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    return all(_same(expected.get(k), v) for k, v in actual.items() if k != "fuel")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    """What a replay did: how many calls and host calls it re-executed and checked, from and to which event."""

    actor: uuid.UUID
    from_seq: int
    to_seq: int
    calls: int
    host_calls: int
    state: bytes | None
    divergence: Divergence | None = None
    interrupted: int = 0  # calls with no recorded end (the runtime stopped during them), passed over

    @property
    def ok(self) -> bool:
        return self.divergence is None


class Replayer:
    """Replays chains of one store; keeps one engine per recorded settings."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._engines: dict[str, Engine] = {}

    def _engine(self, recorded: dict[str, Any]) -> Engine:
        settings = check_recorded(recorded)
        key = settings.digest()
        if key not in self._engines:
            self._engines[key] = Engine(settings)
        return self._engines[key]

    def genesis(self, actor: uuid.UUID) -> Event:
        try:
            event = self.store.log.at(actor, 0)
        except NotFoundError:
            raise RecordIncomplete(f"actor {actor} has no chain") from None
        if event.type != "actor/created":
            raise RecordIncomplete(f"the first event of actor {actor} is {event.type!r}, not 'actor/created'")
        return event

    def replay(
        self,
        actor: uuid.UUID,
        *,
        from_seq: int = 0,
        to_seq: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ReplayReport:
        """Re-execute the actor's chain from ``from_seq`` (0: from genesis) up to and including ``to_seq``.

        Returns a report; a divergence is reported in it, not raised. Raises ``SettingsMismatch`` or
        ``RecordIncomplete`` when replay cannot start at all. ``progress`` is called with the sequence number of
        each export call as it is re-executed.
        """
        genesis = self.genesis(actor)
        engine = self._engine(genesis.data["engine"])
        try:
            component = engine.load(self.store, genesis.data["component"])
        except NotFoundError:
            raise RecordIncomplete(f"component {genesis.data['component'].hex()} is not in the blob store") from None
        limits = _limits(genesis)
        stop = None if to_seq is None else to_seq + 1
        cursor = Cursor(self.store.log.events(actor, 0 if from_seq == 0 else from_seq, stop))
        tape = ReplayTape(cursor, hint=MID_CHAIN_HINT if from_seq > 0 else None)
        run = _Run(self.store, engine, component, tape, limits, fresh=from_seq > 0)
        run.progress = progress
        try:
            run.walk()
        except Divergence as divergence:
            return run.report(actor, from_seq, divergence)
        return run.report(actor, from_seq, None)


class _Run:
    """One walk of a chain."""

    def __init__(self, store: Store, engine: Engine, component: Any, tape: ReplayTape, limits: Limits,
                 *, fresh: bool) -> None:
        self.store = store
        self.engine = engine
        self.component = component
        self.tape = tape
        self.limits = limits
        self.boundary: Boundary | None = None
        self.fresh = fresh  # mid-chain: start a fresh instance at the first call
        self.state: bytes | None = None
        self.progress: Callable[[int], None] | None = None
        self.interrupted = 0

    def walk(self) -> None:
        cursor = self.tape.cursor
        while (event := cursor.peek()) is not None:
            if event.type == "wasm/instantiate":
                cursor.take()
                self.boundary = self._instantiate(event)
            elif event.type == "wasm/call" and cursor.next_call_interrupted():
                # Nothing of an interrupted call was released (effects wait for its end), and the actor resumed
                # from the state before it: there is no outcome to check, so it is passed over and counted.
                cursor.skip_call()
                self.interrupted += 1
            elif event.type == "wasm/call":
                self._call(event)
                if self.progress is not None:
                    self.progress(event.seq)
            else:
                cursor.take()
                if self.boundary is None and not self.fresh:
                    raise self.tape._diverge(event, "event outside any instance", "wasm/instantiate", event.type)

    def _instantiate(self, event: Event) -> Boundary:
        boundary = Boundary(self.engine, self.component, self.tape, None, self.limits)
        recorded = event.data.get("fuel")
        if recorded is not None and recorded != boundary.instantiate_fuel:
            raise self.tape._diverge(event, "fuel consumed by instantiation", recorded, boundary.instantiate_fuel)
        return boundary

    def _call(self, event: Event) -> None:
        if self.boundary is None or self.boundary.poisoned is not None:
            if not self.fresh and self.boundary is None:
                raise self.tape._diverge(event, "export call before instantiation", "wasm/instantiate", "wasm/call")
            self.boundary = Boundary(self.engine, self.component, self.tape, None, self.limits)
        self.fresh = False
        outcome = self.tape.cursor.outcome_of_next_call()
        limits = self.limits
        if outcome is not None and outcome.data.get("kind") in INTERRUPTS and outcome.data.get("fuel") is not None:
            limits = Limits(fuel_per_call=outcome.data["fuel"], memory_bytes=limits.memory_bytes,
                            deadline_ms=limits.deadline_ms)
        self.boundary.limits = limits
        data = event.data
        state = self._state(data.get("state"))
        try:
            result = self.boundary.call(data["export"], state, data["params"])
            self.state = result.state
        except GuestFault:
            pass  # the tape has compared it with the recorded failure
        finally:
            self.boundary.limits = self.limits

    def _state(self, digest: bytes | None) -> bytes | None:
        if digest is None:
            return None
        try:
            return self.store.blobs.get(digest)
        except NotFoundError:
            raise RecordIncomplete(f"state blob {digest.hex()} is not in the blob store") from None

    def report(self, actor: uuid.UUID, from_seq: int, divergence: Divergence | None) -> ReplayReport:
        return ReplayReport(
            actor=actor, from_seq=from_seq, to_seq=self.tape.cursor.last_seq, calls=self.tape.calls,
            host_calls=self.tape.host_calls, state=self.state, divergence=divergence, interrupted=self.interrupted,
        )



def _limits(genesis: Event) -> Limits:
    """The per-call limits the actor ran with (they change where a guest stops), as recorded at creation."""
    recorded = genesis.data.get("limits")
    if not isinstance(recorded, dict):
        raise RecordIncomplete("the creation event does not record the actor's limits")
    return Limits(
        fuel_per_call=recorded["fuel_per_call"],
        memory_bytes=recorded["memory_bytes"],
        deadline_ms=recorded["deadline_ms"],
    )
