"""Crafted bundles: every field read from a bundle is checked, recorded limits are capped, replay is bounded in
time, and whatever a bundle holds, verifying it ends in a report or a clear Theater error, never a traceback."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay import LimitRefused, MalformedRecord, Replayer, ReplayLimits, ReplayReport, ReplayTimeout
from replay.bundle import opened_bundle, read_bundle
from store import TheaterError, verify_chain
from store.codec import decode_stored, encode_event
from store.errors import CorruptRecordError
from tests.components import wat
from theater.runtime import Theater

SEND = "theater:simple/message-server-client.handle-send"
# Bounds for replays of crafted bundles: a crafted record must not make a test wait longer than these.
BOUNDED = ReplayLimits(call_timeout_s=2.0, timeout_s=10.0)


def record_bundle(root: Path, component: str, workload: Callable[[Theater, str], None], *, grants: str = "",
                  limits: str = "") -> bytes:
    """Run one actor through ``workload`` in a fresh home and return its bundle."""
    from replay.bundle import export_bundle
    from store import Store

    (root / "actor.wat").write_text(component)
    (root / "actor.toml").write_text(f'name = "crafted"\ncomponent = "actor.wat"\n{grants}{limits}')
    with Theater(root / "home", durability="buffered") as theater:
        actor = theater.start(root / "actor.toml")
        workload(theater, actor)
    with Store(root / "home" / "store", readonly=True) as store:
        return export_bundle(store, uuid.UUID(actor))


def sends(*messages: bytes) -> Callable[[Theater, str], None]:
    def workload(theater: Theater, actor: str) -> None:
        for message in messages:
            theater.send(actor, message)

    return workload


@pytest.fixture(scope="module")
def clock_bundle(tmp_path_factory) -> bytes:
    """A clock actor (host calls) after init and two sends."""
    grants = '[[handlers]]\ntype = "message-server"\n[[handlers]]\ntype = "timing"\n'
    return record_bundle(tmp_path_factory.mktemp("clock"), wat.clock_actor(), sends(b"a", b"b"), grants=grants)


@pytest.fixture(scope="module")
def spin_bundle(tmp_path_factory) -> bytes:
    """An actor whose second send spins until it runs out of its (small) fuel."""
    faulty = wat.faulty_actor()
    limits = "[limits]\nfuel_per_call = 200000\n"

    def workload(theater: Theater, actor: str) -> None:
        theater.send(actor, b"before")
        with pytest.raises(TheaterError):
            theater.send(actor, b"spin")

    return record_bundle(tmp_path_factory.mktemp("spin"), faulty, workload, limits=limits)


# Taking a bundle apart and putting it back together, re-hashed with the store's own encoding.


def header(data: bytes) -> dict[str, Any]:
    return cbor2.loads(data)


def events_of(bundle: dict[str, Any]) -> list[list[Any]]:
    """The decoded fields of every event: [version, actor, seq, parent, timestamp_ms, type, data]."""
    return [decode_stored(value, where="test")[1] for value in bundle["events"]]


class Verbatim:
    """A value put in a bundle's events list as it is, in place of a stored event."""

    def __init__(self, value: Any) -> None:
        self.value = value


def rehashed(bundle: dict[str, Any], events: list[Any], **changes: Any) -> bytes:
    """The bundle with ``events`` (fields lists, or ``Verbatim`` values) chained and hashed anew."""
    actor = uuid.UUID(bytes=bundle["actor"])
    parent, out = None, []
    for seq, fields in enumerate(events):
        if isinstance(fields, Verbatim):
            out.append(fields.value)
            continue
        encoded = encode_event(actor=actor, seq=seq, parent=parent, timestamp_ms=fields[4], type=fields[5],
                               data=fields[6])
        out.append(encoded.hash + encoded.body)
        parent = encoded.hash
    return cbor2.dumps({**bundle, "events": out, "to_seq": len(out) - 1, **changes}, canonical=True)


def edited(data: bytes, change: Callable[[list[list[Any]]], Any]) -> bytes:
    bundle = header(data)
    events = copy.deepcopy(events_of(bundle))
    change(events)
    return rehashed(bundle, events)


def verify_bundle(tmp_path: Path, data: bytes, limits: ReplayLimits = BOUNDED) -> ReplayReport | None:
    """What ``theater verify FILE`` does: import, integrity, then replay; None when integrity fails."""
    path = tmp_path / f"crafted-{len(list(tmp_path.glob('crafted-*')))}.bundle"
    path.write_bytes(data)
    with opened_bundle(path) as (store, actor, bundle):
        if not verify_chain(store, actor).ok:
            return None
        return Replayer(store, limits=limits).replay(actor, from_seq=bundle["from_seq"])


def first(events: list[list[Any]], type_: str) -> list[Any]:
    return next(e for e in events if e[5] == type_)


# The header must match the events.


def test_honest_bundle_verifies(clock_bundle, tmp_path):
    report = verify_bundle(tmp_path, clock_bundle)
    assert report is not None and report.ok, report


def test_bundle_header_to_seq_must_match_events(clock_bundle, tmp_path):
    bundle = header(clock_bundle)
    assert bundle["to_seq"] == len(bundle["events"]) - 1 > 7
    cut = cbor2.dumps({**bundle, "events": bundle["events"][:7]}, canonical=True)
    with pytest.raises(CorruptRecordError, match=rf"the header says to_seq {bundle['to_seq']} but the bundle "
                                                 r"holds events 0\.\.6$"):
        read_bundle(cut)
    with pytest.raises(CorruptRecordError, match="the header says to_seq 3 but"):
        read_bundle(cbor2.dumps({**bundle, "to_seq": 3}, canonical=True))


HEADERS = {
    "from_seq_string": ({"from_seq": "3"}, r"the header's from_seq '3' is not within its events \(0\.\.\d+\)$"),
    "from_seq_negative": ({"from_seq": -1}, r"the header's from_seq -1 is not within its events"),
    "from_seq_10_30": ({"from_seq": 10**30}, r"the header's from_seq 1000000000000000000000000000000 is not"),
    "from_seq_past_to_seq": ({"from_seq": 99}, r"the header's from_seq 99 is not within its events"),
    "to_seq_missing": ({"to_seq": None}, r"the header says to_seq None but"),
    "no_events": ({"events": [], "to_seq": -1}, r"the bundle holds no events$"),
    "blob_key_not_a_digest": ({"blobs": {b"short": b"x"}}, r"every blob must be keyed by its 32-byte digest"),
    "actor_id_short": ({"actor": b"\x01"}, r"the bundle's actor id is not 16 bytes"),
}


@pytest.mark.parametrize("case", sorted(HEADERS))
def test_crafted_bundle_header_is_clear_error(clock_bundle, case):
    changes, message = HEADERS[case]
    with pytest.raises(CorruptRecordError, match=message):
        read_bundle(cbor2.dumps({**header(clock_bundle), **changes}, canonical=True))


def test_export_refuses_a_from_seq_outside_the_events_it_exports(clock_bundle, tmp_path):
    from replay.bundle import export_bundle
    from store.errors import InvalidInputError

    path = tmp_path / "clock.bundle"
    path.write_bytes(clock_bundle)
    with opened_bundle(path) as (store, actor, _):
        with pytest.raises(InvalidInputError, match=r"invalid from_seq 5: expected a sequence number within the "
                                                    r"events exported \(0\.\.3\)"):
            export_bundle(store, actor, from_seq=5, to_seq=3)
        assert read_bundle(export_bundle(store, actor, from_seq=3, to_seq=3))["from_seq"] == 3


def test_crafted_bundle_from_seq_string_is_clear_error(clock_bundle, tmp_path):
    with pytest.raises(CorruptRecordError, match=r"from_seq '3' is not within its events"):
        verify_bundle(tmp_path, cbor2.dumps({**header(clock_bundle), "from_seq": "3"}, canonical=True))


def test_crafted_bundle_event_that_is_an_int_is_clear_error(clock_bundle, tmp_path):
    bundle = header(clock_bundle)
    events = bundle["events"][:3] + [5] + bundle["events"][3:]
    with pytest.raises(CorruptRecordError, match=r"event 3: must be a stored event \(bytes longer than 32\), got int"):
        verify_bundle(tmp_path, cbor2.dumps({**bundle, "events": events, "to_seq": len(events) - 1}, canonical=True))


# Every field of the record is checked, naming the event and the field.


def _genesis(change: Callable[[dict[str, Any]], Any]) -> Callable[[list[list[Any]]], None]:
    return lambda events: change(events[0][6])


def _call(change: Callable[[dict[str, Any]], Any]) -> Callable[[list[list[Any]]], None]:
    return lambda events: change(first(events, "wasm/call")[6])


def _set(index: int, value: Any) -> Callable[[list[Any]], None]:
    return lambda fields: fields.__setitem__(index, value)


FIELDS = {
    "genesis_without_engine": (_genesis(lambda d: d.pop("engine")), r"event 0 \(actor/created\): engine is missing$"),
    "limits_empty": (_genesis(lambda d: d.__setitem__("limits", {})),
                     r"event 0 \(actor/created\): limits\.fuel_per_call is missing$"),
    "limits_zero": (_genesis(lambda d: d["limits"].__setitem__("deadline_ms", 0)),
                    r"limits\.deadline_ms must be a positive integer, got 0$"),
    "limits_bool": (_genesis(lambda d: d["limits"].__setitem__("memory_bytes", True)),
                    r"limits\.memory_bytes must be a positive integer, got a boolean$"),
    "data_list": (lambda events: events[0].__setitem__(6, [1, 2]),
                  r"event 0 \(actor/created\): data must be a map, got an array$"),
    "bogus_cranelift_opt_level": (_genesis(lambda d: d["engine"].__setitem__("cranelift_opt_level", "fastest")),
                                  r"engine\.cranelift_opt_level must be one of none, speed, speed_and_size, got "
                                  r"'fastest'$"),
    "component_string": (_genesis(lambda d: d.__setitem__("component", "ab" * 32)),
                         r"event 0 \(actor/created\): component must be a 32-byte blob hash, got a string$"),
    "event_data_not_a_map": (lambda events: first(events, "wasm/call").__setitem__(6, 7),
                             r"event 2 \(wasm/call\): data must be a map, got an integer$"),
    "call_without_export": (_call(lambda d: d.pop("export")), r"event 2 \(wasm/call\): export is missing$"),
    "call_state_string": (_call(lambda d: d.__setitem__("state", "none")),
                          r"event 2 \(wasm/call\): state must be a 32-byte blob hash or null, got a string$"),
    "result_fuel_negative": (lambda events: first(events, "wasm/result")[6].__setitem__("fuel", -1),
                             r"\(wasm/result\): fuel must be a non-negative integer, got -1$"),
    "instantiate_reason_unknown": (lambda events: first(events, "wasm/instantiate")[6].__setitem__("reason", "x"),
                                   r"event 1 \(wasm/instantiate\): reason must be one of start, restart, resume"),
    "host_call_without_result": (lambda events: first(events, "theater:simple/timing/now")[6].pop("result"),
                                 r"\(theater:simple/timing/now\): result is missing$"),
}


@pytest.mark.parametrize("case", sorted(FIELDS))
def test_crafted_bundle_field_is_clear_error(clock_bundle, tmp_path, case):
    change, message = FIELDS[case]
    with pytest.raises(MalformedRecord, match=r"^cannot replay: " + message if message.startswith("event")
                       else message):
        verify_bundle(tmp_path, edited(clock_bundle, change))


def test_crafted_call_params_that_do_not_fit_the_export_are_a_divergence(clock_bundle, tmp_path):
    def change(events):
        calls = [e for e in events if e[5] == "wasm/call"]
        calls[1][6]["params"] = [12345]  # handle-send takes list<u8>

    report = verify_bundle(tmp_path, edited(clock_bundle, change))
    assert report is not None and report.divergence is not None
    assert report.divergence.what == f"parameters of {SEND}"
    assert "do not fit the export's type" in str(report.divergence.actual)


# Recorded limits are capped, and replay is bounded in time.


@pytest.mark.parametrize(("field", "value", "maximum"), [
    ("fuel_per_call", 10**15, ReplayLimits().max_fuel_per_call),
    ("memory_bytes", 2**40, ReplayLimits().max_memory_bytes),
    ("deadline_ms", 10**9, ReplayLimits().max_deadline_ms),
])
def test_recorded_limit_above_the_verifier_maximum_is_refused_naming_it(clock_bundle, tmp_path, field, value,
                                                                         maximum):
    crafted = edited(clock_bundle, _genesis(lambda d: d["limits"].__setitem__(field, value)))
    with pytest.raises(LimitRefused, match=rf"records {field} = {value:,}, above this verifier's maximum of "
                                           rf"{maximum:,}"):
        verify_bundle(tmp_path, crafted)


def spin_forever(events: list[list[Any]]) -> None:
    """A fuel limit no replay would reach: the spinning call runs until a wall-clock bound stops it."""
    events[0][6]["limits"]["fuel_per_call"] = 10**15


def test_replay_of_a_spinning_call_with_huge_recorded_fuel_ends_at_the_per_call_bound(spin_bundle, tmp_path):
    limits = ReplayLimits(max_fuel_per_call=10**15, call_timeout_s=0.5)
    crafted = edited(spin_bundle, spin_forever)
    spin_call = [e for e in events_of(header(crafted)) if e[5] == "wasm/call"][-1]
    with pytest.raises(ReplayTimeout, match=rf"replay stopped at event {spin_call[2]} \({SEND}\): it passed the "
                                            r"per-call wall-clock bound of 0\.5 s") as raised:
        verify_bundle(tmp_path, crafted, limits)
    assert (raised.value.seq, raised.value.what) == (spin_call[2], "call")


def test_replay_overall_timeout_bounds_the_whole_replay(spin_bundle, tmp_path):
    limits = ReplayLimits(max_fuel_per_call=10**15, timeout_s=0.5)
    with pytest.raises(ReplayTimeout, match=r"it passed the overall wall-clock bound of 0\.5 s") as raised:
        verify_bundle(tmp_path, edited(spin_bundle, spin_forever), limits)
    assert raised.value.what == "replay"


def test_spinning_call_replays_as_recorded_within_its_recorded_fuel(spin_bundle, tmp_path):
    report = verify_bundle(tmp_path, spin_bundle)
    assert report is not None and report.ok, report.divergence


# Whatever a bundle holds: a report or a clear Theater error, never a traceback, never a hang.


def values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.sampled_from([-1, 0, 1, 2**32, 2**64, 10**30, -(10**30)]), st.integers(),
        st.text(max_size=8), st.binary(max_size=40), st.floats(allow_nan=False),
    )
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                        max_leaves=6)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside nested maps and arrays."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(paths(item, (*prefix, index)))
    return out


def replace(root: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return root


def drop(root: Any, path: tuple) -> Any:
    if not path:
        return root
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return root


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    bundle = header(data)
    events: list[Any] = copy.deepcopy(events_of(bundle))
    top: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["header", "field", "drop", "int", "swap", "remove", "type", "raw"]))
        if what == "header":
            top[draw(st.sampled_from(["from_seq", "to_seq", "actor", "format", "blobs"]))] = draw(values())
            continue
        if not events:
            break
        i = draw(st.integers(0, len(events) - 1))
        if isinstance(events[i], Verbatim):
            continue
        if what in ("field", "drop", "int"):
            targets = paths(events[i][6])
            if what == "int":
                targets = [p for p in targets if type(_at(events[i][6], p)) is int] or targets
            path = draw(st.sampled_from(targets))
            if what == "drop":
                events[i][6] = drop(events[i][6], path)
            else:
                new = draw(st.integers() if what == "int" else values())
                events[i][6] = replace(events[i][6], path, new)
        elif what == "swap":
            j = draw(st.integers(0, len(events) - 1))
            events[i], events[j] = events[j], events[i]
        elif what == "remove":
            del events[i]
        elif what == "type":
            events[i][5] = draw(st.sampled_from(["wasm/call", "wasm/result", "wasm/error", "wasm/instantiate",
                                                 "actor/created", "actor/stop", "theater:simple/timing/now", "x"]))
        else:
            events[i] = Verbatim(draw(st.one_of(values(), st.binary(max_size=64))))
    if not events:
        return cbor2.dumps({**bundle, "events": [], **top}, canonical=True)
    rebuilt = rehashed(bundle, events)
    return cbor2.dumps({**header(rebuilt), **top}, canonical=True) if top else rebuilt


def _at(root: Any, path: tuple) -> Any:
    for step in path:
        root = root[step]
    return root


@pytest.fixture(scope="module")
def fuzz_seed(clock_bundle) -> bytes:
    return clock_bundle


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                   HealthCheck.data_too_large])
@given(data=st.data())
def test_any_crafted_bundle_verifies_or_fails_with_a_theater_error(fuzz_seed, tmp_path_factory, data):
    crafted = data.draw(mutations(fuzz_seed))
    where = tmp_path_factory.mktemp("fuzz")
    try:
        verify_bundle(where, crafted)  # bounded in time by BOUNDED, not by the test
    except TheaterError as error:
        assert str(error), f"{type(error).__name__} without a message"
