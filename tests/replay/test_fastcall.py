"""FastFunc must behave exactly like wasmtime-py's Func.__call__ (it reuses wasmtime-py internals)."""

import pytest
import wasmtime
import wasmtime.component as wc

from replay._fastcall import FastFunc
from replay.engine import Engine
from tests.components import wat

HANDLERS = "theater:simple/message-server-client"


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
    assert actual == expected or (repr(actual) == repr(expected))
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
