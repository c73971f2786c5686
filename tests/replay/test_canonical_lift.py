"""A ``wasm/result`` whose output the lifter made from a type ``replay.values.canonical`` accepts is stored without
the store's canonical-form check (``store.codec._plain``): the event's bytes, and so its hash, are exactly what the
checked path writes, for every shape the lifter makes and for hostile values (non-ASCII and astral text, strings and
byte strings past the spill threshold, integers at their bounds, long and deeply nested lists, every variant case).
Types holding floats are never called canonical."""

from __future__ import annotations

import uuid
from typing import Any

import cbor2
import pytest
import wasmtime.component as wc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay import values
from replay.boundary import CallResult, import_functions
from replay.engine import Engine
from store import Store
from store.recorder import EMPTY
from store.codec import DEFAULT_SPILL_THRESHOLD, _plain, decode_body, encode_fields
from theater.record import RecordTape

ACTOR = uuid.UUID(int=11)
PARENT = bytes(range(32))
EXPORT = "theater:simple/http-handlers.handle-request"

# Component-text types, each imported as the parameter of a function ``f-<name>`` of a component that does nothing:
# its imports are where the types are read from.
TYPE_DEFS = (
    '(type $req0 (record (field "method" string) (field "uri" string)'
    ' (field "headers" (list (tuple string string))) (field "body" (option (list u8)))))'
    ' (import "req" (type $req (eq $req0)))'
    ' (type $resp0 (record (field "status" u16) (field "headers" (list (tuple string string)))'
    ' (field "body" (option (list u8)))))'
    ' (import "resp" (type $resp (eq $resp0)))'
    ' (type $ints0 (record (field "a" u8) (field "bb" u16) (field "c" u32) (field "dd" u64) (field "e" s8)'
    ' (field "f" s16) (field "g" s32) (field "zzzz" s64) (field "on" bool) (field "ch" char)))'
    ' (import "ints" (type $ints (eq $ints0)))'
    ' (type $en0 (enum "a" "bb" "ccc")) (import "en" (type $en (eq $en0)))'
    ' (type $fl0 (flags "x" "y" "z")) (import "fl" (type $fl (eq $fl0)))'
    ' (type $vu0 (variant (case "none") (case "text" string) (case "num" u32) (case "pair" (tuple string string))))'
    ' (import "vu" (type $vu (eq $vu0)))'
    ' (type $vt0 (variant (case "a" string) (case "b" string) (case "empty") (case "maybe" (option string))))'
    ' (import "vt" (type $vt (eq $vt0)))'
    ' (type $mix0 (record (field "u" $vu) (field "f" $fl) (field "t" $vt) (field "e" $en) (field "s" string)'
    ' (field "r" (result (list u8) (error string))) (field "n" (result)) (field "o" (option u8))))'
    ' (import "mix" (type $mix (eq $mix0)))'
    ' (type $fr0 (record (field "x" u8) (field "y" f64))) (import "fr" (type $fr (eq $fr0)))'
)
# name -> (type text, canonical?)
TYPES = {
    "request": ("$req", True),
    "response": ("$resp", True),
    "responses": ("(tuple (option (list u8)) (tuple $resp))", True),
    "ints": ("$ints", True),
    "enums": ("(list $en)", True),
    "flags": ("(list $fl)", True),
    "untagged": ("(list $vu)", True),
    "tagged": ("(list $vt)", True),
    "mixed": ("(list $mix)", True),
    "deep": ("(list " * 20 + "string" + ")" * 20, True),
    "text": ("(result (list string) (error string))", True),
    "float": ("f64", False),
    "float32-in-list": ("(list f32)", False),
    "float-in-record": ("$fr", False),
    "float-in-option": ("(option f64)", False),
    "float-in-result": ("(result u8 (error f32))", False),
    "float-in-variant-tuple": ("(tuple u8 (list (tuple string f64)))", False),
}


@pytest.fixture(scope="module")
def types() -> dict[str, Any]:
    engine = Engine()
    funcs = "".join(f' (import "f-{name}" (func (param "v" {text})))' for name, (text, _) in TYPES.items())
    component = engine.compile(f"(component {TYPE_DEFS}{funcs})")
    imported = import_functions(engine, component)[""]
    return {name: imported[f"f-{name}"].params[0][1] for name in TYPES}


def record(**fields: Any) -> wc.Record:
    made = wc.Record()
    for name, value in fields.items():
        setattr(made, name, value)
    return made


# Hostile text: empty, non-ASCII in every UTF-8 width, astral, control characters, CBOR-looking bytes, and longer
# than the spill threshold (the event is then re-encoded with its payloads spilled to blobs).
TEXTS = ["", "r", "h\u00e9llo \u2713 \U0001d11e", "\x00\x1f\x7f\xff", "\uffff\U0010ffff", "\xa1\x60\xf6",
         "x" * (DEFAULT_SPILL_THRESHOLD + 1)]
BLOBS = [b"", b"\x00", bytes(range(256)) * 4, b"\xff" * (DEFAULT_SPILL_THRESHOLD + 1)]


def samples(name: str) -> list[Any]:
    """wasmtime-py values of the type ``name``, as wasmtime-py lifts them from a guest."""
    if name == "request":
        return [record(method=t, uri="/" + t, headers=[(t, t)] * n, body=b) for t in TEXTS for n in (0, 1, 33)
                for b in (None, *BLOBS)]
    if name == "response":
        return [record(status=s, headers=[(t, "v")] * 40, body=b) for s in (0, 200, 65535) for t in TEXTS[:3]
                for b in (None, *BLOBS)]
    if name == "responses":
        return [(s, (record(status=200, headers=[], body=b),)) for s in (None, *BLOBS) for b in (None, *BLOBS)]
    if name == "ints":
        bounds = [record(a=a, bb=b, c=c, dd=d, e=e, f=f, g=g, zzzz=z, on=on, ch=ch)
                  for a, b, c, d, e, f, g, z, on, ch in [
                      (0, 0, 0, 0, 0, 0, 0, 0, False, "\x00"),
                      (23, 24, 255, 256, -1, -24, -25, -256, True, "\U0010ffff"),
                      (255, 65535, 2**32 - 1, 2**64 - 1, -128, -32768, -(2**31), -(2**63), True, "\u00e9"),
                      (24, 65535, 65536, 2**32, 127, 32767, 2**31 - 1, 2**63 - 1, False, "z")]]
        return bounds
    if name == "enums":
        return [[], ["a", "bb", "ccc"] * 20]
    if name == "flags":
        return [[set(), {"z", "x"}, {"x", "y", "z"}]] * 12
    if name == "untagged":
        return [[None, t, 7, (t, t[::-1])] * 9 for t in TEXTS]
    if name == "tagged":
        return [[wc.Variant("a", t), wc.Variant("b", t), wc.Variant("empty", None), wc.Variant("maybe", None),
                 wc.Variant("maybe", t)] * 7 for t in TEXTS]
    if name == "mixed":
        return [[record(u=(t, t), f={"y"}, t=wc.Variant("b", t), e="ccc", s=t, r=r, n=n, o=o)
                 for r in (b"", b"\x00" * 40, t) for n in (wc.Variant("ok", None), wc.Variant("err", None))
                 for o in (None, 0, 255)]
                for t in TEXTS]
    if name == "deep":
        values_: list[Any] = []
        for t in TEXTS[:4]:
            v: Any = [t, t]
            for _ in range(19):
                v = [v, [], v]
            values_.append(v)
        return values_
    if name == "text":
        return [[t] * n for t in TEXTS for n in (0, 1, 40)] + list(TEXTS)
    raise AssertionError(name)


def encoded(output: Any, *, plain: bool) -> bytes:
    data = {"fuel": 12345, "state": bytes(32), "export": EXPORT, "output": [output]}
    hash_, body, spilled = encode_fields(ACTOR.bytes, 70_000, PARENT, 1_764_000_000_000, "wasm/result", data,
                                         DEFAULT_SPILL_THRESHOLD, plain)
    return hash_ + body + b"".join(d + p for d, p in spilled)


@pytest.mark.parametrize("name", [n for n, (_, ok) in TYPES.items() if ok])
def test_a_lifted_value_of_a_canonical_type_is_stored_byte_for_byte_as_the_checked_path_stores_it(
        types: dict[str, Any], name: str) -> None:
    ty = types[name]
    assert values.canonical(ty)
    lift = values.lifter(ty)
    for value in samples(name):
        lifted = lift(value)
        fast, checked = encoded(lifted, plain=True), encoded(lifted, plain=False)
        assert fast == checked
        # and the checked path's bytes are canonical CBOR of the whole event
        body = fast[32:]
        if len(body) <= DEFAULT_SPILL_THRESHOLD:
            assert cbor2.dumps(decode_body(body, where="test"), canonical=True) == body


@pytest.mark.parametrize("name", [n for n, (_, ok) in TYPES.items() if not ok])
def test_a_type_holding_a_float_is_never_called_canonical(types: dict[str, Any], name: str) -> None:
    assert not values.canonical(types[name])


def test_a_float_skipping_the_check_would_be_stored_differently() -> None:
    # Why floats are excluded: cbor2's default writes 1.5 in 8 bytes, canonical CBOR in 2. The check catches it.
    data = {"output": [1.5]}
    assert not _plain(data)
    assert encoded([1.5], plain=True) != encoded([1.5], plain=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.text(), uri=st.text(), headers=st.lists(st.tuples(st.text(), st.text()), max_size=40),
       body=st.none() | st.binary(max_size=2048), status=st.integers(0, 65535))
def test_any_request_and_response_lifts_to_the_same_event_bytes_either_way(
        types: dict[str, Any], method: str, uri: str, headers: list[tuple[str, str]], body: bytes | None,
        status: int) -> None:
    for name, value in (("request", record(method=method, uri=uri, headers=headers, body=body)),
                        ("response", record(status=status, headers=headers, body=body))):
        lifted = values.lifter(types[name])(value)
        try:
            checked = encoded(lifted, plain=False)
        except TypeError:  # a lone surrogate cannot be encoded as UTF-8: both paths refuse it alike
            with pytest.raises(TypeError):
                encoded(lifted, plain=True)
            continue
        assert encoded(lifted, plain=True) == checked


def test_the_record_tape_stores_a_plain_result_byte_for_byte_as_the_checked_path(tmp_path: Any,
                                                                                 types: dict[str, Any]) -> None:
    ty = types["responses"]
    output = values.lifter(ty)((b"state", (record(status=200, headers=[("a", "\u00e9")], body=b"x" * 40),)))[1:]
    with Store(tmp_path / "home", durability="buffered") as store:
        tape = RecordTape(store, ACTOR, EMPTY)
        done = CallResult(export=EXPORT, state=b"state", output=output, fuel=99, plain=values.canonical(ty))
        assert done.plain
        tape.end_call(EXPORT, done)
        tape.wait_durable(10)
        event = store.log.at(ACTOR, 0)
    written = {"fuel": 99, "state": event.data["state"], "export": EXPORT, "output": output}
    checked = encode_fields(ACTOR.bytes, 0, None, event.timestamp_ms, "wasm/result", written,
                            DEFAULT_SPILL_THRESHOLD, False)
    assert event.hash == checked.hash


@pytest.mark.parametrize(("shape", "slots", "recorded"), [
    ("(option (option (list u8)))", 4, [None, {"some": None}, {"some": {"some": b""}}, {"some": {"some": b"\xff"}}]),
    ("(option (option string))", 4, [None, {"some": None}, {"some": {"some": ""}}, {"some": {"some": "h\u00e9"}}]),
])
def test_an_option_of_an_option_is_recorded_and_crosses_back_as_it_was(shape: str, slots: int,
                                                                       recorded: list[Any]) -> None:
    # wasmtime-py gives and takes such an option as a ``Variant`` (its payload can be None itself): the lifter
    # once recorded ``{"some": Variant(...)}``, which the store could not encode, and the lowerer handed back
    # what wasmtime-py refused.
    from tests.components import wat
    from tests.replay.test_fastcall import echo_instance
    from replay._wasmtime import FastFunc

    engine = Engine()
    store, func = echo_instance(engine, wat.echo_component({"echo": (shape, slots)}))
    echo = FastFunc(func("echo"), store)
    [ty] = echo.types[0]
    lower, lift = values.lowerer(ty), values.lifter(ty)
    for value in recorded:
        back = lift(echo(lower(value)))
        assert back == value
        assert encoded(back, plain=values.canonical(ty)) == encoded(back, plain=False)
