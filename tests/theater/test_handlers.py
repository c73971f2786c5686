"""Every function of every implemented handler, called by a guest through the runtime and found in its chain.

``runtime.get-chain`` is covered in ``test_chain_reads.py`` (with ``supervisor.get-child-events``).
"""

from __future__ import annotations

import struct
import time
import uuid

import pytest

from tests.components import wat
from theater.actor import HANDLE_REQUEST, HANDLE_SEND
from theater.errors import ActorNotRunning, ManifestError
from theater.handlers.random import MAX_BYTES
from theater.handlers.timing import MAX_SLEEP_MS

MSG = ["message-server"]


def le64(raw: bytes) -> int:
    assert len(raw) == 8
    return int.from_bytes(raw, "little")


# runtime


def test_log_appends_to_the_actor_logs_and_records_the_call(theater, manifest, events_of):
    actor = theater.start(manifest("logger", wat.logger_actor(), MSG))
    theater.send(actor, b"hello from the guest")
    assert list(theater.actor(actor).logs) == [actor, "hello from the guest"]
    logged = events_of(theater, actor, "theater:simple/runtime/log")
    assert [e.data for e in logged] == [
        {"params": [actor], "result": None},
        {"params": ["hello from the guest"], "result": None},
    ]


def test_log_call_sits_inside_the_export_call_that_made_it(theater, manifest):
    actor = theater.start(manifest("logger", wat.logger_actor(), MSG))
    theater.send(actor, b"inside")
    types = [e.type for e in theater.events(actor)][-3:]
    assert types == ["wasm/call", "theater:simple/runtime/log", "wasm/result"]


def test_get_state_hands_the_guest_its_current_state(theater, manifest, events_of):
    component = wat.actor_wat(send=wat.store_msg(), request=wat.get_state())
    actor = theater.start(manifest("stateful", component, MSG, init_state="initial"))
    assert theater.request(actor, b"?") == b"initial"
    theater.send(actor, b"changed")
    assert theater.request(actor, b"?") == b"changed"
    results = [e.data["result"] for e in events_of(theater, actor, "theater:simple/runtime/get-state")]
    assert results == [{"some": b"initial"}, {"some": b"changed"}]


def test_get_state_of_an_actor_without_state_is_none(theater, manifest, events_of):
    component = wat.actor_wat(send=wat.seq(wat.get_state(), wat.set_state(b"was none")))
    actor = theater.start(manifest("stateless", component, MSG))
    theater.send(actor, b"")
    assert [e.data for e in events_of(theater, actor, "theater:simple/runtime/get-state")] == [
        {"params": [], "result": None}
    ]


def test_shutdown_stops_the_actor_and_records_its_exit_data(theater, manifest):
    actor = theater.start(manifest("quitter", wat.shutdown_actor(), MSG))
    theater.send(actor, b"goodbye")
    assert theater.status(actor) == "stopped"
    last = theater.events(actor)[-1]
    assert (last.type, last.data) == ("actor/exit", {"data": b"goodbye"})
    shutdown = [e for e in theater.events(actor) if e.type == "theater:simple/runtime/shutdown"]
    assert [e.data for e in shutdown] == [{"params": [{"some": b"goodbye"}], "result": {"ok": None}}]
    with pytest.raises(ActorNotRunning, match=f"actor {actor} is stopped"):
        theater.send(actor, b"anyone there?")


def test_shutdown_keeps_the_state_of_the_call_that_asked_for_it(theater, manifest):
    actor = theater.start(manifest("quitter", wat.shutdown_actor(), MSG))
    theater.send(actor, b"bye")
    assert theater.state(actor) == b""  # R of a unit ok result


# timing


def test_now_is_recorded_and_is_what_the_guest_saw(theater, manifest, events_of):
    actor = theater.start(manifest("clock", wat.clock_actor(), [*MSG, "timing"]))
    before = time.time_ns() // 1_000_000
    seen = le64(theater.request(actor, b""))
    after = time.time_ns() // 1_000_000
    assert before <= seen <= after
    [now] = events_of(theater, actor, "theater:simple/timing/now")
    assert now.data == {"params": [], "result": seen}
    assert le64(theater.state(actor)) == seen


def test_sleep_blocks_the_call_for_the_duration(theater, manifest, events_of):
    actor = theater.start(manifest("sleeper", wat.actor_wat(send=wat.sleep(10)), [*MSG, "timing"]))
    started = time.monotonic()
    theater.send(actor, b"")
    assert time.monotonic() - started >= 0.010
    assert theater.state(actor) == b""
    [slept] = events_of(theater, actor, "theater:simple/timing/sleep")
    assert slept.data == {"params": [10], "result": {"ok": None}}


def test_sleep_longer_than_the_maximum_is_refused(theater, manifest):
    component = wat.actor_wat(send=wat.sleep(MAX_SLEEP_MS + 1))
    actor = theater.start(manifest("sleeper", component, [*MSG, "timing"]))
    theater.send(actor, b"")
    expected = f"sleep of {MAX_SLEEP_MS + 1} ms is longer than the maximum of {MAX_SLEEP_MS} ms"
    assert theater.state(actor) == wat.ERR_MARKER + expected.encode()


def test_max_sleep_ms_config_caps_sleep_and_deadline(theater, manifest):
    far = time.time_ns() // 1_000_000 + 60_000
    component = wat.actor_wat(send=wat.match_msg({b"sleep": wat.sleep(10), b"deadline": wat.deadline(far)}))
    actor = theater.start(manifest("capped", component, [*MSG, "timing"], config={"timing": {"max_sleep_ms": 5}}))
    theater.send(actor, b"sleep")
    assert theater.state(actor) == wat.ERR_MARKER + b"sleep of 10 ms is longer than the maximum of 5 ms"
    theater.send(actor, b"deadline")
    assert theater.state(actor) == wat.ERR_MARKER + f"deadline {far} is more than 5 ms away".encode()


def test_timing_config_is_validated(theater, manifest):
    path = manifest("capped", wat.clock_actor(), [*MSG, "timing"], config={"timing": {"max_sleep": 5}})
    with pytest.raises(ManifestError, match=r"handlers\.timing\.config\.max_sleep: unknown key 'max_sleep'; "
                                            r"allowed keys: max_sleep_duration, max_sleep_ms, min_sleep_duration$"):
        theater.start(path)


def test_deadline_in_the_past_returns_at_once(theater, manifest, events_of):
    actor = theater.start(manifest("late", wat.actor_wat(send=wat.deadline(1)), [*MSG, "timing"]))
    started = time.monotonic()
    theater.send(actor, b"")
    assert time.monotonic() - started < 1.0
    assert theater.state(actor) == b""
    [waited] = events_of(theater, actor, "theater:simple/timing/deadline")
    assert waited.data == {"params": [1], "result": {"ok": None}}


def test_deadline_in_the_future_returns_once_it_has_passed(theater, manifest):
    target = time.time_ns() // 1_000_000 + 50
    actor = theater.start(manifest("waiter", wat.actor_wat(send=wat.deadline(target)), [*MSG, "timing"]))
    theater.send(actor, b"")
    assert time.time_ns() // 1_000_000 >= target
    assert theater.state(actor) == b""


# random


def random_component():
    return wat.actor_wat(
        send=wat.match_msg(
            {
                b"bytes": wat.random_bytes(16),
                b"range": wat.random_range(10, 20),
                b"float": wat.random_float(),
                b"uuid": wat.generate_uuid(),
                b"empty": wat.random_range(5, 5),
                b"reversed": wat.random_range(9, 3),
                b"huge": wat.random_bytes(MAX_BYTES + 1),
            }
        ),
    )


def draw(theater, actor, what: bytes) -> bytes:
    theater.send(actor, what)
    return theater.state(actor)


def test_random_bytes_gives_the_length_asked_for(theater, manifest, events_of):
    actor = theater.start(manifest("dice", random_component(), [*MSG, "random"]))
    value = draw(theater, actor, b"bytes")
    assert len(value) == 16
    [event] = events_of(theater, actor, "theater:simple/random/random-bytes")
    assert event.data == {"params": [16], "result": {"ok": value}}


def test_random_range_is_within_min_inclusive_max_exclusive(theater, manifest, events_of):
    actor = theater.start(manifest("dice", random_component(), [*MSG, "random"]))
    values = [le64(draw(theater, actor, b"range")) for _ in range(20)]
    assert all(10 <= v < 20 for v in values)
    recorded = [e.data["result"] for e in events_of(theater, actor, "theater:simple/random/random-range")]
    assert recorded == [{"ok": v} for v in values]


def test_random_float_is_in_the_unit_interval(theater, manifest, events_of):
    actor = theater.start(manifest("dice", random_component(), [*MSG, "random"]))
    (value,) = struct.unpack("<d", draw(theater, actor, b"float"))
    assert 0.0 <= value < 1.0
    [event] = events_of(theater, actor, "theater:simple/random/random-float")
    assert event.data == {"params": [], "result": {"ok": value}}


def test_generate_uuid_gives_a_version_4_uuid(theater, manifest, events_of):
    actor = theater.start(manifest("dice", random_component(), [*MSG, "random"]))
    text = draw(theater, actor, b"uuid").decode()
    assert uuid.UUID(text).version == 4
    assert str(uuid.UUID(text)) == text
    [event] = events_of(theater, actor, "theater:simple/random/generate-uuid")
    assert event.data == {"params": [], "result": {"ok": text}}


@pytest.mark.parametrize(
    "what, low, high", [(b"empty", 5, 5), (b"reversed", 9, 3)], ids=["min-equals-max", "min-above-max"]
)
def test_random_range_without_values_returns_err(theater, manifest, what, low, high):
    actor = theater.start(manifest("dice", random_component(), [*MSG, "random"]))
    expected = f"empty range: min {low} must be less than max {high}"
    assert draw(theater, actor, what) == wat.ERR_MARKER + expected.encode()
    assert theater.status(actor) == "running"


def test_random_bytes_above_the_maximum_returns_err(theater, manifest):
    actor = theater.start(manifest("dice", random_component(), [*MSG, "random"]))
    expected = f"asked for {MAX_BYTES + 1} bytes; at most {MAX_BYTES} per call"
    assert draw(theater, actor, b"huge") == wat.ERR_MARKER + expected.encode()


def draw_all(theater, actor) -> list[bytes]:
    return [draw(theater, actor, what) for what in (b"bytes", b"range", b"float", b"uuid", b"bytes")]


def test_seeded_random_gives_the_same_values_in_two_runs(theaters, manifest):
    path = manifest("dice", random_component(), [*MSG, "random"], config={"random": {"seed": 7}})
    first, second = theaters(), theaters()
    runs = [draw_all(t, t.start(path)) for t in (first, second)]
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[0][4]  # the sequence moves on within a run


def test_different_seeds_give_different_values(theater, manifest):
    seven = manifest("seven", random_component(), [*MSG, "random"], config={"random": {"seed": 7}})
    eight = manifest("eight", random_component(), [*MSG, "random"], config={"random": {"seed": 8}})
    assert draw_all(theater, theater.start(seven)) != draw_all(theater, theater.start(eight))


def test_unseeded_random_differs_between_actors(theater, manifest):
    path = manifest("dice", random_component(), [*MSG, "random"])
    assert draw(theater, theater.start(path), b"bytes") != draw(theater, theater.start(path), b"bytes")


@pytest.mark.parametrize(
    "config, match",
    [
        ({"seed": "seven"}, r"handlers\.random\.config\.seed: expected an integer, got 'seven'"),
        ({"seed": True}, r"handlers\.random\.config\.seed: expected an integer, got True"),
        ({"sead": 7}, r"handlers\.random\.config\.sead: unknown key 'sead'; "
                      r"allowed keys: allow_crypto_secure, max_bytes, max_int, seed$"),
    ],
    ids=["string", "bool", "typo"],
)
def test_random_config_is_validated(theater, manifest, config, match):
    path = manifest("dice", random_component(), [*MSG, "random"], config={"random": config})
    with pytest.raises(ManifestError, match=match):
        theater.start(path)


def test_handler_calls_are_recorded_between_call_and_result(theater, manifest):
    component = wat.actor_wat(
        send=wat.seq(wat.store_now(), wat.random_bytes(4), wat.log(b"done")),
        request=wat.respond_state(),
    )
    actor = theater.start(manifest("busy", component, [*MSG, "timing", "random"]))
    theater.send(actor, b"")
    assert theater.request(actor, b"") == theater.state(actor)
    types = [e.type for e in theater.events(actor)]
    send_at = types.index("wasm/call", types.index("wasm/result"))
    assert types[send_at:] == [
        "wasm/call",
        "theater:simple/timing/now",
        "theater:simple/random/random-bytes",
        "theater:simple/runtime/log",
        "wasm/result",
        "wasm/call",
        "wasm/result",
    ]
    calls = [e.data["export"] for e in theater.events(actor) if e.type == "wasm/call"]
    assert calls[1:] == [HANDLE_SEND, HANDLE_REQUEST]
