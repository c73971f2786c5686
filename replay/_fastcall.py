"""Calling a component export with its types looked up once, not on every call.

wasmtime-py's ``Func.__call__`` asks wasmtime for the function's type and rebuilds every parameter and result
type object on each call; for a small export that is most of the cost of the call. ``FastFunc`` does the same
lowering, call and lifting with the types resolved once. It relies on wasmtime-py internals of the pinned version
(50.x): ``Func._func``, ``_ffi`` and ``_enter.enter_wasm``; ``tests/replay`` checks it against ``Func.__call__``.
"""

from __future__ import annotations

from ctypes import byref, pointer
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component._enter import enter_wasm


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
