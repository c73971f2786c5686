"""The compiled converters of replay._wasmtime (records, lists of records, nested lists, options, tuples of strings,
integers and bools, lowered and lifted through one byte view of memory) carry every value exactly as wasmtime-py's
own ``Func.__call__`` does, and refuse every hostile value with the same exception type, leaving nothing behind."""

import ctypes
from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc

from replay import _wasmtime
from replay import values as replay_values
from replay._wasmtime import FastFunc
from replay.engine import Engine
from tests.components import wat
from tests.replay.test_fastcall import echo_instance, shape_of

TYPE_DEFS = (
    '(type $req0 (record (field "method" string) (field "uri" string)'
    ' (field "headers" (list (tuple string string))) (field "body" (option (list u8)))))'
    ' (export $req "req" (type $req0))'
    ' (type $resp0 (record (field "status" u16) (field "headers" (list (tuple string string)))'
    ' (field "body" (option (list u8)))))'
    ' (export $resp "resp" (type $resp0))'
    ' (type $flags0 (record (field "on" bool) (field "count" u32) (field "delta" s32) (field "label" string)))'
    ' (export $flagged "flagged" (type $flags0))'
    # Types with no compiled converter (enum, char, variant) inside compiled ones: converted by wasmtime-py's own
    # methods, which free their part as they go, inside a value freed whole afterwards.
    ' (type $en0 (enum "a" "bb" "ccc")) (export $en "en" (type $en0))'
    ' (type $va0 (variant (case "nothing") (case "text" string))) (export $va "va" (type $va0))'
    ' (type $fb0 (record (field "e" $en) (field "c" char) (field "v" $va) (field "s" string)))'
    ' (export $fb "fb" (type $fb0))'
    # Variants with payloads (untagged: every case's values of their own classes; tagged: two string cases), flags
    # and enums, read in place by the compiled readers inside records, lists and tuples (and at the top).
    ' (type $vu0 (variant (case "none") (case "text" string) (case "num" u32) (case "pair" (tuple string string))))'
    ' (export $vu "vu" (type $vu0))'
    ' (type $vt0 (variant (case "a" string) (case "b" string) (case "empty") (case "maybe" (option string))))'
    ' (export $vt "vt" (type $vt0))'
    ' (type $fl0 (flags "x" "y" "z")) (export $fl "fl" (type $fl0))'
    ' (type $vr0 (record (field "u" $vu) (field "f" $fl) (field "t" $vt) (field "e" $en) (field "s" string)))'
    ' (export $vr "vr" (type $vr0))'
)
SHAPES = {
    "request": ("$req", 9),
    "response": ("$resp", 6),
    "requests": ("(list $req)", 2),
    "nested": ("(list (list string))", 2),
    "pairs": ("(list (tuple string string))", 2),
    "maybe-text": ("(option string)", 3),
    "scalars": ("$flagged", 5),
    "mixed": ("(tuple bool u32 s32 string)", 5),
    "fallbacks": ("$fb", 7),
    "enums": ("(list $en)", 2),
    "untagged": ("$vu", 5),
    "tagged": ("$vt", 4),
    "variants": ("$vr", 13),
    "untagged-list": ("(list $vu)", 2),
    "tagged-list": ("(list $vt)", 2),
    "variant-tuple": ("(tuple $vt string $vu)", 11),
    "flags-list": ("(list $fl)", 2),
}
# Every size class of a string: empty, one byte, non-ASCII (2, 3 and 4 UTF-8 bytes), a page, megabytes.
TEXTS = ["", "r", "h\u00e9llo \u2713 \U0001d11e", "x" * 4096, "\u00e9" * 600_000]


def record(**fields: Any) -> wc.Record:
    made = wc.Record()
    for name, value in fields.items():
        setattr(made, name, value)
    return made


def request(text: str, body: bytes | None = b"body") -> wc.Record:
    return record(method=text, uri="/" + text, headers=[(text, text), ("content-type", "text/plain")], body=body)


def untagged(text: str) -> list[Any]:
    """A value of every case of ``$vu`` (untagged: the payload itself, None for the case without one)."""
    return [None, text, 7, (text, text[::-1])]


def tagged(text: str) -> list[Any]:
    """A value of every case of ``$vt`` (tagged: ``Variant``), the option payload both ways."""
    return [wc.Variant("a", text), wc.Variant("b", text[::-1]), wc.Variant("empty"), wc.Variant("maybe", text),
            wc.Variant("maybe", None)]


def variant_records(text: str) -> list[wc.Record]:
    flags = [{"x", "z"}, set(), {"x", "y", "z"}, {"y"}, set()]
    return [record(u=u, f=f, t=t, e=e, s=text)
            for u, f, t, e in zip(untagged(text) + [text], flags, tagged(text), ["a", "bb", "ccc", "a", "bb"])]


def values(shape: str, text: str) -> list[Any]:
    return {
        "request": [request(text), request(text, None), request(text, b"")],
        "response": [record(status=200, headers=[(text, "v")], body=text.encode()), record(status=0, headers=[],
                                                                                           body=None)],
        "requests": [[request(text), request("", None), request(text[:1])], []],
        "nested": [[[text, "", text[:3]], [], [text]], [[]], []],
        "pairs": [[(text, text), ("", text[::-1])], []],
        "maybe-text": [text, None],
        "scalars": [record(on=True, count=2**32 - 1, delta=-(2**31), label=text),
                    record(on=False, count=0, delta=2**31 - 1, label=text)],
        "mixed": [(True, 7, -7, text), (False, 0, 0, text)],
        "fallbacks": [record(e="bb", c="\u00e9", v=text, s=text), record(e="a", c="x", v=None, s="")],
        "enums": [["a", "ccc", "bb"], []],
        "untagged": untagged(text),
        "tagged": tagged(text),
        "variants": variant_records(text),
        "untagged-list": [untagged(text), []],
        "tagged-list": [tagged(text), []],
        "variant-tuple": [(t, text, u) for t, u in zip(tagged(text), untagged(text) + [None])],
        "flags-list": [[{"x"}, set(), {"x", "y", "z"}], []],
    }[shape]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module")
def text_component() -> str:
    return wat.echo_component(SHAPES, type_defs=TYPE_DEFS)


def pair(engine: Engine, text: str):
    """(the slow store and export getter, the fast store and export getter) of two instances of the component."""
    return echo_instance(engine, text), echo_instance(engine, text)


@pytest.mark.parametrize("text", TEXTS, ids=["empty", "one-byte", "non-ascii", "page", "megabytes"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_compiled_call_carries_every_shape_and_string_size_as_func_call_does(engine, text_component, shape, text):
    (slow_store, slow), (fast_store, fast) = pair(engine, text_component)
    call = FastFunc(fast(shape), fast_store)
    for value in values(shape, text):
        expected = slow(shape)(slow_store, value)
        actual = call(value)

        assert shape_of(actual) == shape_of(expected) == shape_of(value)
        assert slow_store.get_fuel() == fast_store.get_fuel()


def missing(field: str) -> wc.Record:
    made = request("x")
    delattr(made, field)
    return made


HOSTILE = [
    ("request", request("\ud800")),  # a lone surrogate cannot be UTF-8
    ("request", record(method="GET", uri="/", headers=[("a", "\udfff")], body=None)),
    ("request", record(method=7, uri="/", headers=[], body=None)),
    ("request", record(method="GET", uri=b"/", headers=[], body=None)),
    ("request", record(method="GET", uri="/", headers=(("a", "b"),), body=None)),  # a tuple where a list goes
    ("request", record(method="GET", uri="/", headers=[("a", "b", "c")], body=None)),
    ("request", record(method="GET", uri="/", headers=[["a", "b"]], body=None)),
    ("request", record(method="GET", uri="/", headers=[("a", "b")], body="text")),  # not bytes: no option case
    ("request", record(method="GET", uri="/", headers=[("a", "b")], body=bytearray(b"x"))),
    ("request", missing("method")),
    ("request", missing("body")),
    ("request", {"method": "GET", "uri": "/", "headers": [], "body": None}),  # a dict is not a record
    ("request", None),
    ("requests", [request("a"), request("\ud800"), request("c")]),  # fails half-way through a list
    ("requests", [request("a"), missing("headers")]),
    ("requests", (request("a"),)),
    ("nested", [["a"], ["b", 3]]),
    ("nested", [["a"], "b"]),
    ("pairs", [("a", "b"), ("c",)]),
    ("maybe-text", b"bytes"),
    ("maybe-text", "\ud800"),
    ("response", record(status="200", headers=[], body=None)),
    ("response", record(status=200.0, headers=[], body=None)),
    ("scalars", record(on=1, count=0, delta=0, label="")),  # an int is not a bool
    ("scalars", record(on=True, count=None, delta=0, label="")),
    ("mixed", (True, 1, 1)),
    ("mixed", [True, 1, 1, "x"]),
]


@pytest.mark.parametrize("shape, value", HOSTILE, ids=[f"{s}-{i}" for i, (s, _) in enumerate(HOSTILE)])
def test_a_hostile_value_is_refused_as_func_call_refuses_it(engine, text_component, shape: str, value: Any):
    (slow_store, slow), (fast_store, fast) = pair(engine, text_component)
    with pytest.raises(Exception) as expected:
        slow(shape)(slow_store, value)
    call = FastFunc(fast(shape), fast_store)
    with pytest.raises(Exception) as actual:
        call(value)

    assert type(actual.value) is type(expected.value)
    assert isinstance(actual.value, (TypeError, ValueError, AttributeError))
    # Nothing half-written is left behind: the next calls carry their values.
    for good in values(shape, "after"):
        assert shape_of(call(good)) == shape_of(slow(shape)(slow_store, good)) == shape_of(good)
    assert slow_store.get_fuel() == fast_store.get_fuel()


@pytest.mark.parametrize("status", [2**16 + 200, -1, 2**70 + 5, True])
def test_an_integer_out_of_range_is_written_as_wasmtime_py_writes_it(engine, text_component, status: int):
    # wasmtime-py writes an integer through a ctypes field, which keeps its low bits rather than refusing it; the
    # compiled path must write the same value (replay re-executes with what was recorded, through either path).
    (slow_store, slow), (fast_store, fast) = pair(engine, text_component)
    value = record(status=status, headers=[], body=None)

    expected = slow("response")(slow_store, value)
    actual = FastFunc(fast("response"), fast_store)(value)

    assert shape_of(actual) == shape_of(expected)
    assert actual.status == status & 0xFFFF


def test_the_ptr_converters_write_and_read_what_wasmtime_py_methods_do(engine, text_component):
    # lowerer()/lifter() (the forms taking a ctypes pointer and value, used outside FastFunc) against the type's own
    # convert_to_c/convert_from_c, crossed both ways: each reads what the other wrote.
    component = engine.compile(text_component)
    store = wasmtime.Store(engine.wasmtime)
    exports = component.type.exports(engine.wasmtime)
    for shape in SHAPES:
        ty = exports[shape].ty.params[0][1]
        for value in values(shape, "\u00e9t\u00e9"):
            for lower, lift in ((_wasmtime.lowerer(ty), ty.convert_from_c), (ty.convert_to_c, _wasmtime.lifter(ty))):
                space = wasmtime._ffi.wasmtime_component_val_t()
                lower(store, value, ctypes.pointer(space))
                assert shape_of(lift(space)) == shape_of(value)


def test_an_exception_a_host_function_raises_surfaces_as_func_call_raises_it(engine):
    # The export call goes through Theater's own prototype of wasmtime_component_func_call: the Python exception a
    # host function raised during the call (wasmtime-py keeps it aside) must come out, not a bare WasmtimeError.
    text = wat.echo_component({"text": ("string", 2)}, through_host=True)

    def host(store: Any, value: Any) -> Any:
        raise LookupError(f"no {value}")

    (slow_store, slow), (fast_store, fast) = echo_instance(engine, text, {"text": host}), \
        echo_instance(engine, text, {"text": host})
    with pytest.raises(LookupError, match="^no x$"):
        slow("text")(slow_store, "x")
    call = FastFunc(fast("text"), fast_store)
    with pytest.raises(LookupError, match="^no x$"):
        call("x")
    # The instance is left as wasmtime leaves it after a failed call, and the next call fails as Func.__call__'s does.
    with pytest.raises(Exception) as expected:
        slow("text")(slow_store, "y")
    with pytest.raises(Exception) as actual:
        call("y")
    assert (type(actual.value), str(actual.value)) == (type(expected.value), str(expected.value))


class Growing(str):
    """A string that, when encoded, adds an element to the list it sits in (a value changing under its own
    conversion)."""

    target: list[Any]

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        self.target.append(record(**vars(self.target[0])))
        return str.encode(self, *args, **kwargs)


def test_a_list_that_grows_while_it_is_lowered_is_written_as_it_was_counted(engine, text_component):
    # The array wasmtime allocates has the length counted first: an element appended during the conversion must not
    # be written past its end (it is not written at all).
    _, (fast_store, fast) = pair(engine, text_component)
    grower = Growing("grow")
    requests = [request("a"), record(method=grower, uri="/", headers=[], body=None)]
    grower.target = requests

    lifted = FastFunc(fast("requests"), fast_store)(requests)

    assert [r.method for r in lifted] == ["a", "grow"]
    assert len(requests) == 3


@pytest.mark.parametrize("shape, kind", [("nested", "LIST"), ("request", "RECORD"), ("mixed", "TUPLE"),
                                         ("maybe-text", "STRING"), ("tagged", "VARIANT"), ("enums", "ENUM"),
                                         ("flags-list", "FLAGS")])
def test_a_value_whose_data_points_nowhere_is_refused_not_read(engine, text_component, shape: str, kind: str):
    # The compiled lifters read wasmtime's values through a view of all memory, where reading address 0 would crash
    # the process: a value claiming elements at address 0 is refused as an internal error instead.
    component = engine.compile(text_component)
    ty = component.type.exports(engine.wasmtime)[shape].ty.params[0][1]
    if shape == "maybe-text":
        ty = ty.payload
    if shape in ("enums", "flags-list"):
        ty = ty.element
    space = wasmtime._ffi.wasmtime_component_val_t()
    space.kind = getattr(wasmtime._ffi, f"WASMTIME_COMPONENT_{kind}").value
    ctypes.memmove(ctypes.addressof(space) + _wasmtime._OF_AT, (ctypes.c_size_t * 2)(3, 0), 16)

    with pytest.raises(AssertionError, match="points to none"):
        _wasmtime.lifter_at(ty)(ctypes.addressof(space))


# The recorded form (replay.values) lowered to wasmtime-py's values: ``values.lowerer`` builds tuples and records
# without a generator or a ``setattr`` per field; it must give what the plain construction gives (``_reference``,
# the earlier code), and refuse the same hostile values with the same errors.


def _reference(ty: Any) -> Any:
    if isinstance(ty, wc.TupleType):
        items = [_reference(t) for t in ty.elements]
        return lambda v: tuple(f(x) for f, x in zip(items, v))
    if isinstance(ty, wc.RecordType):
        fields = [(name, _reference(t)) for name, t in ty.fields]

        def lower_record(v: Any) -> wc.Record:
            made = {name: f(v[name]) for name, f in fields}
            return record(**made)

        return lower_record
    if isinstance(ty, wc.ListType) and not isinstance(ty.element, wc.U8):
        item = _reference(ty.element)
        return lambda v: [item(x) for x in v]
    if isinstance(ty, wc.OptionType):
        payload = _reference(ty.payload)
        return lambda v: None if v is None else payload(v["some"])
    return replay_values.lowerer(ty)  # scalars, bytes, enums, variants: unchanged


def _reference_lift(ty: Any) -> Any:
    if isinstance(ty, wc.TupleType):
        items = [_reference_lift(t) for t in ty.elements]
        return lambda v: [f(x) for f, x in zip(items, v)]
    if isinstance(ty, wc.RecordType):
        fields = sorted(((name, _reference_lift(t)) for name, t in ty.fields),
                        key=lambda f: (len(f[0].encode()), f[0].encode()))
        return lambda v: {name: f(getattr(v, name)) for name, f in fields}
    if isinstance(ty, wc.ListType) and not isinstance(ty.element, wc.U8):
        item = _reference_lift(ty.element)
        return lambda v: [item(x) for x in v]
    if isinstance(ty, wc.OptionType):
        payload = _reference_lift(ty.payload)
        return lambda v: None if v is None else {"some": payload(v)}
    return replay_values.lifter(ty)  # scalars, bytes, enums, variants: unchanged


def _recorded_hostile(shape: str) -> list[Any]:
    return {
        "request": [{"method": "GET", "uri": "/", "headers": [["a"]], "body": None},  # a header too short
                    {"method": "GET", "uri": "/", "headers": [["a", "b", "c"]], "body": None},  # too long: cut
                    {"method": "GET", "uri": "/", "headers": [5], "body": None},
                    {"method": "GET", "uri": "/", "headers": [None], "body": None},
                    {"method": "GET", "uri": "/", "headers": ["ab"], "body": None},  # a string iterates
                    {"method": "GET", "uri": "/", "headers": [{"x": 1, "y": 2}], "body": None},  # a map: its keys
                    {"method": "GET", "headers": [], "body": None},  # a field missing
                    {"method": "GET", "uri": "/", "headers": [], "body": None, "extra": 1},
                    ["GET", "/", [], None], None, 7],
        "pairs": [[["a", "b"], ["c"]], [("a", "b")], [("a", "b", "c")], [b"ab"]],
        "mixed": [[True, 1, 1], [True, 1, 1, "x", "y"], 3, None, "abcd"],
        "scalars": [{"on": True, "count": 1, "delta": 1}, {"on": True, "count": 1, "delta": 1, "label": "x"}],
        "fallbacks": [{"e": "a", "c": "x", "v": {"text": "t"}, "s": ""}, {"e": "a", "c": "x", "v": {}, "s": ""}],
    }.get(shape, [])


def _outcome(lower: Any, value: Any) -> Any:
    try:
        return "ok", shape_of(lower(value))
    except Exception as exc:  # the exception itself is what is compared
        return "raised", type(exc), str(exc)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_recorded_form_lifts_and_lowers_as_the_plain_construction_does(engine, text_component, shape: str):
    component = engine.compile(text_component)
    ty = component.type.exports(engine.wasmtime)[shape].ty.params[0][1]
    lift, lower, reference = replay_values.lifter(ty), replay_values.lowerer(ty), _reference(ty)
    recorded = [lift(value) for value in values(shape, "h\u00e9llo")]
    assert recorded == [_reference_lift(ty)(value) for value in values(shape, "h\u00e9llo")]
    for value in recorded + _recorded_hostile(shape):
        assert _outcome(lower, value) == _outcome(reference, value)
    for value in recorded:  # and what the guest receives is what wasmtime-py gives it from the plain construction
        (slow_store, slow), (fast_store, fast) = pair(engine, text_component)
        assert shape_of(FastFunc(fast(shape), fast_store)(lower(value))) == shape_of(
            slow(shape)(slow_store, reference(value))) == shape_of(reference(value))


LEAK_SHAPES = ["untagged", "tagged", "variants", "untagged-list", "tagged-list", "variant-tuple", "flags-list"]


@pytest.mark.parametrize("shape", LEAK_SHAPES)
def test_an_export_returning_variants_in_records_lists_and_tuples_leaves_no_memory_behind(engine, text_component,
                                                                                        shape: str):
    # A variant's payload sits in a box of its own (48 bytes): read by wasmtime-py's own conversion inside a
    # compiled record, list or tuple, the box was lost when the part was zeroed, and leaked on every call.
    from tests.replay.test_host_funcs import malloc_grown_over  # that module imports this one

    _, (store, fast) = pair(engine, text_component)
    call = FastFunc(fast(shape), store)
    sent = [value for text in ("", "h\u00e9llo", "x" * 100) for value in values(shape, text)]
    for value in sent:
        assert shape_of(call(value)) == shape_of(value)
    calls = 20_000
    grown = malloc_grown_over(call, sent, calls)
    assert grown < calls * 8, f"{grown} bytes more in use after {calls} calls"


def test_a_variant_case_the_type_does_not_have_is_refused_as_wasmtime_py_refuses_it(engine, text_component):
    # A value of $vt's case "a" read as a $vu (which has no case "a"): the compiled reader raises what wasmtime-py's
    # VariantType.convert_from_c raises, and leaves the value whole for its owner to delete.
    exports = engine.compile(text_component).type.exports(engine.wasmtime)
    written, read_as = exports["tagged"].ty.params[0][1], exports["untagged"].ty.params[0][1]
    store = wasmtime.Store(engine.wasmtime)
    theirs, ours = wasmtime._ffi.wasmtime_component_val_t(), wasmtime._ffi.wasmtime_component_val_t()
    written.convert_to_c(store, wc.Variant("a", "text"), ctypes.pointer(theirs))
    written.convert_to_c(store, wc.Variant("a", "text"), ctypes.pointer(ours))
    with pytest.raises(ValueError) as expected:
        read_as.convert_from_c(theirs)
    with pytest.raises(ValueError) as actual:
        _wasmtime.reader_at(read_as)(ctypes.addressof(ours))

    assert str(actual.value) == str(expected.value) == "tag a not found in variant cases"
    assert _wasmtime.lifter(written)(ours) == wc.Variant("a", "text")  # still whole: read, then deleted once
