"""A host function's result of a ``result`` or ``variant`` type (``send-http``'s ``result<response, string>``) is
lowered by the compiled lowerer (``replay._wasmtime._cases_lowerer``, through ``lowerer_at``), its payload's
records, lists, tuples, strings, options and ``list<u8>`` compiled too, exactly as wasmtime-py's own
``convert_to_c`` lowers it: the same C values (read back node by node), the same values seen by the guest, and for
a value the type refuses the same exception, with nothing left allocated."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc

from replay import _wasmtime
from replay import values as replay_values
from replay._wasmtime import lifter_at, lowerer_at
from replay.boundary import import_functions
from replay.engine import Engine
from tests.components import wat
from tests.replay._support import Slot
from tests.replay import test_compiled_converters as compiled
from tests.replay.test_fastcall import shape_of
from tests.replay.test_host_funcs import IMPORTED_DEFS, _instance, malloc_grown_over

# name -> (type text, flat slots); every one a result or variant, or holds one.
SHAPES = {
    "send-http": ("(result $resp (error string))", 7),
    "strings": ("(result string (error string))", 3),  # tagged: both cases are str
    "no-ok-payload": ("(result (error string))", 3),  # untagged: None is ok, a str is err
    "maybe-ok": ("(result (option string) (error string))", 4),  # tagged by the patch (an option may be None)
    "nested": ("(result $vr (error $resp))", 14),  # tagged (both records): variants, flags, enums; a record as err
    "results-list": ("(list (result string (error u32)))", 2),  # untagged, inside a list
    "untagged-variant": ("$vu", 5),
    "tagged-variant": ("$vt", 4),
}
TEXTS = ["", "r", "h\u00e9llo \u2713 \U0001d11e", "\x00\xff", "x" * 4096, "\u00e9" * 70_000]


def response(text: str, *, headers: int = 2, body: bytes | None = b"body") -> wc.Record:
    """An http-client response as the handler's recorded answer becomes it (``values.lowerer``)."""
    return compiled.record(status=200, headers=[(text, text[::-1])] * headers, body=body)


def good_values(shape: str, text: str) -> list[Any]:
    if shape == "send-http":
        return [response(text), response(text, headers=0, body=None), response(text, headers=40, body=b""),
                response(text, body=b"\x00" * 5000), compiled.record(status=65535, headers=[], body=b"z"),
                text, "connection refused: 127.0.0.1:1"]
    if shape == "strings":
        return [wc.Variant("ok", text), wc.Variant("err", text[::-1])]
    if shape == "no-ok-payload":
        return [None, text]
    if shape == "maybe-ok":
        return [wc.Variant("ok", text), wc.Variant("ok", None), wc.Variant("err", text)]
    if shape == "nested":
        return [*(wc.Variant("ok", r) for r in compiled.variant_records(text)), wc.Variant("err", response(text)),
                wc.Variant("err", response(text, headers=0, body=None))]
    if shape == "results-list":
        return [[], [text, 7, "", 0, text[::-1]]]
    if shape == "untagged-variant":
        return compiled.untagged(text)
    if shape == "tagged-variant":
        return compiled.tagged(text)
    raise AssertionError(shape)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()  # installs the patches (bulk list<u8>, caches, tagging), as the runtime's engine does


@pytest.fixture(scope="module")
def types(engine: Engine) -> dict[str, Any]:
    funcs = "".join(f' (import "f-{name}" (func (param "v" {text})))' for name, (text, _) in SHAPES.items())
    component = engine.compile(f"(component {IMPORTED_DEFS}{funcs})")
    imported = import_functions(engine, component)[""]
    return {name: imported[f"f-{name}"].params[0][1] for name in SHAPES}


def by_wasmtime_py(store: Any, ty: Any, value: Any) -> tuple[Any, Any]:
    slot = Slot()
    ty.convert_to_c(store, value, ctypes.pointer(slot.val))
    return slot.head(), shape_of(lifter_at(ty)(slot.at))


def compiled_path(store: Any, ty: Any, value: Any) -> tuple[Any, Any]:
    head, lifted = compiled_lifted(store, ty, value)
    return head, shape_of(lifted)


def compiled_lifted(store: Any, ty: Any, value: Any) -> tuple[Any, Any]:
    """(``Slot.head``, the value lifted back) of ``value`` lowered by the compiled lowerer."""
    slot = Slot()
    lowerer_at(ty)(store, value, slot.at)
    return slot.head(), lifter_at(ty)(slot.at)


def test_result_and_variant_types_have_a_compiled_lowerer(types: dict[str, Any]) -> None:
    for name in ("send-http", "strings", "no-ok-payload", "maybe-ok", "nested", "tagged-variant"):
        assert _wasmtime._compiled_lowerer_at(types[name]) is not None, name


@pytest.mark.parametrize("text", TEXTS, ids=["empty", "one-byte", "non-ascii", "nul-and-ff", "page", "large"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_compiled_lowerer_writes_the_c_values_convert_to_c_writes(types: dict[str, Any], engine: Engine,
                                                                    shape: str, text: str) -> None:
    store = wasmtime.Store(engine.wasmtime)
    ty = types[shape]
    for value in good_values(shape, text):
        assert compiled_path(store, ty, value) == by_wasmtime_py(store, ty, value)


def test_a_recorded_http_client_answer_is_lowered_as_convert_to_c_lowers_it(types: dict[str, Any],
                                                                          engine: Engine) -> None:
    """The two answers of ``HttpClientHandler.send_http`` in their recorded form (what replay feeds back), through
    ``values.lowerer`` as the boundary turns them into wasmtime-py's values."""
    store = wasmtime.Store(engine.wasmtime)
    ty = types["send-http"]
    to_wasmtime = replay_values.lowerer(ty)
    answers = [{"ok": {"status": 404, "headers": [["content-type", "text/plain; charset=utf-8"], ["x-\u00e9", ""]],
                       "body": {"some": b"not found"}}},
               {"ok": {"status": 204, "headers": [], "body": None}},
               {"err": "request refused: 10.0.0.1 is a private address"}]
    for answer in answers:
        value = to_wasmtime(answer)
        head, lifted = compiled_lifted(store, ty, value)
        assert (head, shape_of(lifted)) == by_wasmtime_py(store, ty, value)
        assert head[1] == ("ok" in answer)
        assert replay_values.lifter(ty)(lifted) == answer  # what replay feeds back is what the guest gets


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_host_function_returns_to_the_guest_what_add_func_returns(engine: Engine, shape: str) -> None:
    ty_text, slots = SHAPES[shape]
    component = wat.echo_component({shape: (ty_text, slots)}, type_defs=IMPORTED_DEFS, through_host=True)
    answers = [v for text in TEXTS[:4] for v in good_values(shape, text)]
    box: dict[str, Any] = {}

    def host(_caller: Any, _value: Any) -> Any:
        return box["answer"]

    slow_store, slow = _instance(engine, component, shape, host, typed=False)
    fast_store, fast = _instance(engine, component, shape, host, typed=True)
    for answer in answers * 2:  # again: nothing of one call is freed under the next
        box["answer"] = answer
        arg = answers[0]
        assert shape_of(fast(arg)) == shape_of(slow(arg)) == shape_of(answer)
        assert fast_store.get_fuel() == slow_store.get_fuel()


# Values a handler might get wrong, each refused deep inside the result's payload or at its case.
HOSTILE = {
    "send-http": {
        "a map instead of a record": {"status": 200, "headers": [], "body": None},
        "None (no case without a payload)": None,
        "bytes as the err text": b"refused",
        "a tagged Variant for an untagged result": wc.Variant("ok", response("a")),
        "a record missing its headers": compiled.record(status=200, body=None),
        "a status given as text": compiled.record(status="200", headers=[], body=None),
        "a header of three strings": compiled.record(status=1, headers=[("a", "b", "c")], body=None),
        "a header given as a list": compiled.record(status=1, headers=[["a", "b"]], body=None),
        "a header that is not a string": compiled.record(status=1, headers=[("a", "b")] * 5 + [("a", 5)], body=None),
        "a header with a lone surrogate": compiled.record(status=1, headers=[("a", "b")] * 5 + [("a", "\ud800")],
                                                          body=None),
        "headers given as a tuple": compiled.record(status=1, headers=(("a", "b"),), body=None),
        "a body given as a bytearray": compiled.record(status=1, headers=[("a", "b")], body=bytearray(b"x")),
        "a body given as text": compiled.record(status=1, headers=[("a", "b")] * 3, body="x"),
        "an err text with a lone surrogate": "\udfff",
    },
    "strings": {
        "a bare string for a tagged result": "yes",
        "an unknown case": wc.Variant("maybe", "x"),
        "a number as the ok text": wc.Variant("ok", 5),
        "a lone surrogate as the err text": wc.Variant("err", "\ud800"),
    },
    "maybe-ok": {
        "a bare None for a tagged result": None,
        "a map as the ok option": wc.Variant("ok", {"some": "x"}),
    },
    "nested": {
        "a bare record for a tagged result": compiled.record(status=1, headers=[], body=None),
        "a record with a flags field of the wrong kind": wc.Variant("ok", compiled.record(
            u=None, f="x", t=wc.Variant("empty"), e="a", s="s")),
        "a record with a variant value no case takes": wc.Variant("ok", compiled.record(
            u=2.5, f=set(), t=wc.Variant("empty"), e="a", s="s")),
        "a response err whose body is text": wc.Variant("err", compiled.record(status=1, headers=[("a", "b")],
                                                                                body="x")),
    },
    "results-list": {
        "a float in the list": ["a", 7, 2.5],
        "a tuple instead of a list": ("a", 7),
    },
    "tagged-variant": {
        "a case without a payload given one": wc.Variant("a", 5),
        "a case name that is not a str": wc.Variant(b"a", "x"),
    },
}
HOSTILE_CASES = [(shape, case) for shape, cases in HOSTILE.items() for case in cases]


def outcome(call: Any) -> Any:
    try:
        return "ok", shape_of(call())
    except Exception as exc:  # the type and text are what is compared
        return "error", type(exc).__name__, str(exc)


@pytest.mark.parametrize(("shape", "case"), HOSTILE_CASES, ids=[f"{s}: {c}" for s, c in HOSTILE_CASES])
def test_a_value_the_type_refuses_raises_what_convert_to_c_raises_with_nothing_written(
        types: dict[str, Any], engine: Engine, shape: str, case: str) -> None:
    store = wasmtime.Store(engine.wasmtime)
    ty = types[shape]
    value = HOSTILE[shape][case]
    slot = Slot()
    mine = outcome(lambda: lowerer_at(ty)(store, value, slot.at))
    theirs = outcome(lambda: ty.convert_to_c(store, value, ctypes.pointer(Slot().val)))
    assert mine == theirs
    if mine[0] == "error":
        assert slot.raw() == bytes(_wasmtime._VAL_STRIDE)  # nothing written that would need freeing
    else:  # accepted by both (an untagged case taking what it is given): the same values
        lifter_at(ty)(slot.at)
        assert compiled_path(store, ty, value) == by_wasmtime_py(store, ty, value)


@pytest.mark.parametrize(("shape", "case"), [c for c in HOSTILE_CASES if c[0] in ("send-http", "strings")],
                         ids=[f"{s}: {c}" for s, c in HOSTILE_CASES if s in ("send-http", "strings")])
def test_a_host_function_returning_a_refused_value_fails_the_call_as_add_func_does(engine: Engine, shape: str,
                                                                                 case: str) -> None:
    ty_text, slots = SHAPES[shape]
    component = wat.echo_component({shape: (ty_text, slots)}, type_defs=IMPORTED_DEFS, through_host=True)
    answer = HOSTILE[shape][case]
    _, slow = _instance(engine, component, shape, lambda _caller, _value: answer, typed=False)
    _, fast = _instance(engine, component, shape, lambda _caller, _value: answer, typed=True)
    arg = good_values(shape, "a")[0]
    assert outcome(lambda: fast(arg)) == outcome(lambda: slow(arg))


def test_refused_results_leave_nothing_allocated(types: dict[str, Any], engine: Engine) -> None:
    store = wasmtime.Store(engine.wasmtime)
    # Each fails deep inside, after the result's record, its header list and earlier headers were allocated.
    refused = [(types["send-http"], HOSTILE["send-http"][case]) for case in
               ("a header that is not a string", "a header with a lone surrogate", "a body given as text",
                "a header of three strings")]
    refused += [(types["nested"], HOSTILE["nested"][case]) for case in HOSTILE["nested"]]
    refused += [(types["results-list"], HOSTILE["results-list"]["a float in the list"])]

    def call(pair: tuple[Any, Any]) -> None:
        ty, value = pair
        slot = Slot()
        try:
            lowerer_at(ty)(store, value, slot.at)
        except (TypeError, ValueError, AttributeError):
            pass
        else:
            raise AssertionError("the value was not refused")

    assert malloc_grown_over(call, refused, calls=5_000) < 64 * 1024


def test_lowered_results_are_freed_whole_by_one_delete(types: dict[str, Any], engine: Engine) -> None:
    store = wasmtime.Store(engine.wasmtime)
    sent = [(types["send-http"], v) for v in good_values("send-http", "h\u00e9llo")]
    sent += [(types["nested"], v) for v in good_values("nested", "abc")]
    sent += [(types["tagged-variant"], v) for v in good_values("tagged-variant", "abc")]

    def call(pair: tuple[Any, Any]) -> None:
        ty, value = pair
        slot = Slot()
        lowerer_at(ty)(store, value, slot.at)
        _wasmtime._val_delete(slot.at)

    assert malloc_grown_over(call, sent, calls=5_000) < 64 * 1024
