"""State continuity: the record must not contradict itself, whatever the component computes.

Re-execution checks that each recorded outcome follows from the recorded inputs of its call. That alone would
accept a record whose inputs were picked freely: a call starting from a state no earlier call produced, a call
pair cut out and the chain re-hashed, a call invented with no end. This module walks the record once, without
executing anything, and checks how the events fit together:

- every ``wasm/call`` starts from the state the events before it left: the previous ``wasm/result``, or the
  creation event's ``init_state``, or the state the last ``wasm/instantiate`` started from (``start``: the
  initial state; ``restart``: the initial state or the last state; ``resume`` and ``recover``: the last state);
- an outcome (``wasm/result``, ``wasm/err-answer``, ``wasm/error``) ends the call before it, with the same export;
- an err follows the actor's ``on_err`` (recorded in the creation event; chains without it: ``fail``): under
  ``answer`` an err (of any export but ``init``) is a ``wasm/err-answer``, never a ``wasm/error`` of kind ``err``,
  and under ``fail`` (or from ``init``) never a ``wasm/err-answer``;
- after a ``wasm/err-answer`` the actor goes on: the next call starts from the state the answered call started
  from (its state change is discarded);
- a call needs a live instance: after a ``wasm/error`` (of any kind: the actor is failed after it),
  ``actor/stop``, ``actor/exit`` or ``actor/failed``, only a new ``wasm/instantiate`` takes calls again;
- a call with no recorded end (the runtime stopped or was killed during it, or a failed commit lost its end) is
  followed by a ``resume`` (or ``recover``) from the state before it, or by the end of the record; such calls are
  reported by seq, since nothing proves or refutes that they ran (none of their effects was released);
- ``start`` is the first instance only; host calls happen inside calls (or while an instance is being created);
- ``actor/passivated`` (an idle actor dropped its instance) comes between calls, on a live instance, and names the
  state the events before it left; the next instance is an ``activate`` from that state (or a supervisor's
  ``restart``, or a ``recover`` when the activation's commit failed), and an ``activate`` follows a passivation
  only (a runtime restart may come between them).

Chains recorded before ``wasm/instantiate`` held its ``state`` are read as the runtime of the time behaved: a
``resume`` starts from the state of the last ``wasm/result`` (or the initial state), a ``restart`` from either the
initial state or the last state, whichever the next call shows.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from replay.errors import ContinuityBreak, FaultKind
from replay.schema import (
    ACTOR_CREATED,
    ACTOR_PASSIVATED,
    ACTOR_REVERT,
    INSTANCE_ENDS,
    LIFECYCLE_PREFIXES,
    MISSING,
    OUTCOMES,
    RESUMING,
    WASM_CALL,
    WASM_ERR_ANSWER,
    WASM_INSTANTIATE,
    WASM_RESULT,
    ActorPassivated,
    ActorRevert,
    Genesis,
    InstantiateReason,
    OnErr,
    answers_err,
    check_event,
    recorded_state,
)
from store import Event

# What may follow a passivation: its activation, a supervisor's restart, or a recovery (the activation's commit
# failed: the runtime goes back to the passivation's state).
_AFTER_PASSIVATION = (InstantiateReason.ACTIVATE, InstantiateReason.RESTART, InstantiateReason.RECOVER)
# What may follow a revert: its instance, or a resume or recovery from the same state (its commit was cut short).
_AFTER_REVERT = (InstantiateReason.REVERT, *RESUMING)
_STARTS_FROM = {InstantiateReason.START: "the initial state",
                InstantiateReason.RESTART: "the initial state or the last state",
                InstantiateReason.ACTIVATE: "the state its passivation held",
                InstantiateReason.REVERT: "the state its revert names"}


@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptedCall:
    """A ``wasm/call`` with no recorded end.

    Attributes:
        seq, hash: the call event.
        export: the export it called.
        resumed_at: the seq of the ``resume`` that followed it; None when the record ends during the call (the
            runtime was stopped or killed then, or is still running it).
    """

    seq: int
    hash: bytes
    export: str
    resumed_at: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Continuity:
    """What the continuity check found over events ``0..last_seq``.

    Attributes:
        last_seq: the last event checked (the one that broke the record, when ``problem`` is set).
        interrupted: the calls with no recorded end, in chain order.
        problem: the first place where the record contradicts itself, or None.
    """

    last_seq: int
    interrupted: tuple[InterruptedCall, ...]
    problem: ContinuityBreak | None


def check_continuity(genesis: Genesis, events: Iterable[Event]) -> Continuity:
    """Check the events after the creation event (``events`` may start with it) fit together.

    Returns the report; a break in continuity is reported, not raised.

    Raises:
        MalformedRecord: an event lacks a field, or holds one of the wrong type (naming the event and field).
    """
    check = ContinuityCheck(genesis)
    last = 0
    try:
        for event in events:
            last = event.seq
            check.feed(event)
        check.finish()
    except ContinuityBreak as problem:
        return Continuity(last_seq=last, interrupted=tuple(check.interrupted), problem=problem)
    return Continuity(last_seq=last, interrupted=tuple(check.interrupted), problem=None)


class ContinuityCheck:
    """The check fed one event at a time, in chain order (replay feeds it as it reads the chain, once).

    Attributes:
        interrupted: the calls with no recorded end found so far (a call is known to be one once the event after
            its last host call has been fed, or ``finish`` was called); ``interrupted_seqs``: their seqs.
    """

    def __init__(self, genesis: Genesis) -> None:
        self.init = genesis.init_state
        self.on_err = genesis.on_err
        self.allowed: frozenset[bytes | None] = frozenset({self.init})  # what the next call may start from
        self.source = 0  # the event that set ``allowed``
        self.projection = self.init  # the state of the last result (or the initial state)
        self.live = False
        self.ended_by: Event | None = None  # what ended the last instance
        self.open: Event | None = None  # the call in progress
        self.started = False
        self.passivated = False  # the last instance ended in ``actor/passivated``: an activate comes next
        self.interrupted: list[InterruptedCall] = []
        self.interrupted_seqs: set[int] = set()
        self.reverted = False  # the last instance ended in ``actor/revert``: its ``revert`` instance comes next
        # What a revert is checked against: every event's hash (32 bytes each, by seq), and the state after each
        # event as ``replay.history.state_at`` reads it (the seqs where it was set, and the state set there).
        self._hashes = bytearray(genesis.event.hash)
        self._marks: list[int] = [0]
        self._states: list[bytes | None] = [self.init]

    def _mark(self, seq: int, state: bytes | None) -> None:
        if state != self._states[-1]:
            self._marks.append(seq)
            self._states.append(state)

    def state_after(self, seq: int) -> bytes | None:
        """The state the record holds after event ``seq`` (fed already)."""
        return self._states[bisect_right(self._marks, seq) - 1]

    def feed(self, event: Event) -> None:
        """Check the next event (the creation event is passed over).

        Raises:
            MalformedRecord: the event lacks a field or holds one of the wrong type.
            ContinuityBreak: the event does not fit the events before it.
        """
        if len(self._hashes) == 32 * event.seq:
            self._hashes += event.hash
        if event.seq == 0:
            return
        check_event(event)
        kind = event.type
        if kind == ACTOR_REVERT:
            self._revert(event)
        elif kind == WASM_CALL:
            self._call(event)
        elif kind in OUTCOMES:
            self._outcome(event)
        elif kind == WASM_INSTANTIATE:
            self._instantiate(event)
        elif kind == ACTOR_PASSIVATED:
            self._passivated(event)
        elif kind == ACTOR_CREATED:
            raise _break(event, "a second creation event", ACTOR_CREATED, "the creation event is event 0 only")
        elif kind in INSTANCE_ENDS:
            # Check the actor did not stop during a call: a call ends with its outcome before the actor stops.
            if self.open is not None:
                raise _break(event, f"{kind} during the call at event {self.open.seq}", kind,
                             f"the outcome of the call at event {self.open.seq}")
            self.live, self.ended_by, self.passivated = False, event, False
        elif kind.startswith(LIFECYCLE_PREFIXES):
            return  # supervision decisions and other runtime events: no part of the instance's state
        elif self.open is None and self.live:
            # Check host calls happen inside an export call (or while an instance is being created).
            raise _break(event, "host call outside any export call", kind, "no export call in progress",
                         hint="a host function is called only by a running export (or during instantiation)")

    def finish(self) -> None:
        """The record ends here: a call still open is one with no recorded end."""
        if self.open is not None:
            self._interrupted(None)

    def _interrupted(self, resumed_at: int | None) -> None:
        call = self.open
        assert call is not None
        self.interrupted.append(InterruptedCall(seq=call.seq, hash=call.hash, export=call.data["export"],
                                                resumed_at=resumed_at))
        self.interrupted_seqs.add(call.seq)
        self.open = None

    def _call(self, event: Event) -> None:
        export = event.data["export"]
        # Check the previous call ended (or was followed by a resume) before this one began.
        if self.open is not None:
            raise _break(event, f"call of {export} while the call at event {self.open.seq} has no end",
                         WASM_CALL, f"the outcome of the call at event {self.open.seq}, or a resume",
                         hint="a call with no recorded end is followed by a resume from the state before it")
        # Check an instance is live: after a failure or a stop only a new instance takes calls.
        if not self.live:
            ended = "no instance was created" if self.ended_by is None else (
                f"the instance ended at event {self.ended_by.seq} ({self.ended_by.type})")
            raise _break(event, f"call of {export} with no live instance", WASM_CALL, ended,
                         hint="after a wasm/error, a stop or a failure, only a restart or resume takes calls")
        # Check the call starts from the state the events before it left.
        state = event.data["state"]
        if state not in self.allowed:
            raise _break(event, f"state passed to {export}", state, _implied(self.allowed),
                         hint=f"a call starts from the state left by event {self.source}")
        self.allowed, self.source, self.open = frozenset({state}), event.seq, event

    def _passivated(self, event: Event) -> None:
        state = ActorPassivated.decode(event).state
        # Check the actor was passivated between calls, with a live instance.
        if self.open is not None:
            raise _break(event, f"passivation during the call at event {self.open.seq}", ACTOR_PASSIVATED,
                         f"the outcome of the call at event {self.open.seq}")
        if not self.live:
            raise _break(event, "passivation with no live instance", ACTOR_PASSIVATED,
                         "no instance" if self.ended_by is None else f"the instance ended at event {self.ended_by.seq}")
        # Check it holds the state the events before it left.
        if state not in self.allowed:
            raise _break(event, "state the passivation holds", state, _implied(self.allowed),
                         hint=f"a passivation holds the state left by event {self.source}")
        self.allowed, self.source = frozenset({state}), event.seq
        self.live, self.ended_by, self.passivated = False, event, True

    def _revert(self, event: Event) -> None:
        revert = ActorRevert.decode(event)
        # Check the actor was reverted between calls.
        if self.open is not None:
            raise _break(event, f"revert during the call at event {self.open.seq}", ACTOR_REVERT,
                         f"the outcome of the call at event {self.open.seq}")
        # Check it goes back to an earlier event of this same chain.
        target = revert.to_seq
        own = bytes(self._hashes[32 * target:32 * target + 32]) if target < event.seq else None
        if own != revert.event:
            raise _break(event, f"the event the revert goes back to (seq {target})", revert.event, own,
                         hint="a revert goes back to an earlier event of its own chain")
        # Check it holds the state the record holds after that event.
        implied = self.state_after(target)
        if revert.state != implied:
            raise _break(event, f"the state the revert to event {target} holds", revert.state, implied,
                         hint="a revert holds the state its chain had after the event it goes back to")
        self._mark(event.seq, revert.state)
        self.allowed, self.source = frozenset({revert.state}), event.seq
        self.live, self.ended_by, self.passivated, self.reverted = False, event, False, True

    def _outcome(self, event: Event) -> None:
        # Check the outcome ends a call of the same export.
        if self.open is None:
            raise _break(event, f"{event.type} with no export call", event.type, "no export call in progress")
        if event.data["export"] != self.open.data["export"]:
            raise _break(event, f"export of the outcome of the call at event {self.open.seq}",
                         event.data["export"], self.open.data["export"])
        self.open = None
        export = event.data["export"]
        answered = answers_err(self.on_err, export)
        if event.type == WASM_RESULT:
            self.projection = event.data["state"]
            self._mark(event.seq, self.projection)
            self.allowed, self.source = frozenset({self.projection}), event.seq
        elif event.type == WASM_ERR_ANSWER:
            # Check the actor's on_err answers this err: otherwise the err failed it.
            if not answered:
                why = "init's err fails the actor" if self.on_err == OnErr.ANSWER else "its on_err is fail"
                raise _break(event, f"an answered err of {export}", WASM_ERR_ANSWER, "wasm/error kind err",
                             hint=f"{why}: the actor does not go on after it")
            # The actor goes on from the state the call started from (``allowed``, set by the call).
        else:
            # Check an err the actor answers is not recorded as a failure.
            if event.data["kind"] == FaultKind.ERR and answered:
                raise _break(event, f"a failure on the err of {export}", "wasm/error kind err", WASM_ERR_ANSWER,
                             hint="the actor's on_err is answer: an err is answered and the actor goes on")
            self.live, self.ended_by = False, event  # a failed actor is never called again on this instance

    def _instantiate(self, event: Event) -> None:
        reason = event.data["reason"]
        # Check a call with no end is followed by a resume (the runtime restarted and brought the actor back).
        if self.open is not None:
            if reason not in RESUMING:
                raise _break(event, f"{reason} after the call at event {self.open.seq}, which has no end",
                             f"reason {reason}", "reason resume",
                             hint="a call with no recorded end is followed by a resume from the state before it")
            self._interrupted(event.seq)
        # Check a revert is followed by its instance, and a revert instance follows a revert.
        if reason == InstantiateReason.REVERT and not self.reverted:
            raise _break(event, "a revert instance with no revert", "reason revert", "an actor/revert before it",
                         hint="only an actor/revert is followed by a wasm/instantiate with reason revert")
        if self.reverted and reason not in _AFTER_REVERT:
            raise _break(event, f"a {reason} after the revert at event {self.source}", f"reason {reason}",
                         "reason revert", hint="an actor/revert is followed by a wasm/instantiate with reason revert")
        self.reverted = False
        # Check an activation follows a passivation, and a passivation is followed by an activation (or a restart
        # by the actor's supervisor).
        if reason == InstantiateReason.ACTIVATE and not self.passivated:
            raise _break(event, "an activate with no passivation", "reason activate", "a passivation before it",
                         hint="only an actor/passivated is followed by a wasm/instantiate with reason activate")
        if self.passivated and reason not in _AFTER_PASSIVATION:
            raise _break(event, f"a {reason} after the passivation at event {self.source}", f"reason {reason}",
                         "reason activate", hint="an actor/passivated is followed by an activate (or a restart)")
        self.passivated = False
        # Check only the first instance is a start.
        if reason == InstantiateReason.START and self.started:
            raise _break(event, "a second start", "reason start", "restart or resume",
                         hint="only the actor's first instance is a start")
        self.started = True
        if reason == InstantiateReason.START:
            implied = frozenset({self.init})
        elif reason == InstantiateReason.RESTART:
            implied = self.allowed | {self.init}  # restart from init, or from the last state
        else:
            implied = self.allowed
        recorded = recorded_state(event)
        if recorded is MISSING:  # recorded before the event held its state
            implied = frozenset({self.projection}) if reason in RESUMING else implied
        elif recorded not in implied:
            # Check the instance starts from a state the events before it left.
            raise _break(event, f"state the {reason} starts from", recorded, _implied(implied),
                         hint=f"a {reason} starts from " + _STARTS_FROM.get(reason, "the last state"))
        else:
            implied = frozenset({recorded})
            self._mark(event.seq, recorded)
        self.allowed, self.source = implied, event.seq
        self.live, self.ended_by = True, None


def _implied(states: frozenset[bytes | None]) -> bytes | None | list[bytes | None]:
    if len(states) == 1:
        return next(iter(states))
    return sorted(states, key=lambda s: b"" if s is None else s)


def _break(event: Event, what: str, recorded: object, implied: object, hint: str | None = None) -> ContinuityBreak:
    return ContinuityBreak(seq=event.seq, hash=event.hash, what=what, expected=recorded, actual=implied, hint=hint)


__all__ = ["Continuity", "ContinuityCheck", "InterruptedCall", "check_continuity"]
