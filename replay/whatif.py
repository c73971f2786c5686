"""What-if: re-execute an actor's history with chosen recorded host results replaced, and see where it departs.

``run(replayer, actor, to_seq=..., overrides={seq: value})`` walks the chain from genesis like a replay, with one
difference: each call starts from the state the *what-if* run has reached (not the recorded one), and the host
call at each overridden seq is answered with the given value (in recorded form: ``docs/events.md``) instead of the
recorded result. Every other host call is answered from the record while the guest asks for the same import with
the same parameters as recorded; the first one it asks for differently has no recorded answer, and the run stops
there (``NoRecordedAnswer``): what the world would have answered is unknown. Each call's outcome is compared with
the recorded one (state, output, err), side by side; the first that differs is where the run departs.

Nothing is written anywhere: the run reads the store and the component, and keeps its states in memory.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from replay._fit import misfit
from replay._reexecution import (
    UNFIT_VALUE,
    Overall,
    call_limits,
    epoch_ticks,
    load_component,
    outcome_event,
    outcome_fields,
    same,
    state_blob,
    state_digest,
)
from replay.boundary import INTERRUPTS, Boundary, CallResult, RecordedHostFault, import_functions
from replay.derived import RESULT_REF, RefMismatch, expand
from replay.errors import FaultKind, GuestFault, RecordIncomplete, ReplayError
from replay.history import state_at
from replay.replayer import Replayer
from replay.schema import (
    ACTOR_REVERT,
    OUTCOMES,
    WASM_CALL,
    WASM_ERROR,
    WASM_INSTANTIATE,
    ActorRevert,
    InstantiateReason,
    Limits,
    is_boundary,
    read_genesis,
    recorded_state,
)
from store import Event
from store.errors import InvalidInputError

_ENDS_HOST_CALLS = (WASM_CALL, WASM_INSTANTIATE, *OUTCOMES)


class NoRecordedAnswer(ReplayError):
    """The what-if run reached a host call the record has no answer for: the guest asks for another import, or
    the same one with other parameters, than the record holds at that point (or for one more).

    Attributes:
        seq: the recorded event the guest's call was compared with (the call's outcome, or the next event, when
            the record holds no further host call there). call_seq: the export call it happened in.
        name, params: what the guest asked for. recorded: what the record holds there (type and params), or None.
    """

    def __init__(self, *, seq: int, call_seq: int, name: str, params: Any, recorded: dict[str, Any] | None) -> None:
        self.seq = seq
        self.call_seq = call_seq
        self.name = name
        self.params = params
        self.recorded = recorded
        held = "no further host call" if recorded is None else f"{recorded['type']} with {recorded['params']!r}"
        super().__init__(f"the what-if run stops at event {seq} (in the call at event {call_seq}): the guest calls "
                         f"{name} with {params!r}, and the record has no answer for it (it holds {held} there)")


class WhatIfFailed(ReplayError):
    """The what-if run failed a call the record completed: the actor would have failed there, so what the record
    does after it did not happen in this run."""

    def __init__(self, *, seq: int, export: str, fault: GuestFault) -> None:
        self.seq = seq
        self.export = export
        self.fault = fault
        super().__init__(f"the what-if run stops at event {seq}: {export} fails ({fault.kind}: {fault.detail}), "
                         "so the actor would have failed there; the record goes on")


class OverrideUnfit(ReplayError):
    """An override's value does not fit the result type of the import it answers."""

    def __init__(self, *, seq: int, name: str, detail: str) -> None:
        self.seq = seq
        self.name = name
        self.detail = detail
        super().__init__(f"the override of event {seq} ({name}) does not fit the import's result type: {detail}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallComparison:
    """One export call of the what-if run beside the record.

    Attributes:
        seq: the ``wasm/call`` event. export: the export called. outcome_seq: the recorded outcome's event.
        recorded, whatif: the outcome each way: ``event`` (``wasm/result``, ``wasm/err-answer``, ``wasm/error``)
            and its ``state`` (digest), ``output``, ``detail`` or ``kind`` (fuel is not compared: a what-if run
            may burn another amount); ``skipped_host_calls`` when the what-if call ended without making host
            calls the record holds for it (their seqs).
        recorded_state, whatif_state: the state after the call, each way.
    """

    seq: int
    export: str
    outcome_seq: int
    recorded: dict[str, Any]
    whatif: dict[str, Any]
    recorded_state: bytes | None
    whatif_state: bytes | None

    @property
    def same(self) -> bool:
        return same(self.recorded, self.whatif)


@dataclass(frozen=True, slots=True, kw_only=True)
class WhatIfRun:
    """What a what-if run did.

    Attributes:
        actor, to_seq: the chain and the last event the run was asked to reach.
        overrides: the host results replaced, by seq.
        calls: every export call run, beside the record, in chain order.
        last_seq: the last event the run got through (``to_seq`` unless it stopped).
        stopped: why it stopped before ``to_seq`` (``NoRecordedAnswer``, ``WhatIfFailed``, ``OverrideUnfit``), or None.
        state: the what-if state after ``last_seq``. recorded_state: the record's state there.
    """

    actor: uuid.UUID
    to_seq: int
    overrides: dict[int, Any]
    calls: tuple[CallComparison, ...]
    last_seq: int
    stopped: ReplayError | None
    state: bytes | None
    recorded_state: bytes | None

    @property
    def departure(self) -> CallComparison | None:
        """The first call whose outcome differs from the record, or None."""
        return next((c for c in self.calls if not c.same), None)


class _Tape:
    """Answers each host call of one export call from the recorded host calls of that call, in order, or from an
    override; never calls through."""

    replaying = True

    def __init__(self, replayer: Replayer, overrides: dict[int, Any]) -> None:
        self.replayer = replayer
        self.overrides = overrides
        self.pending: deque[Event] = deque()
        self.after: Event | None = None  # the event after the call's host calls (its outcome, usually)
        self.call_seq = 0
        self.served: int | None = None  # the last override handed to the guest
        self.outcome: CallResult | GuestFault | None = None

    def load(self, call_seq: int, host_calls: list[Event], after: Event | None) -> None:
        self.call_seq, self.pending, self.after = call_seq, deque(host_calls), after
        self.served, self.outcome = None, None

    def host_call(self, name: str, params: list[Any], call: Any) -> Any:
        self.served = None
        if not self.pending:
            after = self.after
            if after is not None and after.type == WASM_ERROR and after.data.get("kind") == FaultKind.HOST:
                raise RecordedHostFault(after.data.get("detail", ""))  # the host function failed here when recorded
            seq = after.seq if after is not None else self.call_seq
            raise NoRecordedAnswer(seq=seq, call_seq=self.call_seq, name=name, params=params, recorded=None)
        event = self.pending[0]
        if event.type != name or not same(event.data.get("params"), params):
            raise NoRecordedAnswer(seq=event.seq, call_seq=self.call_seq, name=name, params=params,
                                   recorded={"type": event.type, "params": event.data.get("params")})
        self.pending.popleft()
        if event.seq in self.overrides:
            self.served = event.seq
            return self.overrides[event.seq]
        if RESULT_REF not in event.data:
            return event.data.get("result")
        try:
            return expand(self.replayer.store, event.data[RESULT_REF])
        except RefMismatch as exc:
            raise RecordIncomplete(f"event {event.seq} refers to a chain of actor {exc.actor} that differs") from None

    def begin_call(self, export: str, state: bytes | None, params: Any) -> None:
        pass

    def end_call(self, export: str, result: CallResult | GuestFault) -> None:
        self.outcome = result


def check_overrides(events: list[Event], overrides: dict[int, Any]) -> None:
    """Check every overridden seq is a host call among ``events`` (a chain read from genesis).

    Raises:
        InvalidInputError: naming the seq and what the event there is.
    """
    last = len(events) - 1
    for seq in sorted(overrides):
        if type(seq) is not int or not 0 <= seq <= last:
            raise InvalidInputError("override", seq, f"the seq of a host call within events 0..{last}")
        event = events[seq]
        if not is_boundary(event) or event.type.startswith("wasm/"):
            raise InvalidInputError("override", seq, f"the seq of a host call; event {seq} is {event.type!r}, "
                                                     "not a host call (only recorded host results can be replaced)")


def run(replayer: Replayer, actor: uuid.UUID, *, to_seq: int | None = None,
        overrides: dict[int, Any] | None = None) -> WhatIfRun:
    """Re-execute ``actor``'s events ``0..to_seq`` (default: all) with the host results at ``overrides``' seqs
    replaced by their values; compare every call with the record.

    Returns the run; where it stopped (no recorded answer, a failure the record does not have, an override that
    does not fit) is in ``stopped``, not raised. Writes nothing.

    Raises:
        InvalidInputError: ``to_seq`` is not in the chain, an override's seq is not a host call there, or its
            value does not fit the import's result type.
        NotFoundError, RecordIncomplete, SettingsMismatch, LimitRefused, MalformedRecord: the run cannot start.
        ReplayTimeout: the run passed the replayer's overall wall-clock bound (``ReplayLimits.timeout_s``).
    """
    overrides = dict(overrides or {})
    store = replayer.store
    genesis = replayer.genesis(actor)
    created = read_genesis(genesis)
    head = store.log.head(actor).seq
    last = head if to_seq is None else to_seq
    if type(last) is not int or not 0 <= last <= head:
        raise InvalidInputError("to_seq", to_seq, f"a sequence number of the chain (0..{head})")
    events = list(store.log.events(actor, 0, last + 1))
    check_overrides(events, overrides)
    engine = replayer.engine_for(created.engine)
    component = load_component(engine, store, created.component)
    imports = import_functions(engine, component)
    for seq, value in sorted(overrides.items()):
        interface, _, fn = events[seq].type.rpartition("/")
        func = imports.get(interface, {}).get(fn)
        problem = "the component does not import it" if func is None else misfit(value, func.result, "the result")
        if problem is not None:
            raise InvalidInputError("override", seq, f"a result of {events[seq].type}: {problem}")
    walk = _Walk(replayer, engine, component, events, overrides, created)
    with epoch_ticks(engine):
        walk.go()
    recorded = _recorded_state(store, events, walk.last_seq)
    return WhatIfRun(actor=actor, to_seq=last, overrides=overrides, calls=tuple(walk.calls), last_seq=walk.last_seq,
                     stopped=walk.stopped, state=walk.state, recorded_state=recorded)


def _recorded_state(store: Any, events: list[Event], seq: int) -> bytes | None:
    return state_at(store, events[0].actor, seq)


class _Walk:
    """One what-if walk of a chain."""

    def __init__(self, replayer: Replayer, engine: Any, component: Any, events: list[Event],
                 overrides: dict[int, Any], created: Any) -> None:
        self.replayer = replayer
        self.engine = engine
        self.component = component
        self.events = events
        self.created = created
        self.limits = replayer.limits.limits(created)
        self.tape = _Tape(replayer, overrides)
        self.init = self._blob(created.init_state)
        self.state = self.init
        self.boundary: Boundary | None = None
        self.calls: list[CallComparison] = []
        self.last_seq = 0
        self.stopped: ReplayError | None = None
        self._marks: list[int] = [0]  # where the what-if state changed, and to what (for a revert's target)
        self._states: list[bytes | None] = [self.init]
        self._revert_to: int | None = None
        self.overall = Overall(replayer.limits.timeout_s)

    def go(self) -> None:
        i = 1
        try:
            while i < len(self.events):
                event = self.events[i]
                if event.type == WASM_INSTANTIATE:
                    i = self._instantiate(i)
                elif event.type == WASM_CALL:
                    self.overall.left(event)  # the replayer's whole bound
                    i = self._call(i)
                else:
                    if event.type == ACTOR_REVERT:
                        self._revert_to = ActorRevert.decode(event).to_seq
                    i += 1
                self.last_seq = i - 1
        except (NoRecordedAnswer, WhatIfFailed, OverrideUnfit) as stop:
            self.stopped = stop

    def _host_calls(self, start: int) -> tuple[list[Event], int]:
        """The host calls from event ``start`` on, up to the next call, outcome or instance (lifecycle events
        skipped), and the index of that next event."""
        found: list[Event] = []
        j = start
        while j < len(self.events) and self.events[j].type not in _ENDS_HOST_CALLS:
            if is_boundary(self.events[j]):
                found.append(self.events[j])
            j += 1
        return found, j

    def _set(self, seq: int, state: bytes | None) -> None:
        self.state = state
        if state != self._states[-1]:
            self._marks.append(seq)
            self._states.append(state)

    def _instantiate(self, i: int) -> int:
        event = self.events[i]
        reason = event.data.get("reason")
        if reason == InstantiateReason.START:
            self._set(event.seq, self.init)
        elif reason == InstantiateReason.RESTART and recorded_state(event) == self.created.init_state:
            self._set(event.seq, self.init)  # a restart from the initial state
        elif reason == InstantiateReason.REVERT and self._revert_to is not None:
            self._set(event.seq, self._states[bisect_right(self._marks, self._revert_to) - 1])
        self._revert_to = None
        host_calls, j = self._host_calls(i + 1)  # a component's start function may call the host
        self.tape.load(event.seq, host_calls, self.events[j] if j < len(self.events) else None)
        self.boundary = Boundary(self.engine, self.component, self.tape, None, self._call_limits(),
                                 on_err=self.created.on_err)
        return j

    def _call(self, i: int) -> int:
        event = self.events[i]
        host_calls, j = self._host_calls(i + 1)
        outcome = self.events[j] if j < len(self.events) and self.events[j].type in OUTCOMES else None
        if outcome is None:
            return j  # a call with no recorded end (interrupted): none of its effects was released; nothing to run
        boundary = self.boundary
        if boundary is None:
            raise RecordIncomplete(f"event {event.seq}: an export call with no instance before it")
        limits = self._call_limits()
        if outcome.data.get("kind") in INTERRUPTS and outcome.data.get("fuel") is not None:
            limits = replace(limits, fuel_per_call=min(outcome.data["fuel"], limits.fuel_per_call))
        boundary.limits = limits
        self.tape.load(event.seq, host_calls, outcome)
        export = event.data["export"]
        result: CallResult | GuestFault
        try:
            result = boundary.call(export, self.state, event.data["params"])
        except GuestFault as fault:
            result = fault
        except UNFIT_VALUE as exc:
            raise RecordIncomplete(f"event {event.seq}: its params do not fit {export} ({exc})") from None
        if isinstance(result, GuestFault) and result.kind == FaultKind.HOST and self.tape.served is not None:
            raise OverrideUnfit(seq=self.tape.served, name=self.events[self.tape.served].type, detail=result.detail)
        before = self.state
        new_state = result.state if isinstance(result, CallResult) else before
        whatif = {"event": outcome_event(result), **outcome_fields(result)}
        whatif.pop("fuel", None)
        recorded = {"event": outcome.type, **{k: outcome.data.get(k) for k in whatif if k != "event"}}
        if recorded.get("kind") in INTERRUPTS and whatif.get("kind") == FaultKind.FUEL:
            whatif["kind"] = recorded["kind"]
        if self.tape.pending:  # the guest ended the call without host calls the record holds (a send it skipped)
            recorded["skipped_host_calls"] = []
            whatif["skipped_host_calls"] = [e.seq for e in self.tape.pending]
        recorded_after = self._blob(outcome.data.get("state") if outcome.type == OUTCOMES[0] else event.data["state"])
        self.calls.append(CallComparison(seq=event.seq, export=export, outcome_seq=outcome.seq, recorded=recorded,
                                         whatif=whatif, recorded_state=recorded_after, whatif_state=new_state))
        if isinstance(result, GuestFault) and not result.answered and outcome.type != WASM_ERROR:
            raise WhatIfFailed(seq=event.seq, export=export, fault=result)
        self._set(outcome.seq, new_state)
        return j + 1

    def _call_limits(self) -> Limits:
        """The recorded limits, with the deadline set to a call's wall-clock bound."""
        return call_limits(self.limits, self.replayer.limits.call_bound(self.limits.deadline_ms))

    def _blob(self, digest: bytes | None) -> bytes | None:
        return state_blob(self.replayer.store, digest)


digest = state_digest  # the digest a state is recorded by (None for no state)


__all__ = ["CallComparison", "NoRecordedAnswer", "OverrideUnfit", "WhatIfFailed", "WhatIfRun", "check_overrides",
           "digest", "run"]
