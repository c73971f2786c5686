"""Host functions linked with their types resolved once (``replay._wasmtime.add_host_func``) receive and return
exactly what wasmtime-py's own ``add_func`` does, errors included, for every shape and size, call after call, and
leave no memory behind (wasmtime frees the parameters after the callback; nothing is freed twice or kept); and every
store's epoch watch, through the one shared callback, ends its own calls for its own reasons (``EpochWatch``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
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
from tests.replay import test_compiled_converters as compiled
from tests.replay.test_fastcall import BLOB_IMPORTED, BYTE_SHAPES, payload, shape_of, values
from tests.replay.test_whatif import _ByHand

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


# The compiled converters' shapes (records of strings, options and lists, lists of records, nested lists, enums,
# chars and variants inside records), their types imported so that the host functions can use them.
IMPORTED_DEFS = compiled.TYPE_DEFS
for _name, _def in (("req", "req0"), ("resp", "resp0"), ("flagged", "flags0"), ("en", "en0"), ("va", "va0"),
                    ("fb", "fb0"), ("vu", "vu0"), ("vt", "vt0"), ("fl", "fl0"), ("vr", "vr0")):
    IMPORTED_DEFS = IMPORTED_DEFS.replace(f'(export ${_name} "{_name}" (type ${_def}))',
                                          f'(import "{_name}" (type ${_name} (eq ${_def})))')
HOST_SHAPES = {**compiled.SHAPES, "result": ("(result string (error string))", 3)}


def host_values(shape: str, text: str) -> list[Any]:
    if shape == "result":
        return [wc.Variant("ok", text), wc.Variant("err", text[::-1])]
    return compiled.values(shape, text)


@pytest.fixture(scope="module")
def module_engine() -> Engine:
    return Engine()


@pytest.mark.parametrize("text", compiled.TEXTS, ids=["empty", "one-byte", "non-ascii", "page", "megabytes"])
@pytest.mark.parametrize("shape", list(HOST_SHAPES))
def test_a_typed_host_function_receives_every_shape_and_size_call_after_call_as_add_func_does(
        module_engine: Engine, shape: str, text: str):
    component = wat.echo_component({shape: HOST_SHAPES[shape]}, type_defs=IMPORTED_DEFS, through_host=True)
    received: dict[str, list[Any]] = {"wasmtime-py": [], "typed": []}

    def host(key: str):
        def echo(_caller: Any, value: Any) -> Any:
            received[key].append(shape_of(value))
            return value
        return echo

    _, slow = _instance(module_engine, component, shape, host("wasmtime-py"), typed=False)
    _, fast = _instance(module_engine, component, shape, host("typed"), typed=True)
    sent = host_values(shape, text) * 3  # the same values again: nothing of a call is freed under the next
    for value in sent:
        assert shape_of(fast(value)) == shape_of(slow(value)) == shape_of(value)
    assert received["typed"] == received["wasmtime-py"] == [shape_of(value) for value in sent]


SCALARS_DEFS = (
    '(type $en0 (enum "a" "bb" "ccc")) (import "en" (type $en (eq $en0)))'
    ' (type $va0 (variant (case "nothing") (case "text" string))) (import "va" (type $va (eq $va0)))'
    ' (type $pt0 (record (field "x" f64) (field "y" f32) (field "label" string)))'
    ' (import "pt" (type $pt (eq $pt0)))')
SCALAR_PARAMS = '(param "a" f64) (param "b" f32) (param "c" char) (param "e" $en) (param "v" $va) (param "p" $pt)'
# f64 f32 char enum variant(discriminant, string pointer, length) record(f64 f32 pointer length): the flat params.
SCALAR_FLAT = "f64 f32 i32 i32 i32 i32 i32 f64 f32 i32 i32"


def scalars_component() -> str:
    """A component exporting ``scalars`` (floats, a char, an enum, a variant and a record of floats and a string),
    which calls the imported ``scalars`` with its arguments and returns its ``u32``: the types with no compiled
    reader, at the top level and inside a record."""
    args = " ".join(f"(local.get {i})" for i in range(len(SCALAR_FLAT.split())))
    return f"""(component
  {SCALARS_DEFS}
  (import "scalars" (func $host {SCALAR_PARAMS} (result u32)))
  (core module $Mem
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 1024))
{wat.BUMP_REALLOC}  )
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "cabi_realloc" (core func $realloc))
  (core func $lowered (canon lower (func $host) (memory $memory) (realloc $realloc)))
  (core module $Pass
    (import "host" "scalars" (func $host (param {SCALAR_FLAT}) (result i32)))
    (func (export "scalars") (param {SCALAR_FLAT}) (result i32) (call $host {args})))
  (core instance $pass (instantiate $Pass (with "host" (instance (export "scalars" (func $lowered))))))
  (func (export "scalars") {SCALAR_PARAMS} (result u32)
    (canon lift (core func $pass "scalars") (memory $memory) (realloc $realloc)))
)"""


def _point(x: float, y: float, label: str) -> wc.Record:
    return compiled.record(x=x, y=y, label=label)


SCALAR_CALLS = [
    (0.0, 0.0, "a", "a", None, _point(0.0, 0.0, "")),
    (-1.5e308, 3.5, "\u00e9", "bb", "text", _point(math.inf, -0.0, "p")),
    (math.nan, math.inf, "\U0001d11e", "ccc", "h\u00e9llo \u2713", _point(-math.inf, 1e-38, "x" * 4096)),
    (5e-324, -3.4028234663852886e38, "\x00", "a", "", _point(2.5, 0.5, "\u00e9" * 600_000)),
]


def _exact(value: Any) -> Any:
    """``shape_of``, with floats compared by their bits (NaN equals NaN, -0.0 differs from 0.0)."""
    if isinstance(value, float):
        return "float", math.copysign(1.0, value), repr(value)
    if isinstance(value, wc.Record):
        return "Record", {k: _exact(v) for k, v in sorted(vars(value).items())}
    return shape_of(value)


def test_floats_chars_enums_and_variants_reach_a_typed_host_function_as_add_func_gives_them(module_engine: Engine):
    component = scalars_component()
    received: dict[str, list[Any]] = {"wasmtime-py": [], "typed": []}

    def host(key: str):
        def take(_caller: Any, *params: Any) -> int:
            received[key].append([_exact(p) for p in params])
            return len(received[key])
        return take

    _, slow = _instance(module_engine, component, "scalars", host("wasmtime-py"), typed=False)
    _, fast = _instance(module_engine, component, "scalars", host("typed"), typed=True)
    for round_ in range(3):
        for i, call in enumerate(SCALAR_CALLS):
            assert fast(*call) == slow(*call) == round_ * len(SCALAR_CALLS) + i + 1
    assert received["typed"] == received["wasmtime-py"]
    assert len(received["typed"]) == 3 * len(SCALAR_CALLS)
    assert received["typed"][2][2:5] == [shape_of("\U0001d11e"), shape_of("ccc"), shape_of("h\u00e9llo \u2713")]
    assert received["typed"][2][0][2] == "nan" and received["typed"][1][5] == _exact(SCALAR_CALLS[1][5])


def _malloc_in_use() -> int | None:
    """Bytes malloc has handed out and not got back (glibc's ``mallinfo2``: its arena and its mmapped blocks), None
    where there is no ``mallinfo2``. wasmtime's values are malloc'd: a box it leaks counts here, exactly, where the
    resident size moves by pages and hides tens of bytes a call under memory freed and reused."""
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    mallinfo2 = getattr(libc, "mallinfo2", None)
    if mallinfo2 is None:
        return None
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


def malloc_grown_over(call: Any, sent: list[Any], calls: int = 20_000) -> int:
    """Bytes malloc has more in use after ``calls`` calls of ``call`` with the values of ``sent`` in turn, warmed
    first (the caches and free lists every call reuses); skips where ``_malloc_in_use`` cannot be read."""
    for i in range(1000):
        call(sent[i % len(sent)])
    gc.collect()
    before = _malloc_in_use()
    if before is None:
        pytest.skip("no mallinfo2 (not glibc): malloc's bytes in use cannot be read")
    for i in range(calls):
        call(sent[i % len(sent)])
    gc.collect()
    return (_malloc_in_use() or 0) - before


LEAK_SHAPES = {  # a shape, its type, one value per call in turn
    "option-string": ("(option string)", 3, ["h\u00e9llo", None, ""]),
    "result-strings": ("(result string (error string))", 3, [wc.Variant("ok", "yes"), wc.Variant("err", "no")]),
    "record-of-strings": ("$req", 9, [compiled.request("abc"), compiled.request("x", None)]),
    "list-of-records": ("(list $req)", 2, [[compiled.request("a"), compiled.request("b", None)], []]),
    "list-of-options": ("(list (option string))", 2, [["a", None, "b"], []]),
    # A variant's payload box, inside a record, list or tuple: read in place by the compiled reader, freed by
    # wasmtime's drop (wasmtime-py's own conversion there lost the box when the part was zeroed: 48 bytes a call).
    "record-of-variants": ("$vr", 13, [*compiled.variant_records("h\u00e9llo"), *compiled.variant_records("")]),
    # The host answers the last value sent: here the empty list, so only the parameters carry variants.
    "list-of-variants": ("(list $vt)", 2, [compiled.tagged("abc"), compiled.tagged(""), []]),
    "list-of-untagged-variants": ("(list $vu)", 2, [compiled.untagged("abc"), compiled.untagged("x" * 100)]),
    "tuple-of-variants": ("(tuple $vt string $vu)", 11, compiled.values("variant-tuple", "h\u00e9llo")),
    "variant": ("$vu", 5, compiled.untagged("abc")),
}


@pytest.mark.parametrize("shape", list(LEAK_SHAPES))
def test_host_calls_with_strings_options_results_and_records_leave_no_memory_behind(module_engine: Engine,
                                                                                    shape: str):
    ty, slots, sent = LEAK_SHAPES[shape]
    component = wat.echo_component({shape: (ty, slots)}, type_defs=IMPORTED_DEFS, through_host=True)
    answer = sent[-1]
    _, call = _instance(module_engine, component, shape, lambda _caller, value: answer, typed=True)
    calls = 20_000
    grown = malloc_grown_over(call, sent, calls)
    # One box leaked per option inside a record or list (48 bytes each, wasmtime-py's own conversion) is 480 KB here.
    assert grown < calls * 8, f"{grown} bytes more in use after {calls} calls"


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



def test_each_stores_epoch_watch_ends_its_own_call_for_its_own_reason():
    engine = Engine()
    engine.start_ticker()
    try:
        component = engine.compile(wat.actor_wat(init=wat.spin(), message_server=False))
        host = {interface: {fn: (lambda *a: None) for fn in funcs}
                for interface, funcs in shape(engine, component).imports.items()}
        stop = threading.Event()
        stopped = Boundary(engine, component, _ByHand(), host, Limits(deadline_ms=60_000), interrupt=stop)
        late = Boundary(engine, component, _ByHand(), host, Limits(deadline_ms=50), interrupt=threading.Event())
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
