"""Live replay (``replay.live``): a chain re-executed while its events arrive, resumable mid-chain."""

from __future__ import annotations

import pytest

from replay import ContinuityBreak, Divergence, LiveReplay, Replayer
from replay.replayer import MID_CHAIN_HINT
from store.errors import InvalidInputError
from tests.components import wat
from tests.replay._support import CLOCK_GRANTS, le64, sends


def _clock_requests(count: int):
    def workload(theater, actor):
        for _ in range(count):
            theater.request(actor, b"now?")

    return workload


def test_chain_fed_one_event_at_a_time_reexecutes_as_a_whole_replay_does(record, open_store):
    recording = record(wat.clock_actor(), _clock_requests(3), CLOCK_GRANTS)
    store = open_store(recording)
    whole = Replayer(store).replay(recording.actor)
    live = LiveReplay(Replayer(store), recording.actor)
    calls = sum(live.advance([event]) for event in store.log.events(recording.actor))
    assert whole.ok and whole.host_calls > 0
    assert (calls, live.calls, live.host_calls, live.state) == (whole.calls, whole.calls, whole.host_calls,
                                                               whole.state)
    assert live.fed == live.resume - 1 == store.log.head(recording.actor).seq


def test_live_replay_waits_before_a_call_whose_outcome_has_not_arrived(record, open_store):
    recording = record(wat.counter_actor(), sends(2))
    store = open_store(recording)
    events = list(store.log.events(recording.actor))
    last_call = [e for e in events if e.type == "wasm/call"][-1]
    live = LiveReplay(Replayer(store), recording.actor)
    live.advance(events[: last_call.seq + 1])  # the call is fed, its result is not
    assert live.resume == last_call.seq and live.state == le64(1)
    assert live.advance(events[last_call.seq + 1:]) == 1
    assert live.state == le64(2) and live.resume == events[-1].seq + 1


def test_live_replay_resumed_at_a_recorded_call_goes_on_from_its_state(record, open_store):
    recording = record(wat.counter_actor(), sends(3))
    store = open_store(recording)
    third_call = [e for e in store.log.events(recording.actor) if e.type == "wasm/call"][-1]
    live = LiveReplay(Replayer(store), recording.actor, resume=third_call.seq)
    assert live.advance(store.log.events(recording.actor)) == 1  # fed from genesis: only the last call runs
    assert live.state == le64(3)
    assert live.on_recorded_state(third_call.seq)


def test_result_changed_in_the_record_is_a_divergence_when_fed(record, open_store, rewrite):
    recording = record(wat.counter_actor(), sends(2))
    store = open_store(recording)
    result = [e for e in store.log.events(recording.actor) if e.type == "wasm/result"][-1]
    rewrite(store, recording.actor, result.seq, lambda data: {**data, "state": b"\x00" * 32})
    live = LiveReplay(Replayer(store), recording.actor)
    events = list(store.log.events(recording.actor))
    live.advance(events[: result.seq])
    with pytest.raises(Divergence) as found:
        live.advance(events[result.seq:])
    assert found.value.seq == result.seq


def test_hidden_state_resumed_mid_instance_diverges_on_a_recorded_state(record, open_store):
    recording = record(wat.hidden_state_actor(), sends(3))
    store = open_store(recording)
    third_call = [e for e in store.log.events(recording.actor) if e.type == "wasm/call"][-1]
    live = LiveReplay(Replayer(store), recording.actor, resume=third_call.seq)
    with pytest.raises(Divergence) as found:
        live.advance(store.log.events(recording.actor))
    assert found.value.hint == MID_CHAIN_HINT and live.on_recorded_state(found.value.seq)
    since = live.instance_before(live.start)
    again = LiveReplay(Replayer(store), recording.actor, resume=since)  # from the instance's start it holds
    again.advance(store.log.events(recording.actor))
    assert again.state == le64(3)


def test_events_fed_out_of_order_are_refused(record, open_store):
    recording = record(wat.counter_actor(), sends(1))
    store = open_store(recording)
    events = list(store.log.events(recording.actor))
    live = LiveReplay(Replayer(store), recording.actor)
    with pytest.raises(InvalidInputError):
        live.advance(events[1:])  # genesis skipped
    live = LiveReplay(Replayer(store), recording.actor)
    live.advance(events[:2])
    with pytest.raises(InvalidInputError):
        live.advance(events[:2])  # fed twice
    with pytest.raises(InvalidInputError):
        live.advance([events[2], events[4]])  # a gap: refused whole, nothing of it taken
    assert live.fed == 1
    live.advance(events[2:])
    assert live.state == le64(1) and live.fed == events[-1].seq


def test_record_that_contradicts_itself_breaks_continuity_when_fed(record, open_store):
    recording = record(wat.counter_actor(), sends(2))
    store = open_store(recording)
    events = list(store.log.events(recording.actor))
    result = [e for e in events if e.type == "wasm/result"][-1]
    live = LiveReplay(Replayer(store), recording.actor)
    live.advance(events[:result.seq])
    second_genesis = events[0]._replace(seq=result.seq)  # a creation event where the call's result belongs
    with pytest.raises(ContinuityBreak):
        live.advance([second_genesis])


def test_negative_resume_is_refused(record, open_store):
    recording = record(wat.counter_actor(), sends(1))
    with pytest.raises(InvalidInputError):
        LiveReplay(Replayer(open_store(recording)), recording.actor, resume=-1)
