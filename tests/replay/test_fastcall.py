"""The fence around wasmtime-py's internals (replay._wasmtime): FastFunc behaves exactly like wasmtime-py's
Func.__call__, the patches are installed by the engine and not on import, an unsupported wasmtime-py is refused
by name, and the tagging fix changes what it says it changes (shown against unpatched wasmtime-py)."""

import contextlib
import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from ctypes import byref
from pathlib import Path
from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc

from replay import _wasmtime
from replay._wasmtime import FastFunc
from replay.engine import Engine, make_engine
from replay.errors import ReplayError, UnsupportedWasmtime
from tests.components import wat

HANDLERS = "theater:simple/message-server-client"
ROOT = Path(__file__).resolve().parents[2]
RESULT_OF_OPTION = """(component
  (type $r (result (option (list u8)) (error string)))
  (import "f" (func $f (result $r)))
)"""


def shape(value: Any) -> Any:
    """``value`` as nested (type, content) pairs, so equal shapes mean equal values of the same types."""
    if isinstance(value, (tuple, list)):
        return type(value).__name__, [shape(v) for v in value]
    if isinstance(value, wc.Record):
        return "Record", {k: shape(v) for k, v in sorted(vars(value).items())}
    if isinstance(value, wc.Variant):
        return "Variant", value.tag, shape(value.payload)
    return type(value).__name__, value


def instance(engine: Engine, text: str):
    component = engine.compile(text)
    store = wasmtime.Store(engine.wasmtime)
    store.set_fuel(10**9)
    store.set_epoch_deadline(10**6)
    inst = wc.Linker(engine.wasmtime).instantiate(store, component)
    parent = component.get_export_index(HANDLERS)

    def func(name: str):
        return inst.get_func(store, component.get_export_index(name, parent))

    return store, func


@pytest.mark.parametrize(
    "export, args",
    [
        ("handle-request", (None, ("rid", b"ping"))),
        ("handle-request", (b"\x05" * 8, ("rid", b""))),
        ("handle-send", (None, (b"hello",))),
        ("handle-channel-open", (b"s", ("chan", b"hi"))),
    ],
)
def test_fast_call_returns_what_func_call_returns(export, args):
    engine = Engine()
    slow_store, slow = instance(engine, wat.echo_actor())
    fast_store, fast = instance(engine, wat.echo_actor())
    expected = slow(export)(slow_store, *args)
    actual = FastFunc(fast(export), fast_store)(*args)
    assert actual == expected
    assert shape(actual) == shape(expected)
    assert slow_store.get_fuel() == fast_store.get_fuel()


@pytest.mark.parametrize("text", ["", "r", "h\u00e9llo \u2713 \U0001d11e", "x" * 4096, "\u00e9" * 70_000])
def test_a_string_parameter_crosses_as_func_call_carries_it(text: str):
    engine = Engine()
    slow_store, slow = instance(engine, wat.echo_actor())
    fast_store, fast = instance(engine, wat.echo_actor())
    for export, args in (("handle-request", (None, (text, b"ping"))), ("handle-channel-open", (b"s", (text, b"hi")))):
        expected = slow(export)(slow_store, *args)
        actual = FastFunc(fast(export), fast_store)(*args)
        assert shape(actual) == shape(expected)
        assert slow_store.get_fuel() == fast_store.get_fuel()


@pytest.mark.parametrize("wrong, error", [("\ud800", UnicodeEncodeError), (b"rid", TypeError), (7, TypeError)])
def test_a_string_parameter_that_is_not_a_string_is_refused_as_func_call_refuses_it(wrong: Any, error: type):
    engine = Engine()
    slow_store, slow = instance(engine, wat.echo_actor())
    fast_store, fast = instance(engine, wat.echo_actor())
    with pytest.raises(error):
        slow("handle-request")(slow_store, None, (wrong, b"ping"))
    call = FastFunc(fast("handle-request"), fast_store)
    with pytest.raises(error):
        call(None, (wrong, b"ping"))
    # Nothing half-written is left behind: the next call works.
    assert shape(call(None, ("rid", b"ping"))) == shape(slow("handle-request")(slow_store, None, ("rid", b"ping")))


def test_arming_a_store_that_meters_no_fuel_raises_as_set_fuel_does():
    store = wasmtime.Store(wasmtime.Engine())
    with pytest.raises(wasmtime.WasmtimeError) as expected:
        store.set_fuel(10)
    with pytest.raises(wasmtime.WasmtimeError) as actual:
        _wasmtime.arm(store, 10, 1)
    assert str(actual.value) == str(expected.value)
    with pytest.raises(wasmtime.WasmtimeError):
        _wasmtime.fuel_left(store)


def test_arm_and_fuel_left_set_and_read_what_the_store_methods_do():
    engine = Engine()
    store, _ = instance(engine, wat.echo_actor())
    _wasmtime.arm(store, 12_345, 1)
    assert store.get_fuel() == _wasmtime.fuel_left(store) == 12_345


def test_fast_call_raises_the_trap_like_func_call():
    engine = Engine()
    store, func = instance(engine, wat.faulty_actor())
    with pytest.raises(wasmtime.WasmtimeError, match="unreachable"):
        FastFunc(func("handle-send"), store)(None, (b"trap",))


def test_fast_call_checks_the_number_of_parameters():
    engine = Engine()
    store, func = instance(engine, wat.echo_actor())
    with pytest.raises(TypeError, match="wrong number of parameters: given 1, expected 2"):
        FastFunc(func("handle-send"), store)(None)


def test_a_result_whose_ok_payload_may_be_none_is_tagged_so_an_err_can_be_lowered():
    from replay.values import lowerer

    engine = Engine()
    component = engine.compile(
        """(component
          (type $r (result (option (list u8)) (error string)))
          (import "f" (func $f (result $r)))
        )"""
    )
    ty = component.type.imports(engine.wasmtime)["f"].ty.result
    assert ty._tagged()
    assert lowerer(ty)({"err": "no such child"}) == wc.Variant("err", "no such child")
    assert lowerer(ty)({"ok": None}) == wc.Variant("ok", None)


def test_the_engine_installs_the_patches():
    make_engine()

    assert _wasmtime.is_installed()


UNPATCHED_THEN_PATCHED = textwrap.dedent(
    """
    import json, sys
    from ctypes import pointer
    import wasmtime, wasmtime.component as wc
    from wasmtime import _ffi as ffi
    import replay.values, replay.boundary, replay._wasmtime as fence

    def roundtrip(value):
        config = wasmtime.Config()
        config.wasm_component_model = True
        engine = wasmtime.Engine(config)
        ty = wc.Component(engine, sys.argv[1]).type.imports(engine)["f"].ty.result
        space = ffi.wasmtime_component_val_t()
        try:
            ty.convert_to_c(wasmtime.Store(engine), replay.values.lowerer(ty)(value), pointer(space))
        except ValueError as exc:
            return "refused: " + str(exc)
        try:
            return repr(ty.convert_from_c(space))
        finally:
            ffi.wasmtime_component_val_delete(pointer(space))

    out = {"installed_on_import": fence.is_installed()}
    out["unpatched"] = [roundtrip({"err": "no such child"}), roundtrip({"ok": {"some": b"x"}})]
    fence.install()
    out["patched"] = [roundtrip({"err": "no such child"}), roundtrip({"ok": {"some": b"x"}})]
    print(json.dumps(out))
    """
)


def test_a_result_of_an_option_is_lowered_tagged_only_once_patched():
    # A fresh interpreter: importing replay must not patch wasmtime-py; unpatched, wasmtime-py 50 refuses the
    # err of a result<option<T>, E> (every value matches the option's classes); patched, it is lowered tagged.
    run = subprocess.run(
        [sys.executable, "-c", UNPATCHED_THEN_PATCHED, RESULT_OF_OPTION],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    out = json.loads(run.stdout)

    assert out["installed_on_import"] is False
    assert out["unpatched"] == ["refused: value not valid for this variant", "b'x'"]
    assert out["patched"] == ["Variant(tag='err', payload='no such child')", "Variant(tag='ok', payload=b'x')"]


@pytest.mark.parametrize("version", ["49.0.0", "51.0.1", "1.0"])
def test_an_unsupported_wasmtime_version_is_refused_by_name(version: str):
    with pytest.raises(UnsupportedWasmtime, match=rf"^wasmtime-py {version} is not supported: Theater needs "
                       r"wasmtime-py 50\.x, whose internals it patches$") as info:
        _wasmtime.check_version(version)

    assert isinstance(info.value, ReplayError)
    assert (info.value.installed, info.value.supported) == (version, "50.x")


def test_the_engine_refuses_an_unsupported_wasmtime(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_wasmtime, "INSTALLED", "51.0.0")

    with pytest.raises(UnsupportedWasmtime, match="wasmtime-py 51.0.0 is not supported"):
        Engine()


def test_the_supported_versions_include_the_installed_one():
    _wasmtime.check_version()


# Bulk list<u8> ---------------------------------------------------------------------------------------------------

SIZES = [0, 1, 4096, 65536, 1 << 20]
BYTE_SHAPES = {
    "bytes": ("(list u8)", 2),
    "text": ("string", 2),
    "maybe": ("(option (list u8))", 3),
    "outcome": ("(result (tuple (option (list u8)) (option (list u8))) (error string))", 7),
    "either": ("(result (list u8) (error (list u8)))", 3),
    "record": ("$blob", 4),
    "records": ("(list $blob)", 2),
    "triple": ("(tuple u32 (list u8) string)", 5),
}
BLOB = '(type $blob0 (record (field "data" (list u8)) (field "name" string)))'
BLOB_EXPORTED = BLOB + ' (export $blob "blob" (type $blob0))'
BLOB_IMPORTED = BLOB + ' (import "blob" (type $blob (eq $blob0)))'


def payload(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def blob(data: bytes, name: str) -> wc.Record:
    record = wc.Record()
    record.data = data
    record.name = name
    return record


def values(shape: str, data: bytes) -> list[Any]:
    """Values of the shape carrying ``data`` (every case that can carry it)."""
    third = len(data) // 3
    return {
        "bytes": [data],
        "text": [data.decode("latin-1")],
        "maybe": [data, None],
        "outcome": [(data, None), (None, data), data.decode("latin-1")],
        "either": [wc.Variant("ok", data), wc.Variant("err", data)],
        "record": [blob(data, "n")],
        "records": [[blob(data[:third], "a"), blob(data[third:], "b"), blob(b"", "")], []],
        "triple": [(len(data), data, "t")],
    }[shape]


# The 1 MiB cases through wasmtime-py's own per-element path take seconds each: only the contract's shapes.
CASES = [(shape, size) for shape in BYTE_SHAPES for size in SIZES
         if size < 1 << 20 or shape in ("bytes", "text", "outcome", "records")]


@contextlib.contextmanager
def wasmtime_py_own_lists(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A context in which wasmtime-py converts lists its own way, element by element."""
    with monkeypatch.context() as patch:
        for name, method in _wasmtime.list_conversions_unpatched().items():
            patch.setattr(_wasmtime._types.ListType, name, method)
        yield


def echo_instance(engine: Engine, text: str, host: dict[str, Any] | None = None):
    component = engine.compile(text)
    store = wasmtime.Store(engine.wasmtime)
    store.set_fuel(10**12)
    store.set_epoch_deadline(10**9)
    linker = wc.Linker(engine.wasmtime)
    if host:
        with linker.root() as root:
            for name, fn in host.items():
                root.add_func(name, fn)
    inst = linker.instantiate(store, component)
    return store, lambda name: inst.get_func(store, name)


@pytest.mark.parametrize("shape, size", CASES)
def test_a_fast_call_carries_bytes_exactly_as_func_call_does(shape: str, size: int, monkeypatch: pytest.MonkeyPatch):
    engine = Engine()
    text = wat.echo_component({shape: BYTE_SHAPES[shape]}, type_defs=BLOB_EXPORTED)
    slow_store, slow = echo_instance(engine, text)
    fast_store, fast = echo_instance(engine, text)
    func = FastFunc(fast(shape), fast_store)
    for value in values(shape, payload(size)):
        with wasmtime_py_own_lists(monkeypatch):
            expected = slow(shape)(slow_store, value)
        actual = func(value)

        assert shape_of(actual) == shape_of(expected) == shape_of(value)
        assert slow_store.get_fuel() == fast_store.get_fuel()


@pytest.mark.parametrize("shape, size", [(s, n) for s, n in CASES if n < 1 << 20 or s == "bytes"])
def test_a_host_function_receives_and_returns_bytes_exactly_as_wasmtime_py_does(
    shape: str, size: int, monkeypatch: pytest.MonkeyPatch
):
    engine = Engine()
    text = wat.echo_component({shape: BYTE_SHAPES[shape]}, type_defs=BLOB_IMPORTED, through_host=True)
    received: dict[str, list[Any]] = {"slow": [], "fast": []}

    def host(key: str):
        def echo(store: Any, value: Any) -> Any:
            received[key].append(value)
            return value
        return echo

    slow_store, slow = echo_instance(engine, text, {shape: host("slow")})
    fast_store, fast = echo_instance(engine, text, {shape: host("fast")})
    for value in values(shape, payload(size)):
        with wasmtime_py_own_lists(monkeypatch):
            expected = slow(shape)(slow_store, value)
        actual = FastFunc(fast(shape), fast_store)(value)

        assert shape_of(actual) == shape_of(expected) == shape_of(value)
    assert [shape_of(v) for v in received["fast"]] == [shape_of(v) for v in received["slow"]]
    assert len(received["fast"]) == len(values(shape, b""))


def shape_of(value: Any) -> Any:
    """``shape`` with the bytes and strings inside replaced by their digest (a megabyte repr is slow to diff)."""
    if isinstance(value, (bytes, str)):
        raw = value if isinstance(value, bytes) else value.encode()
        return type(value).__name__, len(raw), hashlib.blake2b(raw).hexdigest()
    if isinstance(value, (tuple, list)):
        return type(value).__name__, [shape_of(v) for v in value]
    if isinstance(value, wc.Record):
        return "Record", {k: shape_of(v) for k, v in sorted(vars(value).items())}
    if isinstance(value, wc.Variant):
        return "Variant", value.tag, shape_of(value.payload)
    return type(value).__name__, value


def test_a_list_of_bytes_refuses_what_is_not_bytes_as_wasmtime_py_does(monkeypatch: pytest.MonkeyPatch):
    engine = Engine()
    store, func = echo_instance(engine, wat.echo_component({"bytes": ("(list u8)", 2)}))
    with pytest.raises(TypeError, match="^expected bytes value$"):
        FastFunc(func("bytes"), store)(bytearray(b"abc"))
    with wasmtime_py_own_lists(monkeypatch), pytest.raises(TypeError, match="^expected bytes value$"):
        func("bytes")(store, bytearray(b"abc"))


def test_the_engine_installs_the_bulk_list_path():
    make_engine()

    assert _wasmtime._types.ListType.convert_to_c is not _wasmtime.list_conversions_unpatched()["convert_to_c"]
    assert _wasmtime._types.ListType.convert_from_c is not _wasmtime.list_conversions_unpatched()["convert_from_c"]


@pytest.mark.parametrize("field, wrong", [("_U8_AT", 9), ("_KIND_AT", 1), ("_VAL_STRIDE", 24)])
def test_install_refuses_a_val_layout_the_bulk_path_does_not_match(field: str, wrong: int,
                                                                   monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_wasmtime, "_pool", [])  # buffers laid out wrongly must not outlive the test
    monkeypatch.setattr(_wasmtime, field, wrong)

    with pytest.raises(UnsupportedWasmtime, match=r"wasmtime_component_val_t('s)? layout") as info:
        _wasmtime.install()

    assert info.value.installed == _wasmtime.INSTALLED


@pytest.mark.parametrize("size", [1, 4096, 65536, 65536 * 2 + 3])
def test_a_list_u8_value_holding_another_kind_is_refused_and_leaves_no_bad_buffer_behind(size: int):
    make_engine()
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    raw = _wasmtime._new_u8_list(data)
    try:
        at = _wasmtime._address(raw) + (size - 1) * _wasmtime._VAL_STRIDE + _wasmtime._KIND_AT
        _wasmtime._MEMORY[at] = _wasmtime._KINDS["U16"]
        with pytest.raises(AssertionError, match="not a u8"):
            _wasmtime._read_u8_list(raw)
        _wasmtime._MEMORY[at] = _wasmtime._U8_KIND
        for _ in range(_wasmtime._POOL_SIZE + 1):  # every pooled buffer is still laid out as u8 values
            fresh = _wasmtime._new_u8_list(data[::-1])
            try:
                assert _wasmtime._read_u8_list(fresh) == data[::-1]
            finally:
                _wasmtime.ffi.wasmtime_component_vallist_delete(byref(fresh))
            assert _wasmtime._read_u8_list(raw) == data
    finally:
        _wasmtime.ffi.wasmtime_component_vallist_delete(byref(raw))


# Lent list<u8> parameters -----------------------------------------------------------------------------------------

LENT_SHAPES = ["bytes", "maybe", "record", "triple"]  # a list<u8> as a parameter, in an option, a record, a tuple


def lent_buffers_seen(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts, per call, the lent lists ``FastFunc`` found among its parameters and took back."""
    seen: list[int] = []
    unlend = _wasmtime._unlend

    def spy(found: list[int]) -> None:
        seen.append(len(found))
        unlend(found)

    monkeypatch.setattr(_wasmtime, "_unlend", spy)
    return seen


@pytest.mark.parametrize("shape", LENT_SHAPES)
@pytest.mark.parametrize("size", [4096, 65536, 65536 * 3 + 1])
def test_a_list_u8_parameter_is_lent_and_taken_back_before_the_parameters_are_deleted(
    shape: str, size: int, monkeypatch: pytest.MonkeyPatch
):
    engine = Engine()
    store, func = echo_instance(engine, wat.echo_component({shape: BYTE_SHAPES[shape]}, type_defs=BLOB_EXPORTED))
    fast = FastFunc(func(shape), store)
    seen = lent_buffers_seen(monkeypatch)
    pooled = len(_wasmtime._pool)
    value = values(shape, payload(size))[0]

    for _ in range(3):
        assert shape_of(fast(value)) == shape_of(value)

    assert seen == [1, 1, 1]
    assert len(_wasmtime._pool) >= min(pooled, _wasmtime._POOL_SIZE)  # every pooled buffer lent came back


def test_a_short_list_u8_parameter_is_copied_not_lent(monkeypatch: pytest.MonkeyPatch):
    engine = Engine()
    store, func = echo_instance(engine, wat.echo_component({"bytes": BYTE_SHAPES["bytes"]}))
    seen = lent_buffers_seen(monkeypatch)

    assert FastFunc(func("bytes"), store)(payload(_wasmtime._LEND_FROM - 1)) == payload(_wasmtime._LEND_FROM - 1)
    assert seen == []


@pytest.mark.parametrize("shape", ["records", "either", "outcome"])
def test_a_function_with_a_list_u8_inside_a_list_or_variant_lends_nothing(shape: str):
    engine = Engine()
    store, func = echo_instance(engine, wat.echo_component({shape: BYTE_SHAPES[shape]}, type_defs=BLOB_EXPORTED))

    assert FastFunc(func(shape), store)._lend is None


@pytest.mark.parametrize("shape", LENT_SHAPES)
def test_a_lent_list_the_finder_misses_is_lowered_again_by_copy(shape: str, monkeypatch: pytest.MonkeyPatch):
    engine = Engine()
    store, func = echo_instance(engine, wat.echo_component({shape: BYTE_SHAPES[shape]}, type_defs=BLOB_EXPORTED))
    fast = FastFunc(func(shape), store)
    fast._lend = [(0, lambda at, lent, found: None)]  # finds nothing: as if the list sat where it does not look
    value = values(shape, payload(65536))[0]

    assert shape_of(fast(value)) == shape_of(value)
    assert fast._lend is None  # copies from now on
    assert shape_of(fast(value)) == shape_of(value)


def test_a_parameter_refused_after_a_lent_list_raises_as_func_call_does_and_the_buffer_comes_back(
    monkeypatch: pytest.MonkeyPatch,
):
    engine = Engine()
    text = wat.echo_component({"triple": BYTE_SHAPES["triple"]})
    slow_store, slow = echo_instance(engine, text)
    store, func = echo_instance(engine, text)
    fast = FastFunc(func("triple"), store)
    data = payload(65536)
    fast((1, data, "warm"))  # a pooled buffer exists
    pooled = len(_wasmtime._pool)

    with pytest.raises(TypeError, match="^expected string type$"):
        fast((1, data, 7))
    with wasmtime_py_own_lists(monkeypatch), pytest.raises(TypeError, match="^expected string type$"):
        slow("triple")(slow_store, (1, data, 7))

    assert len(_wasmtime._pool) == pooled
    assert fast((2, data, "again")) == (2, data, "again")


def test_repeated_64_kib_calls_fault_in_no_fresh_pages():
    """wasmtime's per-call arrays (2-2.5 MiB for 64 KiB) come from the heap once ``install`` tuned glibc's
    thresholds: without it every call faulted about 2,000 fresh pages in."""
    import resource

    engine = Engine()
    store, func = echo_instance(engine, wat.echo_component({"bytes": BYTE_SHAPES["bytes"]}))
    fast = FastFunc(func("bytes"), store)
    data = payload(65536)
    for _ in range(5):
        fast(data)
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(20):
        assert fast(data) == data

    assert (resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before) / 20 < 100
