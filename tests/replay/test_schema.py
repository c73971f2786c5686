"""The record's schema in code: payload classes encode exactly the maps the runtime wrote before them, decode them
back, and the event types in code are the ones docs/events.md documents."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from replay.errors import FaultKind, MalformedRecord
from replay.schema import (
    EVENT_TYPES,
    PAYLOADS,
    ActorCreated,
    ActorExit,
    ActorFailed,
    ActorStop,
    InstantiateReason,
    Limits,
    Payload,
    SupervisorGiveUp,
    SupervisorRestart,
    SupervisorSpawn,
    SupervisorStop,
    WasmCall,
    WasmFailure,
    WasmInstantiate,
    WasmResult,
)
from store import Event
from store.codec import _plain, encode_fields

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
ACTOR = uuid.UUID(int=7)
H1, H2, H3 = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))
CAUSE = {"child": str(ACTOR), "how": "failure", "kind": "trap", "export": "theater:simple/actor.init", "detail": "x"}

# Each payload next to the map the runtime wrote literally before the payload classes (key order included).
SAMPLES: list[tuple[Payload, dict[str, Any]]] = [
    (ActorCreated(id=str(ACTOR), name="counter", component=H1, manifest=H2,
                  engine={"consume_fuel": True, "wasmtime": "50.0.0"}, parent=None, init_state=H3,
                  limits=Limits(fuel_per_call=5, memory_bytes=6, deadline_ms=7)),
     {"id": str(ACTOR), "name": "counter", "component": H1, "manifest": H2,
      "engine": {"consume_fuel": True, "wasmtime": "50.0.0"}, "parent": None, "init_state": H3,
      "limits": {"fuel_per_call": 5, "memory_bytes": 6, "deadline_ms": 7}}),
    (ActorCreated(id=str(ACTOR), name="sup", component=H1, manifest=H2, engine={"wasmtime": "50.0.0"},
                  parent=None, init_state=None, limits=Limits(fuel_per_call=5, memory_bytes=6, deadline_ms=7),
                  files={"base": "", "names": {"worker.toml": H3, "build/w.wasm": H1}}),
     {"id": str(ACTOR), "name": "sup", "component": H1, "manifest": H2, "engine": {"wasmtime": "50.0.0"},
      "parent": None, "init_state": None, "limits": {"fuel_per_call": 5, "memory_bytes": 6, "deadline_ms": 7},
      "files": {"base": "", "names": {"worker.toml": H3, "build/w.wasm": H1}}}),
    (WasmInstantiate(fuel=12, state=H1, reason=InstantiateReason.RECOVER),
     {"fuel": 12, "state": H1, "reason": "recover"}),
    (WasmCall(state=None, export="theater:simple/actor.init", params=[str(ACTOR)]),
     {"state": None, "export": "theater:simple/actor.init", "params": [str(ACTOR)]}),
    (WasmResult(fuel=99, state=H2, export="e.f", output=[b"ok"]),
     {"fuel": 99, "state": H2, "export": "e.f", "output": [b"ok"]}),
    (WasmFailure(fuel=None, kind=FaultKind.STOPPED, detail="stopped while running", export="e.f"),
     {"fuel": None, "kind": "stopped", "detail": "stopped while running", "export": "e.f"}),
    (ActorStop(), {"data": None}),
    (ActorExit(data=b"bye"), {"data": b"bye"}),
    (ActorFailed(reason="gave up"), {"reason": "gave up"}),
    (SupervisorSpawn(child=str(ACTOR), name="worker", restart="permanent", restart_from="init", init=True,
                     error=None),
     {"child": str(ACTOR), "name": "worker", "restart": "permanent", "restart_from": "init", "init": True,
      "error": None}),
    (SupervisorRestart(child=str(ACTOR), reason="requested", strategy="one-for-one", restart_from="last",
                       incarnation=2, delay_ms=0),
     {"child": str(ACTOR), "reason": "requested", "strategy": "one-for-one", "restart_from": "last",
      "incarnation": 2, "delay_ms": 0}),
    (SupervisorRestart(child=str(ACTOR), reason="failure", strategy="one-for-one", restart_from="init",
                       incarnation=3, delay_ms=40, cause=CAUSE),
     {"child": str(ACTOR), "reason": "failure", "strategy": "one-for-one", "restart_from": "init",
      "incarnation": 3, "delay_ms": 40, "cause": CAUSE}),
    (SupervisorGiveUp(child=str(ACTOR), reason="more than 3 restarts within 5 s", cause=CAUSE, intensity=3,
                      period_s=5.0),
     {"child": str(ACTOR), "reason": "more than 3 restarts within 5 s", "cause": CAUSE, "intensity": 3,
      "period_s": 5.0}),
    (SupervisorStop(child=str(ACTOR), reason="parent stop", outcome="stopped"),
     {"child": str(ACTOR), "reason": "parent stop", "outcome": "stopped"}),
]


def _event(payload: Payload, data: Any) -> Event:
    return Event(hash=H1, actor=ACTOR, seq=0 if payload.TYPE == "actor/created" else 3, parent=None,
                 timestamp_ms=1, type=payload.TYPE, data=data)


@pytest.mark.parametrize(("payload", "written"), SAMPLES, ids=lambda v: getattr(v, "TYPE", ""))
def test_payload_encodes_the_map_written_before_with_its_key_order_and_bytes(payload: Payload,
                                                                             written: dict[str, Any]) -> None:
    encoded = payload.encode()
    assert list(encoded.items()) == list(written.items())
    assert all(type(v) is not FaultKind and type(v) is not InstantiateReason for v in encoded.values())
    before = encode_fields(ACTOR.bytes, 3, H1, 1, payload.TYPE, written, 1 << 14)
    after = encode_fields(ACTOR.bytes, 3, H1, 1, payload.TYPE, encoded, 1 << 14)
    assert after == before
    assert _plain(encoded) == _plain(written)  # the store's fast canonical path is taken exactly as before


@pytest.mark.parametrize(("payload", "written"), SAMPLES, ids=lambda v: getattr(v, "TYPE", ""))
def test_payload_decodes_what_it_encodes(payload: Payload, written: dict[str, Any]) -> None:
    assert type(payload).decode(_event(payload, written)) == payload  # type: ignore[attr-defined]


def test_every_event_type_has_one_payload_class() -> None:
    assert sorted(PAYLOADS) == sorted(EVENT_TYPES)


def test_decoding_a_bad_field_names_the_event_and_the_field() -> None:
    event = _event(WasmResult(fuel=1, state=None, export="e", output=[]),
                   {"fuel": -1, "state": None, "export": "e", "output": []})
    with pytest.raises(MalformedRecord) as caught:
        WasmResult.decode(event)
    assert (caught.value.seq, caught.value.field) == (3, "fuel")


@pytest.mark.parametrize(("files", "field"), [
    ({"base": "", "names": {"worker.toml": b"short"}}, "files.names.worker.toml"),
    ({"base": 1, "names": {}}, "files.base"),
    ({"base": ""}, "files.names"),
    ([], "files"),
])
def test_a_malformed_uploaded_files_map_in_actor_created_names_the_field(files: Any, field: str) -> None:
    payload, written = SAMPLES[0]
    with pytest.raises(MalformedRecord) as caught:
        ActorCreated.decode(_event(payload, {**written, "files": files}))
    assert caught.value.field == field


def test_decoding_an_event_of_another_type_is_refused() -> None:
    event = _event(ActorStop(), {"data": None})
    with pytest.raises(MalformedRecord, match="is not 'actor/failed'"):
        ActorFailed.decode(event)


def _documented_types() -> set[str]:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Event types", 1)[1]
    table = re.search(r"^\|\s*type\s*\|.*?\n\|[-| ]+\|\n((?:\|.*\n)+)", section, re.MULTILINE)
    assert table is not None, "docs/events.md has no table under 'Event types'"
    documented: set[str] = set()
    for row in table.group(1).splitlines():
        first = row.split("|")[1]
        documented.update(re.findall(r"`([^`]+)`", first))
    return {t for t in documented if not t.startswith("<")}  # host calls: <interface>/<function>


def test_the_event_types_in_code_are_the_ones_docs_events_md_documents() -> None:
    documented = _documented_types()
    assert not set(EVENT_TYPES) - documented, "in code but not in docs/events.md's table"
    assert not documented - set(EVENT_TYPES), "in docs/events.md's table but not in code (replay.schema)"
