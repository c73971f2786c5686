"""An export's result is read from wasmtime straight into its recorded form (``replay._wasmtime.recorded_reader_at``,
used by ``FastFunc.call_recorded``) exactly as the two steps read it (the compiled reader, then
``replay.values.lifter``): the same recorded value, with records in canonical key order, for every shape an answer
takes, hostile text included. An untagged result whose cases the lifter would tell apart differently from wasmtime
(an ``err`` holding a bool next to an ``ok`` holding an integer) is never read directly, and a value not of the
shape its type says is refused by the direct reader, so the call reads it the two-step way."""

from __future__ import annotations

from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc

from replay import _wasmtime, values
from replay._wasmtime import lowerer_at, reader_at, recorded_reader_at
from replay.boundary import import_functions
from replay.engine import Engine
from tests.replay.test_direct_lowering import TEXTS, Slot

TYPE_DEFS = (
    '(type $resp0 (record (field "status" u16) (field "headers" (list (tuple string string)))'
    ' (field "body" (option (list u8)))))'
    ' (import "resp" (type $resp (eq $resp0)))'
    # fields declared out of canonical order: the recorded map puts the shorter names first
    ' (type $order0 (record (field "zzzz" u8) (field "a" string) (field "ccc" bool) (field "bb" s64)))'
    ' (import "order" (type $order (eq $order0)))'
    ' (type $en0 (enum "a" "bb" "ccc")) (import "en" (type $en (eq $en0)))'
    ' (type $fl0 (flags "x" "y" "z")) (import "fl" (type $fl (eq $fl0)))'
)
DIRECT = {
    "answer": "(result (tuple (option (list u8)) (tuple $resp)) (error string))",
    "order": "(list $order)",
    "enums": "(tuple $en (list $en))",
    "flags": "(list $fl)",
    "bool-or-int": "(result bool (error u32))",
    "strings": "(result string (error string))",
    "no-ok": "(result (error string))",
    "no-err": "(result u8)",
    "bytes-or-bytes": "(result (list u8) (error (list u8)))",
    "bytes-or-text": "(result (list u8) (error string))",
    "maybe": "(list (option string))",
}
NOT_DIRECT = {
    "int-or-bool": "(result u32 (error bool))",  # the lifter would record err(true) as ok(true): left to it
    "char": "(tuple char)",
    "float": "(list f64)",
    "tagged-option": "(option (option u8))",
}


@pytest.fixture(scope="module")
def types() -> dict[str, Any]:
    engine = Engine()
    every = {**DIRECT, **NOT_DIRECT}
    funcs = "".join(f' (import "f-{name}" (func (param "v" {text})))' for name, text in every.items())
    component = engine.compile(f"(component {TYPE_DEFS}{funcs})")
    imported = import_functions(engine, component)[""]
    return {name: imported[f"f-{name}"].params[0][1] for name in every}


def record(**fields: Any) -> wc.Record:
    made = wc.Record()
    for name, value in fields.items():
        setattr(made, name, value)
    return made


def samples(name: str) -> list[Any]:
    """wasmtime-py values of the type ``name``, as a guest would answer them."""
    if name == "answer":
        return [*((state, (record(status=s, headers=[(t, t)] * h, body=b),)) for state in (None, b"", b"s" * 3000)
                  for s in (0, 200, 65535) for t in TEXTS[:4] for h in (0, 3) for b in (None, b"", b"\x00" * 70_000)),
                *TEXTS]
    if name == "order":
        return [[], [record(zzzz=z, a=t, ccc=c, bb=b) for z, c, b in ((0, False, -(2**63)), (255, True, 2**63 - 1))
                     for t in TEXTS]]
    if name == "enums":
        return [("a", []), ("ccc", ["bb", "a", "ccc"] * 10)]
    if name == "flags":
        return [[set(), {"z", "x"}, {"x", "y", "z"}, {"y"}]]
    if name == "bool-or-int":
        return [True, False, 0, 7, 2**32 - 1]
    if name == "strings":
        return [wc.Variant(case, t) for case in ("ok", "err") for t in TEXTS]
    if name == "no-ok":
        return [None, *TEXTS]
    if name == "no-err":
        return [None, 0, 255]
    if name == "bytes-or-bytes":
        return [wc.Variant(case, b) for case in ("ok", "err") for b in (b"", b"\xff" * 5000)]
    if name == "bytes-or-text":
        return [b"", b"x" * 5000, *TEXTS]
    if name == "maybe":
        return [[], [None, *TEXTS, None]]
    raise AssertionError(name)


def in_c(store: Any, ty: Any, value: Any) -> Slot:
    slot = Slot()
    lowerer_at(ty)(store, value, slot.at)
    return slot


@pytest.mark.parametrize("name", DIRECT)
def test_the_direct_reader_gives_the_recorded_form_the_two_steps_give(types: dict[str, Any], name: str) -> None:
    store = wasmtime.Store(Engine().wasmtime)
    ty = types[name]
    read = recorded_reader_at(ty)
    assert read is not None
    for value in samples(name):
        slot = in_c(store, ty, value)
        try:
            direct = read(slot.at)
            expected = values.lifter(ty)(reader_at(ty)(slot.at))
        finally:
            _wasmtime._val_delete(slot.at)
        assert direct == expected
        assert list(_keys(direct)) == list(_keys(expected))  # the same key order: the same bytes when stored


def _keys(value: Any) -> Any:
    """Every map key inside ``value``, in order."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


@pytest.mark.parametrize("name", NOT_DIRECT)
def test_a_type_it_cannot_read_exactly_keeps_the_two_steps(types: dict[str, Any], name: str) -> None:
    assert recorded_reader_at(types[name]) is None


def test_a_value_of_another_shape_is_refused_by_the_direct_reader(types: dict[str, Any]) -> None:
    store = wasmtime.Store(Engine().wasmtime)
    # a one-field record read as the four-field $order, a string read as a tuple, a list read as a result
    order = types["order"].element
    one = _one_field_record_type()
    wrong = [(order, in_c(store, one, record(zzzz=1))), (types["enums"], in_c(store, _string_type(), "x")),
             (types["answer"], in_c(store, types["maybe"], []))]
    for ty, slot in wrong:
        try:
            with pytest.raises(_wasmtime._NotDirect):
                recorded_reader_at(ty)(slot.at)  # type: ignore[misc]
        finally:
            _wasmtime._val_delete(slot.at)


def _one_field_record_type() -> Any:
    engine = Engine()
    component = engine.compile('(component (type $r0 (record (field "zzzz" u8))) (import "r" (type $r (eq $r0)))'
                               ' (import "f" (func (param "v" $r))))')
    return import_functions(engine, component)[""]["f"].params[0][1]


def _string_type() -> Any:
    engine = Engine()
    component = engine.compile('(component (import "f" (func (param "v" string))))')
    return import_functions(engine, component)[""]["f"].params[0][1]
