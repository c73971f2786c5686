"""Re-execution of a recorded chain: the replay side of the boundary, and the driver that walks the chain.

Needs only the chain and the blob store: the component is loaded by the hash in the creation event, every import
is answered from the record (after checking the guest asks for the same import with the same parameters), every
export is called with the recorded parameters and its result and fuel are compared with the record. No handler,
no network, no runtime.

Before anything runs, every field replay reads is checked (``replay.schema``), the recorded limits are capped by
the verifier's own maximums (``ReplayLimits``), and the record is checked to fit together (``replay.continuity``).
Re-execution is bounded in wall-clock time: per call, and optionally for the whole replay.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from replay._reexecution import (
    UNFIT_VALUE,
    Overall,
    call_limits,
    epoch_ticks,
    load_component,
    outcome_fields,
    outcome_event,
    same,
    state_blob,
    state_digest,
)
from replay.boundary import INTERRUPTS, Boundary, CallResult, RecordedHostFault
from replay.continuity import ContinuityCheck, InterruptedCall
from replay.derived import RESULT_REF, RefMismatch, expand
from replay.engine import Engine, check_recorded
from replay.errors import (
    ContinuityBreak,
    Divergence,
    FaultKind,
    GuestFault,
    LimitRefused,
    RecordIncomplete,
    ReplayError,
    ReplayTimeout,
)
from replay.history import component_at
from replay.schema import (
    ACTOR_CREATED,
    LIFECYCLE_PREFIXES,
    OUTCOMES,
    WASM_CALL,
    WASM_ERROR,
    WASM_INSTANTIATE,
    Genesis,
    Limits,
    OnErr,
    is_boundary,
    read_genesis,
)
from store import Event, Store
from store.errors import InvalidInputError, NotFoundError

MID_CHAIN_HINT = (
    "replay started mid-chain from a recorded state; a guest that keeps hidden state between calls (globals, "
    "caches) behaves differently from a fresh instance: replay from genesis to check"
)
__all__ = ["LIFECYCLE_PREFIXES", "MID_CHAIN_HINT", "Checked", "Cursor", "ReplayLimits", "ReplayReport", "ReplayTape",
           "Replayer", "Walk", "is_boundary"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayLimits:
    """What this verifier accepts from a record, and how long it lets re-execution run.

    A record names its own limits (fuel, memory and deadline per call); a hostile one would name huge ones to make
    the verifier burn fuel, memory or time without end. Limits above these maximums are refused (``LimitRefused``),
    and every call is bounded in wall-clock time whatever its fuel.

    Attributes:
        max_fuel_per_call, max_memory_bytes, max_deadline_ms: the largest recorded limits accepted.
        call_timeout_s: the wall-clock bound of one replayed call; None: twice the recorded deadline plus 5 s
            (replay runs no faster than the recording everywhere).
        timeout_s: the wall-clock bound of a whole replay; None: none beyond the per-call bound.
    """

    max_fuel_per_call: int = 1_000_000_000_000
    max_memory_bytes: int = 4 * 1024**3  # a 32-bit memory's whole range
    max_deadline_ms: int = 600_000
    call_timeout_s: float | None = None
    timeout_s: float | None = None

    def limits(self, genesis: Genesis) -> Limits:
        """The recorded limits, checked against the maximums.

        Raises:
            LimitRefused: a recorded limit above its maximum.
        """
        recorded = genesis.limits
        for name, value, maximum in (
            ("fuel_per_call", recorded.fuel_per_call, self.max_fuel_per_call),
            ("memory_bytes", recorded.memory_bytes, self.max_memory_bytes),
            ("deadline_ms", recorded.deadline_ms, self.max_deadline_ms),
        ):
            if value > maximum:
                raise LimitRefused(field=name, recorded=value, maximum=maximum)
        return recorded

    def call_bound(self, deadline_ms: int) -> float:
        """Seconds one replayed call may run."""
        return self.call_timeout_s if self.call_timeout_s is not None else 2 * deadline_ms / 1000 + 5


class _CallCut(ReplayError):
    """Internal: the record of an interrupted call ends here; unwinds the guest out of a host function."""


class Checked:
    """The chain's events read once: each goes through the continuity check, and those from ``from_seq`` on that
    the replay tape consumes come out. The stream ends before the first event that breaks continuity (kept in
    ``problem``); a call is known to be interrupted once the events after it have been read."""

    def __init__(self, events: Iterator[Event], check: ContinuityCheck, from_seq: int) -> None:
        self._events = events
        self.check = check
        self.from_seq = from_seq
        self.problem: ContinuityBreak | None = None

    def __iter__(self) -> Iterator[Event]:
        for event in self._events:
            try:
                self.check.feed(event)
            except ContinuityBreak as problem:
                self.problem = problem
                return
            if event.seq >= self.from_seq and is_boundary(event):
                yield event
        self.check.finish()

    def interrupted(self, seq: int) -> bool:
        return seq in self.check.interrupted_seqs


class Cursor:
    """The chain's boundary events from a position on, with look-ahead."""

    def __init__(self, events: Iterator[Event]) -> None:
        self._events = iter(events)
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

    def host_calls_ahead(self) -> int:
        """How many host calls follow the event at the head, up to the next export call, outcome or instance."""
        i = 1
        while (event := self.peek(i)) is not None and event.type not in (WASM_CALL, WASM_INSTANTIATE, *OUTCOMES):
            i += 1
        return i - 1

    def outcome_of_next_call(self) -> Event | None:
        """The result or error event that ends the call at the head of the cursor."""
        i = 1
        while (event := self.peek(i)) is not None:
            if event.type in (*OUTCOMES, WASM_CALL, WASM_INSTANTIATE):
                return event if event.type in OUTCOMES else None
            i += 1
        return None


class ReplayTape:
    """Serves every import from the record and checks every crossing against it.

    Attributes:
        cut: while an interrupted call is replayed, how many of its recorded host calls are left to check; the
            guest is unwound once they are all checked (or as soon as it asks for one more). None otherwise.
        bound: the wall-clock bound (seconds) and its kind (``call`` or ``replay``) of the call being replayed.
    """

    replaying = True

    def __init__(self, cursor: Cursor, *, hint: str | None = None, store: Store | None = None) -> None:
        self.cursor = cursor
        self.hint = hint
        self.store = store  # where results recorded by reference are read back from (``replay.derived``)
        self.calls = 0
        self.host_calls = 0
        self.cut: int | None = None
        self.call: Event | None = None
        self.bound: tuple[float, str] = (0.0, "call")

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
        if self.cut is not None and (upcoming is None or not self.cut):
            raise _CallCut("the record of the interrupted call ends before this host call")
        if upcoming is not None and upcoming.type == WASM_ERROR and upcoming.data.get("kind") == FaultKind.HOST:
            # The host function failed here when recorded: fail the same way; end_call checks the error event.
            raise RecordedHostFault(upcoming.data.get("detail", ""))
        event = self._next("host call", {"import": name, "params": params})
        if event.type != name:
            raise self._diverge(event, "host call", {"event": event.type, "data": event.data},
                                {"import": name, "params": params})
        if not same(event.data.get("params"), params):
            raise self._diverge(event, f"parameters of {name}", event.data.get("params"), params)
        result = self._expand(event, name) if RESULT_REF in event.data else event.data.get("result")
        self.host_calls += 1
        if self.cut is not None:
            self.cut -= 1
            if not self.cut:  # every recorded host call of the interrupted call is checked: nothing more to see
                raise _CallCut("the record of the interrupted call ends here")
        return result

    def _expand(self, event: Event, name: str) -> Any:
        """The result a host call recorded by reference (``replay.derived``), read back from the store; the
        store's chain must end at the recorded head."""
        if self.store is None:
            raise RecordIncomplete(f"event {event.seq} ({name}) records its result by reference: replay needs "
                                   "the store")
        try:
            return expand(self.store, event.data[RESULT_REF])
        except RefMismatch as exc:
            raise self._diverge(event, f"chain of actor {exc.actor} up to seq {exc.to_seq} (the result of {name})",
                                exc.expected, exc.actual) from None

    def begin_call(self, export: str, state: bytes | None, params: Any) -> None:
        """Take the recorded call of ``export`` and check the guest's input against it (``_check_input``)."""
        event = self._next("export call", {"export": export, "params": params})
        data = event.data
        if event.type != WASM_CALL or data.get("export") != export:
            raise self._diverge(event, "export call", {"event": event.type, "data": data}, {"export": export})
        self._check_input(event, export, state, params)
        self.call = event
        if self.cut is None:
            self.calls += 1

    def _check_input(self, event: Event, export: str, state: bytes | None, params: Any) -> None:
        """Raise a divergence unless the call gets the recorded params and starts from the recorded state."""
        data = event.data
        if not same(data.get("params"), params) or data.get("state") != state_digest(state):
            raise self._diverge(event, f"input of {export}", data, {"params": params, "state": state_digest(state)})

    def _check_deadline(self, export: str, result: CallResult | GuestFault) -> None:
        """Raise ``ReplayTimeout`` when ``result`` is a deadline: replay never sets a deadline from the record (a
        recorded deadline is replayed as its fuel), so an epoch interrupt here is the verifier's own bound."""
        if isinstance(result, GuestFault) and result.kind == FaultKind.DEADLINE:
            seconds, what = self.bound
            call = self.call
            raise ReplayTimeout(seq=call.seq if call else self.cursor.last_seq, export=export, seconds=seconds,
                                what=what)

    def end_call(self, export: str, result: CallResult | GuestFault) -> None:
        """Compare the call's outcome with the recorded one (``_check_outcome``); a deadline is the verifier's own
        bound (``ReplayTimeout``), and an interrupted call has no recorded end to compare with."""
        self._check_deadline(export, result)
        if self.cut is None:
            self._check_outcome(export, result)

    def _check_outcome(self, export: str, result: CallResult | GuestFault) -> None:
        """Raise a divergence unless ``result`` is the recorded outcome, fuel included."""
        actual = {"event": outcome_event(result), **outcome_fields(result)}
        event = self._next("export result", actual)
        expected = {"event": event.type, **{k: event.data.get(k) for k in actual if k != "event"}}
        if expected.get("kind") in INTERRUPTS and actual.get("kind") == FaultKind.FUEL:
            actual["kind"] = expected["kind"]  # replayed with the recorded fuel as the limit: it stops at that point
        if not same(expected, actual):
            what = "fuel consumed" if _only_fuel_differs(expected, actual) else f"result of {export}"
            raise self._diverge(event, what, expected, actual)


def _only_fuel_differs(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    return all(same(expected.get(k), v) for k, v in actual.items() if k != "fuel")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    """What a replay did and found.

    Attributes:
        actor: the actor replayed.
        from_seq, to_seq: the first event re-executed from, the last event consumed.
        calls, host_calls: export calls re-executed and checked (interrupted ones not counted), host calls served.
        state: the state after the last call re-executed.
        divergence: the first event that does not follow, or None. A ``ContinuityBreak`` when the record
            contradicts itself (checked over events ``0..to_seq`` whatever ``from_seq`` is).
        interrupted: the calls with no recorded end in events ``0..to_seq``, each followed by a resume (or at the
            end of the record): their recorded host calls are re-executed and checked, nothing else is claimed.
    """

    actor: uuid.UUID
    from_seq: int
    to_seq: int
    calls: int
    host_calls: int
    state: bytes | None
    divergence: Divergence | None = None
    interrupted: tuple[InterruptedCall, ...] = ()

    @property
    def ok(self) -> bool:
        return self.divergence is None


class Replayer:
    """Replays chains of one store; keeps one engine per recorded settings.

    Args:
        store: the store holding the chains and their blobs.
        limits: what this verifier accepts from a record and how long it lets a replay run.
    """

    def __init__(self, store: Store, *, limits: ReplayLimits = ReplayLimits()) -> None:
        self.store = store
        self.limits = limits
        self._engines: dict[str, Engine] = {}
        self._forks_followed = 0  # how deep into a line of forks the current replay is

    def engine_for(self, recorded: dict[str, Any]) -> Engine:
        """The engine with the recorded settings, made once per settings (``SettingsMismatch`` when this build
        cannot honour them)."""
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
        if event.type != ACTOR_CREATED:
            raise RecordIncomplete(f"the first event of actor {actor} is {event.type!r}, not {ACTOR_CREATED!r}")
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

        The whole record up to ``to_seq`` is first checked to fit together (``replay.continuity``); re-execution
        then stops before the first break, which is reported unless re-execution diverged earlier.

        Returns a report; a divergence or a break in continuity is reported in it, not raised. ``progress`` is
        called with the sequence number of each export call as it is re-executed.

        Raises:
            InvalidInputError: ``from_seq`` or ``to_seq`` is not a sequence number of the chain.
            SettingsMismatch, RecordIncomplete, MalformedRecord: replay cannot start (or go on) at all.
            LimitRefused: a recorded limit is above this verifier's maximum.
            ReplayTimeout: a call, or the whole replay, passed its wall-clock bound.
        """
        genesis = self.genesis(actor)
        created = read_genesis(genesis)
        self._check_range(actor, from_seq, to_seq)
        limits = self.limits.limits(created)
        origin = self._check_origin(genesis, created)
        if origin is not None:  # a fork whose source does not hold: nothing of it is re-executed
            return ReplayReport(actor=actor, from_seq=from_seq, to_seq=0, calls=0, host_calls=0, state=None,
                                divergence=origin)
        engine = self.engine_for(created.engine)
        # Mid-chain, the component is the one the instance before from_seq runs (an upgrade changes it).
        component = load_component(engine, self.store, created.component if from_seq == 0
                                   else component_at(self.store, actor, from_seq))
        stop = None if to_seq is None else to_seq + 1
        # Events before from_seq are read too: continuity is checked from genesis whatever replay starts from.
        checked = Checked(self.store.log.events(actor, 0, stop), ContinuityCheck(created), from_seq)
        tape = ReplayTape(Cursor(iter(checked)), hint=MID_CHAIN_HINT if from_seq > 0 else None, store=self.store)
        run = Walk(self, engine, component, tape, limits, fresh=from_seq > 0, checked=checked)
        run.on_err = created.on_err
        run.progress = progress
        divergence: Divergence | None = None
        try:
            with epoch_ticks(engine):
                run.walk()
        except Divergence as found:
            divergence = found
        problem = checked.problem
        if problem is not None and (divergence is None or divergence.seq >= problem.seq):
            # Re-execution stops before a break in continuity; what it then misses is the break, reported as such.
            divergence = problem
        return ReplayReport(
            actor=actor, from_seq=from_seq, to_seq=tape.cursor.last_seq, calls=tape.calls,
            host_calls=tape.host_calls, state=run.state, divergence=divergence,
            interrupted=tuple(c for c in checked.check.interrupted if c.seq <= tape.cursor.last_seq),
        )

    def _check_origin(self, genesis: Event, created: Genesis) -> ContinuityBreak | None:
        """A fork's origin, checked against its source chain (``replay.lineage``); None when it holds or the
        actor is no fork."""
        from replay import lineage, whatif  # they re-execute through this replayer

        if self._forks_followed >= lineage.MAX_FORK_DEPTH and lineage.FORK in genesis.data:
            return ContinuityBreak(seq=0, hash=genesis.hash, what="the fork's origin: a line of forks deeper than "
                                   f"{lineage.MAX_FORK_DEPTH}", expected="a shorter line", actual="deeper",
                                   hint="each fork's verification follows into its source; the line is bounded")

        def reexecute(source: uuid.UUID, to_seq: int) -> ReplayError | None:
            return self.replay(source, to_seq=to_seq).divergence

        def whatif_state(origin: lineage.ForkOrigin) -> bytes | None:
            run = whatif.run(self, origin.actor, to_seq=origin.seq, overrides=dict(origin.overrides))
            if run.stopped is not None:
                raise run.stopped
            return run.state

        self._forks_followed += 1
        try:
            return lineage.check_origin(self.store, genesis, created.init_state, reexecute=reexecute,
                                        whatif_state=whatif_state)
        finally:
            self._forks_followed -= 1

    def _check_range(self, actor: uuid.UUID, from_seq: Any, to_seq: Any) -> None:
        head = self.store.log.head(actor).seq
        if type(from_seq) is not int or not 0 <= from_seq <= head:
            raise InvalidInputError("from_seq", from_seq, f"a sequence number of the chain (0..{head})")
        if to_seq is not None and (type(to_seq) is not int or to_seq < from_seq):
            raise InvalidInputError("to_seq", to_seq, f"a sequence number from from_seq ({from_seq}) on")


class Walk:
    """One walk of a chain through a tape: each instance made and each call re-executed as the record says, every
    call bounded in wall-clock time (and the whole walk, when the replayer says so). ``replay.live`` keeps one
    between feeds; ``replay.upgrade`` walks with its own rules."""

    def __init__(self, replayer: Replayer, engine: Engine, component: Any, tape: ReplayTape, limits: Limits,
                 *, fresh: bool, checked: Checked) -> None:
        self.store = replayer.store
        self.bounds = replayer.limits
        self.engine = engine
        self.component = component
        self.tape = tape
        self.limits = limits
        self.boundary: Boundary | None = None
        self.fresh = fresh  # mid-chain: start a fresh instance at the first call
        self.checked = checked
        self.state: bytes | None = None
        self.progress: Callable[[int], None] | None = None
        self.on_err = OnErr.FAIL  # what an err does, as the creation event records it
        self.overall = Overall(replayer.limits.timeout_s)

    def walk(self) -> None:
        cursor = self.tape.cursor
        while (event := cursor.peek()) is not None:
            if event.type == WASM_INSTANTIATE:
                cursor.take()
                self.boundary = self._instantiate(event)
            elif event.type == WASM_CALL:
                outcome = cursor.outcome_of_next_call()  # reads on to the call's end: its continuity is known
                if outcome is None and self.checked.interrupted(event.seq):
                    self._interrupted(event)
                else:
                    self._call(event, outcome)
                    if self.progress is not None:
                        self.progress(event.seq)
            else:
                cursor.take()
                if self.boundary is None and not self.fresh:
                    raise self.tape._diverge(event, "event outside any instance", WASM_INSTANTIATE, event.type)

    def _bounded(self, limits: Limits, event: Event) -> Limits:
        """``limits`` with the deadline set to this call's wall-clock bound (the recorded deadline is not used:
        a recorded ``deadline`` failure is replayed as its fuel)."""
        seconds = self.bounds.call_bound(self.limits.deadline_ms)
        self.tape.bound = (seconds, "call")
        left = self.overall.left(event)
        if left is not None and left < seconds:
            seconds, self.tape.bound = left, (self.overall.seconds or 0.0, "replay")
        return call_limits(limits, seconds)

    def _new_boundary(self, event: Event) -> Boundary:
        return Boundary(self.engine, self.component, self.tape, None, self._bounded(self.limits, event),
                        on_err=self.on_err)

    def _instantiate(self, event: Event) -> Boundary:
        upgraded = event.data.get("component")
        if isinstance(upgraded, bytes):  # after ``actor/upgraded``: this instance runs the component it names
            self.component = load_component(self.engine, self.store, upgraded)
        boundary = self._new_boundary(event)
        recorded = event.data.get("fuel")
        if recorded is not None and recorded != boundary.instantiate_fuel:
            raise self.tape._diverge(event, "fuel consumed by instantiation", recorded, boundary.instantiate_fuel)
        return boundary

    def _ready(self, event: Event) -> Boundary:
        if self.boundary is None or self.boundary.poisoned is not None:
            if not self.fresh and self.boundary is None:
                raise self.tape._diverge(event, "export call before instantiation", WASM_INSTANTIATE, WASM_CALL)
            self.boundary = self._new_boundary(event)
        self.fresh = False
        return self.boundary

    def _call(self, event: Event, outcome: Event | None) -> None:
        boundary = self._ready(event)
        limits = self.limits
        if outcome is not None and outcome.data.get("kind") in INTERRUPTS and outcome.data.get("fuel") is not None:
            limits = replace(limits, fuel_per_call=min(outcome.data["fuel"], limits.fuel_per_call))
        boundary.limits = self._bounded(limits, event)
        data = event.data
        state = self._state(data["state"])
        try:
            result = boundary.call(data["export"], state, data["params"])
            self.state = result.state
        except GuestFault:
            pass  # the tape has compared it with the recorded failure
        except UNFIT_VALUE as exc:
            raise self._unfit(event, exc) from None
        finally:
            boundary.limits = self.limits

    def _interrupted(self, event: Event) -> None:
        """A call with no recorded end: re-execute it as far as its record goes (its host calls are checked, in
        order), then drop the instance (a resume follows, or the record ends)."""
        boundary = self._ready(event)
        data = event.data
        ahead = self.tape.cursor.host_calls_ahead()
        if not boundary.has_export(data["export"]):
            raise self.tape._diverge(event, "export call", data["export"], "an export the component lacks")
        if ahead == 0:
            self.tape.cursor.take()  # nothing recorded to check beyond the call itself: the guest need not run
        else:
            self.tape.cut = ahead
            boundary.limits = self._bounded(self.limits, event)
            try:
                boundary.call(data["export"], self._state(data["state"]), data["params"])
            except (_CallCut, GuestFault):
                pass
            except UNFIT_VALUE as exc:
                raise self._unfit(event, exc) from None
            finally:
                left, self.tape.cut = self.tape.cut, None
                boundary.limits = self.limits
            if left:
                missing = self.tape.cursor.peek()
                assert missing is not None
                raise self.tape._diverge(missing, "host call", {"event": missing.type, "data": missing.data},
                                         "no further host call: the guest ended the call before making it")
        self.boundary = None  # the instance was abandoned with the call: a resume creates the next one

    def _unfit(self, event: Event, exc: BaseException) -> Divergence:
        export = event.data["export"]
        return self.tape._diverge(event, f"parameters of {export}", event.data["params"],
                                  f"values that do not fit the export's type ({type(exc).__name__}: {exc})")

    def _state(self, digest: bytes | None) -> bytes | None:
        return state_blob(self.store, digest)
