"""The fence around wasmtime-py's internals (replay._wasmtime): FastFunc behaves exactly like wasmtime-py's
Func.__call__, the patches are installed by the engine and not on import, an unsupported wasmtime-py is refused
by name, and the tagging fix changes what it says it changes (shown against unpatched wasmtime-py)."""

import json
import subprocess
import sys
import textwrap
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
