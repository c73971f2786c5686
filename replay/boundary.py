"""The record/replay boundary: one interposer around every import and export of a component instance.

Every import the component declares gets a wrapper in the linker; every export the runtime calls goes through
``Boundary.call``. What happens at a crossing depends on the ``Tape``:

- record mode (``RecordTape`` in ``theater``): call through to the host function, then append an event with the
  full parameters and the full result; append the export call, its result (new state by blob hash, the rest of
  the output, the fuel consumed) or its failure.
- replay mode (``ReplayTape`` in ``replay.replayer``): never call through. Check the guest asks for the same
  import with the same parameters as recorded and hand back the recorded result; compare every export result and
  its fuel with the record.

Host functions receive parameters and return results in the recorded form (see ``replay.values``), so the same
conversion serves both modes and a handler never sees wasmtime-py's untagged variants.
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import wasmtime
import wasmtime.component as wc

from replay._wasmtime import EpochWatch, FastFunc, add_host_func, arm, fuel_left
from replay.engine import Engine, map_wasm_error
from replay.errors import ComponentError, FaultKind, GuestFault, ReplayError
from replay.schema import Limits, OnErr, answers_err
from replay.values import Converter, canonical, lifter, lowerer

HostFunction = Callable[..., Any]

DEADLINE = FaultKind.DEADLINE
STOPPED = FaultKind.STOPPED
# Faults caused by the wall clock or by a request from outside, not by the guest: where they strike is not
# deterministic, so the fuel the call consumed is recorded and replay runs the call with exactly that much fuel.
INTERRUPTS = (DEADLINE, STOPPED)
_INTERRUPT_DETAILS: dict[str, str] = {  # keyed by the epoch watch's reason
    DEADLINE: "passed its wall-clock deadline",
    STOPPED: "stopped while running: the actor was asked to stop",
}


class Tape(Protocol):
    """Where crossings go: the chain being written (record) or the chain being read (replay)."""

    replaying: bool

    def host_call(self, name: str, params: list[Any], call: Callable[[], Any]) -> Any:
        """Record mode: run ``call`` and record (name, params, result). Replay: return the recorded result."""

    def begin_call(self, export: str, state: bytes | None, params: Any) -> None:
        """An export call is about to run with this state and these (recorded-form) params."""

    def end_call(self, export: str, result: CallResult | GuestFault) -> None:
        """The export call ended with this result or failure."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResult:
    """A successful export call: the new state, the rest of the ok tuple (recorded form), the fuel consumed."""

    export: str
    state: bytes | None
    output: list[Any]
    fuel: int
    # True when ``output`` is what the lifter made of a type whose recorded form is canonical CBOR as it stands
    # (``replay.values.canonical``): the record tape then skips the store's check of it.
    plain: bool = False


@dataclass(frozen=True, slots=True)
class _Export:
    func: FastFunc | None
    lower_params: Converter
    lift_result: Converter
    plain: bool  # the result's recorded form is canonical as lifted (``CallResult.plain``)


@dataclass(frozen=True, slots=True)
class _ExportShape:
    """What every instance of a component shares about one export: where it is and how its values convert."""

    index: Any  # the component's ``ExportIndex``
    lower_params: Converter
    lift_result: Converter
    plain: bool  # the result's recorded form is canonical as lifted (``CallResult.plain``)
    types: tuple[list[Any], Any] | None = None  # (parameter types, result type) once an instance has asked


class _Import:
    """One import of a component: its recorded name and how its values convert."""

    __slots__ = ("name", "lift_params", "lower_result")

    def __init__(self, name: str, ty: wc.FuncType) -> None:
        self.name = name
        self.lift_params = [lifter(t) for _, t in ty.params]
        self.lower_result = lowerer(ty.result)


class HostAbort(Exception):
    """Raised inside a host function wrapper to unwind the guest; the reason is kept on the boundary."""


class RecordedHostFault(Exception):
    """Replay: the record says the host function failed at this point; ``detail`` is what it said."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class ImportNotGranted(Exception):
    """Internal: an import has no host function; carries the import name for the runtime's ``LinkError``."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


def import_functions(engine: Engine, component: wc.Component) -> dict[str, dict[str, Any]]:
    """The functions the component imports: ``{interface: {function: FuncType}}``; root functions under ``""``.

    Read once per engine and component (``shape``); do not change the mapping.
    """
    return shape(engine, component).imports


def _import_functions(engine: Engine, component: wc.Component) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, ext in component.type.imports(engine.wasmtime).items():
        ty = ext.ty
        if isinstance(ty, wc.ComponentInstanceType):
            funcs = {fn: e.ty for fn, e in ty.exports(engine.wasmtime).items()}
            out[name] = {fn: t for fn, t in funcs.items() if isinstance(t, wc.FuncType)}
        elif isinstance(ty, wc.FuncType):
            out.setdefault("", {})[name] = ty
        else:
            raise ComponentError(f"import {name!r}", f"imports of kind {type(ty).__name__} are not supported")
    return out


def export_functions(engine: Engine, component: wc.Component) -> dict[str, Any]:
    """The functions the component exports, named ``interface.function`` (or ``function`` at the root).

    ``shape(engine, component).export_types`` holds the same, read once.
    """
    out: dict[str, Any] = {}
    for name, ext in component.type.exports(engine.wasmtime).items():
        ty = ext.ty
        if isinstance(ty, wc.ComponentInstanceType):
            for fn, e in ty.exports(engine.wasmtime).items():
                if isinstance(e.ty, wc.FuncType):
                    out[f"{name}.{fn}"] = e.ty
        elif isinstance(ty, wc.FuncType):
            out[name] = ty
    return out


def _context_address(store: Any) -> int:
    """The address of the wasmtime context of a store (or of the context a host function is called with): the
    same for a store and for every call into it."""
    return ctypes.cast(store._context(), ctypes.c_void_p).value or 0


class Shape:
    """What every instance of one compiled component shares, made once per engine and component (``shape``): its
    imports and exports, how each export's values convert, and one linker.

    The linker's host functions are defined once for the component, not per instance: each finds the boundary it
    belongs to through the store that calls it (every boundary registers its store here), so an instance costs no
    linking. Holds no reference to the component itself (the engine's cache is keyed by it).
    """

    def __init__(self, engine: Engine, component: wc.Component) -> None:
        self.imports = _import_functions(engine, component)
        self.export_types = export_functions(engine, component)
        self.boundaries: weakref.WeakValueDictionary[int, Boundary] = weakref.WeakValueDictionary()
        self._exports: dict[str, _ExportShape | GuestFault] = {}
        self._lock = threading.Lock()
        self.linker = self._link(engine)

    def _link(self, engine: Engine) -> wc.Linker:
        linker = wc.Linker(engine.wasmtime)
        with linker.root() as root:
            for interface, funcs in self.imports.items():
                if interface == "":
                    for fn, ty in funcs.items():
                        add_host_func(root, fn, ty, self._host(_Import(fn, ty)))
                    continue
                if not funcs:
                    continue  # an interface of types only
                with root.add_instance(interface) as inst:
                    for fn, ty in funcs.items():
                        add_host_func(inst, fn, ty, self._host(_Import(f"{interface}/{fn}", ty)))
        return linker

    def import_names(self) -> list[str]:
        """Every imported function, as recorded (``interface/function``, or ``function`` at the root)."""
        return [f"{interface}/{fn}" if interface else fn for interface, funcs in self.imports.items() for fn in funcs]

    def _host(self, spec: _Import) -> Callable[..., Any]:
        boundaries = self.boundaries

        def host(context: int, *args: Any) -> Any:
            boundary = boundaries.get(context)
            if boundary is None:  # cannot happen: every instance of this linker is made by a registered boundary
                raise HostAbort(spec.name)
            return boundary._host_call(spec, args)

        return host

    def export(self, component: wc.Component, export: str) -> _ExportShape:
        """Where ``export`` is and how its values convert.

        Raises:
            GuestFault: the component does not export it, or not as a ``theater:simple`` export.
        """
        found = self._exports.get(export)
        if found is None:
            found = self._find_export(component, export)
            with self._lock:
                self._exports[export] = found
        if isinstance(found, GuestFault):
            raise GuestFault(found.kind, found.export, found.detail)
        return found

    def _find_export(self, component: wc.Component, export: str) -> _ExportShape | GuestFault:
        ty = self.export_types.get(export)
        if ty is None:
            return GuestFault(FaultKind.TRAP, export, "the component does not export this function")
        interface, _, fn = export.rpartition(".")
        parent = component.get_export_index(interface) if interface else None
        index = component.get_export_index(fn, parent) if parent is not None else None
        if index is None:
            index = component.get_export_index(export)
        if index is None:
            return GuestFault(FaultKind.TRAP, export, "the component does not export this function")
        params = [t for _, t in ty.params]
        if len(params) != 2 or not isinstance(params[0], wc.OptionType):
            return GuestFault(FaultKind.TRAP, export, "not a theater:simple export: expected (state, params)")
        return _ExportShape(index, lowerer(params[1]), lifter(ty.result), canonical(ty.result))

    def keep_types(self, export: str, types: tuple[list[Any], Any]) -> None:
        """Remember the types an instance gave for ``export``'s function, for the next instances."""
        found = self._exports.get(export)
        if isinstance(found, _ExportShape) and found.types is None:
            with self._lock:
                self._exports[export] = _ExportShape(found.index, found.lower_params, found.lift_result, found.plain,
                                                     types)


def shape(engine: Engine, component: wc.Component) -> Shape:
    """The ``Shape`` of a compiled component, made on first use and kept by the engine as long as the component."""
    return engine.derived(component, "boundary", lambda: Shape(engine, component))


class Boundary:
    """One component instance with every crossing interposed.

    Args:
        engine: the engine the component was compiled with.
        component: the compiled component.
        tape: the record or replay tape.
        host: record mode: ``{interface: {function: implementation}}``; an implementation takes the recorded-form
            params and returns the recorded-form result. Ignored in replay mode, where no host code runs.
        limits: fuel, memory and deadline per call.
        interrupt: record mode: once set, the running call (and every later one) ends with a ``stopped`` fault
            at the next epoch tick; set from any thread. The store itself is only ever used by the thread that
            calls the boundary.
        on_err: what an export's ``err`` does (``replay.schema.OnErr``): under ``answer`` the fault is marked
            ``answered`` before the tape sees it (recorded as ``wasm/err-answer``); the runtime passes the
            manifest's, replay the one ``actor/created`` records.

    Raises:
        ImportNotGranted: record mode, an import has no implementation in ``host``.
        ComponentError: the component cannot be instantiated.
    """

    def __init__(
        self,
        engine: Engine,
        component: wc.Component,
        tape: Tape,
        host: Mapping[str, Mapping[str, HostFunction]] | None = None,
        limits: Limits = Limits(),
        interrupt: threading.Event | None = None,
        on_err: OnErr = OnErr.FAIL,
    ) -> None:
        self.engine = engine
        self.on_err = on_err
        self.component = component
        self.tape = tape
        self.limits = limits
        self.interrupt = interrupt
        self.abort_reason: BaseException | None = None
        self.poisoned: GuestFault | None = None
        self._exports: dict[str, _Export] = {}
        self._deadline_at = 0.0
        self._shape = shape(engine, component)
        # Record mode: a tape that holds writes until an operation ends (``theater.record``) has its ``tick`` called
        # at every epoch tick of a running call and its ``host_tick`` (else its ``tick``) before every host call:
        # it hands what the actor's earlier operations owe over, and its held writes (at a host call once held for
        # a tick), so the start of a call that runs long is in the store within a tick.
        self._tick: Callable[[], Any] | None = getattr(tape, "tick", None)
        self._host_tick: Callable[[], Any] | None = getattr(tape, "host_tick", self._tick)
        self._host_impls = self._implementations(host or {})
        self.store = wasmtime.Store(engine.wasmtime)
        self.store.set_limits(memory_size=limits.memory_bytes)
        self._watch = EpochWatch(self.store, self._check_epoch)
        self._shape.boundaries[_context_address(self.store)] = self  # how the shared host functions find us
        self._arm()
        try:
            self.instance = self._shape.linker.instantiate(self.store, component)
        except HostAbort:
            raise self._take_abort("instantiate") from None
        except wasmtime.WasmtimeError as exc:
            raise ComponentError("component", map_wasm_error(exc, "instantiate", fuel_left=None).detail) from None
        self.instantiate_fuel = limits.fuel_per_call - fuel_left(self.store)
        self._export_types = self._shape.export_types

    def _implementations(self, host: Mapping[str, Mapping[str, HostFunction]]) -> dict[str, HostFunction]:
        """Each import's implementation by recorded name; none in replay mode (no host code runs there).

        Raises:
            ImportNotGranted: record mode, an import has none (the first such import, in import order).
        """
        if self.tape.replaying:
            return {}
        impls: dict[str, HostFunction] = {}
        for interface, funcs in self._shape.imports.items():
            granted = host.get(interface, {})
            for fn in funcs:
                impl = granted.get(fn)
                name = f"{interface}/{fn}" if interface else fn
                if impl is None:
                    raise ImportNotGranted(name)
                impls[name] = impl
        return impls

    def _host_call(self, spec: _Import, args: tuple[Any, ...]) -> Any:
        """A call of an import by the guest (the shared linker's host function hands it here)."""
        try:
            if self._host_tick is not None:
                self._host_tick()
            params = [f(a) for f, a in zip(spec.lift_params, args)]
            impl = self._host_impls.get(spec.name)
            result = self.tape.host_call(spec.name, params, lambda: impl(*params))  # type: ignore[misc]
            return spec.lower_result(result)
        except BaseException as exc:  # never let anything escape into wasmtime-py: unwind deliberately
            self.abort_reason = exc
            raise HostAbort(spec.name) from None

    def _arm(self) -> None:
        """Fill the fuel and start the wall-clock deadline for the next call."""
        self._deadline_at = time.monotonic() + self.limits.deadline_ms / 1000
        self._watch.reset()
        arm(self.store, self.limits.fuel_per_call, 1)  # set_fuel and set_epoch_deadline(1), keeping the GIL

    def _check_epoch(self) -> str | None:
        """At every epoch tick of a running call (see ``EpochWatch``): end it when asked to stop or past its
        deadline. Runs on the calling thread inside wasmtime; reads only a flag and the clock, and hands the
        tape's held writes to the store (record mode)."""
        if self._tick is not None:
            self._tick()
        if self.interrupt is not None and self.interrupt.is_set():
            return STOPPED
        if time.monotonic() >= self._deadline_at:
            return DEADLINE
        return None

    def _export(self, export: str) -> _Export:
        found = self._exports.get(export)
        if found is not None:
            return found
        spec = self._shape.export(self.component, export)
        func = self.instance.get_func(self.store, spec.index)
        fast = None
        if func is not None:
            fast = FastFunc(func, self.store, spec.types)
            if spec.types is None:
                self._shape.keep_types(export, fast.types)
        found = _Export(fast, spec.lower_params, spec.lift_result, spec.plain)
        self._exports[export] = found
        return found

    def has_export(self, export: str) -> bool:
        return export in self._export_types

    def call(self, export: str, state: bytes | None, params: list[Any]) -> CallResult:
        """Call a ``theater:simple`` export with the state and the (recorded-form) params tuple.

        Returns the new state and the rest of the ok tuple. Raises ``GuestFault`` for every kind of failure
        (after the tape has recorded or checked it); ``ReplayError`` when replay diverged.
        """
        if self.poisoned is not None:
            raise GuestFault(self.poisoned.kind, export, f"the instance failed earlier ({self.poisoned.detail})")
        try:
            spec: _Export | GuestFault = self._export(export)
        except GuestFault as missing:
            spec = missing
        self.tape.begin_call(export, state, params)
        fault: GuestFault | None
        if isinstance(spec, GuestFault):
            fault, fuel = spec, 0
        else:
            fault, out = self._invoke(export, spec, state, params)
            fuel = self.limits.fuel_per_call - fuel_left(self.store)
            if fault is None:
                result = out  # the recorded form (``call_recorded`` lifts it)
                if "err" not in result:
                    ok = result["ok"]
                    new_state = ok[0]["some"] if ok[0] is not None else None
                    done = CallResult(export=export, state=new_state, output=ok[1:], fuel=fuel, plain=spec.plain)
                    self.tape.end_call(export, done)
                    return done
                fault = GuestFault(FaultKind.ERR, export, str(result["err"]))
                fault.answered = answers_err(self.on_err, export)
        fault.fuel = fuel
        if fault.poisoned:
            self.poisoned = fault
        self.tape.end_call(export, fault)
        raise fault

    def _invoke(
        self, export: str, spec: _Export, state: bytes | None, params: list[Any]
    ) -> tuple[GuestFault | None, Any]:
        if spec.func is None:
            return GuestFault(FaultKind.TRAP, export, "the export is missing from the instance"), None
        self._arm()
        try:
            return None, spec.func.call_recorded(state, params, spec.lower_params, spec.lift_result)
        except HostAbort:
            return self._take_abort(export), None
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            reason = self._watch.reason
            if reason in _INTERRUPT_DETAILS:
                return GuestFault(reason, export, _INTERRUPT_DETAILS[reason]), None
            return map_wasm_error(exc, export, fuel_left=self.store.get_fuel()), None

    def _take_abort(self, export: str) -> GuestFault:
        reason = self.abort_reason
        self.abort_reason = None
        if isinstance(reason, ReplayError):
            raise reason
        if isinstance(reason, RecordedHostFault):
            return GuestFault(FaultKind.HOST, export, reason.detail)
        detail = f"{type(reason).__name__}: {reason}" if reason is not None else "a host function failed"
        return GuestFault(FaultKind.HOST, export, detail)
