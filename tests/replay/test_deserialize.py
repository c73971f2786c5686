"""Deserializing a compiled component without wasmtime-py's copy of its bytes (``replay._wasmtime.deserialize``):
the component it gives runs as wasmtime-py's own does, and bytes that are not an artifact of this engine are
refused with wasmtime's error, never run."""

from __future__ import annotations

import wasmtime
import wasmtime.component as wc
import pytest

from replay import _wasmtime
from replay.engine import Engine, EngineSettings
from tests.components import wat

HANDLERS = "theater:simple/message-server-client"


def call_echo(engine: Engine, component: wc.Component) -> object:
    store = wasmtime.Store(engine.wasmtime)
    store.set_fuel(10**9)
    store.set_epoch_deadline(10**6)
    inst = wc.Linker(engine.wasmtime).instantiate(store, component)
    func = inst.get_func(store, component.get_export_index("handle-request", component.get_export_index(HANDLERS)))
    result = func(store, b"state", ("rid", b"ping" * 1000))
    return result, store.get_fuel()


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_a_component_deserialized_without_the_copy_runs_as_wasmtime_py_s_own(kind):
    engine = Engine()
    artifact = engine.compile(wat.echo_actor()).serialize()
    data = kind(artifact)
    ours = _wasmtime.deserialize(engine.wasmtime, data)
    theirs = wc.Component.deserialize(engine.wasmtime, artifact)
    assert call_echo(engine, ours) == call_echo(engine, theirs)
    assert bytes(data) == artifact  # read, never written


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_bytes_that_are_not_an_artifact_of_this_engine_are_refused(kind):
    engine = Engine()
    artifact = engine.compile(wat.echo_actor()).serialize()
    other = Engine(EngineSettings(consume_fuel=False))
    for bad in (b"", b"\0asm\x0d\0\x01\0", artifact[: len(artifact) // 2]):
        with pytest.raises(wasmtime.WasmtimeError):
            _wasmtime.deserialize(engine.wasmtime, kind(bad))
    with pytest.raises(wasmtime.WasmtimeError):  # compiled under another configuration
        _wasmtime.deserialize(other.wasmtime, kind(artifact))
