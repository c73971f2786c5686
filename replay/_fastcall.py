"""Calling a component export with its types looked up once, not on every call.

wasmtime-py's ``Func.__call__`` asks wasmtime for the function's type and rebuilds every parameter and result
type object on each call, and its type objects ask wasmtime again for their element, field and case types every
time a value is converted; for a small export that is most of the cost of the call. ``FastFunc`` does the same
lowering, call and lifting with the types resolved once, and ``install_type_caches`` makes those type objects
remember what they asked (a type never changes, so this changes no result).

Both rely on wasmtime-py internals of the pinned version (50.x): ``Func._func``, ``_ffi``, ``_enter.enter_wasm``
and the type classes' properties; ``tests/replay/test_fastcall.py`` checks them against ``Func.__call__``.

``EpochWatch`` installs wasmtime's epoch-deadline callback, which wasmtime-py 50 does not wrap: with it a running
call can be stopped from another thread without that thread touching the Store (see ``replay.boundary``).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from ctypes import byref, pointer
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import _types
from wasmtime.component._enter import enter_wasm

_CACHED_PROPERTIES = {
    "ListType": ("element",),
    "TupleType": ("elements",),
    "RecordType": ("fields",),
    "VariantType": ("cases",),
    "OptionType": ("payload",),
    "ResultType": ("ok", "err"),
    "EnumType": ("names_count", "names"),
    "FlagsType": ("names",),
}


def install_type_caches() -> None:
    """Make wasmtime-py's component type objects compute their parts once per object (idempotent)."""
    for class_name, names in _CACHED_PROPERTIES.items():
        cls = getattr(_types, class_name)
        for name in names:
            current = cls.__dict__.get(name)
            if isinstance(current, property):
                cached = functools.cached_property(current.fget)
                cached.__set_name__(cls, name)
                setattr(cls, name, cached)
    for cls in (_types.VariantType, _types.OptionType, _types.ResultType, _types.VariantLikeType):
        for method in ("_cases", "_tagged"):
            current = cls.__dict__.get(method)
            if current is not None and not getattr(current, "_theater_cached", False):
                if method == "_tagged" and cls is _types.VariantLikeType:
                    current = _tagged_when_a_payload_may_be_none(current)
                setattr(cls, method, _memoized(method, current))


def _tagged_when_a_payload_may_be_none(original: Any) -> Any:
    """wasmtime-py 50 lowers ``result<option<T>, E>`` untagged: the option's classes include ``object``, so
    every value, the err string too, matches the ok case and an err cannot be returned. A variant (or result)
    with a case whose payload may be None must be tagged; options themselves keep wasmtime-py's rule."""

    def tagged(self: Any) -> bool:
        if original(self):
            return True
        if isinstance(self, _types.OptionType):
            return False
        cases = self._cases()
        for _, ty in cases:
            if ty is not None:
                classes: set[type] = set()
                ty.add_classes(classes)
                if object in classes and len(cases) > 1:
                    return True
        return False

    return tagged


def _memoized(name: str, method: Any) -> Any:
    key = f"_theater_{name}"

    @functools.wraps(method)
    def wrapper(self: Any) -> Any:
        try:
            return self.__dict__[key]
        except KeyError:
            value = self.__dict__[key] = method(self)
            return value

    wrapper._theater_cached = True  # type: ignore[attr-defined]
    return wrapper


install_type_caches()


class FastFunc:
    """A component function bound to its store, with its parameter and result types resolved once."""

    __slots__ = ("_func", "_store", "_params", "_result")

    def __init__(self, func: wasmtime.component.Func, store: wasmtime.Store) -> None:
        fty = func.type(store)
        self._func = func._func
        self._store = store
        self._params = [ty for _, ty in fty.params]
        self._result = fty.result

    def __call__(self, *params: Any) -> Any:
        store = self._store
        if len(params) != len(self._params):
            raise TypeError(f"wrong number of parameters: given {len(params)}, expected {len(self._params)}")
        param_capi = (ffi.wasmtime_component_val_t * len(params))()
        n = 0
        try:
            for ty, value in zip(self._params, params):
                ty.convert_to_c(store, value, pointer(param_capi[n]))
                n += 1
            result_space = ffi.wasmtime_component_val_t() if self._result is not None else None
            result_ref = byref(result_space) if result_space is not None else None
            func = self._func

            def run() -> Any:
                return ffi.wasmtime_component_func_call(
                    byref(func), store._context(), param_capi, n, result_ref, 1 if result_space is not None else 0
                )

            enter_wasm(run)
            if result_space is None:
                return None
            return self._result.convert_from_c(result_space)
        finally:
            for i in range(n):
                ffi.wasmtime_component_val_delete(byref(param_capi[i]))


_EPOCH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))
_UPDATE_DEADLINE_CONTINUE = 0


class EpochWatch:
    """Asks ``check`` at every epoch tick while wasm runs in ``store``; when it names a reason, the call traps.

    wasmtime calls the callback on the thread that runs the wasm, when the store's epoch deadline is reached; the
    watch re-arms the deadline one tick ahead each time, so ``check`` runs once per tick for as long as a call runs
    (and never while the store is idle or in a host function). The trap carries ``reason`` as its message, and
    ``reason`` stays set until ``reset``. Because the callback is a call out of the wasm code, wasmtime has saved
    the fuel counter to the store by then: the fuel a stopped call consumed is exact, and a replay that runs with
    that much fuel stops at the same point.

    Args:
        store: the store to watch (the watch must live as long as the store).
        check: returns None to go on, or a short reason (``"deadline"``, ``"stopped"``) to end the call. It must
            not touch the store.
    """

    def __init__(self, store: Any, check: Callable[[], str | None]) -> None:
        self.reason: str | None = None
        self._check = check
        self._callback = _EPOCH_CALLBACK(self._on_deadline)  # kept alive with the store
        ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), self._callback, None, _NO_FINALIZER)

    def reset(self) -> None:
        self.reason = None

    def _on_deadline(self, context: Any, data: Any, delta: Any, kind: Any) -> int:
        try:
            reason = self._check()
        except Exception as exc:  # nothing may escape into wasmtime: a failing check ends the call
            reason = f"epoch check failed: {type(exc).__name__}"
        if reason is None:
            delta[0] = 1
            kind[0] = _UPDATE_DEADLINE_CONTINUE
            return 0
        self.reason = reason
        error = ffi.wasmtime_error_new(f"theater: {reason}".encode())
        return ctypes.cast(error, ctypes.c_void_p).value or 0
