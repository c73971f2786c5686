"""The record tape writes every call's two events exactly as the schema's payload classes encode them."""

from __future__ import annotations

import uuid

from replay.boundary import CallResult
from replay.schema import WasmCall, WasmResult
from store import EMPTY, Store
from theater.record import RecordTape

EXPORT = "theater:simple/message-server-client/handle-request"


def test_call_events_are_the_payload_classes_encoding(tmp_path):
    with Store(tmp_path / "store", durability="buffered") as store:
        actor = uuid.uuid4()
        tape = RecordTape(store, actor, EMPTY)
        state = b"state bytes"
        tape.begin_call(EXPORT, state, ["id", b"ping"])
        done = CallResult(export=EXPORT, state=b"new state", output=[[b"ping"]], fuel=1234)
        tape.end_call(EXPORT, done)
        tape.begin_call(EXPORT, None, [])
        tape.end_call(EXPORT, CallResult(export=EXPORT, state=None, output=[], fuel=0))
        tape.wait_durable(30)
        events = [store.log.at(actor, seq) for seq in range(4)]
    digest = tape.state_ref(b"new state")
    calls = [WasmCall.decode(events[0]), WasmCall.decode(events[2])]
    results = [WasmResult.decode(events[1]), WasmResult.decode(events[3])]
    for event, payload in zip(events, [calls[0], results[0], calls[1], results[1]]):
        assert event.data == payload.encode()
        assert list(event.data) == list(payload.encode())  # the same keys in the same (canonical) order
    assert results[0] == WasmResult(fuel=1234, state=digest, export=EXPORT, output=[[b"ping"]])
    assert calls[1] == WasmCall(state=None, export=EXPORT, params=[])
    assert results[1].state is None
