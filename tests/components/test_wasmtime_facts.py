"""Pinned facts about the wasmtime-py 50 component API that Theater relies on.

Each test is one claim of /work/notes/wasmtime.md; if an upgrade changes a
behaviour, the matching test fails.
"""

from __future__ import annotations

import threading

import pytest
from wasmtime import Config, Engine, Instance, Module, Store, Trap, WasmtimeError
from wasmtime.component import Component, Linker, Record, Variant

from ._harness import ENGINE, FakeHost, Guest, make_engine
from .wat import MESSAGE_SERVER_CLIENT, counter_actor, echo_actor, faulty_actor

# --- engine configuration --------------------------------------------------------


def test_config_is_set_only():
    cfg = Config()
    cfg.cranelift_nan_canonicalization = True
    cfg.wasm_relaxed_simd_deterministic = True
    cfg.wasm_threads = False
    cfg.consume_fuel = True
    cfg.epoch_interruption = True
    with pytest.raises(AttributeError):
        cfg.consume_fuel  # noqa: B018  (setter-only properties)
    Engine(cfg)


@pytest.mark.parametrize("canon, bits", [(False, 0xFFC00000), (True, 0x7FC00000)])
def test_nan_canonicalization(canon, bits):
    engine = make_engine(cranelift_nan_canonicalization=canon)
    store = Store(engine)
    module = Module(engine, """(module (func (export "nan") (param f32 f32) (result i32)
        (i32.reinterpret_f32 (f32.div (local.get 0) (local.get 1)))))""")
    nan = Instance(store, module, []).exports(store)["nan"]
    # x86-64 produces the negative default NaN unless canonicalised
    if not canon and nan(store, 0.0, 0.0) & 0xFFFFFFFF != bits:
        pytest.skip("platform NaN differs")
    assert nan(store, 0.0, 0.0) & 0xFFFFFFFF == bits


def test_fuel_api():
    engine = make_engine(consume_fuel=True)
    store = Store(engine)
    assert store.get_fuel() == 0  # stores start empty
    with pytest.raises(WasmtimeError, match="fuel is not configured in this store"):
        Store(ENGINE).set_fuel(10)
    with pytest.raises(WasmtimeError, match="all fuel consumed by WebAssembly"):
        Guest(echo_actor(), engine=engine).send(None, b"")  # never set_fuel


def test_fuel_use_is_deterministic():
    engine = make_engine(consume_fuel=True)
    runs = []
    for _ in range(2):
        g = Guest(counter_actor(), engine=engine, fuel=10**9)
        used, state = [], None
        for _ in range(4):
            before = g.store.get_fuel()
            (state,) = g.send(state, b"")
            used.append(before - g.store.get_fuel())
        runs.append(used)
    assert runs[0] == runs[1]


def test_epoch_deadline_defaults_to_already_expired():
    engine = make_engine(epoch_interruption=True)
    with pytest.raises(WasmtimeError, match="wasm trap: interrupt"):
        Guest(echo_actor(), engine=engine).send(None, b"")
    assert Guest(echo_actor(), engine=engine, epoch_deadline=1).send(None, b"x") == (b"x",)


# --- components --------------------------------------------------------------


def test_component_accepts_text_and_serializes():
    component = Component(ENGINE, echo_actor())
    blob = component.serialize()
    assert isinstance(blob, bytearray)
    again = Component.deserialize(ENGINE, blob)
    assert again.get_export_index(MESSAGE_SERVER_CLIENT) is not None
    with pytest.raises(WasmtimeError, match="compiled without fuel support"):
        Component.deserialize(make_engine(consume_fuel=True), blob)


def test_export_index_belongs_to_one_component_object():
    a = Component(ENGINE, echo_actor())
    b = Component(ENGINE, echo_actor())  # same text, different object
    store = Store(ENGINE)
    inst = Linker(ENGINE).instantiate(store, a)
    assert inst.get_func(store, a.get_export_index(MESSAGE_SERVER_CLIENT)) is None  # an instance
    ia = a.get_export_index("handle-send", a.get_export_index(MESSAGE_SERVER_CLIENT))
    ib = b.get_export_index("handle-send", b.get_export_index(MESSAGE_SERVER_CLIENT))
    assert inst.get_func(store, ia) is not None
    assert inst.get_func(store, ib) is None


def test_post_return_runs_inside_call():
    # The kit's post-return resets the heap; 40 x 16 KiB in a 2-page memory
    # only fits if it runs after every call without an explicit post_return().
    g = Guest(echo_actor(), memory_limit=2 * 65536)
    f = g.func(MESSAGE_SERVER_CLIENT, "handle-send")
    for _ in range(40):
        assert f(g.store, None, (bytes(16384),)) == (bytes(16384),)
    f.post_return(g.store)  # harmless no-op


def test_missing_import_message():
    from .wat import clock_actor

    with pytest.raises(WasmtimeError) as info:
        Guest(clock_actor(), interfaces=[])
    assert str(info.value).startswith(
        "component imports instance `theater:simple/timing`, but a matching "
        "implementation was not found in the linker")


def test_types_only_import_needs_no_definition():
    from .wat import TYPES

    component = Component(ENGINE, echo_actor())
    assert TYPES in component.type.imports(ENGINE)  # imports theater:simple/types ...
    Linker(ENGINE).instantiate(Store(ENGINE), component)  # ... yet an empty linker links it


def test_memory_limit_can_be_set_after_instantiation():
    from .wat import actor_wat, grow_memory

    g = Guest(actor_wat(send=grow_memory(on_failure="err")))
    g.store.set_limits(memory_size=3 * 65536)
    assert g.send(None, b"") == "memory.grow failed"  # memory.grow returned -1


def test_unknown_imports_as_traps():
    from .wat import clock_actor

    component = Component(ENGINE, clock_actor())
    linker = Linker(ENGINE)
    linker.define_unknown_imports_as_traps(component)
    store = Store(ENGINE)
    inst = linker.instantiate(store, component)
    send = inst.get_func(store, component.get_export_index(
        "handle-send", component.get_export_index(MESSAGE_SERVER_CLIENT)))
    with pytest.raises(WasmtimeError, match="unknown import: `theater:simple/timing#now`"):
        send(store, None, (b"",))


def test_trap_is_a_wasmtime_error_and_poisons_the_whole_store():
    g = Guest(faulty_actor())
    other = FakeHost().linker(ENGINE).instantiate(g.store, g.component)
    with pytest.raises(WasmtimeError) as info:
        g.send(None, b"trap")
    assert not isinstance(info.value, Trap)
    assert "wasm `unreachable` instruction executed" in str(info.value)
    for inst in (g.instance, other, FakeHost().linker(ENGINE).instantiate(g.store, g.component)):
        send = inst.get_func(g.store, g.component.get_export_index(
            "handle-send", g.component.get_export_index(MESSAGE_SERVER_CLIENT)))
        with pytest.raises(WasmtimeError, match="cannot enter component instance"):
            send(g.store, None, (b"fine",))
    assert Guest(faulty_actor()).send(None, b"fine") == (b"fine",)  # fresh store


def test_host_errors():
    from .wat import clock_actor

    def wasmtime_error(*_):
        raise WasmtimeError("host says no")

    with pytest.raises(WasmtimeError, match="host says no"):
        Guest(clock_actor(), FakeHost(now=wasmtime_error)).send(None, b"")
    with pytest.raises(TypeError, match="expected int for U64 type"):
        Guest(clock_actor(), FakeHost(now="not an int")).send(None, b"")


def test_argument_types_are_strict():
    g = Guest(echo_actor())
    with pytest.raises(TypeError, match="expected bytes value"):
        g.send(None, bytearray(b"x"))
    with pytest.raises(ValueError, match="value not valid for this variant"):
        g.send(bytearray(b"x"), b"")  # option<list<u8>> only takes bytes / None
    with pytest.raises(TypeError, match="expected tuple type"):
        g.func(MESSAGE_SERVER_CLIENT, "handle-send")(g.store, None, [b"x"])


def test_separate_stores_on_separate_threads():
    component = Component(ENGINE, counter_actor())
    index = component.get_export_index("handle-send", component.get_export_index(MESSAGE_SERVER_CLIENT))
    errors: list[BaseException] = []

    def run():
        try:
            store = Store(ENGINE)
            send = Linker(ENGINE).instantiate(store, component).get_func(store, index)
            state = None
            for _ in range(200):
                (state,) = send(store, state, (b"",))
            assert state == (200).to_bytes(8, "little")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# --- value conversions (a pass-through probe component) ------------------------

_PROBE_CASES = [
    # name, WIT type in component text, flat core types
    ("string", "string", ["i32", "i32"]),
    ("bytes", "(list u8)", ["i32", "i32"]),
    ("opt-bytes", "(option (list u8))", ["i32", "i32", "i32"]),
    ("opt-opt", "(option (option u32))", ["i32", "i32", "i32"]),
    ("res-unit", "(result (error string))", ["i32", "i32", "i32"]),
    ("res-bytes", "(result (list u8) (error string))", ["i32", "i32", "i32"]),
    ("res-u64", "(result u64 (error string))", ["i32", "i64", "i32"]),
    ("res-str", "(result string (error string))", ["i32", "i32", "i32"]),
    ("tuple", "(tuple string u64)", ["i32", "i32", "i64"]),
    ("event", "$ev", ["i64", "i32", "i32", "i32", "i32"]),
    ("events", "(list $ev)", ["i32", "i32"]),
    ("color", "$color", ["i32"]),
    ("shape", "$shape", ["i32", "i64", "i32"]),
]


def _probe_wat() -> str:
    """Imports ``test:probe/host`` with ``f-<name>: func(x: T) -> T`` and
    exports ``g-<name>`` that calls it through lower + lift."""
    w = ["(component", "  (type $host-t (instance",
         '    (type $ev0 (record (field "seq" u64) (field "kind" string) (field "data" (list u8))))',
         '    (export "chain-event" (type $ev (eq $ev0)))',
         '    (type $color0 (enum "red" "green"))',
         '    (export "color" (type $color (eq $color0)))',
         '    (type $shape0 (variant (case "empty") (case "num" u64) (case "text" string)))',
         '    (export "shape" (type $shape (eq $shape0)))']
    w += [f'    (export "f-{n}" (func (param "x" {t}) (result {t})))' for n, t, _ in _PROBE_CASES]
    w += ["  ))", '  (import "test:probe/host" (instance $host (type $host-t)))',
          '  (alias export $host "chain-event" (type $ev))',
          '  (alias export $host "color" (type $color))',
          '  (alias export $host "shape" (type $shape))',
          '  (core module $Mem (memory (export "memory") 1) (global $b (mut i32) (i32.const 1024))',
          '    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (local $p i32)',
          "      (local.set $p (i32.and (i32.add (global.get $b) (i32.const 7)) (i32.const -8)))",
          "      (global.set $b (i32.add (local.get $p) (local.get 3))) (local.get $p)))",
          "  (core instance $mem (instantiate $Mem))",
          '  (alias core export $mem "memory" (core memory $memory))',
          '  (alias core export $mem "realloc" (core func $realloc))']
    imports, defs, exports = [], [], []
    for i, (n, t, flat) in enumerate(_PROBE_CASES):
        w.append(f'  (core func $l{i} (canon lower (func $host "f-{n}") (memory $memory) (realloc $realloc)))')
        ps = " ".join(f"(param {x})" for x in flat)
        args = " ".join(f"(local.get {k})" for k in range(len(flat)))
        if len(flat) == 1:
            imports.append(f'(import "h" "f{i}" (func $f{i} {ps} (result {flat[0]})))')
            defs.append(f'(func (export "g{i}") {ps} (result {flat[0]}) (call $f{i} {args}))')
        else:  # results are returned through memory: retptr in, pointer out
            imports.append(f'(import "h" "f{i}" (func $f{i} {ps} (param i32)))')
            defs.append(f'(func (export "g{i}") {ps} (result i32) (local $r i32)'
                        " (local.set $r (call $realloc (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 64)))"
                        f" (call $f{i} {args} (local.get $r)) (local.get $r))")
        exports.append(f'(export "f{i}" (func $l{i}))')
    w.append('  (core module $A (import "m" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))')
    w += ["    " + x for x in imports + defs] + ["  )"]
    w.append(f'  (core instance $a (instantiate $A (with "m" (instance $mem)) (with "h" (instance {" ".join(exports)}))))')
    for i, (n, t, _) in enumerate(_PROBE_CASES):
        w.append(f'  (func $g{i} (param "x" {t}) (result {t})'
                 f' (canon lift (core func $a "g{i}") (memory $memory) (realloc $realloc)))')
        w.append(f'  (export "g-{n}" (func $g{i}))')
    return "\n".join(w + [")"])


def _event(seq: int, kind: str, data: bytes) -> Record:
    r = Record()
    r.seq, r.kind, r.data = seq, kind, data
    return r


@pytest.fixture(scope="module")
def probe():
    component = Component(ENGINE, _probe_wat())
    seen: dict[str, object] = {}
    linker = Linker(ENGINE)
    with linker.root() as root, root.add_instance("test:probe/host") as host:
        for name, _, _ in _PROBE_CASES:
            def f(_store, x, name=name):
                seen[name] = x
                return x
            host.add_func(f"f-{name}", f)

    def call(name, value):
        store = Store(ENGINE)
        inst = linker.instantiate(store, component)
        out = inst.get_func(store, f"g-{name}")(store, value)
        return seen.pop(name), out

    return call


@pytest.mark.parametrize("name, value", [
    ("string", "héllo"),
    ("bytes", b"\x00\x01"),
    ("opt-bytes", None), ("opt-bytes", b""), ("opt-bytes", b"ab"),
    # untagged results: ok value as is, err as str; None is ok for result<_, E>
    ("res-unit", None), ("res-unit", "boom"),
    ("res-bytes", b"ok"), ("res-bytes", "boom"),
    ("res-u64", 7), ("res-u64", "boom"),
    # both sides str -> tagged
    ("res-str", Variant("ok", "a")), ("res-str", Variant("err", "b")),
    # option<option<T>>: none and some(none) collide -> tagged
    ("opt-opt", Variant("none")), ("opt-opt", Variant("some", None)), ("opt-opt", Variant("some", 5)),
    ("tuple", ("s", 5)),
    ("event", _event(1, "k", b"d")),
    ("events", [_event(1, "k", b"d"), _event(2, "j", b"")]),
    ("color", "green"),
    # a variant whose cases have distinct Python types is *untagged*
    ("shape", None), ("shape", 3), ("shape", "t"),
])
def test_value_round_trip(probe, name, value):
    host_got, returned = probe(name, value)
    assert host_got == value
    assert returned == value
    assert type(returned) is type(value)


def test_tagged_value_required_where_cases_collide(probe):
    with pytest.raises(TypeError, match="expected Variant type"):
        probe("opt-opt", None)
    with pytest.raises(ValueError, match="value not valid for this variant"):
        probe("res-unit", Variant("err", "boom"))  # untagged: Variant refused


def test_recorded_records_list_their_fields_in_canonical_cbor_order() -> None:
    # replay.values lifts a record into a map whose keys are in canonical CBOR order (shorter first), so the store
    # encodes it without cbor2's canonical mode and the value equals the one read back from the chain.
    from replay.values import lifter
    from store.codec import _plain

    host = Component(ENGINE, _probe_wat()).type.imports(ENGINE)["test:probe/host"].ty
    record_type = host.exports(ENGINE)["f-event"].ty.params[0][1]
    lifted = lifter(record_type)(_event(3, "k", b"d"))

    assert list(lifted) == ["seq", "data", "kind"]  # WIT order is seq, kind, data
    assert _plain(lifted)
