"""An export's parameters are written to wasmtime straight from their recorded form
(``replay._wasmtime.recorded_lowerer_at``, used by ``FastFunc.call_recorded``) exactly as the two steps wrote them
(``replay.values.lowerer``, then the compiled lowerer): the same C values for every shape a request takes, hostile
text included; a value in any other form (a tuple given as a tuple, a list longer than its tuple, a ``bytearray``,
a field missing, a string that cannot be encoded) is refused by the direct path with nothing left allocated, and the
call then gives what the two steps give, values or error alike. (Its result read straight into the recorded form:
tests/replay/test_direct_lifting.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import wasmtime.component as wc

from replay import _wasmtime
from replay import values
from replay._wasmtime import FastFunc, lifter_at, lowerer_at, recorded_lowerer_at
from replay.boundary import import_functions
from replay.engine import Engine
from tests.replay._support import Slot
from tests.replay.test_fastcall import shape_of
from tests.replay.test_host_funcs import malloc_grown_over

TYPE_DEFS = (
    '(type $req0 (record (field "method" string) (field "uri" string)'
    ' (field "headers" (list (tuple string string))) (field "body" (option (list u8)))))'
    ' (import "req" (type $req (eq $req0)))'
    ' (type $ints0 (record (field "a" u8) (field "bb" u16) (field "c" u32) (field "dd" u64) (field "e" s8)'
    ' (field "f" s16) (field "g" s32) (field "zzzz" s64) (field "on" bool)))'
    ' (import "ints" (type $ints (eq $ints0)))'
    ' (type $en0 (enum "a" "b")) (import "en" (type $en (eq $en0)))'
    ' (type $va0 (variant (case "x" string) (case "y"))) (import "va" (type $va (eq $va0)))'
)
DIRECT = {  # name -> type text; every one lowered directly
    "handle-request": "(tuple u64 $req)",
    "requests": "(list $req)",
    "nested": "(list (list string))",
    "maybe-text": "(option string)",
    "maybe-pairs": "(option (list (tuple string string)))",
    "mixed": "(tuple bool u32 s32 string)",
    "ints": "(tuple $ints (list u64))",
}
NOT_DIRECT = {  # types holding a node the direct path leaves to the two steps
    "char": "(tuple char)",
    "enum": "(tuple $en)",
    "variant": "(tuple $va)",
    "result": "(tuple (result string (error string)))",
    "float": "(tuple f64)",
    "tagged-option": "(tuple (option (option u8)))",
}
TEXTS = ["", "r", "h\u00e9llo \u2713 \U0001d11e", "\x00\xff", "x" * 4096, "\u00e9" * 70_000]


@pytest.fixture(scope="module")
def types() -> dict[str, Any]:
    engine = Engine()  # installs the bulk list<u8> path, as the runtime's engine does
    every = {**DIRECT, **NOT_DIRECT}
    funcs = "".join(f' (import "f-{name}" (func (param "v" {text})))' for name, text in every.items())
    component = engine.compile(f"(component {TYPE_DEFS}{funcs})")
    imported = import_functions(engine, component)[""]
    return {name: imported[f"f-{name}"].params[0][1] for name in every}


def request(text: str, body: Any = b"body", headers: int = 2) -> dict[str, Any]:
    """A request in its recorded form (what the http-framework handler hands to the actor)."""
    return {"uri": "/" + text, "body": None if body is None else {"some": body}, "method": text,
            "headers": [[text, text]] * headers}


def recorded(name: str) -> list[Any]:
    if name == "handle-request":
        return [[n, request(t, b, h)] for n in (0, 7, 2**64 - 1) for t in TEXTS for b in (None, b"", b"\x00" * 5000)
                for h in (0, 1, 40)]
    if name == "requests":
        return [[], [request(t) for t in TEXTS]]
    if name == "nested":
        return [[], [[]], [[t, t] for t in TEXTS]]
    if name == "maybe-text":
        return [None, *({"some": t} for t in TEXTS)]
    if name == "maybe-pairs":
        return [None, {"some": []}, {"some": [[t, "v"] for t in TEXTS]}]
    if name == "mixed":
        return [[b, n, s, t] for b, n, s in ((False, 0, -(2**31)), (True, 2**32 - 1, 2**31 - 1)) for t in TEXTS]
    if name == "ints":
        return [[{"a": 255, "bb": 65535, "c": 2**32 - 1, "dd": 2**64 - 1, "e": -128, "f": -32768, "g": -(2**31),
                  "zzzz": -(2**63), "on": True}, [0, 23, 24, 2**64 - 1]],
                [{"a": 0, "bb": 0, "c": 0, "dd": 0, "e": 0, "f": 0, "g": 0, "zzzz": 0, "on": False}, []]]
    raise AssertionError(name)


def two_steps(store: Any, ty: Any, value: Any) -> Any:
    """The value lowered as before (recorded form to wasmtime-py's, then the compiled lowerer), lifted back."""
    slot = Slot()
    lowerer_at(ty)(store, values.lowerer(ty)(value), slot.at)
    return lifter_at(ty)(slot.at)


def direct(store: Any, ty: Any, value: Any) -> Any:
    slot = Slot()
    lower = recorded_lowerer_at(ty)
    assert lower is not None
    lower(store, value, slot.at)
    return lifter_at(ty)(slot.at)


@pytest.mark.parametrize("name", DIRECT)
def test_the_direct_path_writes_what_the_two_steps_write(types: dict[str, Any], name: str) -> None:
    store = wasmtime.Store(Engine().wasmtime)
    ty = types[name]
    for value in recorded(name):
        assert shape_of(direct(store, ty, value)) == shape_of(two_steps(store, ty, value))


@pytest.mark.parametrize("name", NOT_DIRECT)
def test_a_type_with_a_node_it_does_not_handle_keeps_the_two_steps(types: dict[str, Any], name: str) -> None:
    assert recorded_lowerer_at(types[name]) is None


# Values not in the plainest recorded form: the direct path refuses each (with nothing allocated), and the two steps
# give what they always gave: a value, or an error.
HOSTILE = {
    "a tuple given as a tuple": (3, request("a")),
    "a tuple list longer than its tuple": [3, request("a"), "extra"],
    "a tuple list shorter than its tuple": [3],
    "a header given as a tuple": [3, {**request("a"), "headers": [("a", "b")]}],
    "a header of three strings": [3, {**request("a"), "headers": [["a", "b", "c"]]}],
    "a header that is not a string": [3, {**request("a"), "headers": [["a", 5]]}],
    "a header with a lone surrogate": [3, {**request("a"), "headers": [["a", "\ud800"]]}],
    "a uri with a lone surrogate": [3, {**request("a"), "uri": "/\udfff"}],
    "a body given as a bytearray": [3, request("a", bytearray(b"abc"))],
    "a body given as a memoryview": [3, request("a", memoryview(b"abc"))],
    "a body given as an integer": [3, request("a", 10**12)],
    "a body option that is not a map": [3, {**request("a"), "body": b"abc"}],
    "a body option without its case": [3, {**request("a"), "body": {"none": b"abc"}}],
    "a missing field": [3, {k: v for k, v in request("a").items() if k != "uri"}],
    "a request that is a list": [3, list(request("a").values())],
    "a handler id that is negative": [-1, request("a")],
    "a handler id that is a bool": [True, request("a")],
    "a handler id that is too large": [2**64, request("a")],
    "a handler id that is a string": ["3", request("a")],
    "headers that are a tuple": [3, {**request("a"), "headers": (("a", "b"),)}],
}


def outcome(call: Any) -> Any:
    try:
        return "ok", shape_of(call())
    except Exception as exc:  # the type and text are what is compared
        return "error", type(exc).__name__, str(exc)


@pytest.fixture(scope="module")
def handle_request() -> Any:
    """A fresh instance's ``handle-request`` of the component-text http actor, as a ``FastFunc``, per call."""
    from tests.components.http_wat import http_actor

    engine = Engine()
    component = engine.compile(http_actor())
    interface = component.get_export_index("theater:simple/http-handlers")
    index = component.get_export_index("handle-request", interface)

    def make() -> tuple[FastFunc, wasmtime.Store]:
        store = wasmtime.Store(engine.wasmtime)
        store.set_fuel(10**9)
        store.set_epoch_deadline(10**9)
        linker = wc.Linker(engine.wasmtime)
        linker.define_unknown_imports_as_traps(component)
        func = linker.instantiate(store, component).get_func(store, index)
        assert func is not None
        return FastFunc(func, store), store

    return make


STATE = bytes(8) + (2).to_bytes(8, "little") + bytes(8)  # count 0, /count is handler 2, no disconnects


@pytest.mark.parametrize("case", HOSTILE)
def test_a_value_not_in_its_plainest_form_is_lowered_as_the_two_steps_lower_it(
        types: dict[str, Any], handle_request: Any, case: str) -> None:
    store = wasmtime.Store(Engine().wasmtime)
    ty = types["handle-request"]
    value = HOSTILE[case]
    slot = Slot()
    lower = recorded_lowerer_at(ty)
    assert lower is not None
    direct_outcome = outcome(lambda: (lower(store, value, slot.at), lifter_at(ty)(slot.at))[1])
    if direct_outcome[0] == "error":
        assert slot.raw() == bytes(_wasmtime._VAL_STRIDE)  # nothing written that would need freeing
    else:  # what the direct path accepts it writes as the two steps do
        assert direct_outcome == outcome(lambda: two_steps(store, ty, value))
    # and a call given it answers as before: the same answer and fuel, or the same error
    (fast, fast_store), (slow, slow_store) = handle_request(), handle_request()
    params_lower, result_lift = values.lowerer(slow.types[0][1]), values.lifter(slow.types[1])
    assert outcome(lambda: fast.call_recorded(STATE, value, params_lower, result_lift)) == \
        outcome(lambda: result_lift(slow(STATE, params_lower(value))))
    assert fast_store.get_fuel() == slow_store.get_fuel()


@pytest.mark.parametrize("value", [[1, request(t, b, h)] for t in TEXTS[:4] for b in (None, b"x" * 3000)
                                   for h in (0, 3)] + [[2, request("count")]])
def test_a_call_given_a_plain_request_answers_as_before(handle_request: Any, value: Any) -> None:
    (fast, fast_store), (slow, slow_store) = handle_request(), handle_request()
    params_lower, result_lift = values.lowerer(slow.types[0][1]), values.lifter(slow.types[1])
    assert fast._direct is not None and fast._read is not None
    answer = fast.call_recorded(STATE, value, params_lower, result_lift)
    assert answer == result_lift(slow(STATE, params_lower(value)))
    assert fast_store.get_fuel() == slow_store.get_fuel()
    # without ``lift``, wasmtime-py's values, as ``FastFunc.__call__`` gives them
    again, _ = handle_request()
    assert shape_of(again.call_recorded(STATE, value, params_lower)) == shape_of(slow(STATE, params_lower(value)))


def test_a_refused_value_leaves_nothing_allocated(types: dict[str, Any]) -> None:
    store = wasmtime.Store(Engine().wasmtime)
    ty = types["handle-request"]
    lower = recorded_lowerer_at(ty)
    assert lower is not None
    # Each fails deep inside: after the tuple, the record and earlier headers were allocated.
    refused = [[3, {**request("x" * 100, headers=8), "headers": [["a", "b"]] * 8 + [["a", "\ud800"]]}],
               [3, {**request("x" * 100, b"y" * 300), "body": {"some": bytearray(b"z")}}],
               [3, {k: v for k, v in request("x" * 100, headers=8).items() if k != "headers"}]]

    def call(value: Any) -> None:
        slot = Slot()
        try:
            lower(store, value, slot.at)
        except Exception:  # _NotDirect or the error met: refused either way
            pass
        else:
            raise AssertionError("the value was not refused")

    assert malloc_grown_over(call, refused, calls=5_000) < 64 * 1024


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(handler=st.integers(-(2**64), 2**65), method=st.text(), uri=st.text(),
       headers=st.lists(st.lists(st.text(), min_size=0, max_size=3), max_size=6),
       body=st.none() | st.binary(max_size=3000).map(lambda b: {"some": b}) | st.binary(max_size=8))
def test_any_request_params_are_answered_as_the_two_steps_answer_them(
        handle_request: Any, handler: int, method: str, uri: str, headers: list[list[str]], body: Any) -> None:
    value = [handler, {"uri": uri, "body": body, "method": method, "headers": headers}]
    (fast, fast_store), (slow, slow_store) = handle_request(), handle_request()
    params_lower, result_lift = values.lowerer(slow.types[0][1]), values.lifter(slow.types[1])
    assert outcome(lambda: fast.call_recorded(STATE, value, params_lower, result_lift)) == \
        outcome(lambda: result_lift(slow(STATE, params_lower(value))))
    assert fast_store.get_fuel() == slow_store.get_fuel()
