"""The test-component kit: every builder compiles, links and behaves as documented."""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from wasmtime import WasmtimeError
from wasmtime.component import ComponentInstanceType, FuncType, Variant

from . import wat as kit
from ._harness import ENGINE, LIMITED_ENGINE, FakeHost, Guest, compile_wat
from .wat import (
    ERR_MARKER, HEAD, MSG, PARAM, STATE, TAIL,
    actor_wat, append_msg, cancel_request, clock_actor, close_channel, count, counter_actor,
    deadline, deferred_actor, echo, echo_actor, fail, faulty_actor, forwarder_actor,
    generate_uuid, get_state, grow_memory, hidden_state_actor, importing_actor, list_outstanding,
    log, logger_actor, match_msg, open_channel_to, random_actor, random_bytes, random_float,
    random_range, reject, request_to, respond, respond_state, respond_to_request, seq,
    send_on_channel,
    send_to, set_state, shutdown, shutdown_actor, sleep, spin, store_msg, store_now, trap, when,
)

RUNTIME = "theater:simple/runtime"
TIMING = "theater:simple/timing"
RANDOM = "theater:simple/random"
MSH = "theater:simple/message-server-host"
MSC = "theater:simple/message-server-client"
TYPES = "theater:simple/types"

PRESETS = {
    "echo": echo_actor,
    "counter": counter_actor,
    "hidden": hidden_state_actor,
    "clock": clock_actor,
    "random": random_actor,
    "logger": logger_actor,
    "forwarder": forwarder_actor,
    "deferred": deferred_actor,
    "shutdown": shutdown_actor,
    "faulty": faulty_actor,
    "importing": lambda: importing_actor(RANDOM, TIMING),
}


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def funcs_of(component, kind: str) -> dict[str, list[str]]:
    items = getattr(component.type, kind)(ENGINE)
    out = {}
    for name, ext in items.items():
        ty = ext.ty
        assert isinstance(ty, ComponentInstanceType)
        out[name] = [n for n, e in ty.exports(ENGINE).items() if isinstance(e.ty, FuncType)]
    return out


# --- structure ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_compile_and_export_the_contract(name):
    component = compile_wat(PRESETS[name]())
    exports = funcs_of(component, "exports")
    assert exports["theater:simple/actor"] == ["init"]
    assert exports[MSC] == [
        "handle-send", "handle-request", "handle-channel-open",
        "handle-channel-message", "handle-channel-close",
    ]


def test_imports_are_whole_interfaces_derived_from_behaviours():
    # theater:simple/types is imported (types only) because the exported
    # message-server-client uses types.{event, channel-id, channel-accept}
    assert funcs_of(compile_wat(echo_actor()), "imports") == {TYPES: []}
    imports = funcs_of(compile_wat(clock_actor()), "imports")
    assert imports == {TYPES: [], TIMING: ["now", "sleep", "deadline"]}
    imports = funcs_of(compile_wat(actor_wat(send=seq(log(), send_to()))), "imports")
    assert imports[RUNTIME] == ["log", "get-state", "get-chain", "shutdown"]
    assert set(imports) == {TYPES, RUNTIME, MSH} and len(imports[MSH]) == 8


def test_minimal_imports_declare_only_used_functions():
    text = actor_wat(send=seq(store_now(), log()), imports=[RANDOM], minimal_imports=True)
    imports = funcs_of(compile_wat(text), "imports")
    assert imports == {
        TYPES: [],
        RUNTIME: ["log"],
        TIMING: ["now"],
        RANDOM: ["random-bytes", "random-range", "random-float", "generate-uuid"],
    }


def test_without_message_server_only_actor_is_exported():
    component = compile_wat(actor_wat(init=set_state(b"x"), message_server=False))
    assert funcs_of(component, "exports") == {"theater:simple/actor": ["init"]}
    assert funcs_of(component, "imports") == {}
    assert Guest(actor_wat(init=set_state(b"x"), message_server=False)).init() == (b"x",)
    with pytest.raises(ValueError):
        actor_wat(send=echo(), message_server=False)


WIT_DIR = Path(__file__).resolve().parents[2] / "wit"
WASM_TOOLS = Path(sys.executable).parent / "wasm-tools"


@pytest.mark.skipif(not (WIT_DIR / "worlds.wit").exists() or not WASM_TOOLS.exists(),
                    reason="needs the repo's wit/ and the wasm-tools CLI")
@pytest.mark.parametrize("name, world", [
    *[(n, "default") for n in sorted(PRESETS)],
    ("minimal", "minimal"),
])
def test_kit_components_target_the_repo_worlds(tmp_path, name, world):
    if name == "minimal":
        text = actor_wat(init=seq(log(), get_state()), message_server=False)
    else:
        text = PRESETS[name]()
    path = tmp_path / "actor.wat"
    path.write_text(text)
    proc = subprocess.run([str(WASM_TOOLS), "component", "targets", str(WIT_DIR), str(path),
                           "--world", world], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_unknown_interface_and_non_behaviour_are_rejected():
    with pytest.raises(ValueError):
        actor_wat(imports=["theater:simple/nope"])
    with pytest.raises(TypeError):
        actor_wat(send="echo")  # type: ignore[arg-type]


def test_generated_text_is_deterministic_and_readable():
    assert faulty_actor() == faulty_actor()
    text = actor_wat(send=seq(log(), store_now()))
    assert ";; seq(log(MSG), store_now())" in text
    assert '(import "theater:simple/timing" (instance $timing (type $t-timing)))' in text


# --- ready-made actors ---------------------------------------------------------


def test_echo_actor():
    g = Guest(echo_actor())
    assert g.init(None) == (None,)
    assert g.init(b"s0") == (b"s0",)
    assert g.send(b"old", b"hello") == (b"hello",)
    assert g.send(None, b"") == (b"",)
    assert g.request(b"st", b"ping") == (b"st", (b"ping",))
    state, (accept,) = g.channel_open(b"st", b"hi")
    assert state == b"st" and accept.accepted is True and accept.message is None
    assert g.channel_message(b"st", b"m1") == (b"m1",)
    assert g.channel_close(b"st") == (b"st",)
    assert g.host.calls == []


def test_counter_actor():
    g = Guest(counter_actor())
    state = None
    for expected in (1, 2, 3):
        (state,) = g.send(state, b"tick")
        assert state == le64(expected)
    assert g.request(state, b"") == (le64(4), (le64(4),))
    assert g.send(le64(2**64 - 1), b"") == (le64(0),)  # wraps


def test_hidden_state_actor_diverges_on_a_fresh_instance():
    g = Guest(hidden_state_actor())
    states = []
    state = None
    for _ in range(3):
        (state,) = g.send(state, b"")
        states.append(state)
    assert states == [le64(1), le64(2), le64(3)]
    # the state is ignored: the instance's own global counts
    assert g.send(None, b"") == (le64(4),)
    # replaying call 3 from the recorded state 2 in a fresh instance diverges
    fresh = Guest(hidden_state_actor())
    assert fresh.send(states[1], b"") == (le64(1),) != (states[2],)


def test_clock_actor_stores_exactly_what_the_host_returned():
    host = FakeHost(now=0x0102030405060708)
    g = Guest(clock_actor(), host)
    assert g.send(None, b"") == (le64(0x0102030405060708),)
    assert g.request(None, b"") == (le64(0x0102030405060708), (le64(0x0102030405060708),))
    assert host.called("now") == [(), ()]


def test_random_actor():
    host = FakeHost(random_bytes=lambda n: bytes([7]) * n)
    g = Guest(random_actor(5), host)
    assert g.send(None, b"") == (b"\x07" * 5,)
    assert host.called("random-bytes") == [(5,)]
    host.replies["random-bytes"] = "entropy exhausted"
    assert g.send(None, b"") == (ERR_MARKER + b"entropy exhausted",)


def test_logger_actor():
    host = FakeHost()
    g = Guest(logger_actor(), host)
    assert g.init(None, "actor-42") == (None,)
    assert g.send(b"st", b"hello log") == (b"st",)
    assert g.request(None, b"hi") == (None, (b"hi",))
    assert host.called("log") == [("actor-42",), ("hello log",), ("hi",)]


def test_forwarder_actor():
    host = FakeHost()
    g = Guest(forwarder_actor(), host)
    assert g.send(b"st", b"actor-b\0hello") == (b"",)
    assert host.called("send") == [("actor-b", b"hello")]
    assert g.request(None, b"actor-c\0ping") == (b"reply:ping", (b"reply:ping",))
    assert host.called("request") == [("actor-c", b"ping")]
    host.replies["request"] = "no such actor"
    assert g.request(None, b"ghost\0x") == (
        ERR_MARKER + b"no such actor", (ERR_MARKER + b"no such actor",))
    host.replies["send"] = "mailbox full"
    assert g.send(None, b"actor-b\0x") == (ERR_MARKER + b"mailbox full",)
    # no NUL: the whole message is the target, the payload is empty
    host.replies["send"] = None
    g.send(None, b"lonely")
    assert host.called("send")[-1] == ("lonely", b"")


def test_deferred_actor_responds_later():
    host = FakeHost()
    g = Guest(deferred_actor(), host)
    state, (response,) = g.request(None, b"question", request_id="req-7")
    assert (state, response) == (b"req-7", None)
    assert host.calls == []
    assert g.send(state, b"answer") == (b"",)
    assert host.called("respond-to-request") == [("req-7", b"answer")]
    host.replies["respond-to-request"] = "unknown request"
    assert g.send(b"req-8", b"x") == (ERR_MARKER + b"unknown request",)


def test_shutdown_actor():
    host = FakeHost()
    g = Guest(shutdown_actor(), host)
    assert g.send(None, b"bye") == (b"",)
    assert host.called("shutdown") == [(b"bye",)]
    host.replies["shutdown"] = "not allowed"
    assert g.send(None, b"") == (ERR_MARKER + b"not allowed",)
    assert host.called("shutdown")[-1] == (b"",)
    g = Guest(actor_wat(send=shutdown()), host)
    g.send(None, b"ignored")
    assert host.called("shutdown")[-1] == (None,)


def test_faulty_actor_echoes_unless_told_otherwise():
    g = Guest(faulty_actor())
    assert g.send(None, b"fine") == (b"fine",)
    assert g.request(b"s", b"fine") == (b"s", (b"fine",))
    assert g.send(None, b"fail") == "failure requested"
    assert g.request(None, b"fail") == "failure requested"


def test_trap_raises_and_poisons_the_store():
    g = Guest(faulty_actor())
    with pytest.raises(WasmtimeError, match="unreachable"):
        g.send(None, b"trap")
    with pytest.raises(WasmtimeError, match="cannot enter component instance"):
        g.send(None, b"fine")
    with pytest.raises(WasmtimeError, match="unreachable"):
        Guest(actor_wat(init=trap())).init()


def test_spin_runs_out_of_fuel():
    g = Guest(faulty_actor(), engine=LIMITED_ENGINE, fuel=1_000_000, epoch_deadline=1_000_000)
    assert g.send(None, b"fine") == (b"fine",)
    with pytest.raises(WasmtimeError, match="all fuel consumed by WebAssembly"):
        g.send(None, b"spin")
    assert g.store.get_fuel() == 0


def test_spin_hits_the_epoch_deadline():
    g = Guest(actor_wat(send=spin()), engine=LIMITED_ENGINE, fuel=2**63, epoch_deadline=2)
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            time.sleep(0.005)
            LIMITED_ENGINE.increment_epoch()

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        with pytest.raises(WasmtimeError, match="wasm trap: interrupt"):
            g.send(None, b"")
    finally:
        stop.set()
        ticker.join()


def test_memory_ceiling_makes_grow_fail():
    g = Guest(faulty_actor(), memory_limit=4 * 65536)
    with pytest.raises(WasmtimeError, match="unreachable"):
        g.send(None, b"grow")
    g = Guest(actor_wat(send=grow_memory(on_failure="err")), memory_limit=4 * 65536)
    assert g.send(None, b"") == "memory.grow failed"


def test_memory_ceiling_below_initial_memory_fails_instantiation():
    with pytest.raises(WasmtimeError, match="exceeds memory limits"):
        Guest(echo_actor(), memory_limit=1000)


def test_heap_is_reset_between_calls():
    # 60 calls x 8 KiB would need ~1 MiB without the post-return reset
    g = Guest(echo_actor(), memory_limit=2 * 65536)
    big = bytes(range(256)) * 32
    for _ in range(60):
        assert g.send(None, big) == (big,)


def test_ungranted_import_fails_to_link():
    text = importing_actor(RANDOM)
    with pytest.raises(WasmtimeError, match="theater:simple/random"):
        Guest(text, interfaces=[RUNTIME])
    g = Guest(text, interfaces=[RANDOM])
    assert g.send(None, b"x") == (b"x",)
    assert g.host.calls == []


# --- behaviours ----------------------------------------------------------------


def test_params_reach_behaviours():
    g = Guest(actor_wat(init=set_state(PARAM), request=seq(set_state(PARAM), respond(MSG)),
                        channel_close=set_state(MSG), channel_message=set_state(PARAM)))
    assert g.init(None, "actor-9") == (b"actor-9",)
    assert g.request(None, b"m", request_id="rid") == (b"rid", (b"m",))
    assert g.channel_close(None, channel_id="c-5") == (b"c-5",)  # msg = the channel id
    assert g.channel_message(None, b"x", channel_id="c-6") == (b"c-6",)


def test_head_tail_and_constants():
    g = Guest(actor_wat(send=set_state(HEAD), request=seq(set_state(TAIL), respond(b"const"))))
    assert g.send(None, b"a\0b\0c") == (b"a",)
    assert g.request(None, b"a\0b\0c") == (b"b\0c", (b"const",))
    assert g.request(None, b"no-nul") == (b"", (b"const",))


def test_state_and_response_setters():
    g = Guest(actor_wat(send=set_state(None), request=seq(set_state(b"new"), respond_state()),
                        channel_message=append_msg(b",")))
    assert g.send(b"x", b"") == (None,)
    assert g.request(b"x", b"") == (b"new", (b"new",))
    assert g.channel_message(None, b"a") == (b",a",)
    assert g.channel_message(b"a", b"b") == (b"a,b",)
    assert Guest(actor_wat(send=append_msg())).send(b"ab", b"cd") == (b"abcd",)


def test_channel_open_accept_and_reject():
    g = Guest(actor_wat(channel_open=seq(echo(), set_state(b"opened"))))
    state, (accept,) = g.channel_open(None, b"hello")
    assert state == b"opened" and accept.accepted is True and accept.message == b"hello"
    g = Guest(actor_wat(channel_open=seq(reject(), respond(b"go away"))))
    state, (accept,) = g.channel_open(b"s", b"hello")
    assert state == b"s" and accept.accepted is False and accept.message == b"go away"
    assert Guest(actor_wat(channel_open=fail("nope"))).channel_open(None, b"") == "nope"


def test_when_and_match_msg():
    b = match_msg({b"a": set_state(b"A"), b"b": set_state(b"B")}, default=store_msg())
    g = Guest(actor_wat(send=b, request=when(b"x", echo(), respond(b"other"))))
    assert g.send(None, b"a") == (b"A",)
    assert g.send(None, b"b") == (b"B",)
    assert g.send(None, b"ab") == (b"ab",)
    assert g.request(None, b"x") == (None, (b"x",))
    assert g.request(None, b"y") == (None, (b"other",))


def test_fail_variants():
    g = Guest(actor_wat(send=fail(MSG), request=seq(fail("first"), set_state(b"ignored"))))
    assert g.send(None, b"custom error") == "custom error"
    assert g.request(None, b"") == "first"
    assert Guest(actor_wat(init=fail("bad init"))).init() == "bad init"


def test_same_behaviour_object_shared_between_handlers():
    shared = count()
    g = Guest(actor_wat(send=shared, request=seq(shared, shared)))
    assert g.send(None, b"") == (le64(1),)
    assert g.request(le64(1), b"") == (le64(3), (le64(3),))


def test_runtime_imports():
    host = FakeHost(get_state=b"from-host")
    g = Guest(actor_wat(send=get_state(), request=log("constant text")), host)
    assert g.send(b"ignored", b"") == (b"from-host",)
    host.replies["get-state"] = None
    assert g.send(b"ignored", b"") == (None,)
    assert g.request(b"s", b"") == (b"s", (None,))
    assert host.called("log") == [("constant text",)]


def test_timing_imports():
    host = FakeHost()
    g = Guest(actor_wat(send=sleep(1500), request=deadline(99)), host)
    assert g.send(None, b"") == (b"",)
    assert g.request(None, b"") == (b"", (b"",))
    assert host.called("sleep") == [(1500,)] and host.called("deadline") == [(99,)]
    host.replies["sleep"] = "too long"
    assert g.send(None, b"") == (ERR_MARKER + b"too long",)


def test_random_imports():
    host = FakeHost(random_range=lambda lo, hi: hi - 1, random_float=0.75)
    g = Guest(actor_wat(send=random_range(10, 20), request=random_float(),
                        channel_message=generate_uuid(), channel_close=random_bytes(3)), host)
    assert g.send(None, b"") == (le64(19),)
    state, _ = g.request(None, b"")
    assert struct.unpack("<d", state) == (0.75,)
    assert g.channel_message(None, b"") == (b"00000000-0000-4000-8000-000000000000",)
    assert g.channel_close(None) == (b"\x00\x01\x02",)
    assert host.called("random-range") == [(10, 20)]
    host.replies["random-range"] = "bad range"
    host.replies["random-float"] = "no float"
    host.replies["generate-uuid"] = Variant("err", "no uuid")
    assert g.send(None, b"") == (ERR_MARKER + b"bad range",)
    assert g.request(None, b"")[0] == ERR_MARKER + b"no float"
    assert g.channel_message(None, b"") == (ERR_MARKER + b"no uuid",)


def test_message_server_host_imports():
    host = FakeHost(list_outstanding_requests=["r1", "r22", "r333"])
    g = Guest(actor_wat(
        init=open_channel_to("peer", b"hello"),
        send=match_msg({
            b"list": list_outstanding(),
            b"cancel": cancel_request("r1"),
            b"close": close_channel("chan-1"),
        }, default=send_on_channel()),
        request=respond_to_request(PARAM, MSG),
        channel_close=close_channel(PARAM),
    ), host)
    assert g.init() == (b"chan-1",)
    assert host.called("open-channel") == [("peer", b"hello")]
    assert g.send(None, b"list") == (b"r1\nr22\nr333",)
    host.replies["list-outstanding-requests"] = []
    assert g.send(None, b"list") == (b"",)
    assert g.send(None, b"cancel") == (b"",)
    assert g.send(None, b"close") == (b"",)
    assert g.send(None, b"chan-9\0data") == (b"",)
    assert g.request(None, b"resp", request_id="req-3") == (b"", (b"",))
    assert g.channel_close(None, channel_id="chan-4") == (b"",)
    assert host.called("cancel-request") == [("r1",)]
    assert host.called("close-channel") == [("chan-1",), ("chan-4",)]
    assert host.called("send-on-channel") == [("chan-9", b"data")]
    assert host.called("respond-to-request") == [("req-3", b"resp")]
    host.replies["open-channel"] = Variant("err", "refused")
    assert g.init() == (ERR_MARKER + b"refused",)


def test_sources_for_two_argument_calls():
    host = FakeHost()
    g = Guest(actor_wat(send=send_to("fixed", MSG), request=send_to(STATE, b"payload"),
                        channel_message=request_to(MSG, b"q")), host)
    g.send(None, b"a\0b")
    g.request(b"target-from-state", b"")
    g.channel_message(None, b"whole")
    assert host.called("send") == [("fixed", b"a\0b"), ("target-from-state", b"payload")]
    assert host.called("request") == [("whole", b"q")]


def test_host_exception_propagates_to_the_caller():
    def boom(*_):
        raise KeyError("host bug")

    g = Guest(clock_actor(), FakeHost(now=boom))
    with pytest.raises(KeyError, match="host bug"):
        g.send(None, b"")


def test_invalid_utf8_to_a_string_import_traps():
    g = Guest(logger_actor())
    with pytest.raises(WasmtimeError):
        g.send(None, b"\xff\xfe")


def test_module_all_lists_only_existing_names():
    for name in kit.__all__:
        assert hasattr(kit, name), name
