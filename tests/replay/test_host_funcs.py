"""Host functions linked with their types resolved once (``replay._wasmtime.add_host_func``) receive and return
exactly what wasmtime-py's own ``add_func`` does, errors included; and every store's epoch watch, through the one
shared callback, ends its own calls for its own reasons (``EpochWatch``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc

from replay import _wasmtime
from replay._wasmtime import FastFunc, add_host_func
from replay.boundary import Boundary, shape
from replay.engine import Engine
from replay.errors import FaultKind, GuestFault
from replay.schema import Limits
from tests.components import wat
from tests.replay.test_fastcall import BLOB_IMPORTED, BYTE_SHAPES, payload, shape_of, values

SIZES = (0, 1, 4096, 65536)


def _instance(engine: Engine, text: str, name: str, host: Any, *, typed: bool) -> tuple[wasmtime.Store, Any]:
    component = engine.compile(text)
    store = wasmtime.Store(engine.wasmtime)
    store.set_fuel(10**12)
    store.set_epoch_deadline(10**9)
    linker = wc.Linker(engine.wasmtime)
    declared = {n: e.ty for n, e in component.type.imports(engine.wasmtime).items()}
    with linker.root() as root:
        if typed:
            add_host_func(root, name, declared[name], host)
        else:
            root.add_func(name, host)
    instance = linker.instantiate(store, component)
    return store, FastFunc(instance.get_func(store, name), store)


@pytest.mark.parametrize("kind", sorted(BYTE_SHAPES))
def test_a_typed_host_function_receives_and_returns_what_wasmtime_py_add_func_does(kind: str):
    engine = Engine()
    text = wat.echo_component({kind: BYTE_SHAPES[kind]}, type_defs=BLOB_IMPORTED, through_host=True)
    received: dict[str, list[Any]] = {"wasmtime-py": [], "typed": []}

    def host(key: str):
        def echo(_caller: Any, value: Any) -> Any:
            received[key].append(value)
            return value
        return echo

    slow_store, slow = _instance(engine, text, kind, host("wasmtime-py"), typed=False)
    fast_store, fast = _instance(engine, text, kind, host("typed"), typed=True)
    for size in SIZES:
        for value in values(kind, payload(size)):
            assert shape_of(fast(value)) == shape_of(slow(value)) == shape_of(value)
            assert fast_store.get_fuel() == slow_store.get_fuel()
    assert [shape_of(v) for v in received["typed"]] == [shape_of(v) for v in received["wasmtime-py"]]
    assert len(received["typed"]) == len(SIZES) * len(values(kind, b""))


@pytest.mark.parametrize("typed", [False, True], ids=["wasmtime-py", "typed"])
def test_a_host_functions_exception_reaches_the_caller_as_wasmtime_py_passes_it(typed: bool):
    engine = Engine()
    text = wat.echo_component({"bytes": BYTE_SHAPES["bytes"]}, type_defs=BLOB_IMPORTED, through_host=True)

    def broken(_caller: Any, value: Any) -> Any:
        raise LookupError(f"no {len(value)}")

    _, func = _instance(engine, text, "bytes", broken, typed=typed)
    with pytest.raises(LookupError, match="no 3"):
        func(b"abc")


@pytest.mark.parametrize("typed", [False, True], ids=["wasmtime-py", "typed"])
def test_a_result_the_type_refuses_traps_as_wasmtime_py_refuses_it(typed: bool):
    engine = Engine()
    text = wat.echo_component({"bytes": BYTE_SHAPES["bytes"]}, type_defs=BLOB_IMPORTED, through_host=True)
    _, func = _instance(engine, text, "bytes", lambda _caller, value: "not bytes", typed=typed)
    with pytest.raises((TypeError, wasmtime.WasmtimeError)) as refused:
        func(b"abc")
    assert "python exception" not in str(refused.value)  # the conversion's own error, as wasmtime-py raises it


class _Tape:
    replaying = False

    def host_call(self, name: str, params: list[Any], call: Any) -> Any:
        return call()

    def begin_call(self, export: str, state: bytes | None, params: Any) -> None:
        pass

    def end_call(self, export: str, result: Any) -> None:
        pass


def test_each_stores_epoch_watch_ends_its_own_call_for_its_own_reason():
    engine = Engine()
    engine.start_ticker()
    try:
        component = engine.compile(wat.actor_wat(init=wat.spin(), message_server=False))
        host = {interface: {fn: (lambda *a: None) for fn in funcs}
                for interface, funcs in shape(engine, component).imports.items()}
        stop = threading.Event()
        stopped = Boundary(engine, component, _Tape(), host, Limits(deadline_ms=60_000), interrupt=stop)
        late = Boundary(engine, component, _Tape(), host, Limits(deadline_ms=50), interrupt=threading.Event())
        faults: dict[str, GuestFault] = {}

        def run(name: str, boundary: Boundary) -> None:
            try:
                boundary.call("theater:simple/actor.init", None, ["x"])
            except GuestFault as fault:
                faults[name] = fault

        threads = [threading.Thread(target=run, args=("stopped", stopped)),
                   threading.Thread(target=run, args=("late", late))]
        for thread in threads:
            thread.start()
        threads[1].join(timeout=30)
        assert "late" in faults and "stopped" not in faults  # the deadline of one store ended only its call
        stop.set()
        threads[0].join(timeout=30)
        assert faults["late"].kind == FaultKind.DEADLINE
        assert faults["stopped"].kind == FaultKind.STOPPED
    finally:
        engine.close()


def test_a_watch_lives_as_long_as_its_store():
    engine = Engine()
    store = wasmtime.Store(engine.wasmtime)
    _wasmtime.EpochWatch(store, lambda: None)
    assert isinstance(store._theater_epoch_watch, _wasmtime.EpochWatch)  # type: ignore[attr-defined]
