"""Upgrade checks: a recorded chain re-executed against a new build of its component, and classified.

The new component is given the recorded inputs of every call (export, params) and every host call is answered
from the record, exactly as in replay; what differs from replay is what counts as a difference. Fuel is not
compared (a new build spends its own), and the state is the new build's own: each call starts from the state the
new build left after the call the record says it follows, so a build that only encodes its state differently goes
through the whole chain. Each chain gets one verdict:

- ``identical``: the same host calls, outputs and state bytes at every step;
- ``state-only``: the same host calls and outputs, different state bytes (a new state encoding);
- ``different``: a different output, outcome or host call (the first difference, decoded);
- ``fails``: the new build traps, returns err, runs out of fuel, lacks an export or cannot be instantiated where
  the record has it answer;
- ``unchecked``: the record itself cannot be re-executed (it breaks continuity, names settings this build cannot
  honour, misses a blob): nothing is said about the new build.

Nothing is written anywhere: the new component is compiled in memory and the store is only read.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace
from typing import Any

import blake3

from replay._reexecution import epoch_ticks, same, state_digest
from replay.boundary import INTERRUPTS, CallResult
from replay.continuity import ContinuityCheck
from replay.engine import Engine, check_recorded
from replay.errors import (
    ComponentError,
    ContinuityBreak,
    Divergence,
    FaultKind,
    GuestFault,
    ReplayError,
    ReplayTimeout,
)
from replay.history import component_at
from replay.replayer import Checked, Cursor, Replayer, ReplayLimits, ReplayTape, Walk
from replay.schema import WASM_ERR_ANSWER, WASM_ERROR, WASM_RESULT, read_genesis
from store import Event, Store
from store.errors import NotFoundError, TheaterError

__all__ = ["ChainCheck", "Difference", "UpgradeChecker", "UpgradeReport", "Verdict", "exit_code"]


class Verdict(enum.StrEnum):
    """How a chain fares against a new build, from best to worst."""

    IDENTICAL = "identical"
    STATE_ONLY = "state-only"
    DIFFERENT = "different"
    FAILS = "fails"
    UNCHECKED = "unchecked"


# Exit codes of ``theater upgrade-check`` (1 and 2 are the CLI's own: an error, a usage error).
EXIT_ACCEPTED = 0
EXIT_DIFFERENT = 3
EXIT_FAILS = 4
DEFAULT_ACCEPTED = frozenset({Verdict.IDENTICAL})


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """The first place where the new build departs from the record.

    Attributes:
        seq: the recorded event where it shows (for a state difference: the ``wasm/result``).
        event: that event's type (``wasm/result``, a host call's ``<interface>/<function>``, ...), or None past
            the end of the record.
        what: a short name of the difference (``result of <export>``, ``host call``, ``state``, ...).
        recorded, new: what the record holds there and what the new build did, decoded.
    """

    seq: int
    event: str | None
    what: str
    recorded: Any
    new: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainCheck:
    """One chain's verdict.

    Attributes:
        actor: the chain's actor. source: what was checked (the actor id, or the bundle's path).
        old_component, new_component: the digests of the recorded component and of the new build.
        verdict: see ``Verdict``. calls, host_calls: export calls and host calls gone through.
        difference: the first difference (``different``, ``fails`` and, for the state, ``state-only``).
        detail: a sentence for ``fails`` and ``unchecked``.
    """

    actor: uuid.UUID
    source: str
    old_component: bytes | None
    new_component: bytes
    verdict: Verdict
    calls: int = 0
    host_calls: int = 0
    difference: Difference | None = None
    detail: str | None = None

    def accepted(self, accept: frozenset[Verdict] = DEFAULT_ACCEPTED) -> bool:
        return self.verdict in accept


@dataclass(frozen=True, slots=True, kw_only=True)
class UpgradeReport:
    """The verdicts of every chain checked against one new build, and the verdicts accepted."""

    new_component: bytes
    chains: tuple[ChainCheck, ...]
    accept: frozenset[Verdict] = DEFAULT_ACCEPTED

    @property
    def passed(self) -> bool:
        return all(c.accepted(self.accept) for c in self.chains)

    @property
    def exit_code(self) -> int:
        return exit_code(self.chains, self.accept)


def exit_code(chains: tuple[ChainCheck, ...] | list[ChainCheck], accept: frozenset[Verdict]) -> int:
    """0: every verdict accepted; 4: a chain fails (or could not be checked); 3: a chain differs."""
    refused = {c.verdict for c in chains if not c.accepted(accept)}
    if refused & {Verdict.FAILS, Verdict.UNCHECKED}:
        return EXIT_FAILS
    return EXIT_DIFFERENT if refused else EXIT_ACCEPTED


class _NewBuildFailed(ReplayError):
    """Internal: the new build failed where the record has the call answer."""

    def __init__(self, difference: Difference, detail: str) -> None:
        self.difference = difference
        self.detail = detail
        super().__init__(detail)


class _RecordUnfit(ReplayError):
    """Internal: the record holds a value the new build cannot even be handed."""


class UpgradeTape(ReplayTape):
    """The replay tape with an upgrade's rules: inputs and host calls as recorded, fuel not compared, the state
    the new build's own (differences noted, not raised), a failure of the new build raised as such."""

    def __init__(self, cursor: Cursor, *, store: Store, hint: str | None = None) -> None:
        super().__init__(cursor, hint=hint, store=store)
        self.states: dict[bytes, bytes | None] = {}  # recorded state digest -> the new build's state there
        self.state_difference: Difference | None = None

    def _check_input(self, event: Event, export: str, state: bytes | None, params: Any) -> None:
        """The recorded params only: the state a call starts from is the new build's own."""
        if not same(event.data.get("params"), params):
            raise self._diverge(event, f"input of {export}", event.data.get("params"), params)

    def _check_outcome(self, export: str, result: CallResult | GuestFault) -> None:
        """The recorded output and outcome (not the fuel, and the state only noted); a failure of the new build
        raised as such."""
        event = self._next("export result", _new_outcome(result))
        recorded = _recorded_outcome(event)
        new = _new_outcome(result)
        if event.type == WASM_ERROR and recorded.get("kind") in INTERRUPTS and isinstance(result, GuestFault) \
                and result.kind == FaultKind.FUEL:
            return  # replayed with the recorded fuel as the limit: it stops at that point, as recorded
        if same(recorded, new):
            if isinstance(result, CallResult):
                self._note_state(event, result)
            return
        if isinstance(result, GuestFault) and result.kind == FaultKind.HOST:
            # Replay runs no host code: a host fault the record does not hold is a recorded host result that does
            # not fit the import's type. The record is at fault, not the new build.
            raise _RecordUnfit(f"a recorded host result does not fit its import's type ({result.detail})")
        if isinstance(result, GuestFault):
            what = f"{export} failed ({result.kind})" if not result.answered else f"{export} answered err"
            raise _NewBuildFailed(Difference(seq=event.seq, event=event.type, what=what, recorded=recorded, new=new),
                                  f"{what}: {result.detail}")
        raise self._diverge(event, f"result of {export}", recorded, new)

    def _note_state(self, event: Event, result: CallResult) -> None:
        recorded = event.data.get("state")
        if isinstance(recorded, bytes):
            self.states[recorded] = result.state
        new = state_digest(result.state)
        if new != recorded and self.state_difference is None:
            self.state_difference = Difference(seq=event.seq, event=event.type, what="state", recorded=recorded,
                                               new=new)


def _recorded_outcome(event: Event) -> dict[str, Any]:
    data = event.data
    if event.type == WASM_RESULT:
        return {"event": WASM_RESULT, "output": data.get("output")}
    if event.type == WASM_ERR_ANSWER:
        return {"event": WASM_ERR_ANSWER, "detail": data.get("detail")}
    if event.type == WASM_ERROR:
        kind = data.get("kind")
        return {"event": WASM_ERROR, "kind": kind, **({"detail": data.get("detail")} if kind == "err" else {})}
    return {"event": event.type, "data": data}


def _new_outcome(result: CallResult | GuestFault) -> dict[str, Any]:
    if isinstance(result, CallResult):
        return {"event": WASM_RESULT, "output": result.output}
    if result.answered:
        return {"event": WASM_ERR_ANSWER, "detail": result.detail}
    kind = str(result.kind)
    return {"event": WASM_ERROR, "kind": kind, **({"detail": result.detail} if kind == "err" else {})}


class _UpgradeRun(Walk):
    """A walk of the chain with the new build: instantiation fuel is not compared, and each call starts from the
    new build's own state where the record's state is one the new build produced."""

    tape: UpgradeTape

    def _instantiate(self, event: Event) -> Any:
        return self._new_boundary(event)

    def _state(self, digest: bytes | None) -> bytes | None:
        if digest is not None and digest in self.tape.states:
            return self.tape.states[digest]
        return super()._state(digest)


class UpgradeChecker:
    """Checks chains against one new build of their component.

    Args:
        wasm: the new component (binary, or component text).
        limits: the verifier's maximums and wall-clock bounds (``ReplayLimits``).

    Raises:
        ComponentError: (on first use) ``wasm`` is not a component this engine can compile.
    """

    def __init__(self, wasm: bytes, *, limits: ReplayLimits = ReplayLimits()) -> None:
        self.wasm = wasm
        self.digest = blake3.blake3(wasm).digest()
        self.limits = limits
        self._compiled: dict[str, tuple[Engine, Any]] = {}

    def _component(self, recorded: dict[str, Any]) -> tuple[Engine, Any]:
        settings = check_recorded(recorded)
        key = settings.digest()
        if key not in self._compiled:
            engine = Engine(settings)
            self._compiled[key] = (engine, engine.compile(self.wasm, what="the new component"))
        return self._compiled[key]

    def check(self, store: Store, actor: uuid.UUID, *, source: str | None = None) -> ChainCheck:
        """Re-execute ``actor``'s whole chain in ``store`` against the new build and classify it.

        Never raises for what the record or the new build holds: a record that cannot be re-executed is
        ``unchecked``, a new build that cannot be compiled or instantiated ``fails``.
        """
        base = ChainCheck(actor=actor, source=source or str(actor), old_component=None,
                          new_component=self.digest, verdict=Verdict.UNCHECKED)
        try:
            genesis = read_genesis(store.log.at(actor, 0))
            base = replace(base, old_component=component_at(store, actor))
        except (TheaterError, KeyError) as exc:
            return replace(base, detail=_sentence(exc))
        try:
            self.limits.limits(genesis)
            engine, component = self._component(genesis.engine)
        except ComponentError as exc:
            return replace(base, verdict=Verdict.FAILS, detail=str(exc))
        except TheaterError as exc:
            return replace(base, detail=_sentence(exc))
        return self._walk(store, actor, genesis, engine, component, base)

    def _walk(self, store: Store, actor: uuid.UUID, genesis: Any, engine: Engine, component: Any,
              base: ChainCheck) -> ChainCheck:
        checked = Checked(store.log.events(actor, 0, None), ContinuityCheck(genesis), 0)
        tape = UpgradeTape(Cursor(iter(checked)), store=store, hint=None)
        run = _UpgradeRun(Replayer(store, limits=self.limits), engine, component, tape, genesis.limits,
                          fresh=False, checked=checked)
        run.on_err = genesis.on_err
        verdict, difference, detail = Verdict.IDENTICAL, None, None
        try:
            with epoch_ticks(engine):
                run.walk()
        except _NewBuildFailed as failed:
            verdict, difference, detail = Verdict.FAILS, failed.difference, failed.detail
        except _RecordUnfit as unfit:
            verdict, detail = Verdict.UNCHECKED, str(unfit)
        except ContinuityBreak as broken:
            verdict, detail = Verdict.UNCHECKED, f"the record breaks continuity: {broken}"
        except Divergence as found:
            verdict, difference = Verdict.DIFFERENT, _decoded(store, actor, found)
        except ComponentError as exc:
            verdict, detail = Verdict.FAILS, f"instantiation failed: {exc}"
        except ReplayTimeout as exc:
            verdict, detail = Verdict.FAILS, str(exc)
        except (TheaterError, NotFoundError) as exc:
            verdict, detail = Verdict.UNCHECKED, _sentence(exc)
        if checked.problem is not None and verdict in (Verdict.IDENTICAL, Verdict.DIFFERENT):
            verdict, difference, detail = Verdict.UNCHECKED, None, f"the record breaks continuity: {checked.problem}"
        if verdict == Verdict.IDENTICAL and tape.state_difference is not None:
            verdict, difference = Verdict.STATE_ONLY, tape.state_difference
        return replace(base, verdict=verdict, calls=tape.calls, host_calls=tape.host_calls, difference=difference,
                       detail=detail)


def _decoded(store: Store, actor: uuid.UUID, found: Divergence) -> Difference:
    try:
        event_type: str | None = store.log.at(actor, found.seq).type
    except (NotFoundError, TheaterError):
        event_type = None
    return Difference(seq=found.seq, event=event_type, what=found.what, recorded=found.expected, new=found.actual)


def _sentence(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"

